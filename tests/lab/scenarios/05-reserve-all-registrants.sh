# WRITE EXCLUSIVE / EXCLUSIVE ACCESS, ALL REGISTRANTS (7, 8): every registrant holds the
# reservation (READ RESERVATION shows key 0); the reservation outlives A's partner leaving.
. "$LAB_TESTS/lib.sh"
check_type 7 wr_ex_ar
check_type 8 ex_ac_ar
# All registrants: the reservation stays while any registrant remains, and goes with the last.
two_registered
ok prc -o -R -K 0xaa -T 7 "$A"
ok prc -o -G -K 0xaa -S 0 "$A"
expect_resv "$B" "0x0 wr_ex_ar" "all-registrants reservation kept by B"
ok prc -o -G -K 0xbb -S 0 "$B"
expect_resv "$B" none "reservation gone with the last registrant"
