"""global.workers: several event-loop threads behave as one.

Each worker accepts on its own SO_REUSEPORT socket, so the kernel spreads
new connections over the workers by a hash of their addresses: a test
cannot choose the worker a connection lands on. Tests open enough
connections that all of them landing on one worker is practically
impossible (4 workers, 24 or more connections: below 1e-13), and read
ferry_worker_connections to show that more than one worker took part.
"""
import collections
import os
import re
import selectors
import signal
import threading
import time

import pytest

from conftest import can_connect, free_port, run_ferry, scaled, wait_for
from test_dns import start_backends
from test_http import RawServer, read_response
from test_reload import reload
from test_stats import get, parse_metrics
from test_tcp import banner, connect, read_line


def conf(port, servers, workers=4, mode="tcp", glob="", fe="", be="",
         stats_port=None, resolver=None, listens=None):
    lines = ["[global]", "log_level = debug", "access_log = stderr",
             f"workers = {workers}", glob, "[stats]",
             f"listen = 127.0.0.1:{stats_port}" if stats_port
             else "listen = off"]
    if resolver is not None:
        lines += ["[resolver]", resolver]
    lines.append("[frontend front]")
    lines += [f"listen = {a}" for a in listens or [f"127.0.0.1:{port}"]]
    lines += [f"mode = {mode}", "backend = pool", fe, "[backend pool]"]
    lines += [f"server = {s}" for s in servers]
    lines.append(be)
    return "\n".join(lines) + "\n"


def metrics(sport):
    status, _, body = get(sport, "/metrics")
    assert status == 200, body
    return parse_metrics(body)


WORKER_SAMPLE = re.compile(r'ferry_worker_connections\{worker="(\d+)"\}')


def worker_conns(sport, samples=None):
    """{worker index: client connections open on it}."""
    samples = metrics(sport) if samples is None else samples
    out = {}
    for key, value in samples.items():
        m = WORKER_SAMPLE.fullmatch(key)
        if m:
            out[int(m.group(1))] = int(value)
    return out


def frontend_active(samples):
    return int(samples['ferry_frontend_active_connections{frontend="front"}'])


def member_active(samples, addr):
    return int(samples["ferry_server_active_connections{backend=\"pool\","
                       f"server=\"{addr}\",address=\"{addr}\"}}"])


def busy_workers(spread):
    return sorted(w for w, n in spread.items() if n > 0)


def start_line(f):
    m = re.search(r"ferry \S+ started \(config (.*), (\d+) (workers?)\)",
                  f.output())
    assert m, f.output()[-2000:]
    return m.group(1), int(m.group(2)), m.group(3)


def http_get(port, path="/", timeout=10):
    """One request on a new connection: (status, body)."""
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=scaled(timeout))
    try:
        c.request("GET", path, headers={"Connection": "close"})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


# ---------------------------------------------------------------------------
# Worker count, the start line, the gauge


@pytest.mark.parametrize("n", [1, 3])
def test_worker_count_start_line_and_gauge(backends, ferry, n):
    bs = backends(1, mode="tcp")
    port, sport = free_port(), free_port()
    f = ferry(conf(port, [bs[0].addr], workers=n, stats_port=sport), [port])
    assert start_line(f) == (f.conf, n, "worker" if n == 1 else "workers")
    _, _, body = get(sport, "/metrics")
    assert "# TYPE ferry_worker_connections gauge" in body
    # One sample per worker, every one of them zero while nothing is open.
    assert worker_conns(sport, parse_metrics(body)) == \
        {w: 0 for w in range(n)}
    with connect(port) as s:
        assert read_line(s) == "b1"
        spread = worker_conns(sport)
        assert sum(spread.values()) == 1 and set(spread) == set(range(n))


@pytest.mark.parametrize("ncpu", [1, 2])
def test_workers_auto_follows_affinity_mask(backends, ferry, ncpu):
    # As `taskset -c 0` and `taskset -c 0,1` (first CPUs this test may use).
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < ncpu:
        pytest.skip(f"needs {ncpu} CPUs, the affinity mask has "
                    f"{len(allowed)}")
    bs = backends(1, mode="tcp")
    port, sport = free_port(), free_port()
    f = ferry(conf(port, [bs[0].addr], workers="auto", stats_port=sport),
              [port], cpus=set(allowed[:ncpu]))
    assert start_line(f)[1:] == (ncpu, "worker" if ncpu == 1 else "workers")
    assert set(worker_conns(sport)) == set(range(ncpu))
    assert banner(port) == "b1"


def test_workers_values_checked(tmp):
    path = os.path.join(tmp, "w.conf")
    base = conf(1, ["127.0.0.1:9"])
    for value, ok in [("1", True), ("4", True), ("256", True),
                      ("auto", True), ("0", False), ("257", False),
                      ("-1", False), ("two", False), ("", False),
                      ("4x", False)]:
        with open(path, "w") as fh:
            fh.write(base.replace("workers = 4", f"workers = {value}"))
        r = run_ferry("-t", "-c", path)
        if ok:
            assert (r.returncode, r.stdout) == (0, "configuration OK\n"), \
                (value, r.stderr)
        else:
            assert r.returncode == 1, (value, r.stdout)
            # The error is on the workers line (line 4) and names the key.
            assert f"{path}:4: " in r.stderr and "workers" in r.stderr, \
                (value, r.stderr)


def test_workers_change_on_reload_needs_restart(backends, ferry):
    bs = backends(1, mode="tcp")
    port, sport = free_port(), free_port()
    f = ferry(conf(port, [bs[0].addr], workers=2, stats_port=sport), [port])
    reload(f, conf(port, [bs[0].addr], workers=3, stats_port=sport))
    assert "workers changed" in f.output()
    # Still two workers, still serving.
    assert set(worker_conns(sport)) == {0, 1}
    assert banner(port) == "b1"


# ---------------------------------------------------------------------------
# One DNS query for a name however many workers wait on it


def start_named_backends(tmp, procs, hosts, mode):
    """Backends on 127.0.0.x sharing one port, as a name's members do."""
    return start_backends(tmp, procs, hosts, mode)[1]


@pytest.mark.parametrize("mode", ["tcp", "http"])
def test_herd_on_cold_name_over_workers_one_query(tmp, procs, dnsfault,
                                                  ferry, mode):
    hosts = ["127.0.0.2", "127.0.0.3"]
    bport = start_named_backends(tmp, procs, hosts, mode)
    # The answer comes 3 s after the query; start-up stops waiting for it
    # after 200 ms, so ferry accepts while the query is in flight.
    delay_ms = int(scaled(3000))
    dnsfault.set("herd.test", a=hosts, ttl=60, delay_ms=delay_ms)
    port, sport = free_port(), free_port()
    f = ferry(conf(port, [f"herd.test:{bport}"], workers=4, mode=mode,
                   stats_port=sport,
                   resolver=f"nameservers = 127.0.0.1:{dnsfault.port}\n"
                            "hosts_file = off\nstartup_timeout = 200ms\n"
                            f"attempts = 1\ntimeout = {delay_ms + 20000}ms",
                   be=f"health_check = none\n"
                      f"timeout_connect = {delay_ms // 1000 + 30}s"),
              [port])
    assert "herd.test not resolved within startup_timeout" in f.output()
    socks = []
    try:
        for _ in range(200):
            s = connect(port, timeout=scaled(30))
            if mode == "http":
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n"
                          b"Connection: close\r\n\r\n")
            socks.append(s)
        # All 200 inside ferry, on every worker, before the answer.
        wait_for(lambda: sum(worker_conns(sport).values()) == 200, 10,
                 what="ferry to accept the 200 connections")
        spread = worker_conns(sport)
        assert "herd.test:%d now has" % bport not in f.output(), \
            "the answer came before the herd was in (machine too slow?)"
        assert busy_workers(spread) == [0, 1, 2, 3], spread
        assert dnsfault.count("herd.test", "A") == 1
        # Every one of them is served once the answer comes.
        names = []
        for s in socks:
            if mode == "tcp":
                names.append(read_line(s))
            else:
                st, _, body = read_response(s.makefile("rb"))
                names.append(body.decode().strip() if st == 200 else st)
        assert collections.Counter(names) == {hosts[0]: 100,
                                              hosts[1]: 100}, names
    finally:
        for s in socks:
            s.close()
    assert dnsfault.count("herd.test", "A") == 1
    assert dnsfault.count("herd.test", "AAAA") == 0
    assert f.output().count("server herd.test:%d now has 2 addresses"
                            % bport) == 1


# ---------------------------------------------------------------------------
# leastconn sees every worker's connections


def test_leastconn_counts_connections_of_every_worker(backends, ferry):
    bs = backends(3, mode="tcp")
    port, sport = free_port(), free_port()
    ferry(conf(port, [b.addr for b in bs], workers=4, stats_port=sport,
               be="balance = leastconn\nhealth_check = none"), [port])
    held = []

    def open_some(n):
        """n connections one after the other, each held open; every pick
        happens after the previous one is counted (its banner came)."""
        names = []
        for _ in range(n):
            s = connect(port)
            name = read_line(s)
            held.append((s, name))
            names.append(name)
        return collections.Counter(names)

    def close_some(name, n):
        mine = [h for h in held if h[1] == name][:n]
        for h in mine:
            h[0].close()
            held.remove(h)

    def open_per_member():
        return collections.Counter(n for _, n in held)

    def ferry_per_member():
        s = metrics(sport)
        return {b.name: member_active(s, b.addr) for b in bs}

    try:
        assert open_some(30) == {"b1": 10, "b2": 10, "b3": 10}
        assert ferry_per_member() == {"b1": 10, "b2": 10, "b3": 10}
        spread = worker_conns(sport)
        assert sum(spread.values()) == 30, spread
        assert len(busy_workers(spread)) >= 2, spread
        # b1's sessions end (on whichever workers had them): the next picks,
        # on whichever workers get the new connections, all go to b1.
        close_some("b1", 10)
        wait_for(lambda: ferry_per_member()["b1"] == 0, 5,
                 what="b1's sessions to end in ferry")
        assert open_some(10) == {"b1": 10}
        # Uneven: b2 and b3 lose 6 and 2; the next 8 fill exactly those.
        close_some("b2", 6)
        close_some("b3", 2)
        wait_for(lambda: ferry_per_member() == {"b1": 10, "b2": 4, "b3": 8},
                 5, what="the sessions to end in ferry")
        assert open_some(8) == {"b2": 6, "b3": 2}
        assert open_per_member() == {"b1": 10, "b2": 10, "b3": 10}
        # One more round: every member one more.
        assert open_some(3) == {"b1": 1, "b2": 1, "b3": 1}
        assert ferry_per_member() == {"b1": 11, "b2": 11, "b3": 11}
    finally:
        for s, _ in held:
            s.close()


# ---------------------------------------------------------------------------
# Round-robin shares and the per-worker gauge


def test_round_robin_exact_and_gauge_sums_to_open(backends, ferry):
    bs = backends(3, mode="tcp")
    port, sport = free_port(), free_port()
    ferry(conf(port, [b.addr for b in bs], workers=4, stats_port=sport,
               be="balance = roundrobin\nhealth_check = none"), [port])
    socks, seen = [], []
    try:
        for _ in range(300):
            s = connect(port)
            seen.append(read_line(s))
            socks.append(s)
        # One rotation for all workers: exact shares, in order.
        assert collections.Counter(seen) == {"b1": 100, "b2": 100,
                                             "b3": 100}
        assert seen == ["b1", "b2", "b3"] * 100
        m = metrics(sport)
        spread = worker_conns(sport, m)
        assert sum(spread.values()) == frontend_active(m) == 300, spread
        assert busy_workers(spread) == [0, 1, 2, 3], spread
        # The gauge follows closes on every worker.
        for s in socks[:120]:
            s.close()

        def settled(n):
            m = metrics(sport)
            return sum(worker_conns(sport, m).values()) == \
                frontend_active(m) == n

        wait_for(lambda: settled(180), 5, what="the gauges to show 180")
        for s in socks[120:]:
            s.close()
        wait_for(lambda: settled(0), 5, what="the gauges to show 0")
        assert set(worker_conns(sport).values()) == {0}
    finally:
        for s in socks:
            s.close()


def test_http_round_robin_exact_over_workers(backends, ferry):
    import http.client
    bs = backends(3, mode="http")
    port, sport = free_port(), free_port()
    ferry(conf(port, [b.addr for b in bs], workers=4, mode="http",
               stats_port=sport,
               be="balance = roundrobin\nhealth_check = none"), [port])
    # 150 requests, each on a new connection...
    bodies = []
    for _ in range(150):
        status, body = http_get(port)
        assert status == 200
        bodies.append(body)
    assert bodies == [b"b1\n", b"b2\n", b"b3\n"] * 50
    # ...and 150 on 12 keep-alive connections (on several workers), taken
    # in turn: still one rotation.
    conns = [http.client.HTTPConnection("127.0.0.1", port,
                                        timeout=scaled(10))
             for _ in range(12)]
    try:
        for c in conns:
            c.connect()
        wait_for(lambda: sum(worker_conns(sport).values()) == 12, 5,
                 what="12 open connections in the gauge")
        assert len(busy_workers(worker_conns(sport))) >= 2
        bodies = []
        for i in range(150):
            c = conns[i % 12]
            c.request("GET", "/")
            r = c.getresponse()
            assert r.status == 200
            bodies.append(r.read())
        assert collections.Counter(bodies) == {b"b1\n": 50, b"b2\n": 50,
                                               b"b3\n": 50}
        assert bodies == [b"b1\n", b"b2\n", b"b3\n"] * 50
    finally:
        for c in conns:
            c.close()


# ---------------------------------------------------------------------------
# max_connections is one limit for all workers


class BannerClients:
    """Many client connections to a tcp frontend, read without blocking:
    a connection is 'served' once the member's banner line came."""

    def __init__(self, port, n):
        self.sel = selectors.DefaultSelector()
        self.socks = []
        self.data = {}
        for _ in range(n):
            s = connect(port)
            s.setblocking(False)
            self.sel.register(s, selectors.EVENT_READ)
            self.socks.append(s)
            self.data[s] = b""
        self.served = []
        self.closed = []

    def pump(self):
        for key, _ in self.sel.select(timeout=0.01):
            s = key.fileobj
            try:
                chunk = s.recv(100)
            except BlockingIOError:
                continue
            assert chunk, "ferry closed a waiting connection"
            self.data[s] += chunk
            if self.data[s] == b"b1\n":
                self.served.append(s)
                self.sel.unregister(s)
            else:
                assert b"b1\n".startswith(self.data[s]), self.data[s]

    def open_served(self):
        return len(self.served) - len(self.closed)

    def waiting(self):
        return len(self.socks) - len(self.served)

    def close_served(self, n):
        for s in [s for s in self.served if s not in self.closed][:n]:
            s.close()
            self.closed.append(s)

    def close(self):
        self.sel.close()
        for s in self.socks:
            s.close()


def test_max_connections_is_global(backends, ferry):
    bs = backends(1, mode="tcp")
    port, sport = free_port(), free_port()
    limit = 10
    f = ferry(conf(port, [bs[0].addr], workers=4, stats_port=sport,
                   glob=f"max_connections = {limit}",
                   be="health_check = none"), [port])
    seen_workers = set()

    def check_limit(cl):
        # Seen from the clients (a lower bound on what ferry holds) and
        # from ferry's own gauges: never above the limit.
        cl.pump()
        assert cl.open_served() <= limit
        s = metrics(sport)
        spread = worker_conns(sport, s)
        seen_workers.update(busy_workers(spread))
        assert sum(spread.values()) <= limit, spread
        assert frontend_active(s) <= limit
        return cl.open_served()

    cl = BannerClients(port, 30)  # 20 of them wait in the kernel's queues
    try:
        wait_for(lambda: check_limit(cl) == limit, 5,
                 what=f"{limit} connections served")
        f.wait_log(f"max_connections ({limit}) reached")
        while cl.waiting():
            # At the limit with connections waiting: for a while (this
            # watches an invariant, it waits for nothing) none more is
            # taken, on any worker.
            end = time.monotonic() + 0.3
            while time.monotonic() < end:
                assert check_limit(cl) == limit
            # Five close: accepting resumes (on whichever workers hold the
            # waiting connections) and takes exactly five more.
            cl.close_served(5)
            want = min(limit, cl.open_served() + cl.waiting())
            wait_for(lambda: check_limit(cl) == want, 5,
                     what=f"accepting to resume up to {want} open")
        assert len(cl.served) == 30
        # 30 connections over 4 workers: more than one took some.
        assert len(seen_workers) >= 2, seen_workers
        # One limit, one warning: as with one worker (test_tcp's
        # test_max_connections_pauses_accept), not one per worker.
        assert f.output().count(f"max_connections ({limit}) reached") <= 2
    finally:
        cl.close()


# ---------------------------------------------------------------------------
# SIGTERM drains every worker


def test_sigterm_drains_http_on_every_worker(ferry):
    gate = threading.Semaphore(0)
    arrived = []

    def member(srv, conn, f):
        # Holds every /slow request until the test lets one through.
        while True:
            head = srv.read_head(f)
            if head is None:
                return
            arrived.append(head[0])
            if head[0].startswith("GET /slow"):
                if not gate.acquire(timeout=scaled(60)):
                    return
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")

    srv = RawServer(member)
    port, sport = free_port(), free_port()
    f = ferry(conf(port, [srv.addr], workers=4, mode="http",
                   stats_port=sport, glob="shutdown_timeout = 5m",
                   be="health_check = none"), [port])
    busy, idle, results = [], [], {}
    try:
        # Idle keep-alive connections, one request done on each.
        for _ in range(8):
            s = connect(port, timeout=scaled(10))
            s.sendall(b"GET /fast HTTP/1.1\r\nHost: x\r\n\r\n")
            fi = s.makefile("rb")
            assert read_response(fi)[0] == 200
            idle.append((s, fi))
        # Busy ones: a request each, held at the member.
        for i in range(24):
            s = connect(port, timeout=scaled(30))
            s.sendall(b"GET /slow/%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
            busy.append(s)
        wait_for(lambda: sum(a.startswith("GET /slow") for a in arrived)
                 == 24, 10, what="24 slow requests at the member")
        spread = worker_conns(sport)
        assert sum(spread.values()) == 32, spread
        assert len(busy_workers(spread)) >= 2, spread

        def finish(i, s):
            try:
                results[i] = read_response(s.makefile("rb"))
            except OSError as e:
                results[i] = repr(e)

        readers = [threading.Thread(target=finish, args=(i, s))
                   for i, s in enumerate(busy)]
        for t in readers:
            t.start()
        f.p.send_signal(signal.SIGTERM)
        f.wait_log("stopping")
        # Every worker's listening socket closes: a connection hashed to
        # any of them is refused.
        wait_for(lambda: not any(can_connect("127.0.0.1", port)
                                 for _ in range(16)), 5,
                 what="every worker's listener to close")
        # Idle keep-alive connections are closed at once, on every worker.
        for s, fi in idle:
            assert fi.read(1) == b""
        assert f.alive() and results == {}
        # 23 of the 24 finish; ferry waits for the last one.
        for _ in range(23):
            gate.release()
        wait_for(lambda: len(results) == 23, 10,
                 what="23 slow requests to finish")
        assert f.alive(), f.output()[-2000:]
        gate.release()
        wait_for(lambda: len(results) == 24, 10,
                 what="the last slow request to finish")
        for i, r in results.items():
            assert not isinstance(r, str), (i, r)
            st, h, body = r
            assert (st, body, h.get("connection")) == (200, b"ok\n",
                                                       "close"), (i, r)
        assert f.p.wait(scaled(10)) == 0
        assert "all connections closed" in f.output()
        for t in readers:
            t.join(scaled(5))
    finally:
        for _ in range(24):
            gate.release()
        for s in busy:
            s.close()
        for s, _ in idle:
            s.close()
        srv.close()


def test_sigterm_drains_tcp_sessions_on_every_worker(backends, ferry):
    bs = backends(1, mode="tcp")
    port, sport = free_port(), free_port()
    f = ferry(conf(port, [bs[0].addr], workers=4, stats_port=sport,
                   glob="shutdown_timeout = 5m"), [port])
    socks = []
    try:
        for _ in range(24):
            s = connect(port)
            assert read_line(s) == "b1"
            socks.append(s)
        spread = worker_conns(sport)
        assert sum(spread.values()) == 24 and len(busy_workers(spread)) >= 2
        f.p.send_signal(signal.SIGTERM)
        f.wait_log("stopping")
        wait_for(lambda: not any(can_connect("127.0.0.1", port)
                                 for _ in range(16)), 5,
                 what="every worker's listener to close")
        # Every session goes on working while ferry drains; closing them
        # one by one, ferry stays until the last is gone, then exits 0.
        for i, s in enumerate(socks):
            s.sendall(b"still here %d\n" % i)
            assert read_line(s) == f"still here {i}"
        while len(socks) > 1:
            socks.pop().close()
        assert f.alive()
        socks[0].sendall(b"last\n")
        assert read_line(socks[0]) == "last"
        assert f.alive()
        socks.pop().close()
        assert f.p.wait(scaled(10)) == 0
        assert "all connections closed" in f.output()
    finally:
        for s in socks:
            s.close()


# ---------------------------------------------------------------------------
# Reloads under load: nothing refused, nothing reset, on any worker


def test_reloads_under_load_with_four_workers(backends, ferry):
    import http.client
    bs = backends(3, mode="http")
    names = {b"b1\n", b"b2\n", b"b3\n"}
    port, extra, sport = free_port(), free_port(), free_port()
    sets = [[bs[0], bs[1]], [bs[1], bs[2]], [bs[0], bs[2]], bs]

    def text(i):
        listens = [f"127.0.0.1:{port}"]
        if i % 2:
            listens.append(f"127.0.0.1:{extra}")
        return conf(port, [b.addr for b in sets[i % len(sets)]], workers=4,
                    mode="http", stats_port=sport, listens=listens,
                    be="health_check = none") + f"; version {i}\n"

    f = ferry(text(0), [port])
    failures, done = [], collections.Counter()
    stop = threading.Event()

    def check(where, status, body):
        if status != 200 or body not in names:
            failures.append((where, status, body))
        else:
            done[where] += 1

    def keepalive_client(k):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=scaled(10))
        try:
            while not stop.is_set():
                c.request("GET", "/")
                r = c.getresponse()
                check(f"keep-alive {k}", r.status, r.read())
        except (OSError, http.client.HTTPException) as e:
            failures.append((f"keep-alive {k}", repr(e)))
        finally:
            c.close()

    def new_connection_client(k):
        try:
            while not stop.is_set():
                check(f"new {k}", *http_get(port))
        except (OSError, http.client.HTTPException) as e:
            failures.append((f"new {k}", repr(e)))

    # Parked keep-alive connections, on several workers, used after every
    # reload; and a slow request in flight through all of it.
    parked = [http.client.HTTPConnection("127.0.0.1", port,
                                         timeout=scaled(10))
              for _ in range(16)]
    for c in parked:
        c.request("GET", "/")
        r = c.getresponse()
        check("parked", r.status, r.read())
    spread = worker_conns(sport)
    assert sum(spread.values()) == 16 and len(busy_workers(spread)) >= 2, \
        spread
    slow = http.client.HTTPConnection("127.0.0.1", port, timeout=scaled(30))
    slow.request("GET", "/delay/2000")
    threads = [threading.Thread(target=keepalive_client, args=(k,))
               for k in range(2)]
    threads += [threading.Thread(target=new_connection_client, args=(k,))
                for k in range(2)]
    for t in threads:
        t.start()
    try:
        for i in range(1, 13):
            before = sum(done.values())
            reload(f, text(i))
            for c in parked:
                c.request("GET", "/")
                r = c.getresponse()
                check("parked", r.status, r.read())
            if i % 2:
                # The added address takes new connections at once, on
                # every worker's socket.
                for _ in range(8):
                    check("added listener", *http_get(extra))
            else:
                wait_for(lambda: not any(can_connect("127.0.0.1", extra)
                                         for _ in range(8)), 5,
                         what="the removed listener to close everywhere")
            # Traffic goes on between reloads.
            wait_for(lambda: sum(done.values()) >= before + 20 or failures,
                     10, what="requests between reloads")
            assert failures == [], failures
    finally:
        stop.set()
        for t in threads:
            t.join(scaled(15))
    assert not any(t.is_alive() for t in threads)
    r = slow.getresponse()
    check("slow", r.status, r.read())
    slow.close()
    for c in parked:
        c.close()
    assert failures == []
    assert f.output().count("reload done") == 12
    assert all(done[f"keep-alive {k}"] > 12 and done[f"new {k}"] > 12
               for k in range(2)), done
    assert done["parked"] == 16 * 13 and done["slow"] == 1
    assert done["added listener"] == 8 * 6
