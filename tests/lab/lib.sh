# Sourced by every PR lab scenario (busybox sh, inside the guest, run with sh -e).
# Given by /init: A B (the LUN through nexus 1 and 2: /dev/sdX), SGA SGB (/dev/sgN),
# LAB_BIN (our static pr-helper), LAB_TESTS (tests/lab on the 9p host root), LAB_WORK (cwd).

# Host binaries run through the host's loader from the read-only 9p root.
HL="/host/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 --library-path /host/lib/x86_64-linux-gnu:/host/usr/lib/x86_64-linux-gnu"
OURS_SOCK=/run/ours.sock
# The C helper runs in the guest's Debian (QEMU 11's qemu-pr-helper), its socket in /deb/run.
C_SOCK=/deb/run/c.sock
CH="env SYSTEMD_IGNORE_CHROOT=1 chroot /deb"

say() { echo "== $*"; }
die() {
    echo "ASSERTION FAILED: $*"
    # What our helper said (its -v log, when the scenario asked for one).
    if [ -s "/tmp/ours.${LAB_SCENARIO:-}.err" ]; then
        echo "-- our helper's stderr:"
        tail -n 40 "/tmp/ours.$LAB_SCENARIO.err"
    fi
    exit 1
}

# sg_persist and sg_raw from the host (the independent check).
sgp() { $HL /host/usr/bin/sg_persist "$@"; }
sgraw() { $HL /host/usr/bin/sg_raw "$@"; }

wait_sock() {
    i=0
    while [ ! -S "$1" ]; do
        i=$((i + 1))
        [ $i -gt 100 ] && die "no socket $1 after 10 s"
        sleep 0.1
    done
}

# Our daemon and the C helper, each on its own socket, in the background.
ours_start() {
    rm -f "$OURS_SOCK"
    # shellcheck disable=SC2086 # OURS_WRAP: a command prefix (setpriv and its arguments)
    ${OURS_WRAP:-} "$LAB_BIN" qemu-pr-helper -k "$OURS_SOCK" -f /run/ours.pid "$@" >/tmp/ours.$LAB_SCENARIO.err 2>&1 &
    OURS_PID=$!
    wait_sock "$OURS_SOCK"
}
ours_stop() {
    [ -n "${OURS_PID:-}" ] && kill "$OURS_PID" 2>/dev/null && wait "$OURS_PID" 2>/dev/null
    OURS_PID=""
    return 0
}
c_start() {
    rm -f "$C_SOCK"
    $CH /usr/bin/qemu-pr-helper -k "${C_SOCK#/deb}" -f /run/c.pid "$@" >/tmp/c.$LAB_SCENARIO.err 2>&1 &
    C_PID=$!
    wait_sock "$C_SOCK"
}
c_stop() {
    [ -n "${C_PID:-}" ] && kill "$C_PID" 2>/dev/null && wait "$C_PID" 2>/dev/null
    C_PID=""
    return 0
}

# pr-client through our helper (prc), through the C helper (prc_c), with SG_IO (prc_direct).
prc() { "$LAB_BIN" pr-client --socket="$OURS_SOCK" --timeout=30 "$@"; }
prc_c() { "$LAB_BIN" pr-client --socket="$C_SOCK" --timeout=30 "$@"; }
prc_direct() { "$LAB_BIN" pr-client --direct --timeout=30 "$@"; }

# run EXPECTED_RC CMD...: run CMD, echo its output, fail unless it exits EXPECTED_RC.
# The output is left in $OUT.
run() {
    want=$1
    shift
    set +e
    OUT=$("$@" 2>&1)
    got=$?
    set -e
    echo "\$ $* -> $got"
    [ -n "$OUT" ] && echo "$OUT" | sed 's/^/  /'
    [ "$got" = "$want" ] || die "'$*' exited $got, expected $want"
    return 0
}
ok() { run 0 "$@"; }

expect_eq() { # ACTUAL EXPECTED WHAT
    [ "$1" = "$2" ] || die "$3: got '$1', expected '$2'"
    echo "  ok: $3 = '$2'"
}
expect_in() { # NEEDLE WHAT: $OUT contains NEEDLE
    case "$OUT" in *"$1"*) echo "  ok: $2" ;; *) die "$2: '$1' not in output" ;; esac
}
expect_not_in() {
    case "$OUT" in *"$1"*) die "$2: '$1' found in output" ;; *) echo "  ok: $2" ;; esac
}

# The keys sg_persist reads on DEV, one per line, lower-case hex with 0x (independent check).
keys_of() {
    sgp -n -k "$1" 2>/dev/null | awk '/^ *0x/ { print tolower($1) }' | sort | tr '\n' ' '
}
# "PR generation=0x.." from sg_persist -k
gen_of() {
    sgp -n -k "$1" 2>/dev/null | sed -n 's/.*PR generation=\(0x[0-9a-fA-F]*\).*/\1/p'
}
# "KEY TYPE" of the reservation sg_persist sees on DEV, or "none"
resv_of() {
    o=$(sgp -n -r "$1" 2>/dev/null)
    case "$o" in
    *"no reservation"*) echo none ;;
    *) k=$(echo "$o" | awk '/Key=/ { sub(/.*Key=/, ""); print tolower($1) }')
       t=$(echo "$o" | sed -n 's/.*type: *\(.*\)$/\1/p' | head -1)
       echo "$k $t" ;;
    esac
}

# One-block WRITE(10) / READ(10) at LBA 0 through DEV: prints GOOD, CONFLICT or OTHER:<text>.
io() { # write|read DEV
    if [ "$1" = write ]; then
        o=$(dd if=/dev/zero bs=512 count=1 2>/dev/null >/tmp/blk; sgraw -s 512 -i /tmp/blk "$2" 2a 00 00 00 00 00 00 00 01 00 2>&1)
    else
        o=$(sgraw -r 512 "$2" 28 00 00 00 00 00 00 00 01 00 2>&1)
    fi
    rc=$?
    case "$o" in
    *"Reservation Conflict"* | *"reservation conflict"* | *"RESERVATION CONFLICT"*) echo CONFLICT ;;
    *) if [ $rc = 0 ]; then echo GOOD; else echo "OTHER:rc=$rc:$(echo "$o" | tr '\n' ' ')"; fi ;;
    esac
}
expect_io() { # write|read DEV EXPECTED WHAT
    r=$(io "$1" "$2" || true)
    [ "$r" = "$3" ] || die "$4: $1 through $2 gave $r, expected $3"
    echo "  ok: $4: $1 through $2 -> $3"
}

# pr-client's text must equal sg_persist's for the same PR IN (both decode like sg_persist).
same_as_sgp() { # OPTION DEV (e.g. -k /dev/sda)
    p=$(prc "$@" 2>&1) || die "pr-client $* failed: $p"
    s=$(sgp -n "$@" 2>&1) || die "sg_persist $* failed: $s"
    [ "$p" = "$s" ] || die "pr-client $* differs from sg_persist:
--- pr-client
$p
--- sg_persist
$s"
    echo "  ok: pr-client $* = sg_persist $*"
}

# Keys through our helper, from DEV: "0xaa 0xbb " (sorted)
prc_keys() {
    prc -k "$1" | awk '/^ *0x/ { print tolower($1) }' | sort | tr '\n' ' '
}
prc_gen() {
    prc -k "$1" | sed -n 's/.*PR generation=\(0x[0-9a-fA-F]*\).*/\1/p'
}
# "KEY TYPE-SHORT" of the reservation through our helper (from --json), or "none"
prc_resv() {
    j=$(prc --json -r "$1")
    case "$j" in
    *'"reservation":null'* | *'"reservation":{}'*) echo none ;;
    *'"reservation":{'*)
        k=$(echo "$j" | sed -n 's/.*"reservation":{"key":"\([^"]*\)".*/\1/p')
        t=$(echo "$j" | sed -n 's/.*"reservation":{.*"short":"\([a-z_]*\)".*/\1/p')
        echo "$k $t" ;;
    *) echo none ;;
    esac
}
expect_keys() { # DEV "0xaa 0xbb " WHAT: through our helper and sg_persist
    expect_eq "$(prc_keys "$1")" "$2" "$3 (pr-client keys on $1)"
    expect_eq "$(keys_of "$1")" "$2" "$3 (sg_persist keys on $1)"
}
expect_resv() { # DEV "KEY SHORT"|none WHAT
    expect_eq "$(prc_resv "$1")" "$2" "$3 (reservation on $1)"
}

# Start our helper and register 0xaa through A and 0xbb through B.
two_registered() {
    ours_start
    ok prc -o -G -S 0xaa "$A"
    ok prc -o -G -S 0xbb "$B"
    expect_keys "$A" "0xaa 0xbb " "both registered"
}

# check_type TYPE: A reserves TYPE with 0xaa (B registered with 0xbb); the holder's I/O, then
# B's READ(10)/WRITE(10) while registered and after unregistering, as SPC-3 table 37 says:
#   type  name       B registered     B not registered
#   1     wr_ex      R ok  W conflict R ok  W conflict
#   3     ex_ac      R/W conflict     R/W conflict
#   5/7   wr_ex_ro/ar R ok W ok        R ok  W conflict
#   6/8   ex_ac_ro/ar R ok W ok        R/W conflict
check_type() {
    t=$1 short=$2
    say "type $t ($short)"
    two_registered
    ok prc -o -R -K 0xaa -T "$t" "$A"
    case $t in 7 | 8) holder=0x0 ;; *) holder=0xaa ;; esac
    expect_resv "$A" "$holder $short" "type $t reserved, seen from A"
    expect_resv "$B" "$holder $short" "type $t reserved, seen from B"
    same_as_sgp -r "$B"
    # a second reservation of another type by the holder conflicts; the same type is GOOD
    ok prc -o -R -K 0xaa -T "$t" "$A"
    case $t in 1) other=3 ;; *) other=1 ;; esac
    run 24 prc -o -R -K 0xaa -T "$other" "$A"
    # B cannot reserve while A holds (except all-registrants: B is a holder too, same type GOOD)
    case $t in
    7 | 8) ok prc -o -R -K 0xbb -T "$t" "$B" ;;
    *) run 24 prc -o -R -K 0xbb -T "$t" "$B" ;;
    esac
    expect_io read "$A" GOOD "type $t holder"
    expect_io write "$A" GOOD "type $t holder"
    case $t in
    1) rr=GOOD rw=CONFLICT ur=GOOD uw=CONFLICT ;;
    3) rr=CONFLICT rw=CONFLICT ur=CONFLICT uw=CONFLICT ;;
    5 | 7) rr=GOOD rw=GOOD ur=GOOD uw=CONFLICT ;;
    6 | 8) rr=GOOD rw=GOOD ur=CONFLICT uw=CONFLICT ;;
    esac
    expect_io read "$B" $rr "type $t, B registered"
    expect_io write "$B" $rw "type $t, B registered"
    ok prc -o -G -K 0xbb -S 0 "$B"
    expect_keys "$A" "0xaa " "B unregistered"
    expect_resv "$A" "$holder $short" "reservation kept after B unregistered"
    expect_io read "$B" $ur "type $t, B not registered"
    expect_io write "$B" $uw "type $t, B not registered"
    # clean up: A clears everything
    ok prc -o -C -K 0xaa "$A"
    expect_keys "$B" "" "cleared"
    expect_resv "$B" none "cleared"
    expect_io write "$B" GOOD "after clear"
    ours_stop
}

# The next command through DEV gets UNIT ATTENTION ASC/ASCQ (decimal, as --json prints them);
# the one after it is GOOD. Through our helper.
expect_ua() { # DEV ASC ASCQ WHAT
    run 6 prc --json -k "$1"
    expect_in "\"key\":{\"value\":6,\"name\":\"Unit Attention\"},\"asc\":$2,\"ascq\":$3" "$4: unit attention $2/$3 on $1"
    ok prc -k "$1"
}

# Every thread of PID in seccomp filter mode (2) with our one filter: the daemon installs it
# as start-up's last step (after the privilege drop), which comes after its socket appears:
# wait for it, up to 60 s of wall clock (a lab VM beside a busy machine can take seconds).
expect_sandboxed() { # PID
    _t=$(date +%s)
    while [ "$(cat /proc/"$1"/task/*/status 2>/dev/null | grep -c '^Seccomp:[[:space:]]*2$')" = 0 ]; do
        [ $(($(date +%s) - _t)) -gt 60 ] && die "PID $1 never entered seccomp filter mode: $(grep Seccomp /proc/"$1"/status)"
        sleep 0.1
    done
    for _s in /proc/"$1"/task/*/status; do
        grep -q '^Seccomp:[[:space:]]*2$' "$_s" && grep -q '^Seccomp_filters:[[:space:]]*1$' "$_s" ||
            die "thread $_s of $1 not under our one filter: $(grep Seccomp "$_s" | tr '\n' ' ')"
    done
    echo "  ok: every thread of $1 ($(ls /proc/"$1"/task | wc -l)) has Seccomp: 2, Seccomp_filters: 1"
}
# The kernel's audit names for this machine: AUDIT_ARCH_* (hex, as the audit line prints it)
# and getppid's system call number (the forbidden call of the seccomp unit test).
audit_arch() {
    case $(uname -m) in
    x86_64) echo c000003e ;; aarch64) echo c00000b7 ;; ppc64le) echo c0000015 ;; s390x) echo 80000016 ;;
    esac
}
getppid_nr() {
    case $(uname -m) in x86_64) echo 110 ;; aarch64) echo 173 ;; ppc64le | s390x) echo 64 ;; esac
}

# Read and discard pending unit attentions on DEV (at most 3), through our helper.
drain_ua() {
    for _u in 1 2 3; do prc -k "$1" >/dev/null 2>&1 && return 0; done
    return 0
}

# json_same EXPECTED_RC ARGS...: the command through our helper, the C helper (if C_PID is
# set) and --direct: the same --json answer (status, sense, payload; "via" aside) and exit.
json_same() {
    want=$1
    shift
    set +e
    jo=$(prc --json "$@" 2>&1); jro=$?
    jd=$(prc_direct --json "$@" 2>&1); jrd=$?
    jc=$jo jrc=$jro
    [ -n "${C_PID:-}" ] && { jc=$(prc_c --json "$@" 2>&1); jrc=$?; }
    set -e
    echo "\$ pr-client --json $* -> ours $jro, C $jrc, direct $jrd"
    echo "  $jo"
    OUT=$jo
    jo=$(echo "$jo" | sed 's/"via":"[^"]*",//')
    jc=$(echo "$jc" | sed 's/"via":"[^"]*",//')
    jd=$(echo "$jd" | sed 's/"via":"[^"]*",//')
    [ "$jo" = "$jc" ] || die "ours and C differ on $*:
ours:   $jo
C:      $jc"
    [ "$jo" = "$jd" ] || die "ours and direct differ on $*:
ours:   $jo
direct: $jd"
    [ "$jro" = "$jrc" ] && [ "$jro" = "$jrd" ] || die "exit statuses differ on $*: ours $jro, C $jrc, direct $jrd"
    [ "$jro" = "$want" ] || die "$*: exit $jro, expected $want"
    return 0
}

# With several LUNs the ones linked after the first make LIO queue REPORTED LUNS DATA HAS
# CHANGED (3F/0E) on the earlier ones: read it off every path before the scenario starts.
if [ "${LAB_LUNS:-1}" -gt 1 ]; then
    for _d in $(sed -n 's/.*LAB_DEV_[0-9_]*=\([^ ]*\) .*/\1/p' /tmp/devs.sh); do
        for _u in 1 2 3; do "$LAB_BIN" pr-client --direct -k "$_d" >/dev/null 2>&1 && break; done
    done
fi

# LIO on 6.1 numbers the tcm_loop target ports 1, 2, 3...; 7.3.4 reports relative target
# port 0 (reserved in SPC) in READ FULL STATUS and refuses REGISTER AND MOVE to it. Checks of
# port numbers run on kernels where the ports are numbered.
rtpi_numbered() {
    case $(uname -r) in 6.1.*) return 0 ;; *) say "kernel $(uname -r): relative target ports not numbered by LIO, port checks skipped"; return 1 ;; esac
}

# Multipath (lab-topology mpath=1): mpathpersist from the host root, in the chroot.
mpp() { $CH mpathpersist "$@"; }
# "keys=... gen+N resv=..." of the LUN seen through nexus DEV by sg_persist, the generation
# relative to $GEN0 (set by mark_gen), so runs that start at different generations compare.
mark_gen() { GEN0=$(($(gen_of "$1"))); }
lun_state() { # DEV
    echo "keys=$(keys_of "$1")gen+$(($(gen_of "$1") - GEN0)) resv=$(resv_of "$1")"
}
# Wait up to SECS for multipathd to see the map's paths in STATE (e.g. "active ready").
wait_paths() { # COUNT "STATE" SECS
    _w=0
    while [ "$($CH multipathd show paths format '%t %T' 2>/dev/null | grep -c "$2")" -lt "$1" ]; do
        _w=$((_w + 1))
        [ $_w -gt $(($3 * 10)) ] && { $CH multipathd show paths; die "not $1 path(s) in state '$2' after $3 s"; }
        sleep 0.1
    done
    return 0
}

# NVMe (lab-topology nvme=1 hostenv=1): nvme-cli's view of the namespace through DEV, as
# "gen=N type=T keys=0xaa 0xbb holder=0xaa" (keys sorted, holder empty without reservation).
nvme_state() { # DEV
    _j=$($CH nvme resv-report "$1" --eds -o json | tr -d ' \n\t')
    _gen=$(echo "$_j" | sed -n 's/.*"gen":\([0-9]*\).*/\1/p')
    _type=$(echo "$_j" | sed -n 's/.*"rtype":\([0-9]*\).*/\1/p')
    _keys=$(echo "$_j" | grep -o '"rkey":[0-9]*' | cut -d: -f2 | sort -n | while read -r _k; do printf '0x%x ' "$_k"; done)
    _holder=$(echo "$_j" | grep -o '"rcsts":1,"rkey":[0-9]*' | cut -d: -f3 | while read -r _k; do printf '0x%x' "$_k"; done)
    echo "gen=$_gen type=$_type keys=${_keys}holder=$_holder"
}
expect_nvme() { # DEV "gen=.. type=.. keys=.. holder=.." WHAT
    expect_eq "$(nvme_state "$1")" "$2" "$3 (nvme resv-report on $1)"
}

# Unprivileged runs (-u/-g): the systemd unit's CapabilityBoundingSet= as setpriv's
# --bounding-set list (e.g. "+sys_rawio,+sys_admin,..."), read from the unit itself.
unit_bounding_set() {
    sed -n 's/^CapabilityBoundingSet=//p' "$LAB_TESTS/../../packaging/systemd/qemu-pr-helper.service" |
        tr ' ' '\n' | sed -n 's/^CAP_//p' | tr 'A-Z' 'a-z' | sed 's/^/+/' | tr '\n' ',' | sed 's/,$//'
}
# ours_start_unit ARGS...: our daemon as the unit starts it, under its bounding set and
# no_new_privs (the host's setpriv), with ARGS (e.g. -u 65534 -g 65534).
ours_start_unit() {
    OURS_WRAP="$HL /host/usr/bin/setpriv --bounding-set -all,$(unit_bounding_set) --no-new-privs" ours_start "$@"
    # The socket comes before the privilege drop: what /proc says of the daemon (its ids and
    # capabilities) is its own once start-up's last step, the sandbox, is done.
    expect_sandboxed "$OURS_PID"
}
# status_of PID FIELD: that /proc/PID/status line's value, blanks squeezed ("65534 65534 ...").
status_of() { sed -n "s/^$2:[[:space:]]*//p" "/proc/$1/status" | tr -s ' \t' '  '; }
# The pids whose parent is PID (our daemon's path opener).
children_of() {
    for _s in /proc/[0-9]*/stat; do
        awk -v pp="$1" '$4 == pp { print $1 }' "$_s" 2>/dev/null
    done
}
# A command as uid/gid 65534 in the guest's Debian (multipathd's client as a non-root peer).
# (The full path: busybox's chroot would run its own setpriv applet for a bare name.)
as_nobody() { $CH /usr/bin/setpriv --reuid 65534 --regid 65534 --clear-groups "$@"; }

# The nested guest of scenarios 21, 26 and 28, booted by QEMU from /deb/tmp/vmlinuz (the
# lab's own kernel, $LAB_IMAGE/nested-vmlinuz: tests/lab/nested-kernel.config, virtio-scsi,
# sd and sg built in) and /deb/tmp/inner.cpio: busybox and our binary (for
# pr-client --direct). nested_begin writes the tree and the start of its /init; the scenario
# appends the rest of /init to $NESTED/init; nested_pack makes the files.
NESTED=/tmp/inner
# Its firmware and kernel arguments (21's and 28's QEMU command lines, 26's domain XML). Nested
# TCG runs the guest 50-70x slower than one TCG level, so what the boot does is what it costs
# (docs/lab.md has the figures): qboot, QEMU's minimal firmware, loads the kernel and initramfs
# and nothing else (SeaBIOS reached the kernel at 8 s); the kernel is ours, with nothing built
# in that the guest does not use (Debian's took 107-272 s, its initcalls most of it); the
# initramfs is not compressed (nested gunzip). The machine has no ACPI (21, 28:
# -machine acpi=off; 26: libvirt without <acpi/>), so the guest's `reboot -f` ends QEMU.
NESTED_BIOS=/usr/share/qemu/qboot.rom
NESTED_APPEND="console=ttyS0 quiet panic=-1"
nested_begin() {
    [ -f "$LAB_IMAGE/nested-vmlinuz" ] || die "no nested-vmlinuz in LAB_IMAGE=$LAB_IMAGE (tests/lab/setup.sh builds it)"
    mkdir -p $NESTED/bin $NESTED/dev $NESTED/proc $NESTED/sys $NESTED/tmp
    cp /bin/busybox $NESTED/bin/busybox
    for _a in sh mount sleep poweroff reboot cat echo ls grep sed dd; do ln -sf busybox $NESTED/bin/$_a; done
    cp "$LAB_BIN" $NESTED/bin/pr-helper
    cat >$NESTED/init <<'INIT'
#!/bin/sh
mount -t proc none /proc
mount -t sysfs none /sys
mount -t devtmpfs none /dev
P="/bin/pr-helper pr-client --direct --timeout=60"
INIT
    chmod 755 $NESTED/init
}
nested_pack() {
    [ -f "/deb$NESTED_BIOS" ] || die "no $NESTED_BIOS in the guest root (QEMU's qemu-system-data)"
    (cd $NESTED && find . | cpio -o -H newc 2>/dev/null) >/deb/tmp/inner.cpio
    cp "$LAB_IMAGE/nested-vmlinuz" /deb/tmp/vmlinuz
}
# Progress goes to the scenario's log and to the VM's console, which run.sh prints when the
# VM itself runs out of time.
progress() {
    echo "$*"
    echo "lab $LAB_SCENARIO: $*" >/dev/console 2>/dev/null || true
}
# nested_wait CONSOLE MARKER SECS FAIL: waits until the nested guest's console file shows
# MARKER, in wall-clock seconds (a loop count stretches under load), saying every 30 s what
# the console says last; FAIL MESSAGE (which must not return) when QEMU ($QPID) exits first
# or SECS pass.
nested_wait() {
    _t0=$(date +%s) _next=30
    while ! tr -d '\r' <"$1" 2>/dev/null | grep -q "$2"; do
        kill -0 "$QPID" 2>/dev/null || "$4" "QEMU exited before '$2'"
        _el=$(($(date +%s) - _t0))
        [ $_el -ge "$3" ] && "$4" "no '$2' from the nested guest after $3 s"
        if [ $_el -ge $_next ]; then
            progress "  ... ${_el} s of $3 waiting for '$2'; nested console: $(tr -d '\r' <"$1" 2>/dev/null | grep . | tail -n 1 | cut -c1-100)"
            _next=$((_next + 30))
        fi
        sleep 1
    done
    progress "  '$2' after $(($(date +%s) - _t0)) s"
}
