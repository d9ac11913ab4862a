# APTPL: REGISTER with -Z sets PTPL_A in REPORT CAPABILITIES and LIO writes the state to its
# APTPL file; a REGISTER without -Z clears it again.
. "$LAB_TESTS/lib.sh"
ours_start
ok prc -o -G -S 0xaa -Z "$A"
ok prc -o -R -K 0xaa -T 1 "$A"
ok prc -c "$B"
expect_in "Persist Through Power Loss Active(PTPL_A): 1" "PTPL_A set"
f=$(ls /etc/target/pr/aptpl_* /var/target/pr/aptpl_* 2>/dev/null | head -1)
[ -n "$f" ] || die "no APTPL file under /etc/target/pr or /var/target/pr"
cat "$f"
grep -q "PR_REG_START" "$f" || die "APTPL file $f has no registration"
grep -q "res_holder=1" "$f" || die "APTPL file $f has no reservation holder"
ok prc -o -G -K 0xaa -S 0xa1 "$A"
ok prc -c "$B"
expect_in "Persist Through Power Loss Active(PTPL_A): 0" "PTPL_A cleared by a REGISTER without APTPL"
grep -q "No Registrations or Reservations" "$f" || { cat "$f"; die "APTPL file not reset"; }
