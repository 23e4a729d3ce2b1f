#!/usr/bin/python3
"""L4 benchmark: ferry (mode = tcp) against HAProxy (mode tcp) on one host.

One run starts three nginx backends, ferry and HAProxy in front of the same
backends, then interleaves rounds (ferry, haproxy, ferry, haproxy, ...) of
the two measurements below. With --ferry-base PATH a second ferry,
"ferry-base", runs from PATH with the same config in the same rounds, and
the table compares ferry with it as well.

  bulk   one long-lived connection carrying ~1 GiB (curl fetching /big
         several times over one keep-alive connection): MB/s, and the
         proxy's CPU seconds per GB;
  conn   new-connection rate: wrk -H 'Connection: close' (every request is
         a new TCP connection through the proxy and to a backend):
         connections/s, and the proxy's CPU microseconds per connection.

With --workers LIST (e.g. 1,2) both proxies run once per count, all in the
same rounds: ferry `workers = N`, HAProxy `nbthread N`. The report then has
one table per count, each proxy against itself at the first count (CPU per
connection at workers = 2 over workers = 1: what the threads cost), and
how ferry's connections spread over its workers in the conn test (the
ferry_worker_connections gauge, read from /metrics while load runs).

Proxies run on CPU 1, load generators and backends on CPU 0 (--cpus
changes that; see tests/bench/README.md). Proxy CPU is utime+stime from
/proc/PID/stat over the measurement. A measurement is flagged, and left out
of the medians, when processes other than ours used noticeable CPU (from
/proc/stat), when the hypervisor stole noticeable time, or when the load
generator saw errors. Only ratios from the same run mean anything.

Debian's /usr/bin/python3, stdlib only. See tests/bench/README.md.
"""

import argparse
import os
import re
import statistics
import sys

from benchlib import (BODY, BenchBase, BenchError, Children, FERRY_BASE,
                      add_common_args, at_workers, check_cpus, check_tools,
                      clean, cpus_note, ferry_binary, ferry_tools, finish,
                      finish_common_args, fmt_ratio, fmt_workers, http_get,
                      log, max_conns, names_at, parse_wrk, print_scaling,
                      print_spread, print_summary, proxy_names, run_rounds,
                      setup_process, start_targets, targets, workers_note)

# --------------------------------------------------------------------------
# Configurations.


def ferry_conf(ports, backends, workers):
    """ports: the frontend's and the stats listener's."""
    lines = [
        "[global]",
        "max_connections = %d" % max_conns(),
        "log_level = warn",
    ]
    if workers != "1":  # the default; older builds refuse other values
        lines.append("workers = %s" % workers)
    lines += [
        "",
        # On a port of its own (the default is fixed, and ferry-base and
        # every worker count run beside each other): the spread over the
        # workers is read from /metrics during the conn test.
        "[stats]",
        "listen = 127.0.0.1:%d" % ports[1],
        "",
        "[frontend bench]",
        "listen = 127.0.0.1:%d" % ports[0],
        "mode = tcp",
        "backend = b",
        "",
        "[backend b]",
    ]
    lines += ["server = 127.0.0.1:%d" % p for p in backends]
    return "\n".join(lines) + "\n"


def haproxy_conf(port, backends, splice, n):
    # Fair peer per tests/bench/README.md: nbthread as ferry's workers, no
    # logging, defaults otherwise (16 KiB buffers like ferry, no splicing
    # unless asked).
    # Splicing needs a pipe (two fds) per spliced direction: leave room
    # for them under the same fd limit.
    conns = max_conns() * 2 // 3 if splice else max_conns()
    lines = [
        "global",
        "    nbthread %d" % n,
        "    maxconn %d" % conns,
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


class Bench(BenchBase):
    def __init__(self, args, kids):
        BenchBase.__init__(self, args, kids)
        self.names = proxy_names(args, PEERS)
        self.targets = targets(args, PEERS)

    def make_big(self):
        size = self.args.big_mib << 20
        chunk = bytes(range(256)) * 4096  # 1 MiB, not all zeros
        with open(os.path.join(self.dir, "big"), "wb") as f:
            for _ in range(size // len(chunk)):
                f.write(chunk)
        self.big_size = size

    def start_proxies(self):
        self.targets = start_targets(self.targets, self.start_target)

    def start_target(self, t):
        """Starts one proxy at one worker count, config checked first."""
        bp = self.backend_ports
        if t.name in ("ferry", FERRY_BASE):
            ferry = ferry_binary(self.args, t.name)
            ports = self.start_proxy(
                t.key, lambda path: [ferry, "-c", path],
                lambda ports: ferry_conf(ports, bp, t.workers),
                lambda path: [ferry, "-c", path, "-t"], ports=2)
            self.stats[t.key] = (ports[1], None if t.workers == "auto"
                                 else int(t.workers))
            self.log_ferry_workers(t.key)
            return
        hap = self.args.haproxy
        splice = self.args.haproxy_splice
        self.start_proxy(
            t.key, lambda path: [hap, "-db", "-f", path],
            lambda port: haproxy_conf(port, bp, splice, t.n),
            lambda path: [hap, "-c", "-q", "-f", path])

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

    def measure(self, name, kind):
        _, port = self.proxies[name]
        if kind == "bulk":
            res = self.measure_window(name, lambda: self.run_bulk(port))
        else:
            # One connection carries bulk: only conn spreads over workers.
            res = self.measure_window(name, lambda: self.run_conn(port),
                                      sample=self.stats.get(name))
        proxy = res["proxy_cpu"]
        if kind == "bulk":
            res["rate"] = res["bytes"] / res["secs"] / 1e6  # MB/s
            res["cpu_unit"] = proxy / (res["bytes"] / 1e9)  # s/GB
        else:
            res["rate"] = res["conns"] / res["secs"]  # conn/s
            res["cpu_unit"] = proxy / max(res["conns"], 1) * 1e6  # us/conn
        res["util_pct"] = 100 * res["util"]
        return res

    def run_bulk(self, port):
        n = self.args.bulk_transfers
        url = "http://127.0.0.1:%d/big" % port
        argv = [self.args.curl, "-s", "-S", "--max-time", "120",
                "-w", "%{http_code} %{size_download} %{time_total}\\n"]
        for _ in range(n):
            argv += ["-o", "/dev/null", url]
        rc, out = self.kids.run(argv, self.args.load_cpus, "curl",
                                timeout=150)
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
        argv = [self.args.wrk, "-t%d" % self.args.wrk_threads,
                "-c%d" % self.args.connections,
                "-d%ds" % self.args.conn_seconds, "--timeout", "2s",
                "-H", "Connection: close",
                "http://127.0.0.1:%d/" % port]
        rc, out = self.kids.run(argv, self.args.load_cpus, "wrk",
                                timeout=self.args.conn_seconds + 30)
        w = parse_wrk(out)
        if rc != 0 or w is None:
            raise BenchError("wrk failed (rc %d): %s" % (rc, out.strip()))
        flags = []
        if w["non2xx"]:
            flags.append("%d non-2xx" % w["non2xx"])
        if w["errors"] > 0.01 * max(w["reqs"], 1):
            flags.append("%d socket errors" % w["errors"])
        return dict(conns=w["reqs"], secs=w["secs"], errors=w["errors"],
                    flags=flags)


# --------------------------------------------------------------------------
# Report.

PEERS = ("haproxy",)
KINDS = ("bulk", "conn")
RATIO_LABEL = {FERRY_BASE: "f/base", "haproxy": "ferry/hap"}
SCALING_METRICS = {
    "bulk": (("MB/s", "rate", "%.1f"),
             ("proxy CPU s/GB", "cpu_unit", "%.3f"),
             ("proxy core busy, %", "util_pct", "%.0f")),
    "conn": (("conn/s", "rate", "%.0f"),
             ("proxy CPU us/conn", "cpu_unit", "%.1f"),
             ("proxy core busy, %", "util_pct", "%.0f")),
}


def kind_label(args, kind):
    return "bulk (1 conn)" if kind == "bulk" else \
        "conn c=%d" % args.connections


def load_label(args):
    return "curl, wrk -t%d" % args.wrk_threads


def fmt_line(rnd, name, kind, r):
    if kind == "bulk":
        s = "%8.1f MB/s  %6.3f s/GB" % (r["rate"], r["cpu_unit"])
    else:
        s = "%8.0f conn/s %6.1f us/conn" % (r["rate"], r["cpu_unit"])
    s = "round %d %-13s %-4s %s  proxy core %3.0f%%  backend conns %d" \
        "  other %4.1f%%  steal %4.1f%%" % (
            rnd, name, kind, s, 100 * r["util"], r["backend_conns"],
            100 * r["other"] / r["wall"], 100 * r["steal"] / r["wall"]) + \
        fmt_workers(r)
    if r["flags"]:
        s += "  FLAGGED: " + ", ".join(r["flags"])
    return s


def summarize(results, kinds, names):
    rows = []
    for kind in kinds:
        med = {}
        for name in names:
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
        for other in names[1:]:
            pairs = [(f, h) for f, h in zip(results["ferry"][kind],
                                             results[other][kind])
                     if not f["flags"] and not h["flags"]]
            med["paired", other] = dict(
                n=len(pairs),
                rate=statistics.median(f["rate"] / h["rate"]
                                       for f, h in pairs)
                if pairs else float("nan"),
                cpu=statistics.median(f["cpu_unit"] / h["cpu_unit"]
                                      for f, h in pairs)
                if pairs else float("nan"))
        rows.append((kind, med))
    return rows


def print_table(rows, args, names, w):
    units = {"bulk": ("MB/s", "CPU s/GB"), "conn": ("conn/s", "CPU us/conn")}
    kind_names = {"bulk": "bulk throughput (1 connection)",
                  "conn": "new connections (Connection: close, c=%d)"
                          % args.connections}
    peers = names[1:]
    print()
    print("%s, mode tcp, medians of clean rounds"
          % " vs ".join({"haproxy": "HAProxy"}.get(n, n) for n in names))
    print("(%s;\n %s)" % (workers_note(args, w, PEERS),
                          cpus_note(args, load_label(args))))
    hdr = "%-50s " % "metric" + " ".join("%12s" % n for n in names) + \
        "".join(" %10s %8s" % (RATIO_LABEL[o], "paired") for o in peers)
    print(hdr)
    print("-" * len(hdr))

    def ratios(key, f):
        cells = []
        for o in peers:
            v = med[o][key]
            cells.append(" %10s %8s" % (
                fmt_ratio(f[key] / v if v else float("nan")),
                fmt_ratio(med["paired", o][key])))
        return "".join(cells)

    for kind, med in rows:
        f = med["ferry"]
        ru, cu = units[kind]
        nd = 1 if kind == "bulk" else 0
        cd = 3 if kind == "bulk" else 1
        print("%-50s %s%s" % (
            "%s, %s" % (kind_names[kind], ru),
            " ".join("%12.*f" % (nd, med[n]["rate"]) for n in names),
            ratios("rate", f)))
        print("%-50s %s%s" % (
            "  proxy %s (lower is better)" % cu,
            " ".join("%12.*f" % (cd, med[n]["cpu"]) for n in names),
            ratios("cpu", f)))
        print("%-50s %s" % ("  proxy core busy", " ".join(
            "%11.0f%%" % (100 * med[n]["util"]) for n in names)))
        print("%-50s %s%s" % (
            "  clean rounds used (paired)",
            " ".join("%12s" % ("%d/%d%s" % (
                med[n]["n"], med[n]["total"],
                " NOISY" if med[n]["noisy"] else "")) for n in names),
            "".join(" %10s %8s" % ("", "%d" % med["paired", o]["n"])
                    for o in peers)))
    print()
    print("%s: ratio of the medians; paired: median of per-round "
          "ratios over rounds where\nboth were clean. For rates >1.00x means "
          "ferry is faster; for CPU per unit <1.00x\nmeans ferry is cheaper."
          % ", ".join(RATIO_LABEL[o] for o in peers))
    if FERRY_BASE in names:
        print("ferry-base: the same config run from --ferry-base; f/base "
              "compares the two\nferry binaries.")


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(ap, quiet_wait=60)
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
    ap.add_argument("--only", choices=KINDS,
                    help="run only one of the two measurements")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run for CI: 1 round, ~1 s per measurement")
    args = ap.parse_args(argv)
    finish_common_args(ap, args)
    if args.quick:
        args.rounds = 1
        args.conn_seconds = 1
        args.big_mib = 64
        args.bulk_transfers = 1
        args.quiet_wait = min(args.quiet_wait, 2)
    if args.rounds < 1 or args.big_mib < 1 or args.bulk_transfers < 1 or \
            args.conn_seconds < 1 or args.connections < 1:
        ap.error("counts must be positive")
    if args.connections < args.wrk_threads:
        ap.error("--connections: at least one per wrk thread (%d)"
                 % args.wrk_threads)
    return args


def check_machine(args):
    check_cpus(args)
    check_tools(ferry_tools(args) + (args.haproxy, args.nginx, args.wrk,
                                     args.curl))


def main(argv):
    args = parse_args(argv)
    setup_process()
    kids = Children()
    bench = Bench(args, kids)
    try:
        check_machine(args)
        # Keep the script off the proxies' CPUs (unless they share).
        os.sched_setaffinity(0, args.load_cpus)
        bench.make_dir()
        bench.make_big()
        bench.start_backends()
        bench.start_proxies()
        bench.sanity()
        kinds = [args.only] if args.only else list(KINDS)

        keys = [t.key for t in bench.targets]

        # Warm-up (not counted): page cache, allocators, TCP state.
        if not args.quick:
            for name in keys:
                for kind in kinds:
                    saved = args.conn_seconds, args.bulk_transfers
                    args.conn_seconds, args.bulk_transfers = 1, 1
                    try:
                        bench.measure(name, kind)
                    finally:
                        args.conn_seconds, args.bulk_transfers = saved

        results = run_rounds(args.rounds, args.quick, keys, kinds,
                             bench.measure, fmt_line)
        for w in args.worker_list:
            names = names_at(bench.names, bench.targets, w)
            rows = summarize(at_workers(results, bench.targets, w), kinds,
                             names)
            print_table(rows, args, names, w)
        print_scaling(args, bench.names, results, kinds,
                      lambda kind: kind_label(args, kind),
                      lambda kind: SCALING_METRICS[kind],
                      load=load_label(args))
        print_spread(args, results, bench.targets, kinds,
                     lambda kind: kind_label(args, kind))
        print_summary(args, results, bench.targets, kinds,
                      lambda kind: kind_label(args, kind), PEERS, "unit",
                      "rate")
        return 0
    except BenchError as e:
        log("bench_tcp: error: %s" % e)
        return 1
    except KeyboardInterrupt:
        log("bench_tcp: interrupted")
        return 130
    finally:
        finish(kids, bench, args.keep)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
