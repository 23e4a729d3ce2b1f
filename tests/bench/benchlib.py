"""Shared helpers of the proxy benchmarks (bench_tcp.py, bench_http.py).

Child process handling (every child dies with the script), CPU accounting
from /proc (the proxy's utime+stime, other processes' CPU, steal), the
nginx backends, starting a proxy after checking its config, and one
measurement window with its noise flags. See tests/bench/README.md and
tests/bench/README.md.

Debian's /usr/bin/python3, stdlib only.
"""

import collections
import ctypes
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

CLK_TCK = os.sysconf("SC_CLK_TCK")
# --cpus PROXY/LOAD: the proxies under test on PROXY, the load generators,
# backends and this script on LOAD. On a 2-core machine the proxy gets a
# core of its own (see tests/bench/README.md).
DEFAULT_CPUS = "1/0"
BODY = b"ferry-bench-64-byte-body-" + b"x" * 38 + b"\n"
assert len(BODY) == 64

# Absolute slack (seconds) for tick rounding in the CPU accounting.
TICK_SLACK = 3.0 / CLK_TCK


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class BenchError(Exception):
    """A setup or sanity failure: the run cannot produce numbers."""


class ConfigRejected(BenchError):
    """A proxy's config check failed."""


# --------------------------------------------------------------------------
# Children: every process we start, so that all of them end with us.

_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


class Children:
    """Starts and stops child processes; stop_all() is idempotent."""

    def __init__(self):
        self.procs = []

    def start(self, argv, cpus, name, out=None):
        """Starts argv pinned to the CPU set cpus (like taskset -c)."""
        cpus = set(cpus)

        def pre():
            # Die with the script even if it is SIGKILLed.
            _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
            os.sched_setaffinity(0, cpus)

        p = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out if out is not None else subprocess.DEVNULL,
            stderr=subprocess.STDOUT if out is not None else subprocess.DEVNULL,
            preexec_fn=pre,
            start_new_session=True,  # Ctrl-C reaches us; we stop them
        )
        p.bench_name = name
        self.procs.append(p)
        return p

    def run(self, argv, cpus, name, timeout):
        """Runs argv to completion (bounded) and returns its stdout text."""
        p = self.start(argv, cpus, name, out=subprocess.PIPE)
        try:
            out, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop(p)
            raise BenchError("%s did not finish within %.0f s" % (name, timeout))
        finally:
            if p in self.procs and p.poll() is not None:
                self.procs.remove(p)
        return p.returncode, out.decode("utf-8", "replace")

    def stop(self, p, grace=5.0):
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(timeout=grace)
        if p.stdout is not None:
            p.stdout.close()
        if p in self.procs:
            self.procs.remove(p)

    def stop_all(self):
        for p in list(reversed(self.procs)):
            try:
                self.stop(p)
            except Exception as e:  # keep stopping the others
                log("warning: stopping %s: %s" % (p.bench_name, e))


# --------------------------------------------------------------------------
# Small helpers.


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def wait_port(port, proc, name, timeout=10.0):
    """Waits (bounded) until 127.0.0.1:port accepts; fails if proc died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError("%s exited with %s at start" % (name, proc.returncode))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise BenchError("%s did not listen on port %d within %.0f s"
                     % (name, port, timeout))


def http_get(port, path, timeout=5.0):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path),
                                 headers={"Connection": "close"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read()


def proc_table():
    """{pid: (ppid, starttime, comm, cpu, cpu_all)} of every process.

    cpu is utime+stime in seconds (all threads); cpu_all adds cutime and
    cstime, so that short-lived processes (compilers) that a live parent
    reaped during a window count too.
    """
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                data = f.read()
        except OSError:
            continue  # exited meanwhile
        comm = data[data.index("(") + 1:data.rindex(")")]
        v = data[data.rindex(")") + 2:].split()
        # v[0] is field 3 (state), ppid field 4; utime..cstime are fields
        # 14-17, starttime 22.
        ticks = [int(x) for x in v[11:15]]
        out[int(name)] = (int(v[1]), v[19], comm,
                          (ticks[0] + ticks[1]) / CLK_TCK,
                          sum(ticks) / CLK_TCK)
    return out


def proc_tree(table, roots):
    """The pids of roots and of all their descendants in table (a proxy
    with worker processes, such as nginx with a master, is a tree)."""
    children = {}
    for pid, entry in table.items():
        children.setdefault(entry[0], []).append(pid)
    out = set()
    stack = [pid for pid in roots if pid in table]
    while stack:
        pid = stack.pop()
        if pid not in out:
            out.add(pid)
            stack.extend(children.get(pid, ()))
    return out


def others_cpu(table, exclude):
    """{pid: (starttime, cpu_all)} of every process of table not in
    exclude. ksoftirqd is left out: it mostly carries our own loopback
    traffic."""
    return {pid: (e[1], e[4]) for pid, e in table.items()
            if pid not in exclude and not e[2].startswith("ksoftirqd/")}


def others_delta(a, b):
    total = 0.0
    for pid, (start, cpu) in b.items():
        old = a.get(pid)
        total += cpu - old[1] if old and old[0] == start else cpu
    return total


def system_cpu():
    """(busy, steal) seconds summed over all CPUs.

    Busy is user+nice+system+irq+softirq: a tick taken in softirq context
    is charged to the interrupted process's stime too, so leaving those
    columns out would make our own processes look bigger than the machine.
    """
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu "):
                v = [int(x) for x in line.split()[1:]]
                busy = v[0] + v[1] + v[2] + v[5] + v[6]
                return busy / CLK_TCK, v[7] / CLK_TCK
    raise BenchError("no cpu line in /proc/stat")


def wait_quiet(limit, timeout):
    """Waits (bounded) for a 0.5 s window where the machine is nearly idle.

    Our own processes are idle between measurements, so any busy time is
    someone else's. Returns the busy share seen last (of one core).
    """
    deadline = time.monotonic() + timeout
    busy = 0.0
    while True:
        b0, s0 = system_cpu()
        t0 = time.monotonic()
        time.sleep(0.5)
        b1, s1 = system_cpu()
        busy = ((b1 - b0) + (s1 - s0)) / (time.monotonic() - t0)
        if busy <= limit or time.monotonic() >= deadline:
            return busy


# --------------------------------------------------------------------------
# Configurations.


def nginx_conf(d, i, port):
    return """daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx{i}.pid;
error_log {d}/nginx{i}.log warn;
worker_rlimit_nofile 20000;
events {{
    worker_connections 10000;
}}
http {{
    access_log off;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 60s;
    keepalive_requests 1000000;
    client_body_temp_path {d}/nginx{i}-body;
    proxy_temp_path {d}/nginx{i}-proxy;
    fastcgi_temp_path {d}/nginx{i}-fastcgi;
    uwsgi_temp_path {d}/nginx{i}-uwsgi;
    scgi_temp_path {d}/nginx{i}-scgi;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location = / {{ return 200 "{body}"; }}
        location = /big {{ alias {d}/big; }}
        location = /nginx_status {{ stub_status; }}
    }}
}}
""".format(d=d, i=i, port=port, body=BODY.decode().replace("\n", "\\n"))


def max_conns():
    """Same connection cap for both proxies: each conn holds two fds."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        return 20000
    return max(100, min(20000, (hard - 100) // 2))


# --------------------------------------------------------------------------
# wrk.

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_wrk(out):
    """Figures of one wrk run, or None when its summary is missing.

    reqs and secs from "N requests in T", errors (connect+read+write+
    timeout), non2xx, and latency {50: s, 75: s, 90: s, 99: s} when wrk
    ran with --latency.
    """
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h)\b", out)
    if not m:
        return None
    res = dict(reqs=int(m.group(1)),
               secs=float(m.group(2)) * _UNITS[m.group(3)],
               errors=0, non2xx=0, latency={})
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+),"
                  r" timeout (\d+)", out)
    if m:
        res["errors"] = sum(int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        res["non2xx"] = int(m.group(1))
    for pct, val, unit in re.findall(
            r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m|h)\s*$", out, re.M):
        res["latency"][int(pct)] = float(val) * _UNITS[unit]
    return res


# --------------------------------------------------------------------------
# ferry's workers: the ferry_worker_connections gauge on /metrics.

_GAUGE = re.compile(r"^ferry_worker_connections\{([^}]*)\}\s+(\S+)\s*$",
                    re.M)


def worker_conns(text):
    """{worker label: value} of the ferry_worker_connections gauge in a
    /metrics text; empty when the build has no such gauge."""
    out = {}
    for labels, val in _GAUGE.findall(text):
        m = re.search(r'worker="([^"]*)"', labels)
        if m:
            try:
                out[m.group(1)] = float(val)
            except ValueError:
                pass
    return out


def _worker_key(label):
    return (0, int(label), "") if label.isdigit() else (1, 0, label)


class GaugeSampler(threading.Thread):
    """Reads ferry's /metrics every `interval` seconds while load runs.

    wrk's keep-alive connections live for the whole measurement, so the
    gauge sampled during it shows where they went; with a new connection
    per request it shows the connections open at that instant, which the
    median over many samples smooths.
    """

    def __init__(self, port, interval, expect=None):
        threading.Thread.__init__(self, daemon=True)
        self.port = port
        self.interval = interval
        self.expect = expect  # worker count from the config, if known
        self.samples = []
        self.errors = 0
        self.done = threading.Event()

    def run(self):
        while not self.done.wait(self.interval):
            try:
                _, body = http_get(self.port, "/metrics", timeout=2.0)
            except OSError:
                self.errors += 1
                continue
            if self.done.is_set():
                break  # load may be over: the sample would show it ending
            g = worker_conns(body.decode("utf-8", "replace"))
            if g:
                self.samples.append(g)

    def result(self):
        """Stops sampling; returns (per-worker medians in worker order, or
        None without samples; max/min of them, inf when one is 0)."""
        self.done.set()
        self.join()
        if not self.samples:
            return None, float("nan")
        labels = set()
        for g in self.samples:
            labels.update(g)
        per = [statistics.median(g.get(k, 0.0) for g in self.samples)
               for k in sorted(labels, key=_worker_key)]
        if self.expect and len(per) < self.expect:
            # Workers the gauge left out had nothing.
            per += [0.0] * (self.expect - len(per))
        return per, spread(per)


def spread(per):
    """max/min of per-worker figures (inf when a worker had none)."""
    if not per or max(per) <= 0:
        return float("nan")
    return max(per) / min(per) if min(per) > 0 else float("inf")


# --------------------------------------------------------------------------
# What the benchmarks share: temp dir, backends, proxies, measuring.


class BenchBase:
    """Three nginx backends, proxies in front of them, measured windows.

    Subclasses start their proxies with start_proxy() and measure with
    measure_window(). args needs nginx, quiet_wait, max_other, max_steal.
    """

    def __init__(self, args, kids):
        self.args = args
        self.kids = kids
        self.dir = None
        self.backend_ports = []
        self.backends = []  # Popen of each nginx
        self.proxies = {}  # name -> (Popen, port)
        # ferry target -> (stats port, worker count or None for auto)
        self.stats = {}

    def make_dir(self):
        base = "/dev/shm" if os.path.isdir("/dev/shm") and \
            os.access("/dev/shm", os.W_OK) else None
        self.dir = tempfile.mkdtemp(prefix="ferry-bench-", dir=base)
        log("temp dir %s%s" % (self.dir, " (tmpfs)" if base else ""))

    def start_backends(self):
        for i in range(3):
            for attempt in range(5):
                port = free_port()
                path = os.path.join(self.dir, "nginx%d.conf" % i)
                with open(path, "w") as f:
                    f.write(nginx_conf(self.dir, i, port))
                err = os.path.join(self.dir, "nginx%d.log" % i)
                p = self.kids.start(
                    [self.args.nginx, "-p", self.dir, "-c", path, "-e", err],
                    self.args.load_cpus, "nginx%d" % i)
                try:
                    wait_port(port, p, "nginx%d" % i)
                    break
                except BenchError:
                    self.kids.stop(p)
                    if attempt == 4:
                        raise BenchError("nginx%d failed to start; see %s"
                                         % (i, err))
            self.backend_ports.append(port)
            self.backends.append(p)

    def start_proxy(self, name, argv_for, conf_text, check_argv_for,
                    ports=1):
        """Starts a proxy listening on `ports` fresh ports, checked first.

        conf_text gets the port (ports == 1) or a list of ports. The first
        port is recorded in self.proxies; the list is returned.
        """
        for attempt in range(5):
            plist = [free_port() for _ in range(ports)]
            if len(set(plist)) != ports:
                continue
            path = os.path.join(self.dir, "%s.conf" % name)
            conf = conf_text(plist[0] if ports == 1 else plist)
            with open(path, "w") as f:
                f.write(conf)
            rc, out = self.kids.run(check_argv_for(path), self.args.proxy_cpus,
                                    name + " -check", timeout=10)
            if rc != 0:
                raise ConfigRejected("%s rejects its config %s:\n%s"
                                     % (name, path, out))
            logf = open(os.path.join(self.dir, "%s.log" % name), "wb")
            p = self.kids.start(argv_for(path), self.args.proxy_cpus, name,
                                out=logf)
            logf.close()
            try:
                for port in plist:
                    wait_port(port, p, name)
                self.proxies[name] = (p, plist[0])
                return plist
            except BenchError:
                self.kids.stop(p)
                if attempt == 4:
                    raise
        raise BenchError("%s: no free ports" % name)

    def log_ferry_workers(self, name):
        """Logs how many workers a ferry's /metrics shows."""
        port, expect = self.stats[name]
        try:
            _, body = http_get(port, "/metrics")
        except OSError as e:
            raise BenchError("%s: GET /metrics failed: %s" % (name, e))
        g = worker_conns(body.decode("utf-8", "replace"))
        if not g:
            log("%s: no ferry_worker_connections on /metrics (an older "
                "build): the spread over workers is not measured" % name)
        elif expect and len(g) != expect:
            log("%s: WARNING: /metrics shows %d workers, the config says %d"
                % (name, len(g), expect))
        else:
            log("%s: /metrics shows %d worker%s" % (
                name, len(g), "" if len(g) == 1 else "s"))

    def per_backend_accepts(self):
        out = []
        for port in self.backend_ports:
            _, body = http_get(port, "/nginx_status")
            m = re.search(rb"\n\s*(\d+)\s+(\d+)\s+(\d+)", body)
            if not m:
                raise BenchError("cannot parse stub_status: %r" % body)
            out.append(int(m.group(1)))
        return out

    def backend_accepts(self):
        """Total connections the three nginx have accepted so far."""
        # Each status request is itself one accepted connection per backend.
        return sum(self.per_backend_accepts()) - len(self.backend_ports)

    def ours(self):
        """PIDs of our long-lived processes (proxies and backends); their
        worker processes are found from these."""
        pids = [p.pid for p in self.backends]
        pids += [p.pid for p, _ in self.proxies.values()]
        return pids

    def snapshot(self, proxy_pid):
        snap = {}
        snap["t"] = time.monotonic()
        snap["busy"], snap["steal"] = system_cpu()
        table = proc_table()
        ours = proc_tree(table, self.ours())
        # The proxy and its worker processes (nginx with a master);
        # threads are in the process's own utime+stime.
        snap["proxy"] = sum(table[pid][3]
                            for pid in proc_tree(table, [proxy_pid]))
        snap["others"] = others_cpu(table, ours | {os.getpid()})
        snap["ours"] = sum(table[pid][3] for pid in ours)
        ru = [resource.getrusage(w) for w in (resource.RUSAGE_CHILDREN,
                                              resource.RUSAGE_SELF)]
        snap["kids"] = sum(r.ru_utime + r.ru_stime for r in ru)
        return snap

    def measure_window(self, name, run, quiet=True, sample=None):
        """Runs run() against proxy `name` and accounts for the window.

        With quiet, first waits (bounded by args.quiet_wait) for the
        machine to be idle. sample: (stats port, worker count or None) of
        a ferry whose ferry_worker_connections gauge is read while run()
        runs (every args.sample_interval seconds).

        run() returns a dict (optionally with "flags"); it comes back with
        wall, proxy_cpu, util (share of one core), other and steal
        (seconds), backend_conns (new backend connections), worker_conns
        (the gauge's median per worker, or None) and spread (their
        max/min, NaN without samples), and flags (reasons the window is
        noisy; empty when clean) added.
        """
        p, _ = self.proxies[name]
        if p.poll() is not None:
            raise BenchError("%s exited (%s) during the run; see %s/%s.log"
                             % (name, p.returncode, self.dir, name))
        if quiet and self.args.quiet_wait > 0:
            busy = wait_quiet(self.args.max_other / 100.0,
                              self.args.quiet_wait)
            if busy > self.args.max_other / 100.0:
                log("machine still busy (%.0f%% of a core) after %d s; "
                    "measuring anyway" % (100 * busy, self.args.quiet_wait))
        acc0 = self.backend_accepts()
        s0 = self.snapshot(p.pid)
        sampler = None
        if sample and self.args.sample_interval > 0:
            sampler = GaugeSampler(sample[0], self.args.sample_interval,
                                   sample[1])
            sampler.start()
        try:
            res = run()
        finally:
            per, sp = sampler.result() if sampler else (None, float("nan"))
        s1 = self.snapshot(p.pid)
        acc1 = self.backend_accepts()

        wall = s1["t"] - s0["t"]
        proxy = s1["proxy"] - s0["proxy"]
        # Two upper bounds of what others used: the sum over their
        # processes (too high when a parent reaps a long-lived child) and
        # the machine's busy time minus ours (too high by irq/softirq
        # time nobody is charged for). The smaller is the better one.
        known = (s1["ours"] - s0["ours"]) + (s1["kids"] - s0["kids"])
        other = max(0.0, min(others_delta(s0["others"], s1["others"]),
                             (s1["busy"] - s0["busy"]) - known))
        steal = s1["steal"] - s0["steal"]
        res.update(wall=wall, proxy_cpu=proxy, util=proxy / wall,
                   other=other, steal=steal,
                   backend_conns=acc1 - acc0 - len(self.backend_ports),
                   worker_conns=per, spread=sp)
        flags = list(res.get("flags", []))
        if other > self.args.max_other / 100.0 * wall + TICK_SLACK:
            flags.append("other cpu %.0f%%" % (100 * other / wall))
        if steal > self.args.max_steal / 100.0 * wall + TICK_SLACK:
            flags.append("steal %.0f%%" % (100 * steal / wall))
        if p.poll() is not None:
            raise BenchError("%s exited (%s) during the run"
                             % (name, p.returncode))
        res["flags"] = flags
        return res


# --------------------------------------------------------------------------
# Process set-up shared by the scripts' main().


def _sigterm(signum, frame):
    raise KeyboardInterrupt


def setup_process():
    """SIGTERM/SIGHUP end the run cleanly; children get the fd limit."""
    signal.signal(signal.SIGTERM, _sigterm)
    signal.signal(signal.SIGHUP, _sigterm)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:  # children inherit the raised limit
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def parse_cpu_list(text):
    """The CPU set of a list such as "1", "0-1" or "0,2-3" (taskset -c)."""
    cpus = set()
    for part in text.split(","):
        lo, sep, hi = part.partition("-")
        lo = int(lo)
        hi = int(hi) if sep else lo
        if lo < 0 or hi < lo:
            raise ValueError(part)
        cpus.update(range(lo, hi + 1))
    return frozenset(cpus)


def parse_cpus(spec):
    """(proxy CPUs, load CPUs) of --cpus PROXY/LOAD."""
    proxy, sep, load = spec.partition("/")
    if not sep:
        raise ValueError(spec)
    return parse_cpu_list(proxy), parse_cpu_list(load)


def fmt_cpus(cpus):
    """"0-1", "3", "0,2-3": a CPU set as taskset -c would take it."""
    out = []
    for c in sorted(cpus):
        if out and out[-1][1] == c - 1:
            out[-1][1] = c
        else:
            out.append([c, c])
    return ",".join("%d" % a if a == b else "%d-%d" % (a, b) for a, b in out)


def cpus_note(args, load=None):
    """Where the proxies and the load ran, for the table's header; load
    names the load generators (default wrk -tN)."""
    load = load or "wrk -t%d" % args.wrk_threads
    p, l = fmt_cpus(args.proxy_cpus), fmt_cpus(args.load_cpus)
    if args.proxy_cpus == args.load_cpus:
        return "proxies, %s and the three nginx backends share CPU%s %s" \
            % (load, "s" if len(args.proxy_cpus) > 1 else "", p)
    return "proxies pinned to CPU%s %s; %s and the three nginx backends " \
           "on CPU%s %s" % ("s" if len(args.proxy_cpus) > 1 else "", p, load,
                            "s" if len(args.load_cpus) > 1 else "", l)


def check_cpus(args):
    cpus = os.sched_getaffinity(0)
    want = args.proxy_cpus | args.load_cpus
    if not want <= cpus:
        raise BenchError("--cpus %s: need CPUs %s, have %s"
                         % (args.cpus, fmt_cpus(want), fmt_cpus(cpus)))
    log("proxies on CPU%s %s, load generators and backends on CPU%s %s%s"
        % ("s" if len(args.proxy_cpus) > 1 else "", fmt_cpus(args.proxy_cpus),
           "s" if len(args.load_cpus) > 1 else "", fmt_cpus(args.load_cpus),
           " (shared)" if args.proxy_cpus & args.load_cpus else ""))


def check_tools(tools):
    for tool in tools:
        if not os.access(tool, os.X_OK):
            raise BenchError("not executable: %s" % tool)


def fmt_ratio(x):
    return "-" if x != x else "%.2fx" % x  # NaN: no data


FERRY_BASE = "ferry-base"


def add_common_args(ap, quiet_wait):
    """The options every proxy benchmark shares: binaries, noise limits,
    --keep. --quiet-wait defaults to quiet_wait seconds."""
    ap.add_argument("--ferry", default="./build/ferry",
                    help="ferry binary (default ./build/ferry)")
    ap.add_argument("--ferry-base", metavar="PATH",
                    help="a second ferry binary (say, a build of the commit "
                         "before a change), run as '%s' with the same "
                         "config in the same interleaved rounds; the table "
                         "then gives ferry/%s ratios too"
                         % (FERRY_BASE, FERRY_BASE))
    ap.add_argument("--haproxy", default="/usr/sbin/haproxy")
    ap.add_argument("--nginx", default="/usr/sbin/nginx")
    ap.add_argument("--wrk", default="/usr/bin/wrk")
    ap.add_argument("--max-other", type=float, default=5.0,
                    help="flag a measurement when other processes used "
                         "more than this percent of one core (default 5)")
    ap.add_argument("--max-steal", type=float, default=10.0,
                    help="flag a measurement when the hypervisor stole more "
                         "than this percent of one core (default 10)")
    ap.add_argument("--quiet-wait", type=int, default=quiet_wait,
                    help="before each measurement wait up to this many "
                         "seconds for the machine to be idle (default %d; "
                         "0: do not wait)" % quiet_wait)
    ap.add_argument("--keep", action="store_true",
                    help="keep the temp dir (configs, logs)")
    ap.add_argument("--cpus", default=DEFAULT_CPUS, metavar="PROXY/LOAD",
                    help="CPU lists (as for taskset -c) for the proxies "
                         "under test and for the load generators, backends "
                         "and this script, e.g. 1/0, 0-1/0-1, 0-3/4-7 "
                         "(default %s: each proxy has CPU 1 to itself)"
                         % DEFAULT_CPUS)
    ap.add_argument("--wrk-threads", type=int, metavar="N",
                    help="wrk -tN (default: one thread per load CPU)")
    ap.add_argument("--workers", default="1", metavar="LIST",
                    help="comma-separated worker counts (1-256 or auto), "
                         "e.g. 1,2: each proxy runs once per count (ferry "
                         "workers = N, HAProxy nbthread N, nginx "
                         "worker_processes N; for auto the peers get one "
                         "per proxy CPU), all in the same interleaved "
                         "rounds (default 1)")
    ap.add_argument("--sample-interval", type=float, default=0.25,
                    metavar="SECONDS",
                    help="read ferry's ferry_worker_connections gauge "
                         "from /metrics this often while load runs "
                         "(default 0.25; 0: not at all)")


def finish_common_args(ap, args):
    """Checks and converts the options of add_common_args(): args gets
    proxy_cpus and load_cpus (sets) and wrk_threads."""
    try:
        args.proxy_cpus, args.load_cpus = parse_cpus(args.cpus)
    except ValueError:
        ap.error("--cpus: PROXY/LOAD, each a CPU list such as 1, 0-1 or "
                 "0,2-3")
    if args.wrk_threads is None:
        args.wrk_threads = len(args.load_cpus)
    if args.wrk_threads < 1:
        ap.error("--wrk-threads must be positive")
    try:
        args.worker_list = parse_workers(args.workers)
    except ValueError:
        ap.error("--workers: comma-separated counts from 1 to 256, or auto")
    if args.sample_interval < 0:
        ap.error("--sample-interval must not be negative")


def parse_workers(text):
    """The worker counts of --workers LIST ("1", "1,2", "2,auto") as
    strings, in order, without repeats."""
    out = []
    for part in text.split(","):
        part = part.strip()
        if part != "auto" and not (part.isdigit() and 1 <= int(part) <= 256):
            raise ValueError(part)
        if part != "auto":
            part = str(int(part))
        if part not in out:
            out.append(part)
    return out


# One proxy at one worker count: key names it in logs and file names
# ("ferry-w2"), name is the proxy ("ferry", "ferry-base", "haproxy",
# "nginx"), workers what ferry's config says ("2" or "auto") and n the
# peers' thread or process count.
Target = collections.namedtuple("Target", "key name workers n")


def peer_count(args, workers):
    """HAProxy's nbthread and nginx's worker_processes for a worker count:
    auto gives one per proxy CPU."""
    return len(args.proxy_cpus) if workers == "auto" else int(workers)


def targets(args, peers):
    """Every proxy at every worker count, in the order a round measures
    them: ferry at each count, then ferry-base, then each peer."""
    return [Target("%s-w%s" % (name, w), name, w, peer_count(args, w))
            for name in proxy_names(args, peers) for w in args.worker_list]


def start_targets(tlist, start_one):
    """Starts every target with start_one(t); returns the targets that
    run. A ferry-base that refuses a worker count other than 1 (a build
    from before workers) is left out at that count, not the whole run."""
    out = []
    for t in tlist:
        try:
            start_one(t)
        except ConfigRejected as e:
            if t.name != FERRY_BASE or t.workers == "1":
                raise
            log("%s left out: %s" % (t.key, str(e).strip().split("\n")[-1]))
            continue
        out.append(t)
    return out


def names_at(names, tlist, w):
    """The proxies of names that run at worker count w."""
    keys = set(t.key for t in tlist)
    return tuple(n for n in names if "%s-w%s" % (n, w) in keys)


def workers_note(args, w, peers):
    """What a worker count means for each proxy, for a table header."""
    n = peer_count(args, w)
    what = {"haproxy": "HAProxy nbthread %d" % n,
            "nginx": "nginx worker_processes %d" % n}
    return "ferry workers = %s, %s" % (
        w, ", ".join(what[p] for p in peers))


def proxy_names(args, peers):
    """The proxies of a run in the order each round measures them: ferry,
    ferry-base when --ferry-base is given, then the peers."""
    base = (FERRY_BASE,) if args.ferry_base else ()
    return ("ferry",) + base + tuple(peers)


def ferry_binary(args, name):
    """The binary of a ferry target ("ferry" or "ferry-base")."""
    return args.ferry_base if name == FERRY_BASE else args.ferry


def ferry_tools(args):
    """The ferry binaries a run needs, for check_tools()."""
    return (args.ferry,) + ((args.ferry_base,) if args.ferry_base else ())


def clean(results, name, key):
    """The rounds of one proxy and case that no noise check flagged."""
    return [r for r in results[name][key] if not r["flags"]]


def run_rounds(rounds, quick, proxies, keys, measure, fmt_line):
    """Interleaved rounds: every key, every proxy, in turn. Past `rounds`,
    rounds go on (up to twice as many, not when quick) until every proxy
    has at least min(3, rounds) clean ones for every key. Returns
    results[name][key] = [measurement, ...]."""
    results = {n: {k: [] for k in keys} for n in proxies}
    want = min(3, rounds)
    max_rounds = rounds if quick else 2 * rounds
    rnd = 0
    while rnd < max_rounds:
        if rnd >= rounds and all(len(clean(results, n, k)) >= want
                                 for n in proxies for k in keys):
            break
        rnd += 1
        for key in keys:
            for name in proxies:
                r = measure(name, key)
                results[name][key].append(r)
                log(fmt_line(rnd, name, key, r))
    return results


def finish(kids, bench, keep):
    """Stops every child and removes the temp dir unless asked to keep it."""
    kids.stop_all()
    if bench.dir and not keep:
        shutil.rmtree(bench.dir, ignore_errors=True)
    elif bench.dir:
        log("kept %s" % bench.dir)


# --------------------------------------------------------------------------
# Reports of runs with several worker counts (--workers LIST).


def at_workers(results, tlist, w):
    """results of the targets at worker count w, keyed by proxy name (the
    per-count tables are those of a single-count run)."""
    return {t.name: results[t.key] for t in tlist if t.workers == w}


def fmt_workers(r):
    """The gauge's median per worker in one measurement, for its log
    line: ' workers 26/24 (1.08x)', or '' without samples."""
    per = r.get("worker_conns")
    if not per:
        return ""
    return "  workers %s (%s)" % ("/".join("%.0f" % v for v in per),
                                  fmt_spread(r["spread"]))


def fmt_spread(x):
    if x != x:
        return "-"
    return "inf" if x == float("inf") else "%.2fx" % x


def _median_of(rs, key):
    use = [r for r in rs if not r["flags"]]
    return statistics.median(r[key] for r in (use or rs)), not use


def print_scaling(args, names, results, cases, case_label, metrics,
                  load=None):
    """Each proxy at each worker count against itself at the first count,
    from the same interleaved rounds: medians of clean rounds (marked !
    when none was clean), their ratio and the paired ratio (median of
    per-round ratios over rounds where both were clean).

    metrics(case): [(label, key, printf format)]; results[target
    key][case]; load names the load generators for the header. Prints
    nothing for a single worker count.
    """
    ws = args.worker_list
    if len(ws) < 2:
        return
    w0 = ws[0]
    print()
    print("Each proxy against itself at workers = %s, same run, medians of "
          "clean rounds" % w0)
    what = {"haproxy": "HAProxy nbthread", "nginx": "nginx worker_processes"}
    print("(workers: %s;\n %s)" % (
        ", ".join(["ferry workers"] + [what[n] for n in names if n in what]),
        cpus_note(args, load)))
    hdr = "%-36s" % "metric" + "".join("%10s" % ("w=%s" % w) for w in ws) + \
        "".join(" %9s %8s %5s" % ("w%s/w%s" % (w, w0), "paired", "pairs")
                for w in ws[1:])
    print(hdr)
    print("-" * len(hdr))
    names = [n for n in names
             if all("%s-w%s" % (n, w) in results for w in ws)]
    for case in cases:
        print(case_label(case))
        for name in names:
            base = results["%s-w%s" % (name, w0)][case]
            for i, (label, key, fmt) in enumerate(metrics(case)):
                cells, ratios = [], []
                meds = []
                for w in ws:
                    m, noisy = _median_of(results["%s-w%s" % (name, w)][case],
                                          key)
                    meds.append(m)
                    cells.append((fmt % m) + ("!" if noisy else " "))
                for w, m in zip(ws[1:], meds[1:]):
                    rs = results["%s-w%s" % (name, w)][case]
                    pr = [o[key] / b[key] for b, o in zip(base, rs)
                          if not b["flags"] and not o["flags"] and b[key]]
                    ratios.append(" %9s %8s %5s" % (
                        fmt_ratio(m / meds[0] if meds[0] else float("nan")),
                        fmt_ratio(statistics.median(pr) if pr
                                  else float("nan")),
                        len(pr) if i == 0 else ""))
                print("  %-12s %-21s %s%s" % (
                    name if i == 0 else "", label,
                    "".join("%10s" % c for c in cells), "".join(ratios)))
    print()
    print("wN/w%s: the proxy's median at N workers over its median at %s "
          "(each over its own\nclean rounds); paired: median of per-round "
          "ratios over the rounds where both were\nclean (pairs: how many). "
          "For CPU per unit, wN/w%s - 1 is what the extra workers\ncost per "
          "unit of work (1.03x: 3%% more). ! : no clean round, all rounds "
          "used." % (w0, w0, w0))


def print_spread(args, results, tlist, cases, case_label):
    """How ferry's client connections spread over its workers: the
    ferry_worker_connections gauge (median of the samples of a
    measurement, per worker), max/min over the workers; per case and
    ferry target, over every round with samples. Noise flags are about
    CPU time, not about where the kernel put the connections, so flagged
    rounds count here too."""
    rows = []
    for case in cases:
        for t in tlist:
            if t.name not in ("ferry", FERRY_BASE):
                continue
            use = [r for r in results[t.key][case] if r.get("worker_conns")]
            if use:
                rows.append((case, t, use))
    if not rows:
        if args.sample_interval > 0:
            print()
            print("Spread over ferry's workers: not measured (no "
                  "ferry_worker_connections gauge on /metrics)")
        return
    print()
    print("Spread over ferry's workers: ferry_worker_connections read every "
          "%g s during each\nmeasurement; per worker the median of the "
          "samples, then the median over all rounds"
          % args.sample_interval)
    hdr = "%-16s %-15s %-26s %9s %9s %7s" % (
        "case", "proxy", "per worker, busiest first", "max/min", "worst",
        "rounds")
    print(hdr)
    print("-" * len(hdr))
    for case, t, use in rows:
        width = max(len(r["worker_conns"]) for r in use)
        ranked = [sorted(r["worker_conns"], reverse=True) for r in use]
        per = [statistics.median(x[k] for x in ranked if len(x) > k)
               for k in range(width)]
        shown = " ".join("%.0f" % v if v >= 10 else "%.1f" % v
                         for v in per[:8]) + (" ..." if width > 8 else "")
        sp = [r["spread"] for r in use]
        print("%-16s %-15s %-26s %9s %9s %7s" % (
            case_label(case), t.key, shown,
            fmt_spread(statistics.median(sp)), fmt_spread(max(sp)),
            "%d/%d" % (len(use), len(results[t.key][case]))))
    print()
    print("per worker: each round's figures sorted, busiest first, then "
          "the median of each\nrank. max/min: the busiest worker's "
          "connections over the idlest's in one\nmeasurement (1.00x: even; "
          "inf: a worker had none), median over the rounds;\nworst: the "
          "most uneven round. rounds: rounds with samples / all.")


def _paired(a, b, key):
    """(median of per-round a/b over rounds where both were clean, their
    number); over all rounds, number negative, when none was."""
    pairs = [(x, y) for x, y in zip(a, b) if not x["flags"] and not y["flags"]]
    n = len(pairs)
    if not pairs:
        pairs = list(zip(a, b))
        n = -len(pairs)
    ratios = [x[key] / y[key] for x, y in pairs if y[key]]
    return (statistics.median(ratios) if ratios else float("nan")), n


def _fmt_paired(p):
    """'1.15x (4)': a paired ratio and its clean pairs; '1.15x (all 10)'
    when no pair was clean and all rounds were used."""
    v, n = p
    return "%s (%s)" % (fmt_ratio(v), n if n >= 0 else "all %d" % -n)


def print_summary(args, results, tlist, cases, case_label, peers, unit,
                  rate):
    """ferry at each worker count past the first, in one block: CPU per
    unit against itself at the first count, rate against each peer at
    the same count (both paired), and the spread over its workers.
    unit and rate name the CPU and rate figures ("request", "req/s")."""
    ws = args.worker_list
    keys = set(t.key for t in tlist)
    if len(ws) < 2:
        return
    w0 = ws[0]
    what = {"haproxy": "HAProxy nbthread", "nginx": "nginx worker_processes"}
    print()
    print("Summary: ferry at each worker count (paired ratios of this run, "
          "with the number\nof rounds behind each)")
    hdr = "%-44s" % "" + "".join("%15s" % case_label(c) for c in cases)
    print(hdr)
    print("-" * len(hdr))
    for w in ws[1:]:
        f, f0 = "ferry-w%s" % w, "ferry-w%s" % w0
        rows = [("CPU per %s, workers %s / workers %s" % (unit, w, w0),
                 lambda c: _fmt_paired(_paired(results[f][c],
                                               results[f0][c], "cpu_unit")))]
        for p in peers:
            pk = "%s-w%s" % (p, w)
            if pk in keys:
                rows.append(("%s, ferry over %s %d"
                             % (rate, what[p], peer_count(args, w)),
                             lambda c, pk=pk: _fmt_paired(_paired(
                                 results[f][c], results[pk][c], "rate"))))

        def spread_of(c):
            sp = [r["spread"] for r in results[f][c] if r.get("worker_conns")]
            return "%s (%d)" % (fmt_spread(statistics.median(sp)),
                                len(sp)) if sp else "-"
        rows.append(("spread over workers, max/min", spread_of))
        print("ferry workers = %s" % w)
        for label, fn in rows:
            print("  %-42s" % label + "".join("%15s" % fn(c) for c in cases))
    print()
    print("CPU per %s: 1.03x means the extra workers cost 3%% more CPU "
          "per %s;\n%s > 1.00x: ferry faster than the peer at the same "
          "count. (N): rounds where\nboth were clean ('all N': none was, "
          "all used); spread: over all rounds.\nThe tables above have the "
          "medians behind these." % (unit, unit, rate))
