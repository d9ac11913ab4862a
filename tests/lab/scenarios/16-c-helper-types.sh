# Reference run: the six reservation types of 03-05 with the C qemu-pr-helper (from the host,
# through its loader) in place of ours, against the same expectations. If this passes and
# 03-05 pass, both helpers gave the same statuses for the same sequence.
. "$LAB_TESTS/lib.sh"
prc() { prc_c "$@"; }
ours_start() { c_start; }
ours_stop() { c_stop; }
check_type 1 wr_ex
check_type 3 ex_ac
check_type 5 wr_ex_ro
check_type 6 ex_ac_ro
check_type 7 wr_ex_ar
check_type 8 ex_ac_ar
