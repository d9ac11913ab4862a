# lab-topology: mpath=1
# lab-weight: 120
# lab-timeout: 420
# Faults at the multipath layer, each brought at a chosen moment of a request
# (PR_HELPER_TEST_MPATH_PAUSE=STEP@FILE holds the request at STEP while FILE exists): for each,
# the answer the client gets, the registrations LIO holds for every path afterwards (configfs
# and sg_persist), and that the map is not left suspended; mpathpersist under the same fault
# where it can be brought to it.
#   1. the daemon SIGKILLed with the map suspended during a PREEMPT of its own key: the next
#      daemon resumes the map from the dead one's record, and I/O flows; a map suspended by
#      someone else is warned about and left alone
#   2. a path failing between REGISTER and RESERVE (ours, then mpathpersist)
#   3. multipathd stopped while a REGISTER is between its path commands and setprstatus, and
#      started again
#   4. the path opener (-u) killed while a request is in flight, before it opened the paths:
#      its standby serves the request; then the standby killed the same way
#   5. a hung LUN during PREEMPT: LIO's APTPL file, which it rewrites on every PR OUT once
#      APTPL is on, made a full FIFO, so PR OUT blocks in the kernel (and the SCSI abort of
#      the timed-out command with it) until the scenario drains it (ours, then mpathpersist)
. "$LAB_TESTS/lib.sh"
PAUSE=/tmp/pause.27
LIO=/sys/kernel/config/target/core/fileio_0/disk0/pr
SUSP=/sys/block/$MPDM/dm/suspended
T0=$(date +%s)
elapsed() { echo "$(($(date +%s) - T0)) s"; }
# Each fault's title goes to the VM's console too: run.sh prints it if the VM runs out of time.
fault() { say "$*"; progress "$*"; }

# What LIO holds: one line per registered I_T nexus (the initiator port names nexus 1 and 2
# as naa.5001405aaaaaaa01/02), the holder and type; then sg_persist's keys through each path.
regs() {
    echo "  LIO registrations: $(grep -o 'naa\.[0-9a-f]*[^ ]* .*Key: *0x[0-9a-f]*' "$LIO/res_pr_registered_i_pts" 2>/dev/null |
        sed 's/^\(naa\.[0-9a-f]*\).*Key: *\(0x[0-9a-f]*\)/\1=\2/' | sort | tr '\n' ' ')"
    echo "  LIO holder: $(tr '\n' ' ' <"$LIO/res_pr_holder_tg_port" 2>/dev/null) type: $(tr '\n' ' ' <"$LIO/res_pr_type" 2>/dev/null)"
    for _p in "$A" "$B"; do
        [ "$(cat "/sys/block/${_p#/dev/}/device/state")" = running ] || { echo "  $_p: offline"; continue; }
        echo "  $_p: keys '$(keys_of "$_p")' reservation '$(resv_of "$_p")'"
    done
}
# Registrations of the I_T nexus of path N (1 or 2), from LIO's configfs: "0xKEY" or "".
lio_key() {
    _k=$(grep -o "naa\.5001405aaaaaaa0$1[^ ]* .*Key: *0x[0-9a-f]*" "$LIO/res_pr_registered_i_pts" 2>/dev/null |
        sed 's/.*Key: *\(0x[0-9a-f]*\).*/\1/' | head -1)
    # LIO prints 16 digits (0x00000000000000aa): as sg_persist does.
    [ -z "$_k" ] || printf '0x%x' "$_k"
}
expect_lio_keys() { # KEY_PATH1 KEY_PATH2 WHAT
    expect_eq "$(lio_key 1)/$(lio_key 2)" "$1/$2" "$3 (LIO's registrations for nexus 1/nexus 2)"
}
not_suspended() { # WHAT
    expect_eq "$(cat "$SUSP")" 0 "$1: the map is not suspended"
    $CH dmsetup info "$MPNAME" | grep -i '^state' | sed 's/^/  dmsetup: /'
}
wait_suspended() { # 0|1 SECS
    try_suspended "$@" || die "the map's suspended flag is not $1 after $2 s"
}
try_suspended() { # 0|1 SECS: whether the flag came
    _w=0
    until [ "$(cat "$SUSP")" = "$1" ]; do
        _w=$((_w + 1))
        [ $_w -gt $(($2 * 10)) ] && return 1
        sleep 0.1
    done
    return 0
}
# Our daemon has finished starting (its recovery of suspended maps included): its sandbox,
# the last step, is on.
started() { expect_sandboxed "$OURS_PID" >/dev/null; }
# Waits for a background client (pid $1) and gives its exit status in $CRC.
client_rc() {
    set +e
    wait "$1"
    CRC=$?
    set -e
}
# A clean LUN for the next fault: every registration and reservation gone, by SG_IO.
reset_lun() {
    for _p in "$A" "$B"; do drain_ua "$_p"; done
    # REGISTER AND IGNORE makes path A a registrant whatever it held; its CLEAR drops the rest.
    prc_direct -o -I -S 0x99 "$A" >/dev/null 2>&1 || true
    prc_direct -o -C -K 0x99 "$A" >/dev/null 2>&1 || true
    for _p in "$A" "$B"; do drain_ua "$_p"; done
    expect_eq "$(keys_of "$A")" "" "LUN clean for the next fault"
}
mpath_restart() {
    $CH multipathd -d -s -v3 >>/tmp/multipathd.log 2>&1 &
    _w=0
    until $CH multipathd show daemon >/dev/null 2>&1; do
        _w=$((_w + 1)); [ $_w -gt 300 ] && die "multipathd does not answer after its restart"; sleep 0.1
    done
    wait_paths 2 "active ready" 30
}
mpath_stop() {
    $CH multipathd shutdown >/dev/null 2>&1 || true
    _w=0
    while pidof multipathd >/dev/null; do _w=$((_w + 1)); [ $_w -gt 100 ] && die "multipathd did not stop"; sleep 0.1; done
}
wait_paths 2 "active ready" 20

fault "1. the daemon SIGKILLed with the map suspended during a PREEMPT ($(elapsed))"
touch $PAUSE
export PR_HELPER_TEST_MPATH_PAUSE=suspended@$PAUSE
ours_start -v
unset PR_HELPER_TEST_MPATH_PAUSE
ok prc -o -G -S 0xaa "$MP"
ok prc -o -R -K 0xaa -T 1 "$MP"
# PREEMPT of our own key moves the reservation with the map suspended (libmpathpersist's
# do_preempt_self); the daemon holds there.
prc -o -P -K 0xaa -S 0xaa -T 1 "$MP" >/tmp/client.out 2>&1 &
CPID=$!
wait_suspended 1 30
ls -l /run/qemu-pr-helper/ || true
# Checked after the next start, which is what matters.
RECORD=$(cat /run/qemu-pr-helper/suspended-maps."$OURS_PID" 2>&1 || true)
echo "$RECORD" | sed 's/^/  record: /'
kill -KILL "$OURS_PID"
wait "$OURS_PID" 2>/dev/null || true
OURS_PID=""
client_rc $CPID
echo "  the client got: rc=$CRC $(cat /tmp/client.out)"
[ "$CRC" != 0 ] || die "the PREEMPT succeeded although the daemon was killed"
expect_eq "$(cat "$SUSP")" 1 "the killed daemon left the map suspended"
regs
expect_lio_keys 0xaa 0xaa "the killed PREEMPT changed no registration"
rm -f $PAUSE
cp "/tmp/ours.$LAB_SCENARIO.err" /tmp/ours.killed.err
ours_start -v
started
cat "/tmp/ours.$LAB_SCENARIO.err"
not_suspended "the next daemon's start"
grep -q "resumed multipath map $MPNAME" "/tmp/ours.$LAB_SCENARIO.err" || die "the next daemon did not say it resumed $MPNAME"
echo "  ok: the next daemon resumed $MPNAME and said so"
echo "$RECORD" | grep -q "^suspend mpath-[^ ]* $MPNAME\$" || die "the killed daemon's record did not name $MPNAME as suspended"
echo "  ok: the killed daemon's record named $MPNAME suspended"
ls /run/qemu-pr-helper/ | grep -q "^suspended-maps\.$OURS_PID\$" || die "the new daemon has no record file"
[ "$(ls /run/qemu-pr-helper/ | wc -l)" = 1 ] || die "the dead daemon's record is still there: $(ls /run/qemu-pr-helper/)"
echo "  ok: the dead daemon's record is gone, the new one's is there"
ok prc -o -P -K 0xaa -S 0xaa -T 1 "$MP"
not_suspended "PREEMPT of our own key through the new daemon"
ok prc -o -C -K 0xaa "$MP"
for _p in "$A" "$B"; do drain_ua "$_p"; done
# I/O through the map: a write and a read, direct (the VM's I/O).
dd if=/dev/urandom of=/tmp/blk27 bs=4096 count=1 2>/dev/null
ok dd if=/tmp/blk27 of="$MP" bs=4096 count=1 conv=fsync
echo 3 >/proc/sys/vm/drop_caches
ok dd if="$MP" of=/tmp/blk27.back bs=4096 count=1
cmp /tmp/blk27 /tmp/blk27.back || die "what was written through the map did not read back"
echo "  ok: I/O flows through the map"
ours_stop
[ -z "$(ls /run/qemu-pr-helper/)" ] || die "a clean exit left its record: $(ls /run/qemu-pr-helper/)"
echo "  ok: a clean exit removed the daemon's record"

fault "1b. a map suspended by someone else is warned about and left alone ($(elapsed))"
$CH dmsetup suspend --noflush --noudevsync "$MPNAME"
ours_start -v
started
not_in=$(cat "/tmp/ours.$LAB_SCENARIO.err")
echo "$not_in" | sed 's/^/  | /'
echo "$not_in" | grep -q "warning: multipath map $MPNAME is suspended" || die "no warning about the suspended map"
expect_eq "$(cat "$SUSP")" 1 "someone else's suspended map left alone"
ours_stop
$CH dmsetup resume --noudevsync "$MPNAME"
not_suspended "resumed by whoever suspended it"
reset_lun

fault "2. a path failing between REGISTER and RESERVE ($(elapsed))"
ours_start -v
for tool in ours mpp; do
    echo "-- $tool"
    if [ $tool = ours ]; then ok prc -o -G -S 0xaa "$MP"; else ok mpp --out --register --param-sark=0xaa "$MP"; fi
    expect_lio_keys 0xaa 0xaa "$tool: REGISTER reached both paths"
    echo offline >"/sys/block/${B#/dev/}/device/state"
    wait_paths 1 "failed" 15
    set +e
    if [ $tool = ours ]; then prc -o -R -K 0xaa -T 1 "$MP"; else mpp --out --reserve --param-rk=0xaa --prout-type=1 "$MP"; fi
    rc=$?
    set -e
    echo "  $tool: RESERVE with path B failed -> rc=$rc"
    eval "rc_$tool=$rc"
    regs
    eval "state_$tool='$(lio_key 1)/$(lio_key 2) $(resv_of "$A")'"
    echo running >"/sys/block/${B#/dev/}/device/state"
    wait_paths 2 "active ready" 30
    not_suspended "$tool: after the path came back"
    regs
    reset_lun
done
expect_eq "$rc_ours" 0 "our RESERVE with one path failed"
expect_eq "$state_ours" "0xaa/0xaa 0xaa Write Exclusive" "ours: both nexuses registered, held through the working path"
expect_eq "$rc_ours $state_ours" "$rc_mpp $state_mpp" "ours and mpathpersist: the same answer and state"
ours_stop

fault "3. multipathd stopped between a REGISTER's path commands and setprstatus, then started ($(elapsed))"
touch $PAUSE
export PR_HELPER_TEST_MPATH_PAUSE=setprstatus@$PAUSE
ours_start -v
unset PR_HELPER_TEST_MPATH_PAUSE
prc -o -G -S 0xaa "$MP" >/tmp/client.out 2>&1 &
CPID=$!
# Held at setprstatus: the key is on both paths and in multipathd's prkeys file.
w=0
until [ "$(lio_key 1)/$(lio_key 2)" = "0xaa/0xaa" ]; do
    w=$((w + 1)); [ $w -gt 300 ] && die "the REGISTER did not reach both paths"; sleep 0.1
done
mpath_stop
rm -f $PAUSE
client_rc $CPID
echo "  the client got: rc=$CRC $(cat /tmp/client.out)"
regs
mpath_restart
expect_eq "$($CH multipathd getprkey map "$MPNAME")" 0xaa "the restarted multipathd has the key (prkeys file)"
echo "  multipathd's getprstatus after its restart: $($CH multipathd getprstatus map "$MPNAME")"
not_suspended "REGISTER with multipathd gone"
RC3=$CRC
expect_lio_keys 0xaa 0xaa "both paths registered"
ok prc -o -R -K 0xaa -T 1 "$MP"
expect_resv "$A" "0xaa wr_ex" "the map reserves with the restarted multipathd"
ours_stop
reset_lun

fault "4. the path opener (-u) killed while a request is in flight ($(elapsed))"
printf 'defaults {\n    reservation_key 0x77\n}\n' >/etc/multipath/conf.d/zz-key.conf
$CH multipathd reconfigure >/dev/null
wait_paths 2 "active ready" 30
touch $PAUSE
export PR_HELPER_TEST_MPATH_PAUSE=start@$PAUSE
ours_start_unit -u 65534 -g 65534 -v
unset PR_HELPER_TEST_MPATH_PAUSE
# The socket is published before the openers are forked: the sandbox comes after both.
started
OPENERS=$(children_of "$OURS_PID" | sort -n)
set -- $OPENERS
PRIMARY=${1:-} STANDBY=${2:-}
[ -n "$PRIMARY" ] && [ -n "$STANDBY" ] || die "no path opener and standby under the daemon: '$OPENERS'"
# REGISTER held after the paths were found and before any was opened, and opener $1 killed
# under it; the client's exit status in $CRC.
register_killing() { # OPENER_PID
    touch $PAUSE
    T1=$(date +%s)
    prc -o -G -S 0x77 "$MP" >/tmp/client.out 2>&1 &
    CPID=$!
    # The request is at the pause when a thread of the daemon sleeps in it (its wchan).
    w=0
    until grep -qs nanosleep /proc/"$OURS_PID"/task/*/wchan; do
        w=$((w + 1)); [ $w -gt 300 ] && die "the request never reached the pause"; sleep 0.1
    done
    kill -KILL "$1"
    w=0
    while [ -d "/proc/$1" ]; do w=$((w + 1)); [ $w -gt 50 ] && die "the killed opener $1 was not reaped"; sleep 0.1; done
    rm -f $PAUSE
    client_rc $CPID
    echo "  the client got, $(($(date +%s) - T1)) s after it asked: rc=$CRC $(cat /tmp/client.out)"
}
# The first opener's death: its standby opens the paths of the same request.
register_killing "$PRIMARY"
[ "$CRC" = 0 ] || die "REGISTER failed with the standby opener there"
regs
expect_lio_keys 0x77 0x77 "both paths registered through the standby"
not_suspended "the first opener killed"
# The -v line is written once the reply is out.
w=0
until grep -q "path opener (pid $PRIMARY) has exited: its standby, the path opener (pid $STANDBY)" \
    "/tmp/ours.$LAB_SCENARIO.err"; do
    w=$((w + 1)); [ $w -gt 50 ] && die "-v does not say the standby took over"; sleep 0.1
done
echo "  ok: -v says the standby took over"
ok prc -o -G -K 0x77 -S 0 "$MP"
expect_lio_keys "" "" "unregistered through the standby"
# The standby's death: nothing left to open paths with.
register_killing "$STANDBY"
[ "$CRC" != 0 ] || die "REGISTER succeeded without a path opener"
regs
expect_lio_keys "" "" "nothing registered without an opener"
not_suspended "both openers killed"
kill -0 "$OURS_PID" || die "the daemon died with its opener"
T1=$(date +%s)
set +e
prc -o -G -S 0x77 "$MP"
rc=$?
set -e
[ "$rc" != 0 ] || die "the next REGISTER succeeded without a path opener"
echo "  the next request: rc $rc, after $(($(date +%s) - T1)) s"
ours_stop
rm -f /etc/multipath/conf.d/zz-key.conf
$CH multipathd reconfigure >/dev/null
wait_paths 2 "active ready" 30

fault "5. a hung LUN during PREEMPT (LIO's APTPL file a full FIFO) ($(elapsed))"
ours_start -v
# With APTPL (-Z) LIO writes its APTPL file on every PR OUT, the PREEMPT included (without it,
# on REGISTERs only).
ok prc -o -G -S 0xaa -Z "$MP"
ok prc -o -R -K 0xaa -T 1 "$MP"
APTPL=$(ls /etc/target/pr/aptpl_* 2>/dev/null | head -1)
[ -n "$APTPL" ] || die "no LIO APTPL file in /etc/target/pr"
# A FIFO in its place, filled (64 KiB, the pipe's capacity) and held open by this shell: LIO's
# next write to it (every PR OUT) waits until someone reads.
hang_lun() {
    rm -f "$APTPL"
    mkfifo "$APTPL"
    exec 7<>"$APTPL"
    dd if=/dev/zero bs=4096 count=16 >&7 2>/dev/null
}
unhang_lun() {
    # Drain what this shell wrote (LIO's blocked write then goes through; a read of more could
    # wait for ever on a FIFO this shell holds open for writing), then a regular file again.
    dd bs=4096 count=16 <&7 >/dev/null 2>&1 || true
    exec 7>&-
    rm -f "$APTPL"
}

for tool in ours mpp; do
    echo "-- $tool"
    [ $tool = mpp ] && { ok mpp --out --register --param-sark=0xaa --param-aptpl "$MP"; ok mpp --out --reserve --param-rk=0xaa --prout-type=1 "$MP"; }
    hang_lun
    T1=$(date +%s)
    if [ $tool = ours ]; then
        "$LAB_BIN" pr-client --socket="$OURS_SOCK" --timeout=120 -o -P -K 0xaa -S 0xaa -T 1 "$MP" >/tmp/client.out 2>&1 &
    else
        mpp --out --preempt --param-rk=0xaa --param-sark=0xaa --prout-type=1 "$MP" >/tmp/client.out 2>&1 &
    fi
    CPID=$!
    # Hung in LIO: a kernel task waits in pipe_write, as a target that never answers holds
    # its initiator.
    w=0
    until grep -q pipe_write /proc/*/stack 2>/dev/null; do
        w=$((w + 1)); [ $w -gt 300 ] && { [ $tool = ours ] && die "$tool: no PR OUT hung in LIO's APTPL write"; break; }
        sleep 0.1
    done
    echo "  $tool: after $(($(date +%s) - T1)) s: hung (tasks in pipe_write: $(grep -l pipe_write /proc/*/stack 2>/dev/null | tr '\n' ' ')), map suspended $(cat "$SUSP")"
    if [ $tool = ours ]; then
        # Our deadline (15 s) resumes the map while the path command still hangs.
        wait_suspended 0 90
        echo "  ours: the map resumed after $(($(date +%s) - T1)) s, the LUN still hung"
        kill -0 $CPID 2>/dev/null || die "ours: the client was answered before the LUN came back"
        echo "  ok: ours: the client still waits for the hung LUN, the map is not suspended"
    else
        # mpathpersist 0.11.1 (trixie's) does not suspend the map for a PREEMPT of its own
        # key: the same 15 s, to see whether it waits too.
        w=0
        while kill -0 $CPID 2>/dev/null && [ $w -lt 150 ]; do w=$((w + 1)); sleep 0.1; done
        if kill -0 $CPID 2>/dev/null; then echo "  mpp: still waits after $(($(date +%s) - T1)) s"; else echo "  mpp: done after $(($(date +%s) - T1)) s"; fi
    fi
    unhang_lun
    client_rc $CPID
    echo "  $tool: the client got, $(($(date +%s) - T1)) s after it asked: rc=$CRC $(cat /tmp/client.out)"
    eval "rc5_$tool=$CRC"
    not_suspended "$tool: after the LUN came back"
    # SCSI error handling of the timed-out command can hold the path for minutes under load.
    wait_paths 2 "active ready" 180
    regs
    eval "state5_$tool='$(lio_key 1)/$(lio_key 2) $(resv_of "$A")'"
    reset_lun
done
echo "  ours: rc=$rc5_ours $state5_ours; mpathpersist: rc=$rc5_mpp $state5_mpp"
grep -q "$MPNAME resumed after 15 s while a reservation was being moved" "/tmp/ours.$LAB_SCENARIO.err" ||
    die "no -v line saying the map was resumed at the deadline"
echo "  ok: the -v log says the map was resumed at the deadline"
ours_stop
echo "total $(elapsed)"
cat /tmp/ours.killed.err
cat "/tmp/ours.$LAB_SCENARIO.err"
