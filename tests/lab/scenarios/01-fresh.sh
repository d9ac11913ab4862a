# A fresh LUN: read keys, reservation, capabilities, full status through our helper, checked
# against sg_persist and the expected LIO answers.
. "$LAB_TESTS/lib.sh"
ours_start
for dev in "$A" "$B"; do
    ok prc -k "$dev"
    expect_in "PR generation=0x0, there are NO registered reservation keys" "no keys on $dev"
    ok prc -r "$dev"
    expect_in "there is NO reservation held" "no reservation on $dev"
    ok prc -s "$dev"
    expect_in "No full status descriptors" "no full status on $dev"
    ok prc -c "$dev"
    for t in "Write Exclusive: 1" "Exclusive Access: 1" "Write Exclusive, registrants only: 1" \
        "Exclusive Access, registrants only: 1" "Write Exclusive, all registrants: 1" \
        "Exclusive Access, all registrants: 1" "Persist Through Power Loss Capable(PTPL_C): 1" \
        "Persist Through Power Loss Active(PTPL_A): 0"; do
        expect_in "$t" "capability '$t'"
    done
    for o in -k -r -s -c; do same_as_sgp "$o" "$dev"; done
done
ok prc --json -k "$A"
expect_in '"status":{"value":0,"name":"GOOD"}' "json status GOOD"
expect_in '"payload_hex":"0000000000000000"' "json payload: generation 0, no keys"
expect_in '"keys":[]' "json: empty key list"
ok prc --json -c "$A"
expect_in '"types":{"wr_ex":true,"ex_ac":true,"wr_ex_ro":true,"ex_ac_ro":true,"wr_ex_ar":true,"ex_ac_ar":true}' "json: all six types"
ok prc -HH -c "$A"
expect_in "00 08" "capabilities length 8"
# I/O is free on a fresh LUN from both nexuses
expect_io write "$A" GOOD "no reservation"
expect_io read "$B" GOOD "no reservation"
expect_io write "$B" GOOD "no reservation"
