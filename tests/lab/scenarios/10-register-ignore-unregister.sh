# REGISTER AND IGNORE EXISTING KEY: registers or replaces a key whatever -K says;
# unregister (REGISTER with SARK 0) by a holder releases its reservation.
. "$LAB_TESTS/lib.sh"
ours_start
ok prc -o -I -S 0xaa "$A"
expect_keys "$B" "0xaa " "registered with register-ignore"
ok prc -o -I -K 0x5555 -S 0xa1 "$A"
expect_keys "$B" "0xa1 " "key replaced, old key ignored"
ok prc -o -G -S 0xbb "$B"
expect_eq "$(prc_gen "$A")" 0x3 "generation"
ok prc -o -I -S 0 "$B"
expect_keys "$A" "0xa1 " "B unregistered with register-ignore"
# unregistering the holder of a wr_ex reservation releases it
ok prc -o -R -K 0xa1 -T 1 "$A"
expect_io write "$B" CONFLICT "reserved"
ok prc -o -G -K 0xa1 -S 0 "$A"
expect_keys "$B" "" "A unregistered"
expect_resv "$B" none "holder's unregister released the reservation"
expect_io write "$B" GOOD "after unregister"
# unregistering twice: CONFLICT (not registered, nonzero key)
run 24 prc -o -G -K 0xa1 -S 0 "$A"
