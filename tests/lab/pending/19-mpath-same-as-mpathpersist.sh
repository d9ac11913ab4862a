# lab-topology: mpath=1 nexus=3
# PR on a dm-multipath map ($MP over nexus 1 and 2; nexus 3, $C, is another host): the same
# sequence through our helper (pr-client on the map) and through mpathpersist (multipath-tools'
# own client) leaves the LUN in the same states (keys on every nexus, generation steps,
# reservation holder and type), each step checked by sg_persist on the paths.
. "$LAB_TESTS/lib.sh"
C=$LAB_DEV_3_0
[ -b "$MP" ] && [ -b "$C" ] || die "missing devices: $(cat /tmp/devs.sh)"
ours_start -v
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
    ok prc -o -R -K 0xcc -T 3 "$C"
    step "C reserves ex_ac"
    expect_io read "$A" CONFLICT "path A under C's ex_ac"
    if [ "$1" = ours ]; then ok prc -o -P -K 0xaa -S 0xcc -T 1 "$MP"; else ok mpp --out --preempt --param-rk=0xaa --param-sark=0xcc --prout-type=1 "$MP"; fi
    step "preempt C"
    drain_ua "$C"
    expect_io write "$A" GOOD "holder through path A"
    expect_io write "$B" GOOD "holder through path B"
    expect_io write "$C" CONFLICT "C preempted"
    if [ "$1" = ours ]; then ok prc -o -C -K 0xaa "$MP"; else ok mpp --out --clear --param-rk=0xaa "$MP"; fi
    step "clear"
    drain_ua "$A"
    drain_ua "$B"
}
say "through our helper"
STEPS=/tmp/ours.steps
seq_run ours
grep -q "register: keys=0xaa 0xaa gen+2 resv=none" /tmp/ours.steps || die "REGISTER did not reach both paths"

say "through mpathpersist"
STEPS=/tmp/mpp.steps
seq_run mpp
diff /tmp/ours.steps /tmp/mpp.steps || die "our helper and mpathpersist left different states"
echo "  ok: same states through our helper and mpathpersist ($(wc -l </tmp/ours.steps) steps)"
ours_stop
cat "/tmp/ours.$LAB_SCENARIO.err"
