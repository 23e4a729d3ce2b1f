#!/usr/bin/python3
"""L7 benchmark: ferry (mode = http) against HAProxy and nginx on one host.

One run starts three nginx backends (64-byte body), then ferry, HAProxy and
nginx as HTTP/1.1 reverse proxies in front of the same backends, each with
a plain and a TLS listener, and interleaves rounds (ferry, haproxy, nginx,
ferry, ...) of keep-alive load. With --ferry-base PATH a second ferry,
"ferry-base", runs from PATH with the same config in the same rounds, and
the table compares ferry with it as well:

  wrk -tT -cC -dS --latency URL     for C in 50, 200 and URL http:// or
                                     https:// (TLS terminated by the proxy);
                                     T: one thread per load CPU (1)

For each it records req/s, p50/p99 latency (wrk --latency), the proxy's CPU
microseconds per request (utime+stime from /proc/PID/stat over the
measurement / requests) and the backend connections the proxy opened.

With --workers LIST (e.g. 1,2) every proxy runs once per count, all in the
same rounds: ferry `workers = N`, HAProxy `nbthread N`, nginx
`worker_processes N`. The report then has one table per count, each proxy
against itself at the first count (CPU per request at workers = 2 over
workers = 1: what the threads cost), and how ferry's connections spread
over its workers (the ferry_worker_connections gauge, read from /metrics
while load runs).

Fair peers (see tests/bench/README.md): HAProxy `mode http`,
`http-reuse safe`, `nbthread N`; nginx `worker_processes N` (one process
without a master for 1), `upstream { keepalive 512; }`,
`proxy_http_version 1.1`, `proxy_set_header Connection ""`. All three add
X-Forwarded-For and X-Forwarded-Proto (ferry always does). The proxies run
on CPU 1, wrk and the backends on CPU 0 (--cpus changes that). A
measurement is flagged, and left out of the medians, when processes other
than ours used noticeable CPU, when the hypervisor stole noticeable time,
or when wrk saw errors or non-2xx responses. Only ratios from the same run
mean anything.

Debian's /usr/bin/python3, stdlib only. See tests/bench/README.md.
"""

import argparse
import os
import socket
import ssl
import statistics
import sys
import urllib.request

from benchlib import (BODY, BenchBase, BenchError, Children, FERRY_BASE,
                      add_common_args, at_workers, check_cpus, check_tools,
                      clean, cpus_note, ferry_binary, ferry_tools, finish,
                      finish_common_args, fmt_ratio, fmt_workers, http_get,
                      log, max_conns, names_at, parse_wrk, print_scaling,
                      print_spread, print_summary, proxy_names, run_rounds,
                      setup_process, start_targets, targets, workers_note)

PEERS = ("haproxy", "nginx")
SCHEMES = ("http", "https")

# --------------------------------------------------------------------------
# Configurations. Each proxy listens on two ports, plain and TLS (ferry on
# a third, its stats listener).


def ferry_conf(ports, backends, crt, key, workers):
    """ports: plain, TLS and stats listener."""
    lines = [
        "[global]",
        "max_connections = %d" % max_conns(),
        "log_level = warn",
    ]
    if workers != "1":  # the default; older builds refuse other values
        lines.append("workers = %s" % workers)
    lines += [
        "",
        # On a port of its own (ferry-base and every worker count run
        # beside each other): the spread over the workers is read from
        # /metrics while load runs.
        "[stats]",
        "listen = 127.0.0.1:%d" % ports[2],
        "",
        "[frontend plain]",
        "listen = 127.0.0.1:%d" % ports[0],
        "mode = http",
        "backend = b",
        "",
        "[frontend tls]",
        "listen = 127.0.0.1:%d" % ports[1],
        "mode = http",
        "backend = b",
        "tls_cert = %s" % crt,
        "tls_key = %s" % key,
        "",
        "[backend b]",
        "balance = roundrobin",
        # HAProxy and nginx do not check either; checks would also show
        # up in the backend connection counts of every measurement.
        "health_check = none",
    ]
    lines += ["server = 127.0.0.1:%d" % p for p in backends]
    return "\n".join(lines) + "\n"


def haproxy_conf(ports, backends, pem, n):
    lines = [
        "global",
        "    nbthread %d" % n,
        "    maxconn %d" % max_conns(),
        "",
        "defaults",
        "    mode http",
        "    http-reuse safe",
        "    option http-keep-alive",
        "    timeout connect 2s",
        "    timeout client 30s",
        "    timeout server 30s",
        "    timeout http-keep-alive 60s",
        "",
        "frontend bench",
        "    bind 127.0.0.1:%d" % ports[0],
        "    bind 127.0.0.1:%d ssl crt %s" % (ports[1], pem),
        "    option forwardfor",
        "    http-request set-header X-Forwarded-Proto https if { ssl_fc }",
        "    http-request set-header X-Forwarded-Proto http if !{ ssl_fc }",
        "    default_backend b",
        "",
        "backend b",
        "    balance roundrobin",
    ]
    lines += ["    server s%d 127.0.0.1:%d" % (i, p)
              for i, p in enumerate(backends)]
    return "\n".join(lines) + "\n"


def nginx_proxy_conf(d, ports, backends, crt, key, n, tag):
    """n worker processes (one process without a master when n is 1);
    tag names its files in d."""
    servers = "".join("        server 127.0.0.1:%d;\n" % p for p in backends)
    return """daemon off;
master_process {master};
worker_processes {n};
pid {d}/{tag}.pid;
error_log {d}/{tag}-error.log warn;
worker_rlimit_nofile {nofile};
events {{
    worker_connections {wc};
}}
http {{
    access_log off;
    client_body_temp_path {d}/{tag}-body;
    proxy_temp_path {d}/{tag}-proxy;
    fastcgi_temp_path {d}/{tag}-fastcgi;
    uwsgi_temp_path {d}/{tag}-uwsgi;
    scgi_temp_path {d}/{tag}-scgi;
    keepalive_timeout 60s;
    keepalive_requests 1000000;
    upstream b {{
{servers}        keepalive 512;
        keepalive_requests 1000000;
        keepalive_timeout 60s;
    }}
    server {{
        listen 127.0.0.1:{p0} backlog=4096;
        listen 127.0.0.1:{p1} ssl backlog=4096;
        ssl_certificate {crt};
        ssl_certificate_key {key};
        # 1.22 defaults to TLSv1-1.2; the others negotiate TLSv1.3.
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {{
            proxy_pass http://b;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
}}
""".format(d=d, p0=ports[0], p1=ports[1], crt=crt, key=key, servers=servers,
           nofile=2 * max_conns() + 100, wc=2 * max_conns() + 50,
           n=n, master="on" if n > 1 else "off", tag=tag)


# --------------------------------------------------------------------------
# The bench itself.


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def https_get(port, path, timeout=5.0):
    req = urllib.request.Request("https://127.0.0.1:%d%s" % (port, path),
                                 headers={"Connection": "close"})
    with urllib.request.urlopen(req, timeout=timeout,
                                context=tls_context()) as r:
        return r.status, r.read()


def tls_params(port, timeout=5.0):
    """(protocol, cipher) a default client negotiates with 127.0.0.1:port."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        with tls_context().wrap_socket(s) as t:
            return t.version(), t.cipher()[0]


class Bench(BenchBase):
    def __init__(self, args, kids):
        BenchBase.__init__(self, args, kids)
        self.names = proxy_names(args, PEERS)
        self.targets = targets(args, PEERS)
        self.ports = {}  # target key -> {"http": port, "https": port}

    def make_cert(self):
        """Self-signed P-256 certificate (cheap handshakes for all)."""
        self.crt = os.path.join(self.dir, "cert.pem")
        self.key = os.path.join(self.dir, "key.pem")
        self.pem = os.path.join(self.dir, "haproxy.pem")
        rc, out = self.kids.run(
            [self.args.openssl, "req", "-x509", "-newkey", "ec",
             "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", self.key, "-out", self.crt, "-days", "2",
             "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1"],
            self.args.load_cpus, "openssl", timeout=30)
        if rc != 0:
            raise BenchError("openssl req failed: %s" % out.strip())
        with open(self.pem, "w") as f:  # HAProxy: cert and key in one file
            for path in (self.crt, self.key):
                with open(path) as src:
                    f.write(src.read())

    def start_proxies(self):
        self.targets = start_targets(self.targets, self.start_target)

    def start_target(self, t):
        """Starts one proxy at one worker count, config checked first."""
        bp = self.backend_ports
        a = self.args
        if t.name in ("ferry", FERRY_BASE):
            ferry = ferry_binary(a, t.name)
            run = [ferry, "-c", "{}"]
            conf = (lambda ps: ferry_conf(ps, bp, self.crt, self.key,
                                          t.workers))
            check = [ferry, "-c", "{}", "-t"]
            nports = 3  # plain, TLS, stats
        elif t.name == "haproxy":
            run = [a.haproxy, "-db", "-f", "{}"]
            conf = (lambda ps: haproxy_conf(ps, bp, self.pem, t.n))
            check = [a.haproxy, "-c", "-q", "-f", "{}"]
            nports = 2
        else:
            tag = t.key + "p"
            err = os.path.join(self.dir, tag + "-error.log")
            run = [a.nginx, "-p", self.dir, "-c", "{}", "-e", err]
            conf = (lambda ps: nginx_proxy_conf(
                self.dir, ps, bp, self.crt, self.key, t.n, tag))
            check = [a.nginx, "-t", "-q", "-p", self.dir, "-c", "{}",
                     "-e", err]
            nports = 2
        ports = self.start_proxy(
            t.key, lambda path: [x.replace("{}", path) for x in run], conf,
            lambda path: [x.replace("{}", path) for x in check],
            ports=nports)
        self.ports[t.key] = {"http": ports[0], "https": ports[1]}
        if nports == 3:
            self.stats[t.key] = (ports[2], None if t.workers == "auto"
                                 else int(t.workers))
            self.log_ferry_workers(t.key)

    def sanity(self):
        """Each proxy and scheme returns the body from all three backends."""
        for name in (t.key for t in self.targets):
            for scheme in SCHEMES:
                port = self.ports[name][scheme]
                get = http_get if scheme == "http" else https_get
                before = self.per_backend_accepts()
                for _ in range(6):
                    try:
                        status, body = get(port, "/")
                    except OSError as e:
                        raise BenchError("%s %s: GET / failed: %s"
                                         % (name, scheme, e))
                    if status != 200 or body != BODY:
                        raise BenchError("%s %s: GET / gave %s %r"
                                         % (name, scheme, status, body[:80]))
                after = self.per_backend_accepts()
                used = [a - b for a, b in zip(after, before)]
                # Proxies may send all six down one reused connection, so
                # the spread is checked on the backends' request counters.
                served = self.spread_ok(name, scheme, get, port)
                extra = ""
                if scheme == "https":
                    extra = "  %s %s" % tls_params(port)
                log("%s %s on port %d: GET / ok, new backend conns %s, "
                    "requests per backend %s%s"
                    % (name, scheme, port, used, served, extra))

    def per_backend_requests(self):
        out = []
        for port in self.backend_ports:
            _, body = http_get(port, "/nginx_status")
            lines = body.split(b"\n")
            try:
                out.append(int(lines[2].split()[2]))
            except (IndexError, ValueError):
                raise BenchError("cannot parse stub_status: %r" % body)
        return out

    def spread_ok(self, name, scheme, get, port):
        before = self.per_backend_requests()
        for _ in range(6):
            get(port, "/")
        after = self.per_backend_requests()
        # Each status request is itself one request on every backend.
        served = [a - b - 1 for a, b in zip(after, before)]
        if min(served) < 1:
            raise BenchError("%s %s: backends not all used: %s"
                             % (name, scheme, served))
        return served

    def measure(self, name, scheme, conns, seconds, quiet=True):
        port = self.ports[name][scheme]
        url = "%s://127.0.0.1:%d/" % (scheme, port)
        res = self.measure_window(
            name, lambda: self.run_wrk(url, conns, seconds), quiet,
            sample=self.stats.get(name))
        res["rate"] = res["reqs"] / res["secs"]
        res["cpu_unit"] = res["proxy_cpu"] / max(res["reqs"], 1) * 1e6
        res["p99_ms"] = 1e3 * res["p99"]
        res["util_pct"] = 100 * res["util"]
        return res

    def run_wrk(self, url, conns, seconds):
        argv = [self.args.wrk, "-t%d" % self.args.wrk_threads,
                "-c%d" % conns, "-d%ds" % seconds,
                "--timeout", "2s", "--latency", url]
        rc, out = self.kids.run(argv, self.args.load_cpus, "wrk",
                                timeout=seconds + 30)
        w = parse_wrk(out)
        if rc != 0 or w is None:
            raise BenchError("wrk failed (rc %d): %s" % (rc, out.strip()))
        if 50 not in w["latency"] or 99 not in w["latency"]:
            raise BenchError("no latency distribution from wrk: %s"
                             % out.strip())
        flags = []
        if w["non2xx"]:
            flags.append("%d non-2xx" % w["non2xx"])
        # Keep-alive with a healthy proxy gives no socket errors at all.
        if w["errors"] > self.args.max_errors:
            flags.append("%d socket errors" % w["errors"])
        w["flags"] = flags
        w["p50"] = w["latency"][50]
        w["p99"] = w["latency"][99]
        return w


# --------------------------------------------------------------------------
# Report.


SCALING_METRICS = (
    ("req/s", "rate", "%.0f"),
    ("proxy CPU us/req", "cpu_unit", "%.1f"),
    ("p99 latency, ms", "p99_ms", "%.2f"),
    ("proxy core busy, %", "util_pct", "%.0f"),
)


def case_label(case):
    return "%s c=%d" % case


def fmt_line(rnd, name, case, r):
    s = "round %d %-13s %-5s c=%-3d %7.0f req/s  p50 %6.2f ms  p99 %6.2f ms" \
        "  %5.1f us/req  core %3.0f%%  backend conns %4d  other %4.1f%%" \
        "  steal %4.1f%%" % (
            rnd, name, case[0], case[1], r["rate"], 1e3 * r["p50"],
            1e3 * r["p99"], r["cpu_unit"], 100 * r["util"],
            r["backend_conns"], 100 * r["other"] / r["wall"],
            100 * r["steal"] / r["wall"]) + fmt_workers(r)
    if r["flags"]:
        s += "  FLAGGED: " + ", ".join(r["flags"])
    return s


def summarize(results, cases, names):
    """Medians per case over the rounds where every proxy was clean.

    A case where some proxy has no clean round uses all rounds of every
    proxy (and is marked NOISY), so that the columns always compare
    measurements of the same kind. Paired ratios use the rounds where
    ferry and that peer were both clean (all rounds in a NOISY case).
    """
    rows = []
    for case in cases:
        noisy = any(not clean(results, n, case) for n in names)
        pick = (lambda r: True) if noisy else (lambda r: not r["flags"])
        med = {"noisy": noisy}
        for name in names:
            rs = [r for r in results[name][case] if pick(r)]
            m = dict(n=len(rs), total=len(results[name][case]))
            for key in ("rate", "p50", "p99", "cpu_unit", "util",
                        "backend_conns"):
                m[key] = statistics.median(r[key] for r in rs)
            med[name] = m
        for other in names[1:]:
            pairs = [(f, o) for f, o in zip(results["ferry"][case],
                                            results[other][case])
                     if pick(f) and pick(o)]
            for key in ("rate", "p50", "p99", "cpu_unit"):
                ratios = [f[key] / o[key] for f, o in pairs if o[key]]
                med["paired", other, key] = (
                    statistics.median(ratios) if ratios else float("nan"),
                    len(ratios))
        rows.append((case, med))
    return rows


RATIO_LABEL = {FERRY_BASE: "f/base", "haproxy": "f/hap", "nginx": "f/nginx"}


def print_table(rows, names, args, w):
    peers = names[1:]
    print()
    print("%s, HTTP/1.1 keep-alive, 64-byte body, medians of clean rounds"
          % " vs ".join({"haproxy": "HAProxy"}.get(n, n) for n in names))
    print("(%s;\n %s)" % (workers_note(args, w, PEERS), cpus_note(args)))
    hdr = "%-30s " % "metric" + " ".join("%10s" % n for n in names) + \
        "".join(" %9s %8s" % (RATIO_LABEL[o], "paired") for o in peers)
    print(hdr)
    print("-" * len(hdr))
    metrics = (
        ("req/s", "rate", 1.0, "%10.0f"),
        ("p50 latency, ms", "p50", 1e3, "%10.2f"),
        ("p99 latency, ms", "p99", 1e3, "%10.2f"),
        ("proxy CPU us/req", "cpu_unit", 1.0, "%10.1f"),
        ("proxy core busy, %", "util", 100.0, "%10.0f"),
        ("backend conns opened", "backend_conns", 1.0, "%10.0f"),
    )
    for (scheme, conns), med in rows:
        print("%s c=%d%s" % (scheme, conns,
                             "  (NOISY: no clean round for some proxy, "
                             "all rounds used)" if med["noisy"] else ""))
        for label, key, scale, fmt in metrics:
            cells = [fmt % (med[n][key] * scale) for n in names]
            ratios = []
            for other in peers:
                r = p = ""
                if key in ("rate", "p50", "p99", "cpu_unit"):
                    f, o = med["ferry"][key], med[other][key]
                    r = fmt_ratio(f / o if o else float("nan"))
                    pr = med.get(("paired", other, key))
                    if pr:
                        p = fmt_ratio(pr[0])
                ratios.append(" %9s %8s" % (r, p))
            print("  %-28s %s%s" % (label, " ".join(cells), "".join(ratios)))
        print("  %-28s %s%s" % (
            "rounds used", " ".join(
                "%10s" % ("%d/%d" % (med[n]["n"], med[n]["total"]))
                for n in names),
            "".join(" %9s %8s" % ("", med["paired", o, "rate"][1])
                    for o in peers)))
    print()
    print("%s: ferry's median over the peer's; paired: median of "
          "per-round ratios\nover rounds where both were clean. req/s > "
          "1.00x: ferry faster; latency and\nCPU us/req < 1.00x: ferry "
          "better. rounds used: clean rounds / all (paired: pairs).\nbackend "
          "conns: new connections the three backends accepted during a "
          "measurement." % ", ".join(RATIO_LABEL[o] for o in peers))
    if FERRY_BASE in names:
        print("ferry-base: the same config run from --ferry-base; f/base "
              "compares the two\nferry binaries.")


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(ap, quiet_wait=20)
    ap.add_argument("--openssl", default="/usr/bin/openssl")
    ap.add_argument("--rounds", type=int, default=5,
                    help="rounds per proxy and case (default 5; at least 3 "
                         "for a meaningful median)")
    ap.add_argument("--seconds", type=int, default=5,
                    help="duration of each wrk run (default 5)")
    ap.add_argument("--connections", default="50,200",
                    help="comma-separated wrk connection counts "
                         "(default 50,200)")
    ap.add_argument("--schemes", default="http,https",
                    help="http, https or both (default http,https)")
    ap.add_argument("--max-errors", type=int, default=0,
                    help="flag a measurement when wrk saw more socket "
                         "errors than this (default 0)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run for CI: 1 round, 1 s per measurement")
    args = ap.parse_args(argv)
    finish_common_args(ap, args)
    try:
        args.conns = [int(x) for x in args.connections.split(",")]
    except ValueError:
        ap.error("--connections: comma-separated integers")
    args.scheme_list = [s for s in args.schemes.split(",") if s]
    if not args.scheme_list or \
            any(s not in SCHEMES for s in args.scheme_list):
        ap.error("--schemes: http, https or both")
    if args.quick:
        args.rounds = 1
        args.seconds = 1
        args.quiet_wait = min(args.quiet_wait, 2)
    if args.rounds < 1 or args.seconds < 1 or min(args.conns) < 1:
        ap.error("counts must be positive")
    if min(args.conns) < args.wrk_threads:
        ap.error("--connections: at least one per wrk thread (%d)"
                 % args.wrk_threads)
    return args


def main(argv):
    args = parse_args(argv)
    setup_process()
    kids = Children()
    bench = Bench(args, kids)
    try:
        check_cpus(args)
        check_tools(ferry_tools(args) + (args.haproxy, args.nginx, args.wrk,
                                         args.openssl))
        # Keep the script off the proxies' CPUs (unless they share).
        os.sched_setaffinity(0, args.load_cpus)
        bench.make_dir()
        bench.make_cert()
        bench.start_backends()
        bench.start_proxies()
        bench.sanity()
        cases = [(s, c) for s in args.scheme_list for c in args.conns]

        keys = [t.key for t in bench.targets]

        # Warm-up (not counted): allocators, TLS, backend connections.
        if not args.quick:
            for case in cases:
                for key in keys:
                    bench.measure(key, case[0], case[1], 1, quiet=False)

        results = run_rounds(
            args.rounds, args.quick, keys, cases,
            lambda key, case: bench.measure(key, case[0], case[1],
                                            args.seconds), fmt_line)
        for w in args.worker_list:
            sub = at_workers(results, bench.targets, w)
            names = names_at(bench.names, bench.targets, w)
            print_table(summarize(sub, cases, names), names, args, w)
        print_scaling(args, bench.names, results, cases, case_label,
                      lambda case: SCALING_METRICS)
        print_spread(args, results, bench.targets, cases, case_label)
        print_summary(args, results, bench.targets, cases, case_label,
                      PEERS, "request", "req/s")
        return 0
    except BenchError as e:
        log("bench_http: error: %s" % e)
        return 1
    except KeyboardInterrupt:
        log("bench_http: interrupted")
        return 130
    finally:
        finish(kids, bench, args.keep)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
