# Longer PR OUT parameter lists and refusals, through all three paths: REGISTER with SPEC_I_PT
# and a TransportID (52 bytes: A registers B's initiator port too), REGISTER with ALL_TG_PT,
# and REPLACE LOST RESERVATION, which LIO does not support (RLR_C=0: INVALID FIELD IN CDB).
. "$LAB_TESTS/lib.sh"
ours_start
c_start
json_same 5 -o -z -K 0xbb -T 6 "$B"
expect_in '"asc":36,"ascq":0' "replace lost reservation refused (24/00)"
first=""
for via in prc prc_c prc_direct; do
    say "SPEC_I_PT through $via"
    ok $via -o -G -S 0xaa -X sas,5001405aaaaaaa02 "$A"
    expect_keys "$B" "0xaa 0xaa " "A and B registered by one command"
    ok prc --json -s "$B"
    expect_in "SAS address: 0x5001405aaaaaaa02" "B's initiator registered"
    if rtpi_numbered; then
        expect_in '"key":"0xaa","all_tg_pt":false,"reservation_holder":false,"scope":{"value":0,"name":"LU_SCOPE"},"type":{"value":0,"name":"obsolete [0]","short":null},"relative_target_port":2' "B's registration on port 2"
    fi
    d=$(echo "$OUT" | sed 's/.*"descriptors"://')
    if [ -z "$first" ]; then first=$d; else expect_eq "$d" "$first" "full status after SPEC_I_PT through $via"; fi
    ok prc -o -C -K 0xaa "$B"
    drain_ua "$A"
done
say "ALL_TG_PT"
ok prc -o -G -Y -S 0xcc "$B"
ok prc --json -s "$A"
expect_in '{"key":"0xcc","all_tg_pt":true' "registered with ALL_TG_PT"
same_as_sgp -s "$A"
