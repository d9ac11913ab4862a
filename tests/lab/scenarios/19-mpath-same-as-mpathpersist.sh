# lab-topology: mpath=1 nexus=3
# PR on a dm-multipath map ($MP over nexus 1 and 2; nexus 3, $C, is another host): the same
# sequence through our helper (pr-client on the map) and through mpathpersist (multipath-tools'
# own client) leaves the LUN in the same states (keys on every nexus, generation steps,
# reservation holder and type), each step checked by sg_persist on the paths.
. "$LAB_TESTS/lib.sh"
C=$LAB_DEV_3_0
[ -b "$MP" ] && [ -b "$C" ] || die "missing devices: $(cat /tmp/devs.sh)"
# Each command's thread also tries to read a root-only file (test-only switch; the guest has
# no /etc/shadow): no feature reads it, and the daemon's Landlock ruleset must refuse it
# while the paths, sysfs, multipath.conf and multipathd work.
SECRET=/tmp/pr-lab-secret
echo secret >"$SECRET"
chmod 600 "$SECRET"
export PR_HELPER_TEST_OPEN=$SECRET
ours_start -v
unset PR_HELPER_TEST_OPEN
# The unit attention DEV's next command gets ("asc/ascq"), or "none".
pending_ua() {
    _o=$(prc --json -k "$1" 2>&1 || true)
    case "$_o" in
    *'"name":"Unit Attention"'*) echo "$_o" | sed -n 's/.*"asc":\([0-9]*\),"ascq":\([0-9]*\).*/ua \1\/\2/p' ;;
    *) echo none ;;
    esac
}
# seq TOOL: the commands, with TOOL "ours" or "mpp"; prints the state after each.
seq_run() {
    mark_gen "$A"
    step() { echo "$1: $(lun_state "$A")" | tee -a "$STEPS"; }
    if [ "$1" = ours ]; then
        ok prc -o -G -S 0xaa "$MP"
    else
        ok mpp --out --register --param-sark=0xaa "$MP"
    fi
    step "register"
    ok prc -o -G -S 0xcc "$C"
    step "C registers"
    if [ "$1" = ours ]; then ok prc -o -R -K 0xaa -T 5 "$MP"; else ok mpp --out --reserve --param-rk=0xaa --prout-type=5 "$MP"; fi
    step "reserve wr_ex_ro"
    expect_io write "$C" GOOD "registered C writes under wr_ex_ro"
    if [ "$1" = ours ]; then ok prc -o -L -K 0xaa -T 5 "$MP"; else ok mpp --out --release --param-rk=0xaa --prout-type=5 "$MP"; fi
    step "release"
    # Releasing a registrants-only reservation tells the other registrants (SPC-3 5.6.11.2),
    # but whether C still has that UNIT ATTENTION here varied from run to run with
    # mpathpersist as with ours (RELEASE goes to both paths at once): printed, not compared.
    echo "  C after release: $(pending_ua "$C")"
    for d in "$A" "$B" "$C"; do drain_ua "$d"; done
    ok prc -o -R -K 0xcc -T 3 "$C"
    step "C reserves ex_ac"
    expect_io read "$A" CONFLICT "path A under C's ex_ac"
    if [ "$1" = ours ]; then ok prc -o -P -K 0xaa -S 0xcc -T 1 "$MP"; else ok mpp --out --preempt --param-rk=0xaa --param-sark=0xcc --prout-type=1 "$MP"; fi
    step "preempt C"
    # Unit attentions the preempt left on the paths (printed, not compared: which path
    # libmpathpersist 0.14.3 and mpathpersist 0.11 send it through may differ).
    echo "  after the preempt: A $(pending_ua "$A"), B $(pending_ua "$B")"
    for d in "$A" "$B"; do drain_ua "$d"; done
    drain_ua "$C"
    # WRITE EXCLUSIVE belongs to one I_T nexus (SPC-3): the path the PREEMPT went through
    # writes, the map's other path conflicts although it is registered with the same key.
    wa=$(io write "$A" || true)
    wb=$(io write "$B" || true)
    case "$wa $wb" in
    "GOOD CONFLICT" | "CONFLICT GOOD") echo "  ok: one path of the map holds wr_ex (A: $wa, B: $wb)" ;;
    *) die "after the preempt, writes through A gave $wa and through B $wb" ;;
    esac
    expect_io write "$C" CONFLICT "C preempted"
    if [ "$1" = ours ]; then ok prc -o -C -K 0xaa "$MP"; else ok mpp --out --clear --param-rk=0xaa "$MP"; fi
    step "clear"
    drain_ua "$A"
    drain_ua "$B"
}
say "through our helper"
STEPS=/tmp/ours.steps
seq_run ours
grep -q "^register: keys=0xaa 0xaa gen+2 resv= *$" /tmp/ours.steps || die "REGISTER did not reach both paths"

say "through mpathpersist"
STEPS=/tmp/mpp.steps
seq_run mpp
diff /tmp/ours.steps /tmp/mpp.steps || die "our helper and mpathpersist left different states"
echo "  ok: same states through our helper and mpathpersist ($(wc -l </tmp/ours.steps) steps)"
ours_stop
cat "/tmp/ours.$LAB_SCENARIO.err"
LOG=/tmp/ours.$LAB_SCENARIO.err
grep -q "Landlock not in place" "$LOG" && die "no Landlock in the lab's kernel: $(grep Landlock "$LOG")"
grep -q "test open of $SECRET: opened" "$LOG" && die "the sandboxed daemon read $SECRET"
grep -q "test open of $SECRET: Permission denied" "$LOG" || die "no refused read of $SECRET in the log"
echo "  ok: the daemon's reads of $SECRET were refused ($(grep -c "test open of $SECRET: Permission denied" "$LOG") times)"
