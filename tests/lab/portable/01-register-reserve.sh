# Any architecture (LAB_ARCH): our static binary only, no host tools. Through the sandboxed
# helper (seccomp on, the default) from nexus A: REGISTER, READ KEYS, RESERVE (type 1 and 3),
# READ RESERVATION; each answer the same as SG_IO from the guest (pr-client --direct) on A and
# on B, the other host; then RELEASE and unregister. The daemon must have lived through it all
# with its filter on every thread.
. "$LAB_TESTS/lib.sh"
ours_start
expect_sandboxed "$OURS_PID"
json_same 0 -k "$A"
expect_in '"generation":0,' "generation 0"
expect_in '"keys":[]' "no key yet"
ok prc -o -G -S 0xaa "$A"
json_same 0 -k "$B"
expect_in '"generation":1,' "generation 1 after REGISTER"
expect_in '"keys":["0xaa"]' "A's key, seen from B"
expect_eq "$(prc_keys "$A")" "0xaa " "A's key (pr-client -k)"
for t in 1:wr_ex 3:ex_ac; do
    ok prc -o -R -K 0xaa -T "${t%:*}" "$A"
    json_same 0 -r "$B"
    expect_eq "$(prc_resv "$A")" "0xaa ${t#*:}" "type ${t%:*} held by A"
    ok prc -o -L -K 0xaa -T "${t%:*}" "$A"
    json_same 0 -r "$A"
    expect_in '"reservation":null' "released"
done
ok prc -o -G -K 0xaa -S 0 "$A"
json_same 0 -k "$B"
expect_in '"keys":[]' "A unregistered"
expect_sandboxed "$OURS_PID"
# Its shutdown (SIGTERM: is the socket still ours, then remove it and the pidfile) runs under
# the filter too: 159 would be SIGSYS, a call the filter lacks on this architecture.
kill "$OURS_PID"
set +e
wait "$OURS_PID"
st=$?
set -e
OURS_PID=""
expect_eq "$st" 0 "the daemon's exit status after SIGTERM"
[ ! -e "$OURS_SOCK" ] || die "the daemon left its socket behind"
