# RELEASE: wrong type (LIO: RESERVATION CONFLICT; see below), wrong key (CONFLICT), by a
# registered non-holder (GOOD, no effect), by the holder (reservation gone, keys kept,
# generation unchanged: RESERVE and RELEASE do not bump PRgeneration).
. "$LAB_TESTS/lib.sh"
two_registered
ok prc -o -R -K 0xaa -T 1 "$A"
expect_eq "$(prc_gen "$A")" 0x2 "generation after reserve"
# SPC-3 5.6.10.2 wants CHECK CONDITION, ILLEGAL REQUEST, INVALID RELEASE OF PERSISTENT
# RESERVATION (26/04) for a type mismatch; LIO 6.1 answers RESERVATION CONFLICT, and so does
# SG_IO without a helper (13-compare-c-direct checks ours = C = direct for this command).
run 24 prc --json -o -L -K 0xaa -T 3 "$A"
expect_resv "$B" "0xaa wr_ex" "a mismatched release changes nothing"
run 24 prc -o -L -K 0xab -T 1 "$A"
ok prc -o -L -K 0xbb -T 1 "$B"
expect_resv "$A" "0xaa wr_ex" "release by a non-holder changes nothing"
expect_io write "$B" CONFLICT "still reserved"
ok prc -o -L -K 0xaa -T 1 "$A"
expect_resv "$B" none "released"
expect_keys "$B" "0xaa 0xbb " "keys kept after release"
expect_eq "$(prc_gen "$A")" 0x2 "generation after release"
expect_io write "$B" GOOD "after release"
# Releasing a registrants-only reservation tells the other registrants (UA RESERVATIONS
# RELEASED, 2A/04).
ok prc -o -R -K 0xaa -T 5 "$A"
ok prc -o -L -K 0xaa -T 5 "$A"
expect_ua "$B" 42 4 "release of wr_ex_ro"
# Release with nothing reserved: GOOD
ok prc -o -L -K 0xaa -T 1 "$A"
