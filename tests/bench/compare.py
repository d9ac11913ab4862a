#!/usr/bin/env python3
"""Side-by-side figures for the C qemu-pr-helper, ours and a floor server, measured in one run.

Usage: tests/bench/compare.py [--seconds S] [--idle N[,N...]] [--ours BINARY] [--c BINARY]

The floor (tests/bench/floor.c, built here with gcc -O2) is the least a server of the same
wire protocol does per request: one thread, recvmsg, SG_IO, close, one send, no checks.
For each server: binary + shared library bytes, exec-to-ready time (spawn until the socket
accepts, median of 20), idle RSS and its private part (RssAnon), RSS with N idle connections, and requests/s with p50/p99
latency at 1, 8 and 64 connections on /dev/null (the SG_IO error path: pure helper overhead),
measured with `pr-client bench`. Timings are reported, never asserted. Run as root.
A step a server fails (the C helper with 10,000 idle connections, say) is reported as such,
the rest of its figures are still measured, and every server started is stopped.
"""
import argparse, json, os, resource, shutil, socket, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def rss_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def wait_accepting(path, limit=10.0):
    start = time.monotonic()
    while time.monotonic() - start < limit:
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(path)
            return s
        except OSError:
            time.sleep(0.0002)
    raise SystemExit(f"{path} never accepted")


def start(cmd, path):
    proc = subprocess.Popen(cmd + ["-k", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=raise_nofile)
    wait_accepting(path).close()
    return proc


def stop(proc):
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def exec_to_ready(cmd, tmp, runs=20):
    times = []
    for i in range(runs):
        path = os.path.join(tmp, f"ready{i}.sock")
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd + ["-k", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_accepting(path).close()
        times.append(time.monotonic() - t0)
        # SIGKILL: the C helper can take seconds to act on SIGTERM, and only start-up counts.
        proc.kill()
        proc.wait()
    return statistics.median(times) * 1000


def binary_bytes(path):
    total = os.path.getsize(path)
    out = subprocess.run(["ldd", path], capture_output=True, text=True).stdout
    for line in out.splitlines():
        parts = line.split("=>")
        lib = (parts[1] if len(parts) > 1 else parts[0]).strip().split(" (")[0].strip()
        if lib.startswith("/") and os.path.exists(lib):
            total += os.path.getsize(os.path.realpath(lib))
    return total


def idle_connections(path, n):
    conns = []
    for _ in range(n):
        s = socket.socket(socket.AF_UNIX)
        s.connect(path)
        s.recv(4)
        s.sendall(b"\0\0\0\0")
        conns.append(s)
    return conns


def bench(client, path, conns, seconds):
    out = subprocess.run(client + ["bench", f"--socket={path}", f"--connections={conns}", f"--seconds={seconds}", "--json", "/dev/null"],
                         capture_output=True, text=True, preexec_fn=raise_nofile, timeout=seconds + 60)
    if out.returncode != 0:
        raise RuntimeError(f"bench failed: {out.stderr.strip()}")
    return json.loads(out.stdout)


def measure(name, failures, step, fn):
    """Runs one step; a failure is recorded for the report instead of ending the run."""
    try:
        fn()
    except (Exception, SystemExit) as e:  # noqa: BLE001 -- any failure of one step
        failures.append(f"{name}: {step}: {e}")


def measure_server(name, cmd, client, tmp, args, failures):
    r = {}
    measure(name, failures, "binary size", lambda: r.__setitem__("binary+libs KiB", binary_bytes(os.path.realpath(cmd[0])) / 1024))
    measure(name, failures, "exec-to-ready", lambda: r.__setitem__("exec-to-ready ms", exec_to_ready(cmd, tmp)))
    path = os.path.join(tmp, f"{name}.sock")
    try:
        proc = start(cmd, path)
    except (Exception, SystemExit) as e:  # noqa: BLE001
        failures.append(f"{name}: start: {e}")
        return r
    try:
        measure(name, failures, "warm-up", lambda: bench(client, path, 1, 0.2))  # first request, worker thread
        r["idle RSS KiB"] = rss_kib(proc.pid)
        # The private part: RSS also counts the pages of the binary and its shared libraries
        # that are mapped (clean, shared with every process using them, reclaimable).
        r["idle RssAnon KiB"] = rss_kib(proc.pid, "RssAnon")
        for n in [int(x) for x in args.idle.split(",") if x]:
            def idle_step(n=n):
                before = rss_kib(proc.pid)
                conns = []
                try:
                    conns = idle_connections(path, n)
                    time.sleep(0.2)
                    r[f"RSS with {n} idle KiB"] = rss_kib(proc.pid)
                    r[f"bytes/idle conn ({n})"] = (rss_kib(proc.pid) - before) * 1024 / n
                    result = bench(client, path, 1, args.seconds)
                    r[f"p99 us, 1 conn, {n} idle"] = result["latency_us"]["p99"]
                finally:
                    for c in conns:
                        c.close()
                    time.sleep(0.2)
            measure(name, failures, f"{n} idle connections", idle_step)
        for conns in (1, 8, 64):
            def load_step(conns=conns):
                result = bench(client, path, conns, args.seconds)
                r[f"req/s {conns} conn"] = result["requests_per_second"]
                r[f"p50 us {conns} conn"] = result["latency_us"]["p50"]
                r[f"p99 us {conns} conn"] = result["latency_us"]["p99"]
            measure(name, failures, f"{conns} connections", load_step)
    finally:
        stop(proc)
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--idle", default="1000,10000")
    ap.add_argument("--ours", default=os.path.join(ROOT, "target/release/pr-helper"))
    ap.add_argument("--c", default="/usr/bin/qemu-pr-helper")
    args = ap.parse_args()
    raise_nofile()
    tmp = tempfile.mkdtemp(prefix="prh-bench-")
    link = os.path.join(tmp, "qemu-pr-helper")
    os.symlink(os.path.abspath(args.ours), link)
    floor = os.path.join(tmp, "floor")
    subprocess.run(["gcc", "-O2", "-o", floor, os.path.join(ROOT, "tests/bench/floor.c")], check=True)
    client = [args.ours, "pr-client"]
    helpers = {"C": [args.c], "ours": [link], "floor": [floor]}
    rows, failures = {}, []
    try:
        for name, cmd in helpers.items():
            rows[name] = measure_server(name, cmd, client, tmp, args, failures)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    keys = []
    for r in rows.values():
        keys += [k for k in r if k not in keys]
    nan = float("nan")
    def ratio(a, b):
        return a / b if b else nan
    print(f"{'figure':32} {'C':>10} {'ours':>10} {'floor':>10} {'ours/C':>7} {'ours/floor':>10}")
    for k in keys:
        c, o, f = (rows.get(n, {}).get(k, nan) for n in ("C", "ours", "floor"))
        print(f"{k:32} {c:10.1f} {o:10.1f} {f:10.1f} {ratio(o, c):7.2f} {ratio(o, f):10.2f}")
    for failure in failures:
        print(f"failed: {failure}")


if __name__ == "__main__":
    main()
