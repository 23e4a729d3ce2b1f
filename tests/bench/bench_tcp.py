#!/usr/bin/python3
"""L4 benchmark: ferry (mode = tcp) against HAProxy (mode tcp) on one host.

One run starts three nginx backends, ferry and HAProxy in front of the same
backends, then interleaves rounds (ferry, haproxy, ferry, haproxy, ...) of:

  bulk   one long-lived connection carrying ~1 GiB (curl fetching /big
         several times over one keep-alive connection): MB/s, and the
         proxy's CPU seconds per GB;
  conn   new-connection rate: wrk -H 'Connection: close' (every request is
         a new TCP connection through the proxy and to a backend):
         connections/s, and the proxy's CPU microseconds per connection.

Proxies run on CPU 1, load generators and backends on CPU 0 (see
/work/shared/notes/benchmarking.md). Proxy CPU is utime+stime from
/proc/PID/stat over the measurement. A measurement is flagged, and left out
of the medians, when processes other than ours used noticeable CPU (from
/proc/stat), when the hypervisor stole noticeable time, or when the load
generator saw errors. Only ratios from the same run mean anything.

Debian's /usr/bin/python3, stdlib only. See tests/bench/README.md.
"""

import argparse
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
import time
import urllib.request

CLK_TCK = os.sysconf("SC_CLK_TCK")
CPU_LOAD = 0  # load generators, backends and this script
CPU_PROXY = 1  # the proxy under test
BODY = b"ferry-bench-64-byte-body-" + b"x" * 38 + b"\n"
assert len(BODY) == 64

# Absolute slack (seconds) for tick rounding in the CPU accounting.
TICK_SLACK = 3.0 / CLK_TCK


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class BenchError(Exception):
    """A setup or sanity failure: the run cannot produce numbers."""


# --------------------------------------------------------------------------
# Children: every process we start, so that all of them end with us.

_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


class Children:
    """Starts and stops child processes; stop_all() is idempotent."""

    def __init__(self):
        self.procs = []

    def start(self, argv, cpu, name, out=None):
        def pre():
            # Die with the script even if it is SIGKILLed.
            _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
            os.sched_setaffinity(0, {cpu})

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

    def run(self, argv, cpu, name, timeout):
        """Runs argv to completion (bounded) and returns its stdout text."""
        p = self.start(argv, cpu, name, out=subprocess.PIPE)
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


def proc_cpu(pid):
    """utime+stime of pid in seconds (from /proc/PID/stat)."""
    with open("/proc/%d/stat" % pid) as f:
        data = f.read()
    fields = data[data.rindex(")") + 2:].split()
    # fields[0] is field 3 (state); utime is field 14, stime field 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def others_cpu(exclude):
    """{pid: (starttime, cpu seconds)} of every process not in exclude.

    cpu is utime+stime+cutime+cstime, so short-lived processes (compilers)
    that a live parent reaped during the window count too. ksoftirqd is
    left out: it mostly carries our own loopback traffic.
    """
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in exclude:
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                data = f.read()
        except OSError:
            continue  # exited meanwhile
        comm = data[data.index("(") + 1:data.rindex(")")]
        if comm.startswith("ksoftirqd/"):
            continue
        v = data[data.rindex(")") + 2:].split()
        # v[0] is field 3; utime..cstime are fields 14-17, starttime 22.
        cpu = sum(int(x) for x in v[11:15]) / CLK_TCK
        out[int(name)] = (v[19], cpu)
    return out


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


def ferry_conf(port, backends):
    lines = [
        "[global]",
        "max_connections = %d" % max_conns(),
        "log_level = warn",
        "",
        "[frontend bench]",
        "listen = 127.0.0.1:%d" % port,
        "mode = tcp",
        "backend = b",
        "",
        "[backend b]",
    ]
    lines += ["server = 127.0.0.1:%d" % p for p in backends]
    return "\n".join(lines) + "\n"


def haproxy_conf(port, backends, splice):
    # Fair peer per benchmarking.md: one thread, no logging, defaults
    # otherwise (16 KiB buffers like ferry, no splicing unless asked).
    lines = [
        "global",
        "    nbthread 1",
        "    maxconn %d" % max_conns(),
        "",
        "defaults",
        "    mode tcp",
        "    timeout connect 2s",
        "    timeout client 30s",
        "    timeout server 30s",
    ]
    if splice:
        lines.append("    option splice-auto")
    lines += [
        "",
        "frontend bench",
        "    bind 127.0.0.1:%d" % port,
        "    default_backend b",
        "",
        "backend b",
        "    balance roundrobin",
    ]
    lines += ["    server s%d 127.0.0.1:%d" % (i, p)
              for i, p in enumerate(backends)]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------
# The bench itself.


class Bench:
    def __init__(self, args, kids):
        self.args = args
        self.kids = kids
        self.dir = None
        self.backend_ports = []
        self.backends = []  # Popen of each nginx
        self.proxies = {}  # name -> (Popen, port)

    # --- setup -----------------------------------------------------------

    def make_dir(self):
        base = "/dev/shm" if os.path.isdir("/dev/shm") and \
            os.access("/dev/shm", os.W_OK) else None
        self.dir = tempfile.mkdtemp(prefix="ferry-bench-", dir=base)
        log("temp dir %s%s" % (self.dir, " (tmpfs)" if base else ""))

    def make_big(self):
        size = self.args.big_mib << 20
        chunk = bytes(range(256)) * 4096  # 1 MiB, not all zeros
        with open(os.path.join(self.dir, "big"), "wb") as f:
            for _ in range(size // len(chunk)):
                f.write(chunk)
        self.big_size = size

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
                    CPU_LOAD, "nginx%d" % i)
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

    def start_proxy(self, name, argv_for, conf_text, check_argv_for):
        for attempt in range(5):
            port = free_port()
            path = os.path.join(self.dir, "%s.conf" % name)
            conf = conf_text(port)
            with open(path, "w") as f:
                f.write(conf)
            rc, out = self.kids.run(check_argv_for(path), CPU_PROXY,
                                    name + " -check", timeout=10)
            if rc != 0:
                raise BenchError("%s rejects its config %s:\n%s"
                                 % (name, path, out))
            logf = open(os.path.join(self.dir, "%s.log" % name), "wb")
            p = self.kids.start(argv_for(path), CPU_PROXY, name, out=logf)
            logf.close()
            try:
                wait_port(port, p, name)
                self.proxies[name] = (p, port)
                return
            except BenchError:
                self.kids.stop(p)
                if attempt == 4:
                    raise

    def start_proxies(self):
        bp = self.backend_ports
        ferry = self.args.ferry
        self.start_proxy(
            "ferry", lambda path: [ferry, "-c", path],
            lambda port: ferry_conf(port, bp),
            lambda path: [ferry, "-c", path, "-t"])
        hap = self.args.haproxy
        splice = self.args.haproxy_splice
        self.start_proxy(
            "haproxy", lambda path: [hap, "-db", "-f", path],
            lambda port: haproxy_conf(port, bp, splice),
            lambda path: [hap, "-c", "-q", "-f", path])

    def backend_accepts(self):
        """Total connections the three nginx have accepted so far."""
        total = 0
        for port in self.backend_ports:
            _, body = http_get(port, "/nginx_status")
            m = re.search(rb"\n\s*(\d+)\s+(\d+)\s+(\d+)", body)
            if not m:
                raise BenchError("cannot parse stub_status: %r" % body)
            total += int(m.group(1))
        # Each status request is itself one accepted connection per backend.
        return total - len(self.backend_ports)

    def sanity(self):
        for name, (p, port) in self.proxies.items():
            before = self.per_backend_accepts()
            for _ in range(6):
                status, body = http_get(port, "/")
                if status != 200 or body != BODY:
                    raise BenchError("%s: GET / gave %s %r" % (name, status,
                                                               body[:80]))
            after = self.per_backend_accepts()
            used = [a - b for a, b in zip(after, before)]
            if min(used) < 1:
                raise BenchError("%s: backends not all used: %s"
                                 % (name, used))
            log("%s on port %d: GET / ok, spread over backends %s"
                % (name, port, used))

    def per_backend_accepts(self):
        out = []
        for port in self.backend_ports:
            _, body = http_get(port, "/nginx_status")
            m = re.search(rb"\n\s*(\d+)\s+(\d+)\s+(\d+)", body)
            out.append(int(m.group(1)))
        return out

    # --- measuring -------------------------------------------------------

    def ours(self):
        """PIDs of our long-lived processes (proxies and backends)."""
        pids = [p.pid for p in self.backends]
        pids += [p.pid for p, _ in self.proxies.values()]
        return pids

    def snapshot(self, proxy_pid):
        snap = {}
        snap["t"] = time.monotonic()
        snap["busy"], snap["steal"] = system_cpu()
        snap["proxy"] = proc_cpu(proxy_pid)
        snap["others"] = others_cpu(set(self.ours()) | {os.getpid()})
        snap["ours"] = sum(proc_cpu(pid) for pid in self.ours())
        ru = [resource.getrusage(w) for w in (resource.RUSAGE_CHILDREN,
                                              resource.RUSAGE_SELF)]
        snap["kids"] = sum(r.ru_utime + r.ru_stime for r in ru)
        return snap

    def measure(self, name, kind):
        p, port = self.proxies[name]
        if p.poll() is not None:
            raise BenchError("%s exited (%s) during the run; see %s/%s.log"
                             % (name, p.returncode, self.dir, name))
        if self.args.quiet_wait > 0:
            busy = wait_quiet(self.args.max_other / 100.0,
                              self.args.quiet_wait)
            if busy > self.args.max_other / 100.0:
                log("machine still busy (%.0f%% of a core) after %d s; "
                    "measuring anyway" % (100 * busy, self.args.quiet_wait))
        acc0 = self.backend_accepts()
        s0 = self.snapshot(p.pid)
        if kind == "bulk":
            res = self.run_bulk(port)
        else:
            res = self.run_conn(port)
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
                   backend_conns=acc1 - acc0 - len(self.backend_ports))
        flags = list(res.get("flags", []))
        if other > self.args.max_other / 100.0 * wall + TICK_SLACK:
            flags.append("other cpu %.0f%%" % (100 * other / wall))
        if steal > self.args.max_steal / 100.0 * wall + TICK_SLACK:
            flags.append("steal %.0f%%" % (100 * steal / wall))
        if p.poll() is not None:
            raise BenchError("%s exited (%s) during the run"
                             % (name, p.returncode))
        res["flags"] = flags
        if kind == "bulk":
            res["rate"] = res["bytes"] / res["secs"] / 1e6  # MB/s
            res["cpu_unit"] = proxy / (res["bytes"] / 1e9)  # s/GB
        else:
            res["rate"] = res["conns"] / res["secs"]  # conn/s
            res["cpu_unit"] = proxy / max(res["conns"], 1) * 1e6  # us/conn
        return res

    def run_bulk(self, port):
        n = self.args.bulk_transfers
        url = "http://127.0.0.1:%d/big" % port
        argv = [self.args.curl, "-s", "-S", "--max-time", "120",
                "-w", "%{http_code} %{size_download} %{time_total}\\n"]
        for _ in range(n):
            argv += ["-o", "/dev/null", url]
        rc, out = self.kids.run(argv, CPU_LOAD, "curl", timeout=150)
        flags = []
        total = 0
        secs = 0.0
        lines = [l for l in out.splitlines() if re.match(r"^\d{3} ", l)]
        for line in lines:
            code, size, t = line.split()
            if code != "200" or int(size) != self.big_size:
                flags.append("bad transfer %s %s" % (code, size))
            total += int(size)
            secs += float(t)
        if rc != 0 or len(lines) != n:
            raise BenchError("curl failed (rc %d): %s" % (rc, out.strip()))
        return dict(bytes=total, secs=secs, flags=flags)

    def run_conn(self, port):
        argv = [self.args.wrk, "-t1", "-c%d" % self.args.connections,
                "-d%ds" % self.args.conn_seconds, "--timeout", "2s",
                "-H", "Connection: close",
                "http://127.0.0.1:%d/" % port]
        rc, out = self.kids.run(argv, CPU_LOAD, "wrk",
                                timeout=self.args.conn_seconds + 30)
        m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", out)
        if rc != 0 or not m:
            raise BenchError("wrk failed (rc %d): %s" % (rc, out.strip()))
        reqs = int(m.group(1))
        secs = float(m.group(2)) * {"us": 1e-6, "ms": 1e-3, "s": 1.0,
                                    "m": 60.0}[m.group(3)]
        flags = []
        errs = 0
        m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+),"
                      r" timeout (\d+)", out)
        if m:
            errs = sum(int(x) for x in m.groups())
        m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        bad = int(m.group(1)) if m else 0
        if bad:
            flags.append("%d non-2xx" % bad)
        if errs > 0.01 * max(reqs, 1):
            flags.append("%d socket errors" % errs)
        return dict(conns=reqs, secs=secs, errors=errs, flags=flags)


# --------------------------------------------------------------------------
# Report.

PROXIES = ("ferry", "haproxy")
KINDS = ("bulk", "conn")


def fmt_line(rnd, name, kind, r):
    if kind == "bulk":
        s = "%8.1f MB/s  %6.3f s/GB" % (r["rate"], r["cpu_unit"])
    else:
        s = "%8.0f conn/s %6.1f us/conn" % (r["rate"], r["cpu_unit"])
    s = "round %d %-7s %-4s %s  proxy core %3.0f%%  backend conns %d" \
        "  other %4.1f%%  steal %4.1f%%" % (
            rnd, name, kind, s, 100 * r["util"], r["backend_conns"],
            100 * r["other"] / r["wall"], 100 * r["steal"] / r["wall"])
    if r["flags"]:
        s += "  FLAGGED: " + ", ".join(r["flags"])
    return s


def clean(results, name, kind):
    return [r for r in results[name][kind] if not r["flags"]]


def summarize(results, kinds):
    rows = []
    for kind in kinds:
        med = {}
        for name in PROXIES:
            rs = clean(results, name, kind)
            noisy = False
            if not rs:  # nothing clean: use all, but say so
                rs = results[name][kind]
                noisy = True
            med[name] = dict(
                rate=statistics.median(r["rate"] for r in rs),
                cpu=statistics.median(r["cpu_unit"] for r in rs),
                util=statistics.median(r["util"] for r in rs),
                n=len(rs), total=len(results[name][kind]), noisy=noisy)
        # Rounds where both measurements are clean give paired ratios,
        # which cancel the slow drifts of the machine between rounds.
        pairs = [(f, h) for f, h in zip(results["ferry"][kind],
                                         results["haproxy"][kind])
                 if not f["flags"] and not h["flags"]]
        med["paired"] = dict(
            n=len(pairs),
            rate=statistics.median(f["rate"] / h["rate"] for f, h in pairs)
            if pairs else float("nan"),
            cpu=statistics.median(f["cpu_unit"] / h["cpu_unit"]
                                  for f, h in pairs)
            if pairs else float("nan"))
        rows.append((kind, med))
    return rows


def fmt_ratio(x):
    return "-" if x != x else "%.2fx" % x  # NaN: no data


def print_table(rows, args):
    units = {"bulk": ("MB/s", "CPU s/GB"), "conn": ("conn/s", "CPU us/conn")}
    names = {"bulk": "bulk throughput (1 connection)",
             "conn": "new connections (Connection: close, c=%d)"
                     % args.connections}
    print()
    print("ferry vs HAProxy, mode tcp, medians of clean rounds "
          "(proxy pinned to CPU %d)" % CPU_PROXY)
    hdr = "%-50s %12s %12s %10s %8s" % ("metric", "ferry", "haproxy",
                                         "ferry/hap", "paired")
    print(hdr)
    print("-" * len(hdr))
    for kind, med in rows:
        f, h = med["ferry"], med["haproxy"]
        ru, cu = units[kind]
        ratio = f["rate"] / h["rate"] if h["rate"] else float("nan")
        cratio = f["cpu"] / h["cpu"] if h["cpu"] else float("nan")
        nd = 1 if kind == "bulk" else 0
        pr = med["paired"]
        print("%-50s %12.*f %12.*f %10s %8s" % (
            "%s, %s" % (names[kind], ru), nd, f["rate"], nd, h["rate"],
            fmt_ratio(ratio), fmt_ratio(pr["rate"])))
        print("%-50s %12.*f %12.*f %10s %8s" % (
            "  proxy %s (lower is better)" % cu, 3 if kind == "bulk" else 1,
            f["cpu"], 3 if kind == "bulk" else 1, h["cpu"], fmt_ratio(cratio),
            fmt_ratio(pr["cpu"])))
        print("%-50s %11.0f%% %11.0f%%" % ("  proxy core busy", 100 * f["util"],
                                           100 * h["util"]))
        print("%-50s %12s %12s %10s %8s" % (
            "  clean rounds used (paired)",
            "%d/%d%s" % (f["n"], f["total"], " NOISY" if f["noisy"] else ""),
            "%d/%d%s" % (h["n"], h["total"], " NOISY" if h["noisy"] else ""),
            "", "%d" % pr["n"]))
    print()
    print("ferry/hap: ratio of the medians; paired: median of per-round "
          "ratios over rounds where\nboth were clean. For rates >1.00x means "
          "ferry is faster; for CPU per unit <1.00x\nmeans ferry is cheaper.")


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ferry", default="./build/ferry",
                    help="ferry binary (default ./build/ferry)")
    ap.add_argument("--haproxy", default="/usr/sbin/haproxy")
    ap.add_argument("--nginx", default="/usr/sbin/nginx")
    ap.add_argument("--wrk", default="/usr/bin/wrk")
    ap.add_argument("--curl", default="/usr/bin/curl")
    ap.add_argument("--rounds", type=int, default=5,
                    help="rounds per proxy (default 5; at least 3 for a "
                         "meaningful median)")
    ap.add_argument("--connections", type=int, default=50,
                    help="wrk connections for the conn test (default 50)")
    ap.add_argument("--conn-seconds", type=int, default=5,
                    help="duration of each conn measurement (default 5)")
    ap.add_argument("--big-mib", type=int, default=256,
                    help="size of /big in MiB (default 256)")
    ap.add_argument("--bulk-transfers", type=int, default=4,
                    help="fetches of /big per bulk measurement, over one "
                         "connection (default 4: 1 GiB)")
    ap.add_argument("--haproxy-splice", action="store_true",
                    help="give HAProxy 'option splice-auto' too (ferry "
                         "splices bulk streams by default; HAProxy does not)")
    ap.add_argument("--max-other", type=float, default=5.0,
                    help="flag a measurement when other processes used "
                         "more than this percent of one core (default 5)")
    ap.add_argument("--max-steal", type=float, default=10.0,
                    help="flag a measurement when the hypervisor stole more "
                         "than this percent of one core (default 10)")
    ap.add_argument("--quiet-wait", type=int, default=60,
                    help="before each measurement wait up to this many "
                         "seconds for the machine to be idle (default 60; "
                         "0: do not wait)")
    ap.add_argument("--only", choices=KINDS,
                    help="run only one of the two measurements")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run for CI: 1 round, ~1 s per measurement")
    ap.add_argument("--keep", action="store_true",
                    help="keep the temp dir (configs, logs)")
    args = ap.parse_args(argv)
    if args.quick:
        args.rounds = 1
        args.conn_seconds = 1
        args.big_mib = 64
        args.bulk_transfers = 1
        args.quiet_wait = min(args.quiet_wait, 2)
    if args.rounds < 1 or args.big_mib < 1 or args.bulk_transfers < 1 or \
            args.conn_seconds < 1 or args.connections < 1:
        ap.error("counts must be positive")
    return args


def check_machine(args):
    cpus = os.sched_getaffinity(0)
    if not {CPU_LOAD, CPU_PROXY} <= cpus:
        raise BenchError("need CPUs %d and %d, have %s"
                         % (CPU_LOAD, CPU_PROXY, sorted(cpus)))
    for tool in (args.ferry, args.haproxy, args.nginx, args.wrk, args.curl):
        if not os.access(tool, os.X_OK):
            raise BenchError("not executable: %s" % tool)


def _sigterm(signum, frame):
    raise KeyboardInterrupt


def main(argv):
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _sigterm)
    signal.signal(signal.SIGHUP, _sigterm)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:  # children inherit the raised limit
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    kids = Children()
    bench = Bench(args, kids)
    try:
        check_machine(args)
        os.sched_setaffinity(0, {CPU_LOAD})  # keep the script off CPU 1
        bench.make_dir()
        bench.make_big()
        bench.start_backends()
        bench.start_proxies()
        bench.sanity()
        kinds = [args.only] if args.only else list(KINDS)

        # Warm-up (not counted): page cache, allocators, TCP state.
        if not args.quick:
            for name in PROXIES:
                for kind in kinds:
                    saved = args.conn_seconds, args.bulk_transfers
                    args.conn_seconds, args.bulk_transfers = 1, 1
                    try:
                        bench.measure(name, kind)
                    finally:
                        args.conn_seconds, args.bulk_transfers = saved

        results = {n: {k: [] for k in KINDS} for n in PROXIES}
        want = min(3, args.rounds)
        max_rounds = args.rounds if args.quick else 2 * args.rounds
        rnd = 0
        while rnd < max_rounds:
            if rnd >= args.rounds and \
                    all(len(clean(results, n, k)) >= want
                        for n in PROXIES for k in kinds):
                break
            rnd += 1
            for kind in kinds:
                for name in PROXIES:
                    r = bench.measure(name, kind)
                    results[name][kind].append(r)
                    log(fmt_line(rnd, name, kind, r))
        rows = summarize(results, kinds)
        print_table(rows, args)
        return 0
    except BenchError as e:
        log("bench_tcp: error: %s" % e)
        return 1
    except KeyboardInterrupt:
        log("bench_tcp: interrupted")
        return 130
    finally:
        kids.stop_all()
        if bench.dir and not args.keep:
            shutil.rmtree(bench.dir, ignore_errors=True)
        elif bench.dir:
            log("kept %s" % bench.dir)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
