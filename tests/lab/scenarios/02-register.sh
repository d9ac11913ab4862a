# Register from nexus A and B: both keys seen from either side, PRgeneration increments,
# full status shows each key with its own initiator port and relative target port.
. "$LAB_TESTS/lib.sh"
ours_start
expect_eq "$(prc_gen "$A")" 0x0 "generation before"
ok prc -o -G -S 0xaa "$A"
expect_eq "$(prc_gen "$B")" 0x1 "generation after one register"
expect_keys "$B" "0xaa " "A's key seen from B"
ok prc -o -G -S 0xbb "$B"
expect_eq "$(prc_gen "$A")" 0x2 "generation after two registers"
expect_eq "$(gen_of "$B")" 0x2 "generation (sg_persist)"
for dev in "$A" "$B"; do
    expect_keys "$dev" "0xaa 0xbb " "both keys from $dev"
    for o in -k -r -s; do same_as_sgp "$o" "$dev"; done
done
ok prc -s "$B"
expect_in "SAS address: 0x5001405aaaaaaa01" "A's initiator port in full status"
expect_in "SAS address: 0x5001405aaaaaaa02" "B's initiator port in full status"
ok prc --json -s "$A"
expect_in '{"key":"0xaa","all_tg_pt":false,"reservation_holder":false' "json full status: A's key"
if rtpi_numbered; then expect_in '"relative_target_port":2' "json: B's relative target port"; fi
# Registering again with a wrong old key: RESERVATION CONFLICT (exit 24), nothing changes.
run 24 prc -o -G -K 0x1234 -S 0xcc "$A"
expect_eq "$(prc_gen "$A")" 0x2 "generation after a conflicting register"
# Changing A's key: REGISTER with the right old key.
ok prc -o -G -K 0xaa -S 0xa1 "$A"
expect_keys "$B" "0xa1 0xbb " "A's key replaced"
expect_eq "$(prc_gen "$A")" 0x3 "generation after re-register"
# A second REGISTER from an unregistered nexus with a nonzero old key conflicts too.
ok prc -o -G -K 0xa1 -S 0 "$A"
run 24 prc -o -G -K 0xa1 -S 0xa2 "$A"
expect_keys "$A" "0xbb " "A unregistered"
