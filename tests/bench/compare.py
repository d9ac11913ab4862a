#!/usr/bin/env python3
"""Side-by-side figures for the C qemu-pr-helper, ours and a floor server, measured in one run.

Usage: tests/bench/compare.py [--seconds S] [--idle N[,N...]] [--burst N] [--bursts K]
                              [--rounds R] [--ours BINARY] [--c BINARY] [--also NAME=BINARY]

The floor (tests/bench/floor.c, built here with gcc -O2) is the least a server of the same
wire protocol does per request: one thread, recvmsg, SG_IO, close, one send, no checks.
For each server: binary + shared library bytes, exec-to-ready time (spawn until the socket
accepts, median of 20), idle RSS and its private part (RssAnon), RSS with N idle connections, and requests/s with p50/p99
latency at 1, 8 and 64 connections on /dev/null (the SG_IO error path: pure helper overhead),
measured with `pr-client bench`, with the server's CPU time per request (utime+stime from
/proc over the run) and the fewest requests one connection had answered; idle CPU over 3 s
(0 unless the server spins); and a burst: --burst N clients connect at once and send one
request each (`pr-client bench --burst`), the median over --bursts runs of the time until
the last answer and of p50/p99. With --rounds R the load figures (1, 8 and 64 connections)
are measured R times, the servers taking turns in each round, and the median is reported:
the host's speed drifts within minutes, and one round of each decides little. Timings are
reported, never asserted. Run as root.
A step a server fails (the C helper with 10,000 idle connections, say) is reported as such,
the rest of its figures are still measured, and every server started is stopped.
"""
import argparse, contextlib, json, os, resource, shutil, socket, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def rss_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def cpu_times(pid):
    """The process's user and system CPU time in seconds, all its threads."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def cpu_seconds(pid):
    """The process's user plus system CPU time, all its threads."""
    return sum(cpu_times(pid))


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


def bench(client, path, conns, seconds, burst=False):
    extra = ["--burst"] if burst else [f"--seconds={seconds}"]
    out = subprocess.run(client + ["bench", f"--socket={path}", f"--connections={conns}", "--json", *extra, "/dev/null"],
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


@contextlib.contextmanager
def serving(name, cmd, client, tmp, failures):
    """The server started on a fresh socket and warmed up: (process, socket path), or None
    when it did not start (recorded); stopped at the end."""
    path = os.path.join(tmp, f"{name}.sock")
    try:
        proc = start(cmd, path)
    except (Exception, SystemExit) as e:  # noqa: BLE001
        failures.append(f"{name}: start: {e}")
        yield None
        return
    try:
        measure(name, failures, "warm-up", lambda: bench(client, path, 1, 0.2))  # first request, worker thread
        yield proc, path
    finally:
        stop(proc)


def measure_server(name, cmd, client, tmp, args, failures):
    r = {}
    measure(name, failures, "binary size", lambda: r.__setitem__("binary+libs KiB", binary_bytes(os.path.realpath(cmd[0])) / 1024))
    measure(name, failures, "exec-to-ready", lambda: r.__setitem__("exec-to-ready ms", exec_to_ready(cmd, tmp)))
    with serving(name, cmd, client, tmp, failures) as server:
        if server is None:
            return r
        proc, path = server
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
        def idle_cpu_step():
            before = cpu_seconds(proc.pid)
            time.sleep(3)
            r["idle CPU ms over 3 s"] = (cpu_seconds(proc.pid) - before) * 1000
        measure(name, failures, "idle CPU", idle_cpu_step)
        load_figures(name, proc.pid, client, path, args, failures, r)
        def burst_step():
            runs = [bench(client, path, args.burst, 0, burst=True) for _ in range(args.bursts)]
            for run in runs:
                if run["errors"]:
                    raise RuntimeError(f"{run['errors']} of {args.burst} clients failed: {run['error_kinds']}")
            med = lambda key: statistics.median(run["latency_us"][key] for run in runs)
            r[f"burst {args.burst}: last ms"] = med("max") / 1000
            r[f"burst {args.burst}: p50 ms"] = med("p50") / 1000
            r[f"burst {args.burst}: p99 ms"] = med("p99") / 1000
        if args.burst:
            measure(name, failures, f"burst of {args.burst}", burst_step)
    return r


def load_figures(name, pid, client, path, args, failures, r):
    """Requests/s, latency and CPU per request at 1, 8 and 64 connections, into r."""
    for conns in (1, 8, 64):
        def load_step(conns=conns):
            user_before, system_before = cpu_times(pid)
            result = bench(client, path, conns, args.seconds)
            user_after, system_after = cpu_times(pid)
            user, system = user_after - user_before, system_after - system_before
            r[f"req/s {conns} conn"] = result["requests_per_second"]
            r[f"p50 us {conns} conn"] = result["latency_us"]["p50"]
            r[f"p99 us {conns} conn"] = result["latency_us"]["p99"]
            r[f"CPU us/req {conns} conn"] = (user + system) * 1e6 / max(result["requests"], 1)
            r[f"kernel % of CPU {conns} conn"] = 100 * system / (user + system) if user + system else 0
            if conns > 1:
                r[f"fewest req/conn {conns} conn"] = result["per_connection"]["min"]
        measure(name, failures, f"{conns} connections", load_step)


def load_round(name, cmd, client, tmp, args, failures):
    """One more round of the load figures, on a freshly started server."""
    r = {}
    with serving(name, cmd, client, tmp, failures) as server:
        if server is not None:
            proc, path = server
            load_figures(name, proc.pid, client, path, args, failures, r)
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--idle", default="1000,10000")
    ap.add_argument("--burst", type=int, default=256, help="clients of the burst (0: none)")
    ap.add_argument("--bursts", type=int, default=5, help="bursts measured (the median is reported)")
    ap.add_argument("--ours", default=os.path.join(ROOT, "target/release/pr-helper"))
    ap.add_argument("--c", default="/usr/bin/qemu-pr-helper")
    ap.add_argument("--also", action="append", default=[], metavar="NAME=BINARY",
                    help="another build of ours measured in the same run (before/after a change)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="rounds of the load figures, servers taking turns (the median is reported)")
    args = ap.parse_args()
    raise_nofile()
    tmp = tempfile.mkdtemp(prefix="prh-bench-")
    link = os.path.join(tmp, "qemu-pr-helper")
    os.symlink(os.path.abspath(args.ours), link)
    floor = os.path.join(tmp, "floor")
    subprocess.run(["gcc", "-O2", "-o", floor, os.path.join(ROOT, "tests/bench/floor.c")], check=True)
    client = [args.ours, "pr-client"]
    helpers = {"C": [args.c], "ours": [link]}
    for also in args.also:
        name, _, binary = also.partition("=")
        extra = os.path.join(tmp, name, "qemu-pr-helper")
        os.makedirs(os.path.dirname(extra))
        os.symlink(os.path.abspath(binary), extra)
        helpers[name] = [extra]
    helpers["floor"] = [floor]
    rows, failures = {}, []
    try:
        for name, cmd in helpers.items():
            rows[name] = measure_server(name, cmd, client, tmp, args, failures)
        rounds = {name: [dict(r)] for name, r in rows.items()}
        for _ in range(args.rounds - 1):
            for name, cmd in helpers.items():
                rounds[name].append(load_round(name, cmd, client, tmp, args, failures))
        for name, runs in rounds.items():
            for key in {k for run in runs[1:] for k in run}:
                rows[name][key] = statistics.median(run[key] for run in runs if key in run)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    keys = []
    for r in rows.values():
        keys += [k for k in r if k not in keys]
    nan = float("nan")
    def ratio(a, b):
        return a / b if b else nan
    names = list(helpers)
    print(f"{'figure':32}" + "".join(f" {n:>10}" for n in names) + f" {'ours/C':>7} {'ours/floor':>10}")
    for k in keys:
        v = {n: rows.get(n, {}).get(k, nan) for n in names}
        print(f"{k:32}" + "".join(f" {v[n]:10.1f}" for n in names)
              + f" {ratio(v['ours'], v['C']):7.2f} {ratio(v['ours'], v['floor']):10.2f}")
    for failure in failures:
        print(f"failed: {failure}")


if __name__ == "__main__":
    main()
