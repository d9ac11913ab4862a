# lab-topology: mpath=1
# A path offline during REGISTER: the key goes to the working path, the command succeeds, and
# when the path comes back multipathd registers the key on it (our helper told it the key and
# the PR status, as libmpathpersist does). Then the same with multipathd stopped: PR still
# works and the helper says at -v that multipathd was not told.
. "$LAB_TESTS/lib.sh"
ours_start -v
wait_paths 2 "active ready" 10
echo offline >"/sys/block/${B#/dev/}/device/state"
wait_paths 1 "failed" 10
ok prc -v -o -G -S 0xaa "$MP"
expect_eq "$(keys_of "$A")" "0xaa " "key on the working path only"
expect_eq "$($CH multipathd getprkey map "$MPNAME")" "0xaa" "multipathd knows the key"
expect_eq "$($CH multipathd getprstatus map "$MPNAME")" 1 "multipathd knows the map is registered (getprstatus)"
echo running >"/sys/block/${B#/dev/}/device/state"
wait_paths 2 "active ready" 15
w=0
while [ "$(keys_of "$A")" != "0xaa 0xaa " ]; do
    w=$((w + 1))
    [ $w -gt 100 ] && die "multipathd did not register the key on the reinstated path: $(keys_of "$A")"
    sleep 0.1
done
echo "  ok: reinstated path registered by multipathd"
ok prc -o -R -K 0xaa -T 1 "$MP"
expect_resv "$A" "0xaa wr_ex" "reserved through the map"
ok prc -o -C -K 0xaa "$MP"
expect_eq "$($CH multipathd getprstatus map "$MPNAME")" 0 "multipathd told of the clear (getprstatus)"
say "without multipathd"
$CH multipathd shutdown
w=0
while pidof multipathd >/dev/null; do w=$((w + 1)); [ $w -gt 50 ] && die "multipathd did not stop"; sleep 0.1; done
ok prc -o -G -S 0xbb "$MP"
expect_eq "$(keys_of "$A")" "0xbb 0xbb " "registered on both paths without multipathd"
ok prc -o -G -K 0xbb -S 0 "$MP"
expect_eq "$(keys_of "$A")" "" "unregistered on both paths"
ours_stop
cat "/tmp/ours.$LAB_SCENARIO.err"
grep -q multipathd "/tmp/ours.$LAB_SCENARIO.err" || die "no -v line about multipathd"
