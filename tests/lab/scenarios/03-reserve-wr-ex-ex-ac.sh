# WRITE EXCLUSIVE (1) and EXCLUSIVE ACCESS (3) from A: B's READ(10)/WRITE(10) per SPC-3.
. "$LAB_TESTS/lib.sh"
check_type 1 wr_ex
check_type 3 ex_ac
