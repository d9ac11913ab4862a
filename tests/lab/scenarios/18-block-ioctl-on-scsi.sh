# The block PR ioctls forced on a SCSI disk (our helper with --pr-backend=block: the kernel's sd
# turns each ioctl back into PR OUT/IN) and SG_IO (the default) leave the LUN in the same
# states for the same sequence: keys through both nexuses, generation steps, reservation.
. "$LAB_TESTS/lib.sh"
seq_run() {
    mark_gen "$A"
    step() { echo "$1: $(lun_state "$A")" | tee -a "$STEPS"; }
    ok prc -o -G -S 0xaa "$A"
    ok prc -o -G -S 0xbb "$B"
    step "register A and B"
    ok prc -o -R -K 0xaa -T 1 "$A"
    step "A reserves wr_ex"
    run 24 prc -o -R -K 0xbb -T 1 "$B"
    step "B's reserve conflicts"
    ok prc -o -P -K 0xbb -S 0xaa -T 3 "$B"
    step "B preempts A, ex_ac"
    drain_ua "$A"
    ok prc -o -L -K 0xbb -T 3 "$B"
    step "B releases"
    ok prc -o -I -S 0xa2 "$A"
    ok prc -o -I -S 0xb2 "$B"
    step "register and ignore"
    ok prc -o -R -K 0xa2 -T 8 "$A"
    step "A reserves ex_ac_ar"
    expect_io write "$B" GOOD "all registrants hold ex_ac_ar"
    ok prc -o -G -K 0xb2 -S 0 "$B"
    step "B unregisters"
    ok prc -o -C -K 0xa2 "$A"
    step "A clears"
    drain_ua "$B"
}
say "through the block PR ioctls (--pr-backend=block)"
ours_start --pr-backend=block
STEPS=/tmp/block.steps
seq_run
ours_stop
say "through SG_IO (--pr-backend=sg)"
ours_start --pr-backend=sg
STEPS=/tmp/sg.steps
seq_run
ours_stop
diff /tmp/block.steps /tmp/sg.steps || die "the block ioctls and SG_IO left different states"
echo "  ok: same $(wc -l </tmp/sg.steps) states through the block ioctls and SG_IO"
