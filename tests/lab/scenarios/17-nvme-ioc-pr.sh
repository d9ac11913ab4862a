# lab-topology: nvme=1 hostenv=1
# An NVMe namespace (nvmet, reservations enabled) seen by two hosts, $NVA and $NVB: it has no
# SG_IO, so our helper translates each SCSI PR command into the block layer's IOC_PR_* ioctl
# and the result back. Every step is checked through the helper (pr-client) and against
# nvme-cli's Reservation Report of the same namespace.
. "$LAB_TESTS/lib.sh"
[ -b "$NVA" ] && [ -b "$NVB" ] || die "missing NVMe devices: $(cat /tmp/devs.sh)"
ours_start -v
c_start
say "no SG_IO on NVMe: the C helper's way fails (SG_IO: ENOTTY, ABORTED COMMAND), ours works"
run 11 prc_direct -k "$NVA"
run 11 prc_c -k "$NVA"
expect_in "Aborted Command" "the C helper cannot serve NVMe"
c_stop
ok prc -k "$NVA"
expect_in "PR generation=0x0, there are NO registered reservation keys" "fresh namespace"
expect_nvme "$NVA" "gen=0 type=0 keys=holder=" "fresh namespace"

say "register from both hosts"
ok prc -o -G -S 0xaa "$NVA"
ok prc -o -G -S 0xbb "$NVB"
expect_eq "$(prc_keys "$NVB")" "0xaa 0xbb " "keys through host B"
expect_eq "$(prc_gen "$NVA")" 0x2 "generation through host A"
expect_nvme "$NVB" "gen=2 type=0 keys=0xaa 0xbb holder=" "both registered"
# REGISTER with a wrong current key: the namespace answers Reservation Conflict.
run 24 prc -o -G -K 0x99 -S 0xa1 "$NVA"

say "reserve, conflicts, I/O gating"
ok prc -o -R -K 0xaa -T 1 "$NVA"
expect_resv "$NVB" "0xaa wr_ex" "A holds write exclusive"
expect_nvme "$NVB" "gen=2 type=1 keys=0xaa 0xbb holder=0xaa" "A holds write exclusive"
ok prc -o -R -K 0xaa -T 1 "$NVA"   # the holder again, same type: GOOD
run 24 prc -o -R -K 0xaa -T 3 "$NVA" # another type: conflict
run 24 prc -o -R -K 0xbb -T 1 "$NVB" # the other host: conflict
$CH dd if=/dev/zero of="$NVA" bs=4096 count=1 oflag=direct conv=notrunc 2>/dev/null || die "the holder cannot write"
if $CH dd if=/dev/zero of="$NVB" bs=4096 count=1 oflag=direct conv=notrunc 2>/dev/null; then
    die "host B wrote under A's write exclusive reservation"
fi
echo "  ok: host B's write refused"

say "preempt, release"
ok prc -o -P -K 0xbb -S 0xaa -T 3 "$NVB"
expect_resv "$NVA" "0xbb ex_ac" "B preempted A and holds exclusive access"
expect_nvme "$NVA" "gen=3 type=2 keys=0xbb holder=0xbb" "B preempted A"
run 24 prc -o -L -K 0xbb -T 1 "$NVB"   # release with another type: conflict
ok prc -o -L -K 0xbb -T 3 "$NVB"
expect_resv "$NVA" none "released"
expect_nvme "$NVA" "gen=3 type=0 keys=0xbb holder=" "released"

say "register and ignore, preempt and abort, clear"
ok prc -o -I -S 0xa2 "$NVA"
ok prc -o -I -S 0xb2 "$NVB"
expect_eq "$(prc_keys "$NVA")" "0xa2 0xb2 " "keys replaced with REGISTER AND IGNORE"
ok prc -o -R -K 0xa2 -T 6 "$NVA"
expect_resv "$NVB" "0xa2 ex_ac_ro" "exclusive access, registrants only"
ok prc -o -A -K 0xb2 -S 0xa2 -T 6 "$NVB"
expect_resv "$NVA" "0xb2 ex_ac_ro" "preempt and abort moved the reservation"
ok prc -o -C -K 0xb2 "$NVB"
expect_eq "$(prc_keys "$NVA")" "" "cleared"
expect_resv "$NVA" none "cleared"
expect_nvme "$NVA" "gen=7 type=0 keys=holder=" "cleared"

say "what the ioctls cannot express"
run 5 prc -o -G -S 0xaa -Y "$NVA"       # ALL_TG_PT
run 5 prc -o -M -K 0xaa -S 0xbb -T 1 -Q 1 -X sas,5001405aaaaaaa02 "$NVA" # REGISTER AND MOVE
run 5 prc -s "$NVA"                      # READ FULL STATUS
ok prc -c "$NVA"
expect_in "Write Exclusive" "capabilities list the types"
expect_keys_none=$(prc_keys "$NVA")
expect_eq "$expect_keys_none" "" "refused commands changed nothing"

say "unregister: Linux sends Replace with key 0, the host stays a registrant with key 0"
ok prc -o -G -S 0xa3 "$NVA"
ok prc -o -G -K 0xa3 -S 0 "$NVA"
expect_eq "$(prc_keys "$NVA")" "0x0 " "key 0 reported as the namespace holds it"
expect_nvme "$NVB" "gen=9 type=0 keys=0x0 holder=" "the zero-key registrant"
run 24 prc -o -R -K 0 -T 1 "$NVA"   # key 0 names no registration: conflict, not sent
ours_stop
cat "/tmp/ours.$LAB_SCENARIO.err"
