#!/usr/bin/env bash
# User-space instructions per request, counted by callgrind (repeatable, whatever else the
# machine is doing), for one or more builds of pr-helper:
#
#   tests/bench/instructions.sh BINARY...
#
# Each binary's daemon (--no-sandbox: valgrind's own system calls are not in the filter) runs
# under callgrind while `pr-client bench` sends PR IN READ KEYS on /dev/null over one
# connection, for 0.5 s and then for 3 s; the difference of the two instruction totals over
# the difference of the request counts is the cost of one request, start-up excluded. Used to
# choose the release profile (docs/static-builds.md). Needs valgrind (apt-get install valgrind).
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 BINARY..." >&2; exit 2; }
command -v valgrind >/dev/null || { echo "$0: needs valgrind (apt-get install valgrind)" >&2; exit 1; }
client=$(readlink -f "$1")
work=$(mktemp -d /tmp/prh-ir.XXXXXX)
trap 'rm -rf "$work"' EXIT

# run BINARY SECONDS: prints "REQUESTS INSTRUCTIONS".
run() {
    local sock=$work/s.sock pid n
    rm -f "$sock" "$work"/cg.*
    valgrind --tool=callgrind --callgrind-out-file="$work/cg.%p" "$1" qemu-pr-helper --no-sandbox -k "$sock" \
        2>"$work/valgrind.log" &
    pid=$!
    for _ in $(seq 300); do [ -S "$sock" ] && break; sleep 0.1; done
    n=$("$client" pr-client bench --socket="$sock" --connections=1 --seconds="$2" --json /dev/null |
        grep -o '"requests":[0-9]*' | cut -d: -f2)
    kill -TERM "$pid"
    wait "$pid" || true
    echo "$n $(grep -h '^summary:' "$work"/cg.* | awk '{ s += $2 } END { print s }')"
}

printf '%-60s %10s %14s\n' binary bytes "Ir/request"
for b in "$@"; do
    read -r n1 i1 < <(run "$b" 0.5)
    read -r n2 i2 < <(run "$b" 3)
    printf '%-60s %10s %14s\n' "$b" "$(stat -c %s "$b")" \
        "$(awk -v a="$i1" -v b="$i2" -v c="$n1" -v d="$n2" 'BEGIN { printf "%.0f", (b - a) / (d - c) }')"
done
