"""Shared plumbing of the XDS.b benchmarks (Python 3 stdlib only).

- node():            a real hienode (Release build, log level notice) on its embedded PostgreSQL, from the
                     integration harness (tests/integration/harness.py), optionally with pg_stat_statements.
- psql()/pgbench():  the PostgreSQL 15 client tools on the node's own cluster (Unix socket in <state>/pg/run,
                     user hienode, database hienode).
- CpuMeter:          CPU seconds used by the node process, the whole PostgreSQL cluster (postmaster, live
                     backends, and the backends that exited meanwhile) and this client, over an interval.
- report():          prints one benchmark line and appends it (JSON) to $BENCH_RESULTS for run.sh's table.

Sizes come from environment variables (knob()); BENCH_QUICK=1 selects the small defaults of a smoke run.
"""
import json
import os
import resource
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))

os.environ.setdefault("HIENODE_BIN", os.path.join(SRC, "build-bench", "hienode"))
os.environ.setdefault("HIENODE_SRC", SRC)

import harness  # noqa: E402  (needs sys.path above)
import xds  # noqa: E402,F401  (re-exported for the benchmarks)

harness.BIN = os.environ["HIENODE_BIN"]
QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
PGBIN = "/usr/lib/postgresql/15/bin"
PSQL = shutil.which("psql") or os.path.join(PGBIN, "psql")
PGBENCH = shutil.which("pgbench") or os.path.join(PGBIN, "pgbench")


def knob(name, full, quick):
    """Integer size from $name, else the full-run or quick-run default."""
    v = os.environ.get(name)
    return int(v) if v else (quick if QUICK else full)


def node(name, pgss=True, pg_settings=None):
    """Starts a node for a benchmark. pgss loads pg_stat_statements (one extra restart of the cluster);
    pg_settings are ALTER SYSTEM settings applied before that restart (e.g. max_wal_size for a bulk load)."""
    if not os.path.exists(harness.BIN):
        raise SystemExit("hienode binary not found at %s (build it: bench/run.sh does)" % harness.BIN)
    n = harness.Node(name, env={"HIENODE_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "notice")})
    try:
        n.start()
        settings = dict(pg_settings or {})
        if pgss:
            settings["shared_preload_libraries"] = "pg_stat_statements"
        if settings:
            for k, v in settings.items():
                n.sql("ALTER SYSTEM SET %s = '%s'" % (k, v))
            n.stop()
            n.start()
        if pgss:
            n.sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    except BaseException:
        n.cleanup()  # the node and its embedded cluster, whatever state they are in
        raise
    return n


def pg_args(n):
    return ["-h", os.path.join(n.state, "pg", "run"), "-U", "hienode", "-d", "hienode"]


def psql(n, sql=None, file=None, variables=None, timeout=3600, out=None):
    """Runs psql (ON_ERROR_STOP) with -c sql or -f file; returns stdout text. variables: psql -v name=value."""
    argv = [PSQL, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"] + pg_args(n)
    for k, v in (variables or {}).items():
        argv += ["-v", "%s=%s" % (k, v)]
    argv += ["-c", sql] if sql is not None else ["-f", file]
    r = subprocess.run(argv, capture_output=True, text=out is None, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError("psql failed: %s" % (r.stderr if isinstance(r.stderr, str) else r.stderr.decode()))
    return r.stdout


def pgbench(n, script, clients, transactions, defines=None, log_dir=None, protocol="extended"):
    """Runs pgbench -n -c clients -j clients -t transactions (per client) -M protocol on the node's cluster.
    Returns dict(tps, latency_ms, failed, wall_s, raw). With log_dir, per-transaction logs go there (-l)."""
    argv = [PGBENCH, "-n", "-c", str(clients), "-j", str(clients), "-t", str(transactions), "-M", protocol,
            "-f", script] + pg_args(n)[:4] + ["-r"]
    for k, v in (defines or {}).items():
        argv += ["-D", "%s=%s" % (k, v)]
    if log_dir:
        argv += ["-l", "--log-prefix", os.path.join(log_dir, "pgbench_log")]
    argv.append("hienode")
    t0 = time.time()
    r = subprocess.run(argv, capture_output=True, text=True, timeout=3600)
    wall = time.time() - t0
    if r.returncode != 0:
        raise RuntimeError("pgbench failed (%d):\n%s\n%s" % (r.returncode, r.stdout[-3000:], r.stderr[-3000:]))
    out = r.stdout
    res = {"raw": out, "wall_s": wall, "tps": None, "latency_ms": None, "failed": 0, "processed": 0}
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("tps =") and "without initial connection time" in line:
            res["tps"] = float(line.split()[2])
        elif line.startswith("latency average ="):
            res["latency_ms"] = float(line.split()[3])
        elif line.startswith("number of failed transactions:"):
            res["failed"] = int(line.split(":")[1].split()[0])
        elif line.startswith("number of transactions actually processed:"):
            res["processed"] = int(line.split(":")[1].split("/")[0].strip())
    return res


def pgbench_log_latencies_ms(log_dir):
    """Per-transaction latencies (ms) from pgbench -l files: `client_id tx_no time_us script_no epoch us`."""
    lat = []
    for f in sorted(os.listdir(log_dir)):
        if f.startswith("pgbench_log"):
            with open(os.path.join(log_dir, f)) as fh:
                for line in fh:
                    parts = line.split()
                    if len(parts) >= 3:
                        lat.append(int(parts[2]) / 1000.0)
    return lat


def percentile(values, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(-(-p * len(s) // 100)) - 1))
    return s[k]


def median(values):
    s = sorted(values)
    m = len(s) // 2
    return s[m] if len(s) % 2 else (s[m - 1] + s[m]) / 2


def _proc_cpu_path(path):
    """utime+stime in seconds from a /proc stat file, 0 if gone."""
    try:
        with open(path) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid):
    """(utime+stime, cutime+cstime) of a process in seconds, or (0, 0) if gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    hz = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / hz, (int(fields[13]) + int(fields[14])) / hz


def _children(ppid):
    kids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == ppid:
                        kids.append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    return kids


class CpuMeter:
    """CPU seconds of node / PostgreSQL / this client (+ its reaped children, e.g. pgbench or workers)
    between start() and stop()."""

    def __init__(self, n):
        self.n = n

    def _sample(self):
        pm = self.n.postmaster_pid()
        pg = 0.0
        if pm:
            own, reaped = _proc_cpu(pm)
            pg = own + reaped + sum(_proc_cpu(k)[0] for k in _children(pm))
        node = _proc_cpu(self.n.proc.pid)[0] if self.n.proc else 0.0
        threads = {}
        if self.n.proc:
            try:
                for t in os.listdir("/proc/%d/task" % self.n.proc.pid):
                    threads[t] = _proc_cpu_path("/proc/%d/task/%s/stat" % (self.n.proc.pid, t))
            except OSError:
                pass
        me = resource.getrusage(resource.RUSAGE_SELF)
        ch = resource.getrusage(resource.RUSAGE_CHILDREN)
        client = me.ru_utime + me.ru_stime + ch.ru_utime + ch.ru_stime
        return {"node": node, "pg": pg, "client": client, "wall": time.time(), "threads": threads}

    def start(self):
        self.a = self._sample()
        return self

    def stop(self, settle=0.3):
        """settle: seconds to wait for exiting backends to be reaped (not counted in the wall time)."""
        t = time.time()
        time.sleep(settle)
        b = self._sample()
        b["wall"] = t
        ta, tb = self.a.pop("threads"), b.pop("threads")
        self.d = {k: b[k] - self.a[k] for k in b}
        self.a["threads"] = ta
        busy = sorted((tb[k] - ta.get(k, 0.0) for k in tb), reverse=True)
        # Node threads that did a real share of the work (>= 20 % of the busiest): with N client connections
        # and fewer busy threads, connections shared an HTTP worker thread and were served one after the other.
        self.d["busy_threads"] = sum(1 for x in busy if busy and x >= 0.2 * busy[0] and x > 0)
        return self.d

    def line(self, extra_client=0.0):
        """'cpu: node 0.41 core, postgres 0.92 core, client 0.30 core (of 2)'; extra_client = client CPU
        seconds not seen by getrusage (e.g. workers not yet reaped)."""
        w = self.d["wall"] or 1e-9
        return ("cpu (cores busy over %.1fs): node %.2f (%d busy thread%s), postgres %.2f, client %.2f"
                " (machine has %d)" % (w, self.d["node"] / w, self.d["busy_threads"],
                                       "" if self.d["busy_threads"] == 1 else "s", self.d["pg"] / w,
                                       (self.d["client"] + extra_client) / w, os.cpu_count()))


def pgss_reset(n):
    n.sql("SELECT pg_stat_statements_reset()")


def pgss_top(n, limit=12):
    """The statements of pg_stat_statements since the last reset, by total time (text lines)."""
    rows = n.sql("SELECT calls, round(total_exec_time::numeric, 1), round(mean_exec_time::numeric, 3),"
                 " round(total_plan_time::numeric, 1), left(regexp_replace(query, '\\s+', ' ', 'g'), 110)"
                 " FROM pg_stat_statements ORDER BY total_exec_time + total_plan_time DESC LIMIT %d" % limit)
    lines = ["   calls  exec_ms_total  exec_ms_mean  plan_ms_total  query"]
    for c, tot, mean, plan, q in rows:
        lines.append("%8s %14s %13s %14s  %s" % (c, tot, mean, plan, q))
    return "\n".join(lines)


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def report(bench, figure, ceiling, ratio, goal, met, note=""):
    """Prints the summary line and appends it to $BENCH_RESULTS (one JSON object per line)."""
    row = {"benchmark": bench, "figure": figure, "ceiling": ceiling, "ratio": ratio, "goal": goal,
           "met": met, "note": note}
    print("RESULT | %s | %s | %s | %s | %s%s |" % (bench, figure, ceiling, ratio, goal,
                                                 "" if met is None else (" — met" if met else " — NOT met")),
          flush=True)
    path = os.environ.get("BENCH_RESULTS")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(row) + "\n")


class Perf:
    """BENCH_PERF=1: `perf record -a -g` over a phase, then the top of `perf report` by command and symbol —
    where the machine's time went (node, postgres, client). A no-op otherwise or when perf is missing."""

    def __init__(self, tag, enabled=True):
        self.tag = tag
        self.proc = None
        self.on = enabled and os.environ.get("BENCH_PERF", "") not in ("", "0") and shutil.which("perf")
        self.path = os.path.join("/tmp", "bench-perf-%s-%d.data" % (tag, os.getpid()))

    def __enter__(self):
        if self.on:
            self.proc = subprocess.Popen(["perf", "record", "-q", "-F", "499", "-a", "-g", "-o", self.path],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
        return self

    def __exit__(self, *exc):
        if not self.proc:
            return False
        self.proc.send_signal(2)
        self.proc.wait(60)
        for sort, n in (("comm", 8), ("comm,dso,sym", 30)):
            r = subprocess.run(["perf", "report", "-i", self.path, "--no-children", "--sort", sort, "--stdio",
                                "-g", "none", "--percent-limit", "0.7"], capture_output=True, text=True)
            lines = [l for l in r.stdout.splitlines() if l.strip() and not l.startswith("#")]
            print("perf (%s) by %s:\n  %s" % (self.tag, sort, "\n  ".join(lines[:n])))
        os.unlink(self.path)
        return False
