# PREEMPT: B takes A's reservation (and type) and removes A's registration; A is told with
# UNIT ATTENTION REGISTRATIONS PREEMPTED (2A/05); PRgeneration increments.
. "$LAB_TESTS/lib.sh"
two_registered
ok prc -o -R -K 0xaa -T 1 "$A"
run 24 prc -o -P -K 0xbb -S 0x99 -T 3 "$B"   # no such key: CONFLICT (reservation held)
ok prc -o -P -K 0xbb -S 0xaa -T 3 "$B"
expect_keys "$B" "0xbb " "A preempted"
expect_eq "$(prc_gen "$B")" 0x3 "generation after preempt"
expect_resv "$B" "0xbb ex_ac" "B holds EXCLUSIVE ACCESS"
expect_ua "$A" 42 5 "A preempted"
expect_io read "$A" CONFLICT "A unregistered, B holds ex_ac"
expect_io write "$B" GOOD "B is the holder"
# PREEMPT with no reservation removes registrations only.
ok prc -o -G -S 0xa2 "$A"
ok prc -o -L -K 0xbb -T 3 "$B"
expect_resv "$A" none "released by B"
ok prc -o -P -K 0xbb -S 0xa2 -T 1 "$B"
expect_ua "$A" 42 5 "A preempted again"
expect_keys "$A" "0xbb " "registration preempted"
expect_resv "$A" none "no reservation created by preempt"
