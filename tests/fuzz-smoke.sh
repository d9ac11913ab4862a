#!/usr/bin/env bash
# Short, bounded fuzzing of every target (seeds in fuzz/seeds), for CI:
#   tests/fuzz-smoke.sh [SECONDS_PER_TARGET]   (default 15)
# Long runs: cargo +nightly fuzz run TARGET fuzz/corpus/TARGET fuzz/seeds/TARGET -- -max_total_time=1800
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-15}
if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzz-smoke: the nightly toolchain is missing (cargo-fuzz needs it)" >&2
    exit 1
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --quiet
cargo +nightly fuzz build
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
passed=0
for target in $(cargo +nightly fuzz list); do
    mkdir -p "$corpus/$target"
    log="$corpus/$target.log"
    if ! cargo +nightly fuzz run "$target" "$corpus/$target" "fuzz/seeds/$target" -- \
        -max_total_time="$seconds" >"$log" 2>&1; then
        tail -40 "$log" >&2
        echo "fuzz-smoke: $target failed (artifacts in fuzz/artifacts/$target)" >&2
        exit 1
    fi
    echo "fuzz-smoke: $target: $(grep -E '^Done' "$log")"
    passed=$((passed + 1))
done
echo "fuzz-smoke: $passed targets, ${seconds}s each, no crash"
