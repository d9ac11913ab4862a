#!/usr/bin/env bash
# Where the tail and the CPU per request come from (issue 20), for the C helper, a build of
# ours and the floor (tests/bench/floor.c), on a quiet machine, as root:
#
#   tests/bench/tail.sh PR_HELPER_BINARY [C_HELPER]
#
# 1. System calls per request (strace -f -c over 2 s at 1 connection; those of 0.05 or more).
# 2. At 8 and 64 connections, 3 s each: requests/s, p50/p99/p999, and from `perf stat` on the
#    server the CPU time, context switches and migrations per request.
# 3. At 64 connections, `perf sched latency` over 2.5 s for ours and C: each task's run time,
#    switches and its delay between wake-up and running (average, maximum): the run queue the
#    server's threads meet, beside the client's 64 threads.
# The client is PR_HELPER_BINARY's pr-client bench on /dev/null. Needs strace, linux-perf, gcc.
set -u
[ $# -ge 1 ] || { echo "usage: $0 PR_HELPER_BINARY [C_HELPER]" >&2; exit 2; }
ours=$(readlink -f "$1")
c_helper=${2:-/usr/bin/qemu-pr-helper}
for tool in strace perf gcc; do
    command -v $tool >/dev/null || { echo "$0: needs $tool (apt-get install strace linux-perf gcc)" >&2; exit 1; }
done
work=$(mktemp -d /tmp/prh-tail.XXXXXX)
trap 'rm -rf "$work"' EXIT
gcc -O2 -o "$work/floor" "$(dirname "$0")/floor.c"
# Ours runs as qemu-pr-helper (its applet), the client as pr-client: their tasks are named so.
ln -s "$ours" "$work/qemu-pr-helper"
ln -s "$ours" "$work/pr-client"
declare -A bin=([C]=$c_helper [ours]=$work/qemu-pr-helper [floor]=$work/floor)
sock=$work/s.sock

start() { # NAME [WRAPPER...]: the server in the background; $pid is the server itself
    local name=$1
    shift
    rm -f "$sock"
    "$@" "${bin[$name]}" -k "$sock" >/dev/null 2>"$work/$name.err" &
    spid=$! pid=$!
    for _ in $(seq 200); do [ -S "$sock" ] && break; sleep 0.05; done
    [ $# -gt 0 ] && pid=$(pgrep -P "$spid" | head -1)
}
stop() { kill "$pid" "$spid" 2>/dev/null; wait "$spid" 2>/dev/null; }
bench() { # CONNECTIONS SECONDS: prints "REQUESTS P50 P99 P999"
    "$work/pr-client" bench --json --socket="$sock" --connections="$1" --seconds="$2" /dev/null |
        python3 -c 'import json,sys; j=json.load(sys.stdin); l=j["latency_us"]; print(j["requests"], l["p50"], l["p99"], l["p999"])'
}

for name in C ours floor; do
    start $name strace -f -c -o "$work/strace.$name"
    read -r n _ < <(bench 1 2)
    stop
    echo "== $name: system calls per request (1 connection, $n requests under strace)"
    awk -v n="$n" '$NF != "total" && $4 ~ /^[0-9]+$/ && $4 / n >= 0.05 { printf "  %-14s %5.2f\n", $NF, $4 / n; t += $4 / n }
        END { printf "  %-14s %5.2f\n", "together", t }' "$work/strace.$name"
done

echo "== CPU, context switches and migrations per request (perf stat on the server)"
for conns in 8 64; do
    for name in C ours floor; do
        start $name
        "$work/pr-client" bench --socket="$sock" --connections=$conns --seconds=0.3 /dev/null >/dev/null
        perf stat -x, -e task-clock,context-switches,cpu-migrations -p "$pid" -o "$work/stat" -- sleep 3.2 &
        statpid=$!
        read -r n p50 p99 p999 < <(bench $conns 3)
        wait $statpid
        stop
        python3 - "$name" $conns "$n" "$p50" "$p99" "$p999" "$work/stat" <<'PY'
import sys
name, conns, n, p50, p99, p999, path = sys.argv[1:]
n = int(n)
v = {}
for line in open(path):
    f = line.strip().split(",")
    if len(f) > 3 and f[0][:1].isdigit():
        v[f[2]] = float(f[0])
print(f"  {name:5} {conns:>3} connections: {n / 3:7.0f} req/s  p50 {float(p50):7.1f}  p99 {float(p99):7.1f}"
      f"  p999 {float(p999):7.1f} us | CPU/req {v.get('task-clock', 0) * 1000 / n:5.2f} us"
      f"  switches/req {v.get('context-switches', 0) / n:4.2f}  migrations/req {v.get('cpu-migrations', 0) / n:5.3f}")
PY
    done
done

echo "== the scheduler's delay between wake-up and running, 64 connections (perf sched latency)"
for name in ours C; do
    start $name
    "$work/pr-client" bench --socket="$sock" --connections=64 --seconds=0.3 /dev/null >/dev/null
    perf sched record -o "$work/sched" -a -- sleep 2.5 >/dev/null 2>&1 &
    recpid=$!
    read -r n p50 p99 p999 < <(bench 64 3)
    wait $recpid
    stop
    echo "-- $name (p50 $p50, p99 $p99, p999 $p999 us)"
    perf sched latency -i "$work/sched" --sort max 2>/dev/null |
        grep -E "Task|qemu-pr-helper|pr-helper|pr-client|floor" | cut -c1-110 | head -8
done
