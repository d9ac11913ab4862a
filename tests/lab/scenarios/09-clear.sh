# CLEAR from B: every registration and the reservation go; A gets RESERVATIONS PREEMPTED
# (2A/03); a wrong key conflicts; an unregistered nexus cannot clear.
. "$LAB_TESTS/lib.sh"
two_registered
ok prc -o -R -K 0xaa -T 1 "$A"
run 24 prc -o -C -K 0xbc "$B"
ok prc -o -C -K 0xbb "$B"
expect_ua "$A" 42 3 "A's reservation cleared"   # A's first command after the CLEAR
expect_keys "$A" "" "all registrations cleared"
expect_resv "$B" none "reservation cleared"
expect_eq "$(prc_gen "$B")" 0x3 "generation after clear"
# CLEAR from an unregistered nexus: SPC-3 says RESERVATION CONFLICT; LIO 6.1 answers
# NOT READY, LOGICAL UNIT COMMUNICATION FAILURE (08/00). Ours must answer what the device does.
json_same 2 -o -C -K 0 "$A"
expect_in '"asc":8,"ascq":0' "LIO's answer to CLEAR from an unregistered nexus"
expect_io write "$B" GOOD "after clear"
