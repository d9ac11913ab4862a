# lab-topology: nvme=1 hostenv=1
# lab-weight: 40
# The IOC_PR backend (an nvmet namespace) with our daemon under the systemd unit's bounding
# set and -u 65534 -g 65534: with multipath support (CAP_SYS_ADMIN kept) the
# answers are those of a daemon running as root; with --no-multipath (CAP_SYS_RAWIO only) the
# kernel allows the PR ioctls on a descriptor opened for writing (Linux 6.5+) and, since
# 6.19's fix, the READ ioctls on one opened for reading; PR OUT on a read-only descriptor is
# refused before the device, as C does.
. "$LAB_TESTS/lib.sh"
[ -b "$NVA" ] && [ -b "$NVB" ] || die "missing NVMe devices: $(cat /tmp/devs.sh)"
ls -l "$NVA" "$NVB"

nvme_state_nogen() { nvme_state "$1" | sed 's/^gen=[0-9]* //'; }

# One sequence through whatever daemon runs, its --json answers in $1.
sequence() {
    : >"$1"
    for step in "-o -G -S 0xaa $NVA" "-o -G -S 0xbb $NVB" "-k $NVA" "-o -R -K 0xaa -T 1 $NVA" \
        "-r $NVB" "-o -R -K 0xbb -T 1 $NVB" "-o -P -K 0xbb -S 0xaa -T 3 $NVB" "-r $NVA" \
        "-o -L -K 0xbb -T 3 $NVB" "-c $NVA" "-s $NVA" "-o -C -K 0xbb $NVB" "-k $NVB"; do
        set +e
        # shellcheck disable=SC2086 # one word per argument
        o=$(prc --json $step 2>&1)
        rc=$?
        set -e
        echo "$step -> $rc $o" | sed 's/"via":"[^"]*",//' >>"$1"
    done
    cat "$1"
}

say "as root"
ours_start
sequence /tmp/root.json
ours_stop
expect_eq "$(nvme_state_nogen "$NVA")" "type=0 keys=holder=" "cleared (root)"

say "-u 65534 -g 65534 with multipath support (CAP_SYS_ADMIN)"
ours_start_unit -u 65534 -g 65534 -v
expect_eq "$(status_of "$OURS_PID" CapEff)" 0000000000220000 "CapEff"
sequence /tmp/user.json
# The generation goes on from where the root run left it; the answers are the same.
sed 's/"generation":[0-9]*//' /tmp/root.json >/tmp/root.cmp
sed 's/"generation":[0-9]*//' /tmp/user.json >/tmp/user.cmp
cmp /tmp/root.cmp /tmp/user.cmp || { diff /tmp/root.cmp /tmp/user.cmp; die "answers under -u differ from root's"; }
echo "  ok: the same answers as under root"
say "read-only descriptor, CAP_SYS_ADMIN"
ok prc -o -G -S 0xaa "$NVA"
run 5 prc -y -o -G -K 0xaa -S 0xa1 "$NVA"
expect_in "Invalid command operation code" "PR OUT on a read-only fd refused before the device"
ok prc -y -k "$NVA"
expect_in "0xaa" "READ KEYS on a read-only fd"
ok prc -y -r "$NVA"
ok prc -o -C -K 0xaa "$NVA"
ours_stop

say "-u 65534 -g 65534 --no-multipath (CAP_SYS_RAWIO only)"
ours_start_unit -u 65534 -g 65534 --no-multipath -v
expect_eq "$(status_of "$OURS_PID" CapEff)" 0000000000020000 "CapEff"
[ -z "$(children_of "$OURS_PID")" ] || die "a path opener without multipath support"
say "read-write descriptor: the kernel allows it (Linux 6.5+)"
ok prc -o -G -S 0xa5 "$NVA"
ok prc -o -R -K 0xa5 -T 1 "$NVA"
expect_resv "$NVB" "0xa5 wr_ex" "reserved without CAP_SYS_ADMIN"
expect_eq "$(nvme_state_nogen "$NVB")" "type=1 keys=0xa5 holder=0xa5" "reserved (nvme-cli)"
say "read-only descriptor"
run 5 prc -y -o -L -K 0xa5 -T 1 "$NVA"
expect_in "Invalid command operation code" "PR OUT on a read-only fd refused before the device"
set +e
ro_keys=$(prc -y --json -k "$NVA" 2>&1); ro_keys_rc=$?
ro_resv=$(prc -y --json -r "$NVA" 2>&1); ro_resv_rc=$?
ro_caps=$(prc -y --json -c "$NVA" 2>&1); ro_caps_rc=$?
set -e
echo "  READ KEYS, read-only fd: $ro_keys_rc $ro_keys"
echo "  READ RESERVATION, read-only fd: $ro_resv_rc $ro_resv"
echo "  REPORT CAPABILITIES, read-only fd: $ro_caps_rc $ro_caps"
expect_eq "$ro_keys_rc" 0 "READ KEYS on a read-only fd without CAP_SYS_ADMIN (Linux 6.19+)"
expect_eq "$ro_resv_rc" 0 "READ RESERVATION on a read-only fd without CAP_SYS_ADMIN"
expect_eq "$ro_caps_rc" 0 "REPORT CAPABILITIES on a read-only fd"
ok prc -o -C -K 0xa5 "$NVA"
expect_eq "$(nvme_state_nogen "$NVA")" "type=0 keys=holder=" "cleared"
ours_stop
cat "/tmp/ours.$LAB_SCENARIO.err"
