#!/usr/bin/env bash
# The static musl binary for other architectures, built here and run under qemu-user:
#
#   tests/foreign-arch.sh [TARGET...]   (default: aarch64 and s390x; `all`: aarch64,
#                                        powerpc64le and s390x)
#
# For each target: packaging/build-static.sh builds it; file(1) must call it a static binary of
# that architecture within the size budget; then, under qemu-user (Debian's qemu-user):
#   - `qemu-pr-helper --version`;
#   - the daemon with --no-sandbox (qemu-user refuses seccomp; the filter itself is checked
#     by the foreign-architecture lab on a real kernel) serves the native x86_64 pr-client:
#     `probe`, a 2-second `bench` on /dev/null, and a set of PR IN and PR OUT commands (a
#     parameter list with 8-byte keys, so byte order is exercised beyond the header) whose
#     decoded answers (--json: status, sense, payload) must equal the native daemon's;
#   - SIGTERM: exit 0, socket removed.
# With PR_HELPER_FOREIGN_UNIT_TESTS=1 it also builds the library's unit tests for each target
# and runs them under qemu-user (encoders and decoders on a big-endian machine for s390x).
# Prints `foreign-arch: PASS TARGET ...` per target and exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

say() { echo "foreign-arch: $*"; }
fail() {
    echo "foreign-arch: FAIL: $*" >&2
    exit 1
}

# The x86_64 budget (tests/static-build.sh, 600 KiB) plus room for powerpc64le, whose fixed
# 4-byte instructions make it the largest (591,616 bytes against x86_64's 542,888, 9% more;
# at x86_64's 596,208 bytes s390x measured 608,360 and aarch64 591,600).
budget=$((656 * 1024))

targets=()
for a in "$@"; do
    case "$a" in
    all) targets+=(aarch64-unknown-linux-musl powerpc64le-unknown-linux-musl s390x-unknown-linux-musl) ;;
    *-unknown-linux-musl) targets+=("$a") ;;
    *) fail "unknown target '$a'" ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || targets=(aarch64-unknown-linux-musl s390x-unknown-linux-musl)

[ "$(id -u)" = 0 ] || fail "needs root (the build script installs cross compilers on a fresh machine)"
need=()
command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
command -v file >/dev/null || need+=(file)
if [ ${#need[@]} -gt 0 ]; then
    say "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need[@]}" >/dev/null ||
        fail "cannot install ${need[*]}"
fi

# The native binary runs the client and the reference daemon.
native=$(packaging/build-static.sh x86_64-unknown-linux-musl | awk '{ print $4 }') ||
    fail "packaging/build-static.sh x86_64-unknown-linux-musl failed"

work=$(mktemp -d /tmp/prh-foreign.XXXXXX) # short: socket paths must fit sun_path
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# start NAME CMD...: a daemon on $work/NAME.sock, waits until the socket exists.
start() {
    local name=$1
    shift
    "$@" qemu-pr-helper --no-sandbox -k "$work/$name.sock" </dev/null >"$work/$name.log" 2>&1 &
    pids+=($!)
    started=$!
    for _ in $(seq 200); do
        [ -S "$work/$name.sock" ] && return
        kill -0 "$started" 2>/dev/null || fail "$name: the daemon exited before listening: $(cat "$work/$name.log")"
        sleep 0.05
    done
    fail "$name: no socket after 10 s: $(cat "$work/$name.log")"
}
stop() {
    local name=$1 pid=$2 rc=0
    kill -TERM "$pid"
    wait "$pid" || rc=$?
    [ "$rc" = 0 ] || fail "$name: exit $rc on SIGTERM, not 0: $(cat "$work/$name.log")"
    [ ! -e "$work/$name.sock" ] || fail "$name: the socket is still there after SIGTERM"
}

# The commands whose answers must match: every PR IN service action, and PR OUT with a
# parameter list (keys with every byte different, so a swapped word shows).
commands=(
    "-k" "-r" "-c" "-s"
    "--out --register -K 0x0102030405060708 -S 0x1122334455667788"
    "--out --reserve -K 0x1122334455667788 -T wr_ex"
    "--out --preempt -K 0x1122334455667788 -S 0x8877665544332211 -T ex_ac"
    "--out --clear -K 0x1122334455667788"
)
answers() {
    local sock=$1
    for c in "${commands[@]}"; do
        # shellcheck disable=SC2086 # the options are words
        "$native" pr-client --socket="$sock" --timeout=20 --json $c /dev/null 2>/dev/null || true
        echo
    done
}

start native "$native"
native_pid=$started
answers "$work/native.sock" >"$work/native.answers"
stop native "$native_pid"

for t in "${targets[@]}"; do
    t0=$(date +%s)
    arch=${t%%-*}
    case "$arch" in
    aarch64) qemu=qemu-aarch64 magic="ARM aarch64" ;;
    powerpc64le) qemu=qemu-ppc64le magic="64-bit PowerPC" ;;
    s390x) qemu=qemu-s390x magic="IBM S/390" ;;
    *) fail "no qemu-user for $arch" ;;
    esac
    built=$(packaging/build-static.sh "$t") || fail "packaging/build-static.sh $t failed"
    bin=$(awk -v t="$t" '$2 == t { print $4 }' <<<"$built")
    [ -x "$bin" ] || fail "$t: no binary at '$bin'"
    info=$(file -b "$bin")
    grep -q "$magic" <<<"$info" || fail "$t: file(1) says '$info', not $magic"
    grep -Eq 'static(-pie| ?ally) linked' <<<"$info" || fail "$t: not static: $info"
    size=$(stat -c %s "$bin")
    [ "$size" -le $budget ] || fail "$t: $size bytes, over the budget of $budget"

    version=$("$qemu" "$bin" qemu-pr-helper --version | head -1)
    [[ "$version" == "qemu-pr-helper "*" (pr-helper)" ]] || fail "$t: --version printed '$version'"

    start "$arch" "$qemu" "$bin"
    pid=$started
    probe=$("$native" pr-client probe --socket="$work/$arch.sock" --timeout=20 2>&1) ||
        fail "$t: pr-client probe failed: $probe"
    grep -q '^result: *ok$' <<<"$probe" || fail "$t: probe: $probe"
    bench=$("$native" pr-client bench --socket="$work/$arch.sock" --connections=4 --seconds=2 --json /dev/null 2>&1) ||
        fail "$t: pr-client bench failed: $bench"
    rps=$(grep -o '"requests_per_second":[0-9.]*' <<<"$bench" | cut -d: -f2)
    grep -q '"errors":0,' <<<"$bench" || fail "$t: bench saw transport errors: $bench"
    answers "$work/$arch.sock" >"$work/$arch.answers"
    if ! diff -u "$work/native.answers" "$work/$arch.answers" >"$work/$arch.diff"; then
        fail "$t: answers differ from the native daemon's:
$(cat "$work/$arch.diff")"
    fi
    stop "$arch" "$pid"
    say "PASS $t $size bytes; $info; ${rps:-?} req/s under qemu-user (4 conns); ${#commands[@]} answers as native; $(($(date +%s) - t0)) s"
done

if [ "${PR_HELPER_FOREIGN_UNIT_TESTS:-0}" = 1 ]; then
    for t in "${targets[@]}"; do
        arch=${t%%-*}
        case "$arch" in
        aarch64) qemu=qemu-aarch64 ;;
        powerpc64le) qemu=qemu-ppc64le ;;
        s390x) qemu=qemu-s390x ;;
        esac
        tests=$(packaging/build-static.sh --unit-tests "$t" | awk '{ print $4 }') ||
            fail "$t: building the unit tests failed"
        # Tests that need a real kernel under them are left to the native run and the lab:
        # seccomp, the daemon's threads and signals, and ioctls on /dev/null, which qemu-user
        # answers ENOSYS for the requests it does not translate.
        # The rest run in one process (qemu-user cannot re-execute a foreign binary), so the
        # tests that run this binary again as a child (the multipathd impostor, the panic
        # hook) are left to the native run too.
        out=$(RUSTC_BOOTSTRAP=1 "$qemu" "$tests" -Z unstable-options --force-run-in-process \
            --test-threads=1 --skip sys:: --skip daemon:: --skip backend::blkpr::tests::forced_block \
            --skip backend::blkpr::tests::pr_in_on_a_char_device \
            --skip backend::multipath::multipathd::tests::an_unprivileged_impostor_is_refused \
            --skip backend::multipath::suspended::tests::a_panic_resumes_the_recorded_maps_before_the_panic_is_reported \
            --skip client::direct::tests::dev_null_is_aborted_command 2>&1) ||
            fail "$t: unit tests under $qemu failed:
$out"
        say "PASS $t unit tests under $qemu: $(grep '^test result' <<<"$out")"
    done
fi
