# lab-topology: mpath=1
# A path offline during REGISTER: the key goes to the working path, the command succeeds, and
# when the path comes back multipathd registers the key on it (our helper told it the key and
# the PR status, as libmpathpersist does). Then with multipathd stopped: under
# `reservation_key file` REGISTER fails as with mpathpersist; with a key in multipath.conf PR
# works and the helper says at -v that multipathd could not be told.
. "$LAB_TESTS/lib.sh"
A_DEVNUM=$(cat "/sys/block/${A#/dev/}/dev")
ours_start -v
wait_paths 2 "active ready" 10
echo offline >"/sys/block/${B#/dev/}/device/state"
wait_paths 1 "failed" 10
ok prc -v -o -G -S 0xaa "$MP"
expect_in "multipath map $MPNAME: paths" "pr-client -v lists the map's paths"
expect_in "(${B#/dev/}) failed" "pr-client -v shows the offline path failed"
# --direct runs the multipath backend in pr-client: -v names the path each command went to.
ok prc_direct -v -k "$MP"
expect_in "PR IN Read keys on path ${A_DEVNUM:-}" "pr-client --direct -v names the path of a PR IN"
expect_in "0xaa" "the key read through the map"
ok prc_direct --json -k "$MP"
expect_in '"via":"multipath"' "pr-client --direct --json says the command went through the map's paths"
expect_eq "$(keys_of "$A")" "0xaa " "key on the working path only"
expect_eq "$($CH multipathd getprkey map "$MPNAME")" "0xaa" "multipathd knows the key"
expect_eq "$($CH multipathd getprstatus map "$MPNAME")" set "multipathd knows the map is registered (getprstatus)"
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
expect_eq "$($CH multipathd getprstatus map "$MPNAME")" unset "multipathd told of the clear (getprstatus)"
say "without multipathd"
# It may close the socket before answering ("error -5 receiving packet").
$CH multipathd shutdown || true
w=0
while pidof multipathd >/dev/null; do w=$((w + 1)); [ $w -gt 50 ] && die "multipathd did not stop"; sleep 0.1; done
# With `reservation_key file` the key lives in multipathd: REGISTER cannot record it and fails
# before reaching a path (LOGICAL UNIT COMMUNICATION FAILURE), as mpathpersist fails.
run 11 prc -o -G -S 0xbb "$MP"
expect_in "08/00" "REGISTER without multipathd under reservation_key file"
if mpp --out --register --param-sark=0xbb "$MP" >/tmp/mpp.out 2>&1; then
    die "mpathpersist registered without multipathd: $(cat /tmp/mpp.out)"
fi
expect_eq "$(keys_of "$A")" "" "nothing registered without multipathd"
# A key written in multipath.conf needs no multipathd: PR works, and -v says who was not told.
printf 'defaults {\n    reservation_key 0xbb\n}\n' >/etc/multipath/conf.d/zz-key.conf
ok prc -o -G -S 0xbb "$MP"
expect_eq "$(keys_of "$A")" "0xbb 0xbb " "registered on both paths without multipathd"
ok prc -o -G -K 0xbb -S 0 "$MP"
expect_eq "$(keys_of "$A")" "" "unregistered on both paths"
ours_stop
cat "/tmp/ours.$LAB_SCENARIO.err"
grep -q "multipathd is not reachable" "/tmp/ours.$LAB_SCENARIO.err" || die "no -v line saying multipathd is not reachable"
