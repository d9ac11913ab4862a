# lab-topology: mpath=1
# lab-timeout: 360
# A slow device never delays the other clients. The slow device is a storage outage:
# the dm-multipath map with queue_if_no_path and both paths failed, where SG_IO waits until a
# path comes back (scsi_debug's delay does not apply to PR commands, which it answers at once
# with INVALID OPCODE). While 4 clients wait on the map through our helper (--no-multipath:
# SG_IO on the map, as the C helper), 20 PR commands on the LUN through nexus A are answered,
# all while the 4 still wait; when a path is reinstated the 4 are answered too. The same run
# through QEMU 11's C helper is printed for comparison, not asserted. Latencies are printed
# for the benchmark notes.
. "$LAB_TESTS/lib.sh"
dms() { $CH dmsetup "$@"; }
now_ms() { $HL /host/usr/bin/date +%s%3N; } # busybox date has no %N

# multipathd would reinstate the paths (and stops queueing when it exits): without it, the
# map keeps queueing with no path until told otherwise.
$CH multipathd shutdown >/dev/null 2>&1 || true
w=0
while pidof multipathd >/dev/null; do w=$((w + 1)); [ $w -gt 50 ] && die "multipathd did not stop"; sleep 0.1; done
dev_a=$(cat "/sys/block/${A#/dev/}/dev")
dev_b=$(cat "/sys/block/${B#/dev/}/dev")

outage() {
    dms message "$MPNAME" 0 queue_if_no_path
    dms message "$MPNAME" 0 fail_path "$dev_a"
    dms message "$MPNAME" 0 fail_path "$dev_b"
}
recover() {
    dms message "$MPNAME" 0 reinstate_path "$dev_a"
    dms message "$MPNAME" 0 reinstate_path "$dev_b"
}

# isolation SOCKET NAME: 4 clients on the map in an outage, 20 on $A; sets STILL.
isolation() {
    outage
    pids=""
    for i in 1 2 3 4; do
        "$LAB_BIN" pr-client --socket="$1" --timeout=120 -k "$MP" >"/tmp/slow.$i" 2>&1 &
        pids="$pids $!"
    done
    sleep 1
    t0=$(now_ms)
    lat=""
    for i in $(seq 20); do
        t=$(now_ms)
        "$LAB_BIN" pr-client --socket="$1" --timeout=60 -k "$A" >/tmp/fast.out 2>&1 ||
            die "$2: a PR IN on $A failed: $(cat /tmp/fast.out)"
        lat="$lat $(($(now_ms) - t))"
    done
    fast_done=$(($(now_ms) - t0))
    STILL=0
    for p in $pids; do kill -0 "$p" 2>/dev/null && STILL=$((STILL + 1)); done
    recover
    for p in $pids; do wait "$p" || true; done
    sorted=$(echo $lat | tr ' ' '\n' | sort -n | tr '\n' ' ')
    echo "$2: 20 PR IN on $A in $fast_done ms (pr-client runs, ms: $sorted) while $STILL/4 clients waited on the map"
    for i in 1 2 3 4; do
        grep -q "PR generation" "/tmp/slow.$i" || die "$2: client $i on the map got no answer after the outage: $(cat "/tmp/slow.$i")"
    done
    echo "  ok: $2: the 4 clients on the map were answered once a path came back"
}

ours_start --no-multipath
isolation "$OURS_SOCK" "ours"
expect_eq "$STILL" 4 "every request on the map still waiting when the 20 others were answered (ours)"
ours_stop

c_start
isolation "$C_SOCK" "C helper (QEMU 11)"
c_stop
dms message "$MPNAME" 0 fail_if_no_path
