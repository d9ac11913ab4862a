# lab-topology: mpath=1 nexus=4
# lab-timeout: 2700
# lab-weight: 275
# Measured on 2026-12-07 (docs/lab.md#live-migration): 272.8 s, alone, the nested boot (the
# lab's own kernel) 45 s of it; with Debian's kernel 643-755 s, its boot 148-272 s (other
# machines; one whose TCG was about twice as slow for 755 s).
# Live migration of a VM that holds a reservation (QEMU 11's migrate-pr, issue 31): two
# "hosts" on the one LUN, each with its own helper on its own socket, the nested guest of 21
# migrated between them by QMP over a Unix socket. Host A reaches the LUN through one path,
# nexus 3 ($HA); host B through the dm-multipath map $MP of nexus 1 and 2 (multipathd
# running, `reservation_key file`); nexus 4 ($HC) is host B's plain path for the C helper's
# round. QEMU's scsi-block snoops the guest's PR OUT; on a versioned machine type the
# destination sends, through its pr-manager, REGISTER (the guest's key) and PREEMPT (that key
# in both fields, the guest's type) while it loads the device's state, before the guest runs.
# The guest registers 0x4d49 and reserves Write Exclusive, Registrants Only (type 5: on a
# map every path must write; under type 1 only the nexus that preempted could, see
# docs/lab.md), then writes one block a second and prints each write's outcome.
#   1 a-to-b: A -> B, our helpers with --audit: the reservation and every path of B's map
#     registered, A not; a write through A conflicts; the guest writes on B; both helpers'
#     records; multipathd's key and a path of B's map offline and back registered again.
#   2 rollback: helpers under the unit's bounding set with -u 65534 -g 65534 (the map's key
#     in multipath.conf, as -u needs); B -> A where the destination lacks a device the
#     source has, so its load fails after its REGISTER and PREEMPT went through: whether
#     QEMU's source takes the reservation back through the map (if not, recorded, and the
#     lab puts it back as QEMU would).
#   3 b-to-a: B -> A (both directions), still under -u; a path of B offline and back then
#     (recorded: multipathd on B registers it again, the key being registered by A).
#   3b back-to-b: A -> B again (B's map with that path registered already), B -> A again,
#     then `multipathd unsetprstatus` on B: its returning path stays unregistered.
#   4 c-plain: the C helper (QEMU 11's) on A and on nexus 4: A -> nexus 4, the same checks.
#   5 c-map: the C helper on B's map (no libmpathpersist in Debian's): nexus 4 -> B's map,
#     what it does recorded, not asserted.
. "$LAB_TESTS/lib.sh"
HA=$LAB_DEV_3_0 HC=$LAB_DEV_4_0
[ -b "$MP" ] && [ -b "$HA" ] && [ -b "$HC" ] || die "missing devices: $(cat /tmp/devs.sh)"
KEY=0x4d49 TYPE=5
PRDIR=/sys/kernel/config/target/core/fileio_0/disk0/pr
# Limits as 21's (wall-clock; the nested boot was 107-248 s in the runs of docs/lab.md).
BOOT_LIMIT=1200 STEP_LIMIT=300
T0=$(date +%s)
# A failure shows what each side said: the consoles, QMP and the helpers' logs.
die() {
    echo "ASSERTION FAILED: $*"
    for _f in /tmp/console.* /tmp/qmp.*.log /tmp/helper.*.err; do
        [ -f "$_f" ] || continue
        echo "-- $_f"
        tr -d '\r' <"$_f" | tail -n 30
    done
    exit 1
}
elapsed() { echo $(($(date +%s) - $1)); }

# The nested guest: 21's kernel and initramfs, an /init that registers, reserves and writes.
nested_begin
cat >>$NESTED/init <<INIT
i=0
while [ ! -b /dev/sda ] && [ \$i -lt 300 ]; do sleep 0.1; i=\$((i + 1)); done
echo "@@INNER-READY \$(ls /dev/sda 2>&1) uptime=\$(cat /proc/uptime)"
for _u in 1 2 3; do \$P -k /dev/sda >/dev/null 2>&1 && break; done
\$P -o -G -S $KEY /dev/sda; echo "@@REGISTER rc=\$?"
\$P -o -R -K $KEY -T $TYPE /dev/sda; echo "@@RESERVE rc=\$?"
n=0
while :; do
    n=\$((n + 1))
    if dd if=/dev/zero of=/dev/sda bs=4096 count=1 seek=\$((n % 64)) oflag=direct conv=notrunc 2>/dev/null; then
        echo "@@W \$n ok"
    else
        echo "@@W \$n fail"
    fi
    sleep 1
done
INIT
nested_pack

# --- the two hosts' helpers -------------------------------------------------------------
helper_stop() {
    eval "_p=\${HPID_$1:-}"
    [ -n "$_p" ] && kill "$_p" 2>/dev/null && wait "$_p" 2>/dev/null
    eval "HPID_$1="
    return 0
}
# ours_on HOST [WRAP...] [-- ARGS]: our helper (--audit) for HOST on /deb/run/pr-HOST.sock
# (QEMU's /run/pr-HOST.sock), its log appended to /tmp/helper.HOST.err; HPID_HOST. Returns
# once its start-up is over: the socket comes before the privilege drop, the sandbox after.
ours_on() {
    _h=$1
    shift
    rm -f "/deb/run/pr-$_h.sock"
    echo "--- $(date +%T) ours $*" >>"/tmp/helper.$_h.err"
    _wrap="" _args=""
    while [ $# -gt 0 ] && [ "$1" != -- ]; do _wrap="$_wrap $1"; shift; done
    if [ "${1:-}" = -- ]; then
        shift
        _args="$*"
    fi
    # shellcheck disable=SC2086 # word lists
    $_wrap "$LAB_BIN" qemu-pr-helper --audit -k "/deb/run/pr-$_h.sock" $_args >>"/tmp/helper.$_h.err" 2>&1 &
    eval "HPID_$_h=\$!"
    wait_sock "/deb/run/pr-$_h.sock"
    eval "expect_sandboxed \$HPID_$_h"
}
c_on() { # HOST: QEMU 11's C helper for HOST
    rm -f "/deb/run/pr-$1.sock"
    echo "--- $(date +%T) C qemu-pr-helper" >>"/tmp/helper.$1.err"
    $CH /usr/bin/qemu-pr-helper -k "/run/pr-$1.sock" >>"/tmp/helper.$1.err" 2>&1 &
    eval "HPID_$1=\$!"
    wait_sock "/deb/run/pr-$1.sock"
}
UNIT_WRAP="$HL /host/usr/bin/setpriv --bounding-set -all,$(unit_bounding_set) --no-new-privs"

# --- QEMU and QMP -----------------------------------------------------------------------
# vm_start VM HOST DEV [ARGS...]: QEMU 11 (chrooted in /deb) for the nested guest, its disk
# DEV as scsi-block with pr-manager-helper on HOST's helper; QMP on the pipes
# /deb/tmp/qmp.VM.{in,out} (its answers and events in /tmp/qmp.VM.log); QPID_VM.
# A virtio-rng device after the disk unless ARGS say "norng" (the failing destination).
vm_start() {
    _vm=$1 _host=$2 _dev=$3
    shift 3
    _rng="-device virtio-rng-pci,id=rng0"
    [ "${1:-}" = norng ] && { _rng=""; shift; }
    mkfifo "/deb/tmp/qmp.$_vm.in" "/deb/tmp/qmp.$_vm.out"
    cat "/deb/tmp/qmp.$_vm.out" >"/tmp/qmp.$_vm.log" &
    # shellcheck disable=SC2086 # _rng: one option and its value, or nothing
    $CH qemu-system-x86_64 -name mig-vm -accel tcg -machine pc,acpi=off -m 128 -nographic -no-reboot \
        -nic none -vga none -bios "$NESTED_BIOS" \
        -kernel /tmp/vmlinuz -initrd /tmp/inner.cpio -append "$NESTED_APPEND" \
        -object pr-manager-helper,id=pr0,path="/run/pr-$_host.sock" \
        -blockdev node-name=d0,driver=host_device,filename="$_dev",pr-manager=pr0 \
        -device virtio-scsi-pci,id=scsi0 -device scsi-block,drive=d0,id=disk0 $_rng \
        -chardev pipe,id=qmp0,path="/tmp/qmp.$_vm" -mon chardev=qmp0,mode=control \
        "$@" </dev/null >"/tmp/console.$_vm" 2>&1 &
    eval "QPID_$_vm=\$!"
    QN=${QN:-0}
    qmp "$_vm" qmp_capabilities
}
# qmp VM COMMAND [ARGUMENTS-JSON]: the answer line in QREPLY; dies on an error answer.
qmp() {
    QN=$((QN + 1))
    _id=c$QN
    if [ -n "${3:-}" ]; then
        _j="{\"execute\":\"$2\",\"arguments\":$3,\"id\":\"$_id\"}"
    else
        _j="{\"execute\":\"$2\",\"id\":\"$_id\"}"
    fi
    # (The open waits for QEMU to open its end: not forever.)
    timeout 60 sh -c 'echo "$1" >"$2"' sh "$_j" "/deb/tmp/qmp.$1.in" || die "QEMU $1 does not read QMP ($2)"
    _t=$(date +%s)
    until QREPLY=$(grep "\"id\": \"$_id\"" "/tmp/qmp.$1.log"); do
        eval "_p=\$QPID_$1"
        kill -0 "$_p" 2>/dev/null || die "QEMU $1 exited before answering $2"
        [ "$(elapsed "$_t")" -gt $STEP_LIMIT ] && die "no QMP answer from $1 to $2 after $STEP_LIMIT s"
        sleep 0.1
    done
    case "$QREPLY" in *'"error"'*) die "QMP $2 on $1: $QREPLY" ;; esac
    return 0
}
vm_gone() { # VM: waits for its QEMU to end
    eval "_p=\$QPID_$1"
    wait "$_p" 2>/dev/null || true
}
CAPS='{"capabilities":[{"capability":"return-path","state":true},{"capability":"events","state":true}]}'
# migrate SRC DST: DST was started with -incoming defer; migrates SRC's guest to it over
# /deb/run/mig.sock and waits for the source's end state: MIG_STATUS (completed or failed),
# MIG_SECS. With return-path the source completes only once the destination has loaded the
# device state (its REGISTER and PREEMPT included), and resumes the guest if that failed.
migrate() {
    rm -f /deb/run/mig.sock
    qmp "$2" migrate-set-capabilities "$CAPS"
    qmp "$2" migrate-incoming '{"uri":"unix:/run/mig.sock"}'
    wait_sock /deb/run/mig.sock
    qmp "$1" migrate-set-capabilities "$CAPS"
    _mt=$(date +%s)
    MIG_FAILS0=$(guest_writes "$1" fail)
    qmp "$1" migrate '{"uri":"unix:/run/mig.sock"}'
    while :; do
        qmp "$1" query-migrate
        MIG_STATUS=$(echo "$QREPLY" | sed -n 's/.*"status": "\([a-z-]*\)".*/\1/p')
        case "$MIG_STATUS" in completed | failed | cancelled) break ;; esac
        [ "$(elapsed "$_mt")" -gt $STEP_LIMIT ] && die "migration $1 -> $2 still '$MIG_STATUS' after $STEP_LIMIT s"
        sleep 0.5
    done
    MIG_SECS=$(elapsed "$_mt")
    progress "  migration $1 -> $2: $MIG_STATUS in $MIG_SECS s (QEMU: total-time $(echo "$QREPLY" | sed -n 's/.*"total-time": \([0-9]*\).*/\1/p') ms, downtime $(echo "$QREPLY" | sed -n 's/.*"downtime": \([0-9]*\).*/\1/p') ms)"
    case "$MIG_STATUS" in completed) ;; *) echo "  $QREPLY" | cut -c1-400 ;; esac
}

# expect_running VM WHAT: VM's guest runs, within 60 s. The source's "completed" comes once
# the destination has loaded the device state; the destination starts its CPUs after that,
# in its own time, and the source resumes its guest after a failure likewise.
expect_running() {
    _t=$(date +%s)
    while :; do
        qmp "$1" query-status
        case "$QREPLY" in *'"running": true'*) break ;; esac
        [ "$(elapsed "$_t")" -gt 60 ] && die "$2: not running after 60 s: $QREPLY"
        sleep 0.5
    done
    echo "  ok: $2 ($(elapsed "$_t") s after the migration's end)"
}

# --- what the LUN says ------------------------------------------------------------------
# The registrations LIO holds, by nexus number: "1=0x4d49 2=0x4d49 " (sorted).
lio_regs() {
    sed -n 's/.*Node: naa\.5001405aaaaaaa0\([0-9]\).* Key: 0x0*\([0-9a-f]*\) .*/\1=0x\2/p' \
        "$PRDIR/res_pr_registered_i_pts" | sort | tr '\n' ' '
}
lio_holder() { sed -n 's/.*Initiator: naa\.5001405aaaaaaa0\([0-9]\).*/\1/p' "$PRDIR/res_holder"; }
lio_show() {
    echo "  LIO: registered: $(tr '\n' ';' <"$PRDIR/res_pr_registered_i_pts")"
    echo "  LIO: holder: $(cat "$PRDIR/res_holder"); $(cat "$PRDIR/res_pr_type")"
}
nexus_dev() { eval "echo \$LAB_DEV_${1}_0"; }
# conflict_through N: a WRITE through nexus N is refused with RESERVATION CONFLICT (a UNIT
# ATTENTION its I_T nexus has pending, the preemption's 2A/05, is read first and printed).
conflict_through() {
    _d=$(nexus_dev "$1")
    _r=$(io write "$_d" || true)
    case "$_r" in OTHER*) echo "  first command through nexus $1 ($_d): $_r" | cut -c1-200; _r=$(io write "$_d" || true) ;; esac
    [ "$_r" = CONFLICT ] || die "a write through nexus $1 ($_d) gave $_r, expected CONFLICT"
    echo "  ok: a write through nexus $1 ($_d) -> RESERVATION CONFLICT"
}
# expect_moved WHAT "NEW NEXUSES" "OLD NEXUSES": every new nexus registered with the key, no
# other; the reservation (type 5) held through a new one; a write through each old conflicts.
expect_moved() {
    lio_show
    _want=""
    for _n in $2; do _want="$_want$_n=$KEY "; done
    expect_eq "$(lio_regs)" "$_want" "$1: registrations (LIO configfs)"
    _h=$(lio_holder)
    case " $2 " in *" $_h "*) echo "  ok: $1: reservation held through nexus $_h" ;; *) die "$1: holder nexus '$_h', not one of $2" ;; esac
    grep -q "Registrants Only" "$PRDIR/res_pr_type" || die "$1: type $(cat "$PRDIR/res_pr_type")"
    _first=${2%% *}
    _keys=""
    for _n in $2; do _keys="$_keys$KEY "; done
    expect_eq "$(keys_of "$(nexus_dev "$_first")")" "$_keys" "$1: keys (sg_persist through nexus $_first)"
    _r=$(resv_of "$(nexus_dev "$_first")")
    case "$_r" in "$KEY Write Exclusive, registrants only") echo "  ok: $1: reservation (sg_persist): $_r" ;; *) die "$1: sg_persist reads the reservation '$_r'" ;; esac
    for _n in $3; do conflict_through "$_n"; done
}
# guest_writes VM ok|fail: how many writes the guest reported on VM's console.
guest_writes() { tr -d '\r' <"/tmp/console.$1" 2>/dev/null | grep -o "@@W [0-9]* $2" | grep -c . || true; }
# expect_writes VM WHAT: three more guest writes succeed on VM, and no write failed since the
# migration began (MIG_FAILS0 of the source, or 0 on a new destination).
expect_writes() {
    _ok0=$(guest_writes "$1" ok) _t=$(date +%s)
    while [ "$(guest_writes "$1" ok)" -lt $((_ok0 + 3)) ]; do
        eval "_p=\$QPID_$1"
        kill -0 "$_p" 2>/dev/null || die "$2: QEMU $1 exited"
        [ "$(elapsed "$_t")" -gt $STEP_LIMIT ] && die "$2: no 3 more guest writes on $1 after $STEP_LIMIT s"
        sleep 1
    done
    _f=$(guest_writes "$1" fail)
    [ "$_f" -le "${3:-0}" ] || die "$2: the guest's writes failed on $1: $(tr -d '\r' <"/tmp/console.$1" | grep -o '@@W [0-9]* fail' | tr '\n' ' ')"
    echo "  ok: $2: the guest writes on $1 ($(tr -d '\r' <"/tmp/console.$1" | grep -o '@@W [0-9]* ok' | tail -n 1))"
}
# audit_since HOST LINE: the helper's audit records after line LINE of its log.
audit_lines() { wc -l <"/tmp/helper.$1.err"; }
expect_audit() { # HOST FROM-LINE WHAT: a REGISTER then a PREEMPT from the VM, both GOOD
    _recs=$(tail -n +"$(($2 + 1))" "/tmp/helper.$1.err" | grep 'audit: ' || true)
    echo "$_recs" | sed 's/^/  record: /'
    _reg=$(echo "$_recs" | grep -n ' REGISTER .*sa_key=0x0000000000004d49 .*status=GOOD' | head -1 | cut -d: -f1)
    _pre=$(echo "$_recs" | grep -n ' PREEMPT .*key=0x0000000000004d49 sa_key=0x0000000000004d49 .*status=GOOD' | head -1 | cut -d: -f1)
    [ -n "$_reg" ] && [ -n "$_pre" ] && [ "$_reg" -lt "$_pre" ] || die "$3: no REGISTER then PREEMPT with the guest's key in host $1's audit records"
    echo "$_recs" | grep ' PREEMPT ' | grep -qE 'vm_claimed=mig-vm|vm=mig-vm' || die "$3: the PREEMPT record does not name the VM"
    echo "  ok: $3: host $1's helper recorded the destination's REGISTER then PREEMPT, naming mig-vm"
}
drain_nexus() { for _u in 1 2 3; do "$LAB_BIN" pr-client --direct -k "$(nexus_dev "$1")" >/dev/null 2>&1 && return 0; done; return 0; }

# A fresh nexus answers its first command with a UNIT ATTENTION (power on): nexus 4 is read
# here once, as a host's own use of its path would (QEMU's REGISTER at migration does not
# retry one: round 3 records it on nexus 3).
drain_nexus 4
$CH multipathd show paths format '%d %t %T'

say "round 1 (a-to-b): the guest boots on host A (nexus 3, our helper), migrates to host B's map"
ours_on a
ours_on b
vm_start a1 a "$HA"
QPID=$QPID_a1
qmp a1 qom-get '{"path":"/machine/peripheral/disk0","property":"migrate-pr"}'
# ("pc" is QEMU 11.1's pc-i440fx-11.1: migrate-pr defaults to on from 11.0's types.)
expect_eq "$(echo "$QREPLY" | sed -n 's/.*"return": \([a-z]*\).*/\1/p')" true "scsi-block's migrate-pr on the versioned machine type"
inner_fail() { die "$1"; }
nested_wait /tmp/console.a1 "@@INNER-READY" $BOOT_LIMIT inner_fail
BOOT_SECS=$(elapsed "$T0")
nested_wait /tmp/console.a1 "@@RESERVE" $STEP_LIMIT inner_fail
tr -d '\r' </tmp/console.a1 | grep -o '@@[A-Z]* rc=[0-9]*'
tr -d '\r' </tmp/console.a1 | grep -q '@@REGISTER rc=0' || die "the guest's REGISTER failed"
tr -d '\r' </tmp/console.a1 | grep -q '@@RESERVE rc=0' || die "the guest's RESERVE failed"
expect_writes a1 "before any migration"
expect_moved "the guest on host A" "3" ""
t=$(date +%s)
vm_start b1 b "/dev/$MPDM" -incoming defer
AL_B=$(audit_lines b)
migrate a1 b1
expect_eq "$MIG_STATUS" completed "migration A -> B"
expect_running b1 "the guest runs on host B"
qmp a1 quit
vm_gone a1
expect_moved "after A -> B" "1 2" "3"
expect_writes b1 "after A -> B"
expect_audit b "$AL_B" "A -> B"
expect_eq "$($CH multipathd getprkey map "$MPNAME")" "$KEY" "multipathd on B knows the guest's key"
expect_eq "$($CH multipathd getprstatus map "$MPNAME")" set "multipathd on B: the map is registered"
# A path of B's map offline and back: multipathd registers the key on it again. (A guest
# write sent to the path in the second before multipathd fails it may fail: printed.)
FLAP_FAILS=$(guest_writes b1 fail)
echo offline >"/sys/block/${B#/dev/}/device/state"
wait_paths 1 "failed" 20
echo running >"/sys/block/${B#/dev/}/device/state"
wait_paths 2 "active ready" 30
w=0
until [ "$(lio_regs)" = "1=$KEY 2=$KEY " ]; do
    w=$((w + 1))
    [ $w -gt 200 ] && die "the returning path of B was not registered again: $(lio_regs)"
    sleep 0.1
done
echo "  ok: a path of B's map taken offline and back is registered again by multipathd"
echo "  the guest's writes during the flap: $(tr -d '\r' </tmp/console.b1 | grep -o '@@W [0-9]* [a-z]*' | tail -n 8 | tr '\n' ' ')"
expect_writes b1 "after B's path came back" "$(guest_writes b1 fail)"
[ "$(guest_writes b1 fail)" = "$FLAP_FAILS" ] || echo "  note: $(($(guest_writes b1 fail) - FLAP_FAILS)) guest write(s) failed while the path was offline"
# The failures counted from here on are round 2's (the guest, writing once a second of its
# own clock, can send one to the path in the second before it goes offline).
R1_FAILS=$(guest_writes b1 fail)
R1_SECS=$(elapsed "$t")
progress "round 1: ${R1_SECS} s (the nested boot ${BOOT_SECS} s before it)"

say "round 2 (rollback): helpers under -u 65534 -g 65534; B -> A fails after A's PREEMPT"
t=$(date +%s)
# Under -u multipathd refuses the helper's setprkey: the key comes from multipath.conf.
printf 'defaults {\n    reservation_key %s\n}\n' "$KEY" >/etc/multipath/conf.d/zz-key.conf
$CH multipathd reconfigure >/dev/null
wait_paths 2 "active ready" 30
helper_stop a
helper_stop b
ours_on a $UNIT_WRAP -- -u 65534 -g 65534
ours_on b $UNIT_WRAP -- -u 65534 -g 65534
expect_eq "$(status_of "$HPID_b" Uid)" "65534 65534 65534 65534" "host B's helper runs as uid 65534"
[ -n "$(children_of "$HPID_b")" ] || die "no path opener under host B's helper"
# The source's next PR command goes to the new helper (QEMU reconnects); its guest keeps writing.
expect_writes b1 "host B's helper restarted under -u" "$R1_FAILS"
AL_A=$(audit_lines a) AL_B=$(audit_lines b)
vm_start a2 a "$HA" norng -incoming defer
migrate b1 a2
vm_gone a2
echo "  the destination's end: $(tr -d '\r' </tmp/console.a2 | grep -i 'error\|fail\|unknown' | head -n 3 | tr '\n' ' ')"
expect_eq "$MIG_STATUS" failed "B -> A with a destination lacking a device"
expect_audit a "$AL_A" "the failing destination"
expect_running b1 "the source guest runs again on host B"
lio_show
ROLLBACK=no
if [ "$(lio_regs)" = "1=$KEY 2=$KEY " ]; then
    ROLLBACK=yes
    # (Nexus 3's pending UNIT ATTENTION is left for round 3: not written through here.)
    expect_moved "rolled back to B" "1 2" ""
    expect_writes b1 "after the failed migration" "$MIG_FAILS0"
    tail -n +"$((AL_B + 1))" /tmp/helper.b.err | grep 'audit: ' | sed 's/^/  B record: /'
else
    # Recorded: who holds the LUN now, and what the source guest's writes got.
    echo "  NO ROLLBACK: QEMU's source did not take the reservation back: LIO registrations '$(lio_regs)', holder nexus $(lio_holder)"
    tail -n +"$((AL_B + 1))" /tmp/helper.b.err | sed 's/^/  B helper: /'
    w0=$(guest_writes b1 ok) f0=$(guest_writes b1 fail)
    _t=$(date +%s)
    while [ "$(($(guest_writes b1 ok) + $(guest_writes b1 fail)))" -lt $((w0 + f0 + 3)) ] && [ "$(elapsed "$_t")" -lt 60 ]; do sleep 1; done
    echo "  the source guest's writes since: $(tr -d '\r' </tmp/console.b1 | grep -o '@@W [0-9]* [a-z]*' | tail -n 4 | tr '\n' ' ')"
    # What QEMU would have sent, through host B's helper: REGISTER and PREEMPT.
    drain_nexus 1
    drain_nexus 2
    ok "$LAB_BIN" pr-client --socket=/deb/run/pr-b.sock -o -G -S "$KEY" "/dev/$MPDM"
    ok "$LAB_BIN" pr-client --socket=/deb/run/pr-b.sock -o -P -K "$KEY" -S "$KEY" -T $TYPE "/dev/$MPDM"
    expect_moved "put back to B by hand" "1 2" ""
    expect_writes b1 "after the reservation was put back" 999999
fi
R2_SECS=$(elapsed "$t")
progress "round 2: ${R2_SECS} s, rollback by QEMU: $ROLLBACK"

say "round 3 (b-to-a): B -> A, helpers still under -u"
t=$(date +%s)
AL_A=$(audit_lines a)
vm_start a3 a "$HA" -incoming defer
migrate b1 a3
UA_RETRY=no
if [ "$MIG_STATUS" = failed ]; then
    # Recorded: nexus 3 had a UNIT ATTENTION pending (its registration preempted in round 2),
    # QEMU's REGISTER at load got it and the load failed.
    UA_RETRY=yes
    echo "  B -> A failed: $(tr -d '\r' </tmp/console.a3 | grep -i 'reserv\|error' | head -n 3 | tr '\n' ' ')"
    tail -n +"$((AL_A + 1))" /tmp/helper.a.err | grep 'audit: ' | sed 's/^/  A record: /'
    vm_gone a3
    drain_nexus 3
    AL_A=$(audit_lines a)
    rm -f /deb/tmp/qmp.a3.*
    vm_start a3 a "$HA" -incoming defer
    migrate b1 a3
fi
expect_eq "$MIG_STATUS" completed "migration B -> A"
qmp b1 quit
vm_gone b1
expect_moved "after B -> A" "3" "1 2"
expect_writes a3 "after B -> A"
expect_audit a "$AL_A" "B -> A"
echo "  multipathd on B after the VM left: getprkey $($CH multipathd getprkey map "$MPNAME"), getprstatus $($CH multipathd getprstatus map "$MPNAME")"
# multipathd on B still has the key and the map's registered status: a path of B that comes
# back now (recorded, not asserted: the key is still registered on the LUN, by host A).
echo offline >"/sys/block/${B#/dev/}/device/state"
wait_paths 1 "failed" 20
echo running >"/sys/block/${B#/dev/}/device/state"
wait_paths 2 "active ready" 30
w=0
while [ "$(lio_regs)" = "3=$KEY " ] && [ $w -lt 100 ]; do w=$((w + 1)); sleep 0.1; done
B_AFTER=$(lio_regs)
echo "  a path of B offline and back after the VM left: LIO registrations '$B_AFTER'"
R3_SECS=$(elapsed "$t")
progress "round 3: ${R3_SECS} s (a UNIT ATTENTION failed the first try: $UA_RETRY; B's returning path: $B_AFTER)"

say "round 3b (back-to-b): A -> B again, B's path registered by multipathd meanwhile; then B -> A"
t=$(date +%s)
AL_B=$(audit_lines b)
vm_start b3 b "/dev/$MPDM" -incoming defer
migrate a3 b3
expect_eq "$MIG_STATUS" completed "migration A -> B with a path of B already registered"
qmp a3 quit
vm_gone a3
expect_moved "after A -> B again" "1 2" "3"
expect_writes b3 "after A -> B again"
expect_audit b "$AL_B" "A -> B again"
vm_start a4 a "$HA" -incoming defer
migrate b3 a4
expect_eq "$MIG_STATUS" completed "migration B -> A again"
qmp b3 quit
vm_gone b3
expect_moved "after B -> A again" "3" "1 2"
expect_writes a4 "after B -> A again"
# What host B's management must do once the VM has left: tell multipathd, which the helper
# cannot (nothing reaches it from the source QEMU). Then a returning path stays unregistered.
ok $CH multipathd unsetprstatus map "$MPNAME"
echo offline >"/sys/block/${B#/dev/}/device/state"
wait_paths 1 "failed" 20
echo running >"/sys/block/${B#/dev/}/device/state"
wait_paths 2 "active ready" 30
w=0
while [ "$(lio_regs)" = "3=$KEY " ] && [ $w -lt 100 ]; do w=$((w + 1)); sleep 0.1; done
expect_eq "$(lio_regs)" "3=$KEY " "after 'multipathd unsetprstatus' on B, B's returning path is not registered (10 s)"
R3B_SECS=$(elapsed "$t")
progress "round 3b: ${R3B_SECS} s"

say "round 4 (c-plain): QEMU 11's C helper on host A and on nexus 4; A -> nexus 4"
t=$(date +%s)
helper_stop a
c_on a
c_on c
# QEMU reconnects to the new helper at the guest's next PR command: none comes, so the
# destination's REGISTER is the C helper's first; the source keeps writing meanwhile.
expect_writes a4 "host A's helper replaced by the C helper"
vm_start c4 c "$HC" -incoming defer
migrate a4 c4
expect_eq "$MIG_STATUS" completed "migration A -> nexus 4 (C helpers)"
qmp a4 quit
vm_gone a4
expect_moved "after A -> nexus 4 (C)" "4" "3"
expect_writes c4 "after A -> nexus 4 (C)"
R4_SECS=$(elapsed "$t")
progress "round 4: ${R4_SECS} s"

say "round 5 (c-map): the C helper on host B's map; nexus 4 -> B's map (recorded)"
t=$(date +%s)
helper_stop b
c_on b
vm_start m5 b "/dev/$MPDM" -incoming defer
migrate c4 m5
lio_show
echo "  C on the map: migration $MIG_STATUS; LIO registrations '$(lio_regs)', holder nexus $(lio_holder)"
if [ "$MIG_STATUS" = completed ]; then
    qmp c4 quit
    vm_gone c4
    _t=$(date +%s)
    while [ "$(($(guest_writes m5 ok) + $(guest_writes m5 fail)))" -lt 6 ] && [ "$(elapsed "$_t")" -lt 90 ]; do sleep 1; done
    echo "  the guest's writes on the map with the C helper: $(tr -d '\r' </tmp/console.m5 | grep -o '@@W [0-9]* [a-z]*' | tr '\n' ' ')"
    for n in 1 2; do echo "  a write through nexus $n: $(io write "$(nexus_dev "$n")" || true)"; done
    qmp m5 quit
    vm_gone m5
else
    echo "  the destination: $(tr -d '\r' </tmp/console.m5 | grep -i 'reserv\|error' | head -n 3 | tr '\n' ' ')"
    _t=$(date +%s) _n0=$(($(guest_writes c4 ok) + $(guest_writes c4 fail)))
    while [ "$(($(guest_writes c4 ok) + $(guest_writes c4 fail)))" -lt $((_n0 + 3)) ] && [ "$(elapsed "$_t")" -lt 60 ]; do sleep 1; done
    echo "  the source after it: $(tr -d '\r' </tmp/console.c4 | grep -v '@@' | grep -i 'reserv\|error\|fail' | head -n 3 | tr '\n' ' ')"
    echo "  the source guest's writes: $(tr -d '\r' </tmp/console.c4 | grep -o '@@W [0-9]* [a-z]*' | tail -n 4 | tr '\n' ' ')"
    qmp c4 quit
    vm_gone c4
fi
R5_SECS=$(elapsed "$t")
helper_stop a
helper_stop b
helper_stop c
for h in a b c; do echo "-- host $h's helpers:"; cat "/tmp/helper.$h.err"; done
progress "times: boot ${BOOT_SECS} s, round 1 ${R1_SECS} s, 2 ${R2_SECS} s (rollback: $ROLLBACK), 3 ${R3_SECS} s (UA retry: $UA_RETRY), 3b ${R3B_SECS} s, 4 ${R4_SECS} s, 5 ${R5_SECS} s; whole $(elapsed "$T0") s"
