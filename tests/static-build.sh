#!/usr/bin/env bash
# The shipped artifact: builds pr-helper for x86_64-unknown-linux-musl with
# packaging/build-static.sh (the static musl binary that goes into images), then checks that
#   1. file(1) and ldd(1) call it static, and it has no program interpreter;
#   2. it runs in an empty chroot (nothing but the binary, as /qemu-pr-helper):
#      `qemu-pr-helper --version` exits 0 and prints the version, and the daemon started there
#      (`chroot DIR /qemu-pr-helper -k /s.sock`, default options, sandbox on) answers
#      `pr-client probe` run from outside by the host copy of the same binary, then exits 0
#      on SIGTERM;
#   3. it fits the size budget below.
# Prints a short report and, last, `static-build: BIN` naming the binary it checked (the test
# command runs the integration suites against it next); exits non-zero with the reason on any
# failure. Needs root (chroot; the build script's apt-get on a fresh machine).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "static-build: $*"; }
fail() {
    echo "static-build: FAIL: $*" >&2
    exit 1
}

# Size budget, bytes. Measured (Debian's rustc 1.96, musl 1.2.3, std built with
# optimize_for_size and without backtrace, opt-level "s", fat LTO, panic=abort with messages,
# stripped): about 470 KiB. Static glibc was 1,575,040 bytes: its assert/gettext/iconv, printf,
# sscanf/strtod and resolver come with __libc_start_main and pthread whatever we call, and musl
# has none of that. Raise it deliberately, not to make a failure go away: 512 KiB until the
# audit trail (--audit: /proc and cgroup parsing, the pidfd fallback, the journal's native
# protocol) took it from 501,928 to 542,888 bytes; 544 KiB until the sandbox's second wall and
# the multipath faults' work (Landlock and the sandbox composed from each feature's needs, the
# record of suspended maps with its OFD lock and start-up recovery, the suspension deadline's
# watcher, the standby path opener) took it to 596,208 bytes.
budget=$((600 * 1024))

[ "$(id -u)" = 0 ] || fail "needs root (chroot into a scratch directory): run as root"

if ! command -v file >/dev/null; then
    say "installing file"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends file >/dev/null || fail "cannot install file(1)"
fi
command -v ldd >/dev/null || fail "no ldd (libc-bin)"

target=x86_64-unknown-linux-musl
built=$(packaging/build-static.sh $target) || fail "packaging/build-static.sh $target failed"
bin=$(awk -v t=$target '$2 == t { print $4 }' <<<"$built")
[ -x "$bin" ] || fail "no binary at '$bin' after the build"

# 1. Static. Rust links x86_64 musl binaries as static PIE: file(1) says "static-pie linked"
# and glibc's ldd "statically linked"; a non-PIE static binary gets "statically linked" and
# "not a dynamic executable". Either is static; anything with "=>" is not.
file_out=$(file -b "$bin")
case "$file_out" in
*"static-pie linked"* | *"statically linked"*) ;;
*) fail "file(1) does not call $bin static: $file_out" ;;
esac
ldd_rc=0
ldd_out=$(ldd "$bin" 2>&1) || ldd_rc=$?
ldd_out=$(sed 's/^[[:space:]]*//' <<<"$ldd_out")
case "$ldd_out" in
*"=>"*) fail "ldd lists shared libraries for $bin: $ldd_out" ;;
"statically linked" | "not a dynamic executable") ;;
*) fail "unexpected ldd output for $bin (rc $ldd_rc): $ldd_out" ;;
esac

# 2. An empty chroot: the binary only, named for its applet (the multicall dispatch goes by
# argv[0]'s basename). No /dev nodes: the foreground daemon opens none (-d would need
# /dev/null); without /dev/mapper/control it serves with multipath support off.
root=$(mktemp -d /tmp/prh-static.XXXXXX) # short: the socket path must fit sun_path
daemon=
cleanup() {
    if [ -n "$daemon" ] && kill -0 "$daemon" 2>/dev/null; then
        kill -KILL "$daemon" 2>/dev/null || true
        wait "$daemon" 2>/dev/null || true
    fi
    rm -rf "$root"
}
trap cleanup EXIT
cp "$bin" "$root/qemu-pr-helper"

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
ver_rc=0
ver_out=$(chroot "$root" /qemu-pr-helper --version </dev/null 2>&1) || ver_rc=$?
[ "$ver_rc" = 0 ] || fail "'qemu-pr-helper --version' in the chroot exited $ver_rc: $ver_out"
ver_line=${ver_out%%$'\n'*}
[ "$ver_line" = "/qemu-pr-helper $version (pr-helper)" ] ||
    fail "'qemu-pr-helper --version' in the chroot printed '$ver_line', expected '/qemu-pr-helper $version (pr-helper)'"

log=$root.daemon.log
trap 'cleanup; rm -f "$log"' EXIT
# chroot(8) execs the daemon, so $! is the daemon itself.
chroot "$root" /qemu-pr-helper -k /s.sock </dev/null >"$log" 2>&1 &
daemon=$!
for _ in $(seq 100); do
    [ -S "$root/s.sock" ] && break
    kill -0 "$daemon" 2>/dev/null || break
    sleep 0.1
done
if [ ! -S "$root/s.sock" ]; then
    rc=0
    if kill -0 "$daemon" 2>/dev/null; then
        fail "the daemon in the chroot has no socket after 10 s; its output: $(cat "$log")"
    fi
    wait "$daemon" || rc=$?
    daemon=
    fail "the daemon in the chroot exited $rc before listening; its output: $(cat "$log")"
fi

probe_rc=0
probe_out=$("$bin" pr-client probe --socket="$root/s.sock" --timeout=10 </dev/null 2>&1) || probe_rc=$?
[ "$probe_rc" = 0 ] && grep -q '^result: *ok$' <<<"$probe_out" ||
    fail "pr-client probe against the daemon in the chroot exited $probe_rc: $probe_out
daemon output: $(cat "$log")"

kill -TERM "$daemon"
for _ in $(seq 100); do
    kill -0 "$daemon" 2>/dev/null || break
    sleep 0.1
done
kill -0 "$daemon" 2>/dev/null && fail "the daemon in the chroot is still running 10 s after SIGTERM"
daemon_rc=0
wait "$daemon" || daemon_rc=$?
daemon=
[ "$daemon_rc" = 0 ] || fail "the daemon in the chroot exited $daemon_rc on SIGTERM, not 0; its output: $(cat "$log")"

# 3. Size.
size=$(stat -c %s "$bin")
kib() { awk -v b="$1" 'BEGIN { printf "%.1f KiB", b / 1024 }'; }
say "binary  $bin"
say "size    $size bytes ($(kib "$size")); budget $budget bytes ($(kib $budget))"
say "file    $file_out"
say "ldd     $ldd_out"
say "version $ver_line (in an empty chroot)"
say "probe   $(sed -n 's/^request: *//p' <<<"$probe_out")"
say "probe   $(sed -n 's/^result: *//p' <<<"$probe_out") (daemon in the chroot, pr-client outside)"
say "daemon  exit $daemon_rc on SIGTERM; its output: $(if [ -s "$log" ]; then tr '\n' ' ' <"$log"; else echo "(none)"; fi)"
[ "$size" -le "$budget" ] ||
    fail "static binary is $size bytes ($(kib "$size")), over the budget of $budget bytes ($(kib $budget))"
say "PASS"
say "$bin"
