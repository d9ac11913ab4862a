#!/usr/bin/env bash
# Every test of the project, on a fresh Debian machine: installs what the tests need
# (the C qemu-pr-helper to compare against, systemd-socket-activate, ss, setpriv, prlimit,
# sg3-utils), then checks formatting and lints, then runs unit and integration tests.
# Run as root: the privilege-dropping tests need it, as the daemon does.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
command -v qemu-pr-helper >/dev/null || [ -x /usr/bin/qemu-pr-helper ] || need_pkgs+=(qemu-system-common)
command -v systemd-socket-activate >/dev/null || need_pkgs+=(systemd)
command -v ss >/dev/null || need_pkgs+=(iproute2)
command -v setpriv >/dev/null || need_pkgs+=(util-linux)
command -v prlimit >/dev/null || need_pkgs+=(util-linux)
command -v sg_persist >/dev/null || need_pkgs+=(sg3-utils)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    echo "run-all: installing ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

if [ "$(id -u)" != 0 ]; then
    echo "run-all: run as root (the daemon drops privileges, and the tests check it)" >&2
    exit 1
fi

cargo fmt --all -- --check
cargo clippy --all-targets --quiet -- -D warnings
cargo build --release --quiet
# Bounded fuzzing of every target (crashes fail the run).
tests/fuzz-smoke.sh 15
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test 2>&1 | tee "$log"
# The arm64 PR lab (ignored by plain cargo test: an emulated VM and a cross build): our binary
# and its seccomp filter under Debian's arm64 kernel. About 45 s warm.
cargo test --test lab_foreign -- --ignored 2>&1 | tee -a "$log"
# One closing line for the whole run: the sum over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1) } }
     END { printf "all tests: %d passed, %d failed\n", p, f; exit (f > 0) }' "$log"
