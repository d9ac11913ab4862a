# lab-weight: 10
# --audit names who fenced whom: two "VMs" (pr-client processes in libvirt's machine scopes
# machine-qemu\x2d1\x2dnode1.scope and machine-qemu\x2d2\x2dnode2.scope of a cgroup v2
# tree) register through nexus A and B, node1 reserves, node2 preempts it; every record
# names the VM, the process, the device and its WWID, the keys and the outcome. Then the
# daemon as the unit runs it under -u 65534 -g 65534 with /proc mounted hidepid=invisible
# (ProtectProc=invisible): the root peer's /proc is hidden, and the VM still comes from its
# pidfd's cgroup id.
. "$LAB_TESTS/lib.sh"
AUDIT_LOG=/tmp/ours.$LAB_SCENARIO.err
grep -q " /sys/fs/cgroup cgroup2 " /proc/mounts || mount -t cgroup2 none /sys/fs/cgroup
mkdir -p /sys/fs/cgroup/machine.slice
scope() { echo "/sys/fs/cgroup/machine.slice/machine-qemu\\x2d$1\\x2d$2.scope"; }
mkdir -p "$(scope 1 node1)" "$(scope 2 node2)"
# in_vm ID NAME CMD...: CMD in that VM's machine scope.
in_vm() {
    _cg=$(scope "$1" "$2")
    shift 2
    sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$_cg" "$@"
}
vm_prc() { _id=$1 _name=$2; shift 2; in_vm "$_id" "$_name" "$LAB_BIN" pr-client --socket="$OURS_SOCK" --timeout=30 "$@"; }
# record PATTERN WHAT: the one audit line matching PATTERN (grep -E), in $REC and $OUT.
record() {
    REC=$(grep -E "$1" "$AUDIT_LOG" || true)
    OUT=$REC
    [ "$(printf '%s\n' "$REC" | grep -c .)" = 1 ] || { cat "$AUDIT_LOG"; die "$2: want one record matching '$1'"; }
    echo "  record: $REC"
}
field() { printf '%s\n' "$REC" | tr ' ' '\n' | sed -n "s/^$1=//p"; }

say "root daemon, --audit=all to stderr"
ours_start --audit=all
ok vm_prc 1 node1 -o -G -S 0xa1 "$A"
ok vm_prc 2 node2 -o -G -S 0xb2 "$B"
ok vm_prc 1 node1 -o -R -K 0xa1 -T 1 "$A"
ok vm_prc 2 node2 -o -P -K 0xb2 -S 0xa1 -T 1 "$B"
# node1's next PR IN is told it was preempted (UNIT ATTENTION 2A/05): the record says so too.
run 6 vm_prc 1 node1 -k "$A"
expect_keys "$B" "0xb2 " "node1 preempted"
ours_stop
cat "$AUDIT_LOG"
# The process name is the binary's (pr-client runs as "$LAB_BIN pr-client").
COMM=$(basename "$LAB_BIN" | cut -c1-15)
SYSDEV=/sys/dev/block/$(cat /sys/block/${A#/dev/}/dev)
WWID=$(cat "$SYSDEV/device/wwid" 2>/dev/null || cat "$SYSDEV/wwid" 2>/dev/null || true)
echo "  $A: wwid '$WWID'"
record "audit: REGISTER .* sa_key=0x00000000000000a1 " "node1's REGISTER"
expect_eq "$(field vm)" node1 "REGISTER 0xa1 names node1"
expect_eq "$(field vm_source)" cgroup "a verified name: its machine scope's"
# pidfd where the kernel has SO_PEERPIDFD (6.5), pid before.
echo "  peer_read=$(field peer_read)"
expect_eq "$(field peer_comm)" "$COMM" "its process name"
expect_eq "$(field device_name)" "${A#/dev/}" "its device"
expect_eq "$(field status)" GOOD "its status"
record "audit: RESERVE " "node1's RESERVE"
expect_eq "$(field vm)" node1 "RESERVE by node1"
expect_eq "$(field type)" wr_ex "RESERVE type"
record "audit: PREEMPT " "the PREEMPT"
expect_eq "$(field vm)" node2 "the PREEMPT names node2"
expect_eq "$(field key)" 0x00000000000000b2 "node2's key"
expect_eq "$(field sa_key)" 0x00000000000000a1 "node1's key, preempted"
expect_eq "$(field device_name)" "${B#/dev/}" "through nexus B"
expect_eq "$(field status)" GOOD "PREEMPT status"
expect_in "peer_cgroup=/machine.slice/machine-qemu\\x2d2\\x2dnode2.scope" "node2's scope"
# Both nexuses are the same LUN: the same WWID names it in both VMs' records.
expect_eq "$(field device_wwid)" "$WWID" "the LUN's WWID in node2's record"
# (tcm_loop's disks on 7.3 have a wwid attribute that cannot be read, and no vpd_pg83.)
[ -n "$WWID" ] || echo "  note: the kernel gives $A no WWID"
record "audit: READ_KEYS .* vm=node1 " "node1's READ KEYS (--audit=all)"
expect_eq "$(field vm)" node1 "READ KEYS by node1"
expect_in 'status=CHECK_CONDITION sense="Unit Attention 06/2a/05: Registrations preempted"' "node1 told"
# Five from the VMs, and expect_keys's READ KEYS from outside any machine scope.
expect_eq "$(grep -c 'audit: ' "$AUDIT_LOG")" 6 "one record per command"
record "audit: READ_KEYS .* peer_cgroup=/ " "the READ KEYS outside the VMs"
expect_eq "$(field vm)" "" "no VM outside a machine scope"

say "as the unit runs it, -u 65534 -g 65534, /proc hidepid=invisible: the VM from the pidfd"
cat >/tmp/hidepid.sh <<'EOS'
mount -t proc -o hidepid=invisible proc /proc || exit 1
exec "$@"
EOS
OURS_WRAP="$HL /host/usr/bin/unshare -m --propagation private sh /tmp/hidepid.sh $HL /host/usr/bin/setpriv --bounding-set -all,$(unit_bounding_set) --no-new-privs" \
    ours_start -u 65534 -g 65534 --audit
expect_sandboxed "$OURS_PID"
ok vm_prc 1 node1 -o -G -S 0xa3 "$A"
ok vm_prc 1 node1 -o -P -K 0xa3 -S 0xb2 -T 1 "$A"
run 6 vm_prc 2 node2 -k "$B"   # node2 told it was preempted
ours_stop
cat "$AUDIT_LOG"
record "audit: PREEMPT " "node1 preempts back"
expect_eq "$(field vm)" node1 "named through the pidfd"
expect_eq "$(field vm_source)" cgroup "the cgroup's name, verified"
expect_eq "$(field peer_read)" pidfd "read through the pidfd"
expect_eq "$(field peer_uid)" 0 "the peer is root"
expect_eq "$(field peer_comm)" "" "its /proc is hidden from uid 65534"
expect_eq "$(grep -c 'audit: ' "$AUDIT_LOG")" 2 "PR OUT only without all"
rmdir "$(scope 1 node1)" "$(scope 2 node2)" /sys/fs/cgroup/machine.slice
