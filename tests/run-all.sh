#!/usr/bin/env bash
# Every test of the project, on a fresh Debian 12 machine: installs what the tests need (a
# Rust toolchain when none is on PATH, the C qemu-pr-helper to compare against,
# systemd-socket-activate, ss, setpriv, prlimit, sg3-utils, strace), checks formatting and lints,
# fuzzes briefly, then runs both test tiers:
#   fast   `cargo test`: unit tests and the integration tests that start the daemon
#   musl   the static musl binary (packaging/build-static.sh), and the integration suites
#          again with PR_HELPER_BIN pointing at it; the unit tests linked with musl
#   heavy  `cargo test -- --ignored`: packaging (apt-get, cargo-deb, initramfs images), the
#          static build, the 1,000,000-request soak and the PR lab VMs, in three parts
#          (heavy-lab, then heavy-systemd beside heavy) so that both cores stay busy
# Their times, and when they were measured: docs/testing.md; the run ends with its own.
# Run as root: the privilege-dropping tests need it, as the daemon does.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "run-all: run as root (the daemon drops privileges, and the tests check it)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt_updated=0
apt_install() {
    [ $apt_updated = 1 ] || { apt-get update -qq; apt_updated=1; }
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# A toolchain. rustup's (stable, plus nightly for fuzzing) when it is on PATH; otherwise
# Debian 12's rustc-web/cargo-web 1.96 from bookworm-security, with its clippy and rustfmt.
# Bookworm's own rustc (1.63) is too old for edition 2024 (Cargo.toml: rust-version 1.85).
if ! command -v cargo >/dev/null; then
    echo "run-all: no cargo on PATH: installing Debian's rustc-web 1.96 (bookworm-security)"
    apt_install -t bookworm-security rustc-web cargo-web rust-web-clippy rustfmt-web
fi
# packaging/build-static.sh (the README's first command) installs rustc-web and cargo-web
# alone: cargo is then on PATH, and Debian's clippy and rustfmt still missing.
if ! command -v rustup >/dev/null; then
    tools=()
    cargo fmt --version >/dev/null 2>&1 || tools+=(rustfmt-web)
    cargo clippy --version >/dev/null 2>&1 || tools+=(rust-web-clippy)
    if [ ${#tools[@]} -gt 0 ]; then
        echo "run-all: installing ${tools[*]} (bookworm-security), for cargo fmt and cargo clippy"
        apt_install -t bookworm-security "${tools[@]}"
    fi
fi
rustc_version=$(rustc --version | awk '{ print $2 }')
if [ "$(printf '%s\n' 1.85.0 "$rustc_version" | sort -V | head -1)" != 1.85.0 ]; then
    echo "run-all: rustc $rustc_version is older than 1.85 (Cargo.toml's rust-version)" >&2
    exit 1
fi
echo "run-all: $(cargo --version), rustc $rustc_version"

need_pkgs=()
command -v qemu-pr-helper >/dev/null || [ -x /usr/bin/qemu-pr-helper ] || need_pkgs+=(qemu-system-common)
command -v systemd-socket-activate >/dev/null || need_pkgs+=(systemd)
command -v ss >/dev/null || need_pkgs+=(iproute2)
command -v setpriv >/dev/null || need_pkgs+=(util-linux)
command -v prlimit >/dev/null || need_pkgs+=(util-linux)
command -v sg_persist >/dev/null || need_pkgs+=(sg3-utils)
command -v groff >/dev/null || need_pkgs+=(groff-base)
command -v lexgrog >/dev/null || need_pkgs+=(man-db)
command -v strace >/dev/null || need_pkgs+=(strace)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    echo "run-all: installing ${need_pkgs[*]}"
    apt_install "${need_pkgs[@]}"
fi

# Each step's and each test binary's time goes to a table printed at the end (slowest first).
log=$(mktemp) rows=$(mktemp)
trap 'rm -f "$log" "$rows" "$log".*' EXIT
step() { # WHAT COMMAND...: one step before the tiers, timed for the table
    local what=$1 t0=$SECONDS
    shift
    "$@"
    echo "$((SECONDS - t0)) step $what" >>"$rows"
}
step "cargo fmt --check" cargo fmt --all -- --check
step "cargo clippy" cargo clippy --all-targets --quiet -- -D warnings
step "cargo build --release" cargo build --release --quiet
# Bounded fuzzing of every target (crashes fail the run). cargo-fuzz needs rustup's nightly
# toolchain (-Zsanitizer): Debian's toolchain has neither, so the step is skipped there.
if command -v rustup >/dev/null && rustup toolchain list | grep -q '^nightly'; then
    step "fuzz smoke (15 s per target)" tests/fuzz-smoke.sh 15
else
    echo "run-all: SKIP fuzz smoke test: cargo-fuzz needs rustup's nightly toolchain (rustup toolchain install nightly)"
fi

times=() failed_tiers=()
tier() { # NAME COMMAND...: runs one tier, its output into its own log (and stdout), and times it
    local name=$1 t0=$SECONDS rc=0
    shift
    echo "run-all: $name tier: $*"
    "$@" 2>&1 | tee "$log.$name.tier" || rc=$?
    times+=("$name $((SECONDS - t0))s")
    [ $rc = 0 ] || failed_tiers+=("$name (exit $rc)")
    # The table's rows: each test binary's time from libtest's "test result: ... finished in
    # SECSs" (named by cargo's "Running SOURCE" line before it; the tier's name when the binary
    # ran alone), and each lab scenario's or step's "PASS name SECSs" / "FAIL name rc=N SECSs".
    awk -v tier="$name" '
        { sub(/\r$/, "") }
        /^ *Running / { what = $2; if ($2 == "unittests") what = "unittests " $3; next }
        /^ *Doc-tests / { what = "doc-tests " $2; next }
        /^test result:.* finished in [0-9.]+s/ {
            if ($0 ~ / 0 passed; 0 failed;/) next
            t = $NF; sub(/s$/, "", t)
            printf "%d %s %s\n", t + 0.5, tier, (what == "" ? "(" tier ")" : what)
            next
        }
        /^(PASS|FAIL) [^ ]+ .*[0-9]s$/ {
            t = $NF; sub(/s$/, "", t)
            if (t ~ /^[0-9.]+$/) printf "%d %s %s: %s %s\n", t + 0.5, tier, what, $1, $2
        }' "$log.$name.tier" >>"$rows"
}
# beside NAME COMMAND...: a tier in the background, its output kept for when it ends (two
# tiers' lines interleaved would say little); beside_wait prints it and takes its time and
# outcome.
beside_pids=() beside_names=()
beside() {
    local name=$1
    echo "run-all: $name tier beside the next ones: ${*:2} (its output when it ends)"
    (
        times=() failed_tiers=()
        tier "$@" >/dev/null
        printf '%s\n' "${times[@]}" >"$log.$name.time"
        printf '%s\n' "${failed_tiers[@]}" >"$log.$name.failed"
    ) &
    beside_pids+=($!) beside_names+=("$name")
}
beside_wait() {
    local i name
    for i in "${!beside_pids[@]}"; do
        name=${beside_names[$i]}
        wait "${beside_pids[$i]}" || true
        echo "run-all: the output of the $name tier, run beside:"
        cat "$log.$name.tier"
        mapfile -t -O ${#times[@]} times < <(grep . "$log.$name.time")
        mapfile -t -O ${#failed_tiers[@]} failed_tiers < <(grep . "$log.$name.failed" || true)
    done
    beside_pids=() beside_names=()
}
# --no-fail-fast: a failing test binary does not hide what the next ones would say.
tier fast cargo test --no-fail-fast
# The shipped artifact is the static musl binary (packaging/build-static.sh): every suite that
# starts the binary runs once more against it.
t0=$SECONDS
if musl_bin=$(packaging/build-static.sh x86_64-unknown-linux-musl | awk '{ print $4 }') && [ -x "$musl_bin" ]; then
    echo "$((SECONDS - t0)) step packaging/build-static.sh" >>"$rows"
    tier musl env PR_HELPER_BIN="$musl_bin" cargo test --no-fail-fast --test cli --test differential --test daemon \
        --test activated --test torture --test pr_client --test runtime_faults
else
    failed_tiers+=("musl (packaging/build-static.sh failed)")
fi
# The library's unit tests linked with musl (panic=abort, as the release build): a panic under
# the seccomp filter must still end with SIGABRT (musl's abort() uses tkill), and the rest must
# hold with musl's libc underneath.
t0=$SECONDS
if musl_unit=$(packaging/build-static.sh --unit-tests x86_64-unknown-linux-musl | awk '{ print $4 }') && [ -x "$musl_unit" ]; then
    echo "$((SECONDS - t0)) step packaging/build-static.sh --unit-tests" >>"$rows"
    tier musl-unit "$musl_unit"
else
    failed_tiers+=("musl-unit (packaging/build-static.sh --unit-tests failed)")
fi
# --nocapture: the heavy tests' own timing lines (the lab's PASS lines with each scenario's
# seconds, set-up and build times) reach the log and the table.
# Skipped: the C helper's runtime-fault rows (about 3 min), a comparison for
# docs/compatibility.md run by hand (cargo test --test runtime_faults -- --ignored --nocapture);
# the 64 KiB record to the real journald, which the systemd lab runs in its guest.
heavy_args=(--no-fail-fast)
heavy_run=(-- --ignored --nocapture --skip c_helper_through_the_same_rows
    --skip a_64_kib_record_reaches_the_real_journald)
# The heavy tier in three parts, so that both cores stay busy (docs/testing.md#cores): the
# PR lab (two VMs, a core each) alone; then the systemd lab (one VM) beside the rest
# (the foreign-architecture lab, whose builds take both cores and whose VM runs seconds,
# packaging, the static-build checks, the soak). Each test binary is built before the
# lanes start, so two cargo runs do not wait on each other's build lock for long.
cargo test "${heavy_args[@]}" --no-run --quiet 2>&1 | grep -v '^  Executable' || true
others=()
for t in tests/*.rs; do
    t=$(basename "$t" .rs)
    case $t in lab | lab_systemd) ;; *) others+=(--test "$t") ;; esac
done
# The labs take the static binary and unit tests the musl tiers built, rather than build
# them again (a build waits for the foreign-architecture lab's, which holds cargo's lock).
lab_env=()
[ -x "${musl_bin:-}" ] && lab_env+=(LAB_BIN="$musl_bin")
[ -x "${musl_unit:-}" ] && lab_env+=(LAB_SECCOMP_TEST="$musl_unit")
tier heavy-lab env "${lab_env[@]}" cargo test "${heavy_args[@]}" --test lab "${heavy_run[@]}"
beside heavy-systemd env "${lab_env[@]}" cargo test "${heavy_args[@]}" --test lab_systemd "${heavy_run[@]}"
tier heavy cargo test "${heavy_args[@]}" --lib --bins "${others[@]}" "${heavy_run[@]}"
beside_wait

# The time table, slowest first (seconds, tier, what). Lab scenarios' and steps' times are
# inside their binary's.
echo "run-all: times (s), slowest first:"
sort -s -k1,1nr "$rows" | awk '{ t = $1; $1 = ""; printf "%6d %s\n", t, substr($0, 2) }'
# One closing line for the whole run: the sum over every test binary of both tiers.
echo "run-all: tier times: ${times[*]}"
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1) } }
     END { printf "all tests: %d passed, %d failed\n", p, f }' "$log".*.tier
if [ ${#failed_tiers[@]} -gt 0 ]; then
    echo "run-all: failed: ${failed_tiers[*]}" >&2
    exit 1
fi
