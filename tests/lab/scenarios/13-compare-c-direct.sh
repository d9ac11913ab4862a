# The same commands through our helper, through the C qemu-pr-helper (from the host, via its
# loader) and with pr-client --direct (SG_IO, no helper): identical status, sense and payload
# (--json without the "via" field, and -HH hex dumps), and the same exit status.
. "$LAB_TESTS/lib.sh"
ours_start
c_start
n=0
json3() { # EXPECTED_RC ARGS...: one command three ways (lib.sh's json_same), counted
    json_same "$@"
    n=$((n + 1))
}
hex3() { # ARGS...: -HH dumps compared
    o=$(prc -HH "$@" 2>&1) || die "ours -HH $* failed"
    c=$(prc_c -HH "$@" 2>&1) || die "C -HH $* failed"
    d=$(prc_direct -HH "$@" 2>&1) || die "direct -HH $* failed"
    [ "$o" = "$c" ] && [ "$o" = "$d" ] || die "-HH $* differs:
ours:
$o
C:
$c
direct:
$d"
    n=$((n + 1))
}
pr_in_all() { # WHAT
    say "$1"
    for dev in "$A" "$B"; do
        for op in -k -r -s -c; do
            json3 0 "$op" "$dev"
            hex3 "$op" "$dev"
        done
        # short allocation lengths: truncated payloads must match too
        json3 0 -s -m 8 "$dev"
        json3 0 -k -m 12 "$dev"
    done
}
pr_in_all "fresh LUN"
ok prc -o -G -S 0xaa "$A"
ok prc_c -o -G -S 0xbb "$B"            # PR OUT through the C helper
pr_in_all "registered: A through ours, B through C"
ok prc_direct -o -R -K 0xbb -T 6 "$B"  # and with SG_IO
pr_in_all "B holds ex_ac_ro (reserved with --direct)"
say "PR OUT errors, three ways"
json3 24 -o -G -K 0x77 -S 0x78 "$A"                 # wrong old key
json3 24 -o -R -K 0xaa -T 1 "$A"                    # reserved by B
json3 24 -o -L -K 0xbb -T 1 "$B"                    # wrong type (LIO: CONFLICT)
json3 5 -o -M -K 0xbb -S 0xcc -T 6 -Q 1 -X sas,5001405aaaaaaa02 "$B"  # move to itself
json3 0 -o -L -K 0xbb -T 6 "$B"
json3 0 -o -R -K 0xbb -T 6 "$B"
say "unit attention (REGISTRATIONS PREEMPTED), seen once through each path"
for via in prc prc_c prc_direct; do
    drain_ua "$A"
    ok prc -o -I -S 0xaa "$A"
    ok prc -o -P -K 0xbb -S 0xaa -T 6 "$B"
    set +e
    u=$($via --json -k "$A" 2>&1); ru=$?
    set -e
    echo "  $via: $ru $u"
    u=$(echo "$u" | sed 's/"via":"[^"]*",//')
    if [ "$via" = prc ]; then ua_ours=$u; else
        [ "$u" = "$ua_ours" ] || die "unit attention through $via differs from ours:
ours: $ua_ours
$via: $u"
    fi
    [ $ru = 6 ] || die "$via: exit $ru on a unit attention, expected 6"
    n=$((n + 1))
done
say "PR OUT on a read-only descriptor (-y): helpers answer without SG_IO"
json3_ro() {
    set +e
    o=$(prc --json -y "$@" 2>&1); ro=$?
    c=$(prc_c --json -y "$@" 2>&1); rc=$?
    set -e
    echo "  ours $ro: $o"
    echo "  C    $rc: $c"
    o=$(echo "$o" | sed 's/"via":"[^"]*",//')
    c=$(echo "$c" | sed 's/"via":"[^"]*",//')
    [ "$o" = "$c" ] && [ "$ro" = "$rc" ] || die "ours and C differ on -y $*"
    n=$((n + 1))
}
json3_ro -o -G -K 0xaa -S 0xab "$A"
echo "compared $n commands: identical"
