# PREEMPT AND ABORT. With tcm_loop, LIO on 6.1 and 7.3.4 deadlocks on it (the PR OUT runs in
# the target_submission work and core_tmr_lun_reset flushes that same work: hung task in
# core_scsi3_pro_preempt -> core_tmr_lun_reset -> flush_work), so the command never completes
# and the LUN cannot be torn down (the lab reboots the VM after this scenario). When no answer
# comes and a task is seen in core_tmr_lun_reset, the scenario checks what our helper does with
# a device that never answers: the client's --timeout fires (exit 33) and the helper keeps
# serving other connections. When the kernel answers, it checks SPC-3's result, as PREEMPT does.
. "$LAB_TESTS/lib.sh"
two_registered
ok prc -o -R -K 0xaa -T 3 "$A"
expect_io read "$B" CONFLICT "A holds ex_ac"
set +e
"$LAB_BIN" pr-client --socket="$OURS_SOCK" --timeout=8 -o -A -K 0xbb -S 0xaa -T 1 "$B"
pa=$?
set -e
case $pa in
33)
    # no answer: only acceptable if the kernel is stuck in LIO's LUN reset
    grep -l core_tmr_lun_reset /proc/[0-9]*/stack 2>/dev/null | head -3 | grep -q . ||
        die "PREEMPT AND ABORT got no answer and no task is in core_tmr_lun_reset"
    for f in $(grep -l core_tmr_lun_reset /proc/[0-9]*/stack 2>/dev/null | head -1); do cat "$f"; done
    say "kernel $(uname -r): LIO deadlocked in core_tmr_lun_reset; checking the helper stays up"
    ok "$LAB_BIN" pr-client probe --socket="$OURS_SOCK" --timeout=5
    kill -0 "$OURS_PID" || die "our helper died"
    ;;
*)
    expect_eq $pa 0 "PREEMPT AND ABORT exit status"
    expect_keys "$B" "0xbb " "A preempted and aborted"
    expect_resv "$B" "0xbb wr_ex" "B holds WRITE EXCLUSIVE"
    expect_eq "$(prc_gen "$B")" 0x3 "generation after preempt-and-abort"
    expect_ua "$A" 42 5 "A preempted"
    expect_io read "$A" GOOD "wr_ex: A may read"
    expect_io write "$A" CONFLICT "wr_ex: A may not write"
    ;;
esac
