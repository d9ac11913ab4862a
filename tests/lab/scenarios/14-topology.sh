# lab-topology: nexus=3 luns=2
# Three initiator nexuses onto two LUNs: registrations and reservations are per LUN, and a
# third "host" sees the same state. LAB_DEV_<nexus>_<lun> name the paths.
. "$LAB_TESTS/lib.sh"
A1=$LAB_DEV_1_1 B1=$LAB_DEV_2_1 C0=$LAB_DEV_3_0 C1=$LAB_DEV_3_1
[ -b "$C0" ] && [ -b "$C1" ] && [ -b "$A1" ] && [ -b "$B1" ] || die "missing devices: $(cat /tmp/devs.sh)"
ours_start
ok prc -o -G -S 0xaa "$A"
ok prc -o -G -S 0xcc "$C0"
ok prc -o -G -S 0xa1 "$A1"
expect_keys "$B" "0xaa 0xcc " "LUN 0 keys from nexus 2"
expect_keys "$C1" "0xa1 " "LUN 1 keys from nexus 3"
ok prc -o -R -K 0xcc -T 3 "$C0"
expect_resv "$A" "0xcc ex_ac" "LUN 0 reserved by nexus 3"
expect_resv "$B1" none "LUN 1 not reserved"
expect_io read "$B" CONFLICT "LUN 0 ex_ac held by nexus 3"
expect_io read "$A" CONFLICT "LUN 0 ex_ac held by nexus 3"
expect_io write "$B1" GOOD "LUN 1 free"
expect_io write "$C0" GOOD "holder"
ok prc -s "$A"
expect_in "SAS address: 0x5001405aaaaaaa03" "nexus 3's port in full status"
if rtpi_numbered; then expect_in "Relative port address: 0x3" "nexus 3's relative target port"; fi
