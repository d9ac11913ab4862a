# WRITE EXCLUSIVE / EXCLUSIVE ACCESS, REGISTRANTS ONLY (5, 6) from A: B's access depends on
# B being registered.
. "$LAB_TESTS/lib.sh"
check_type 5 wr_ex_ro
check_type 6 ex_ac_ro
