# lab-topology: nvme=1
# lab-weight: 20
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
# The generation goes on from where the root run left it (the payload's first 4 bytes);
# the answers are otherwise the same.
gen_out() { sed 's/"generation":[0-9]*//; s/"payload_hex":"[0-9a-f]\{8\}/"payload_hex":"GEN./' "$1"; }
gen_out /tmp/root.json >/tmp/root.cmp
gen_out /tmp/user.json >/tmp/user.cmp
cmp /tmp/root.cmp /tmp/user.cmp || { diff /tmp/root.cmp /tmp/user.cmp; die "answers under -u differ from root's"; }
echo "  ok: the same answers as under root"
say "read-only descriptor, CAP_SYS_ADMIN"
ok prc -o -G -S 0xaa "$NVA"
run 9 prc -y -o -G -K 0xaa -S 0xa1 "$NVA"
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
run 9 prc -y -o -L -K 0xa5 -T 1 "$NVA"
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

say "where the kernel refuses: a partition (EPERM whatever the privileges)"
# An MBR with one partition from block 8, 64 blocks long.
dd if=/dev/zero of=/tmp/mbr bs=512 count=1 2>/dev/null
printf '\000\000\002\000\203\000\000\000\010\000\000\000\100\000\000\000' |
    dd of=/tmp/mbr bs=1 seek=446 conv=notrunc 2>/dev/null
printf '\125\252' | dd of=/tmp/mbr bs=1 seek=510 conv=notrunc 2>/dev/null
dd if=/tmp/mbr of="$NVA" bs=512 count=1 conv=notrunc oflag=direct 2>/dev/null ||
    dd if=/tmp/mbr of="$NVA" bs=512 count=1 conv=notrunc,fsync 2>/dev/null
$CH blockdev --rereadpt "$NVA"
w=0
until [ -b "${NVA}p1" ]; do w=$((w + 1)); [ $w -gt 50 ] && die "no partition ${NVA}p1"; sleep 0.1; done
run 5 prc -k "${NVA}p1"
expect_in "20/02" "READ KEYS on a partition: ILLEGAL REQUEST, ACCESS DENIED"
run 5 prc -o -G -S 0xa6 "${NVA}p1"
expect_in "Access denied - no access rights" "REGISTER on a partition: ILLEGAL REQUEST, ACCESS DENIED"
expect_eq "$(nvme_state_nogen "$NVA")" "type=0 keys=holder=" "nothing registered"
dd if=/dev/zero of="$NVA" bs=512 count=1 conv=notrunc,fsync 2>/dev/null
$CH blockdev --rereadpt "$NVA"
ours_stop
cat "/tmp/ours.$LAB_SCENARIO.err"
grep -q "the kernel refused the block PR ioctl (EPERM)" "/tmp/ours.$LAB_SCENARIO.err" ||
    die "no -v line saying why the kernel refused"
echo "  ok: the daemon's -v log says why"
