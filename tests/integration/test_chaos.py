"""Misbehaving clients against misbehaving members, all at once.

The parsers are fuzzed on their own (tests/fuzz); this drives the proxies'
connection state machines instead. Clients send partial heads, garbage,
pipelines, bodies, resets and TLS cut short; members answer normally, late,
with garbage, half a response, a wrong length or a reset. A second run
adds a DNS name whose answers keep changing and failing, and a SIGHUP every
half second. Whatever happens to a single request, ferry must stay up with
no sanitizer report, free every connection once the dust settles, and go
on serving.

The run is random but bounded (FERRY_CHAOS_SECONDS, default 8 s) and
seeded: FERRY_CHAOS_SEED replays a run, and the seed is in every failure.
"""
import json
import os
import random
import signal
import socket
import ssl
import threading
import time
import urllib.request

from conftest import free_port, wait_for
from test_tls import make_cert

SECONDS = float(os.environ.get("FERRY_CHAOS_SECONDS", "8"))
CLIENT_THREADS = 8


def recv_head(s, limit=65536):
    """Bytes up to the end of a head (or whatever came before EOF)."""
    data = b""
    while b"\r\n\r\n" not in data and len(data) < limit:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def reset(s):
    """Closes with an RST instead of a FIN."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
    s.close()


class ChaosMember:
    """A member that misbehaves in a new way on most requests, until told
    to calm down."""

    OK = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"

    def __init__(self, seed, host="127.0.0.1", port=0):
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.calm = False
        self.stop = False
        self.ls = socket.socket()
        self.ls.bind((host, port))
        self.ls.listen(256)
        self.ls.settimeout(0.2)
        self.port = self.ls.getsockname()[1]
        self.thread = threading.Thread(target=self.accept_loop, daemon=True)
        self.thread.start()

    def pick(self):
        with self.lock:
            return "normal" if self.calm else self.rng.choice((
                "normal", "normal", "normal", "normal", "close", "reset",
                "half_head", "garbage", "short_body", "late", "chunked",
                "bad_chunked", "status_500", "no_length_then_close",
                "body_on_204", "interim_100"))

    def accept_loop(self):
        while not self.stop:
            try:
                c, _ = self.ls.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self.serve, args=(c,),
                             daemon=True).start()

    def serve(self, c):
        c.settimeout(5)
        try:
            while not self.stop:
                head = recv_head(c)
                if not head:
                    break
                if not self.answer(c, self.pick()):
                    break
        except OSError:
            pass
        finally:
            c.close()

    def answer(self, c, how):
        """Sends one answer; False when the connection is done."""
        if how == "normal":
            c.sendall(self.OK)
            return True
        if how == "close":
            return False
        if how == "reset":
            reset(c)
            return False
        if how == "half_head":
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Le")
            return False
        if how == "garbage":
            c.sendall(bytes(self.rng.randrange(256) for _ in range(300)))
            return False
        if how == "short_body":
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")
            return False
        if how == "late":
            time.sleep(1.5)  # past timeout_server: ferry gives up first
            c.sendall(self.OK)
            return True
        if how == "chunked":
            c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"3\r\nok\n\r\n0\r\n\r\n")
            return True
        if how == "bad_chunked":
            c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"zz\r\nok\n\r\n")
            return False
        if how == "status_500":
            c.sendall(b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n")
            return True
        if how == "no_length_then_close":
            c.sendall(b"HTTP/1.1 200 OK\r\n\r\nuntil close")
            return False
        if how == "body_on_204":
            c.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"
                      b"stray")
            return False
        # interim_100: an unasked-for 100 Continue, then the answer.
        c.sendall(b"HTTP/1.1 100 Continue\r\n\r\n" + self.OK)
        return True

    def close(self):
        self.stop = True
        self.ls.close()
        self.thread.join(5)


REQ = b"GET /x HTTP/1.1\r\nHost: chaos\r\n\r\n"


def client_actions(rng, http_ports, tcp_port, tls_port, tls_ctx):
    """One misbehaving client step; returns the number of complete
    responses it saw (0 is fine: most steps are meant to fail)."""
    action = rng.choice((
        "get", "get", "pipeline", "post", "chunked_post", "expect",
        "partial_then_close", "partial_then_reset", "garbage",
        "close_before_reading", "huge_head", "http10", "upgrade", "tcp",
        "tls_get", "tls_garbage", "tls_cut"))
    port = tls_port if action.startswith("tls") else (
        tcp_port if action == "tcp" else rng.choice(http_ports))
    s = socket.create_connection(("127.0.0.1", port), timeout=4)
    try:
        if action == "get":
            for _ in range(rng.randrange(1, 4)):
                s.sendall(REQ)
                if not recv_head(s):
                    return 0
            return 1
        if action == "pipeline":
            s.sendall(REQ * rng.randrange(2, 6))
        elif action == "post":
            body = os.urandom(rng.randrange(0, 200000))
            s.sendall(b"POST /p HTTP/1.1\r\nHost: c\r\nContent-Length: "
                      + str(len(body)).encode() + b"\r\n\r\n" + body)
        elif action == "chunked_post":
            s.sendall(b"POST /p HTTP/1.1\r\nHost: c\r\nTransfer-Encoding: "
                      b"chunked\r\n\r\n5\r\nhello\r\n"
                      + (b"0\r\n\r\n" if rng.random() < 0.5 else b"ff\r\nab"))
        elif action == "expect":
            s.sendall(b"PUT /e HTTP/1.1\r\nHost: c\r\nExpect: 100-continue\r\n"
                      b"Content-Length: 4\r\n\r\n")
            if rng.random() < 0.5:
                s.sendall(b"data")
        elif action == "partial_then_close":
            s.sendall(REQ[:rng.randrange(1, len(REQ) - 1)])
            return 0
        elif action == "partial_then_reset":
            s.sendall(REQ[:rng.randrange(1, len(REQ) - 1)])
            reset(s)
            return 0
        elif action == "garbage":
            s.sendall(bytes(rng.randrange(256) for _ in range(500)))
        elif action == "close_before_reading":
            s.sendall(REQ)
            reset(s)
            return 0
        elif action == "huge_head":
            s.sendall(b"GET / HTTP/1.1\r\nHost: c\r\nX-Big: "
                      + b"a" * 40000 + b"\r\n\r\n")
        elif action == "http10":
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        elif action == "upgrade":
            s.sendall(b"GET /ws HTTP/1.1\r\nHost: c\r\nConnection: Upgrade\r\n"
                      b"Upgrade: websocket\r\n\r\nframes?")
        elif action == "tcp":
            s.sendall(REQ if rng.random() < 0.5 else os.urandom(2000))
            if rng.random() < 0.3:
                reset(s)
                return 0
        elif action == "tls_get":
            t = tls_ctx.wrap_socket(s, server_hostname="localhost")
            s = t
            t.sendall(REQ)
        elif action == "tls_garbage":
            s.sendall(b"\x16\x03\x01\x02\x00" + os.urandom(600))
        elif action == "tls_cut":
            # A handshake that stops half way, as a reset.
            s.sendall(b"\x16\x03\x01\x00\xc8\x01\x00\x00\xc4\x03\x03"
                      + os.urandom(40))
            reset(s)
            return 0
        return 1 if recv_head(s).startswith(b"HTTP/1.") else 0
    finally:
        try:
            s.close()
        except OSError:
            pass


def metrics(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats",
                                timeout=5) as r:
        return json.loads(r.read())


def active(stats_port):
    st = metrics(stats_port)
    return {f["name"]: f["active_connections"] for f in st["frontends"]}


def run_clients(f, seed, http_ports, tcp_port, tls_port, tls_ctx):
    """CLIENT_THREADS misbehaving clients for SECONDS; returns (steps,
    complete answers)."""
    rng = random.Random(seed)
    seen = [0, 0]
    errors = []
    lock = threading.Lock()

    def client(cseed):
        crng = random.Random(cseed)
        deadline = time.monotonic() + SECONDS
        while time.monotonic() < deadline and f.alive():
            answers = 0
            try:
                answers = client_actions(crng, http_ports, tcp_port,
                                         tls_port, tls_ctx)
            except (OSError, ssl.SSLError):
                pass  # resets and timeouts are the point
            except Exception as e:  # a bug in this test, not in ferry
                errors.append(repr(e))
                return
            with lock:
                seen[0] += 1
                seen[1] += answers

    threads = [threading.Thread(target=client, args=(rng.random(),))
               for _ in range(CLIENT_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(SECONDS + 30)
    msg = f"seed {seed}"
    print(f"chaos: {msg}: {seen[0]} client steps, {seen[1]} answers")
    assert not errors, (msg, errors[:3])
    assert f.alive(), (msg, f.output()[-3000:])
    assert seen[0] > 50 and seen[1] > seen[0] // 4, (msg, seen)


def chaos_conf(stats_port, http_port, tls_port, tcp_port, calm_port, crt,
               key, servers, calm_addr, extra_frontends="", extra=""):
    lines = "\n".join(f"server = {a}" for a in servers)
    return f"""
[global]
log_level = info
[stats]
listen = 127.0.0.1:{stats_port}
{extra}
[frontend web]
listen = 127.0.0.1:{http_port}
mode = http
backend = chaos
timeout_client = 2s
timeout_request = 2s
max_header_size = 16k
[frontend tls]
listen = 127.0.0.1:{tls_port}
mode = http
backend = chaos
tls_cert = {crt}
tls_key = {key}
timeout_client = 2s
timeout_request = 2s
[frontend l4]
listen = 127.0.0.1:{tcp_port}
mode = tcp
backend = chaos
timeout_client = 2s
[frontend calm]
listen = 127.0.0.1:{calm_port}
mode = http
backend = calm
{extra_frontends}
[backend chaos]
balance = leastconn
{lines}
health_check = none
timeout_connect = 1s
timeout_server = 1s
retries = 1
[backend calm]
server = {calm_addr}
"""


def settle(f, stats_port, members, calm_port, http_ports, msg):
    """After the storm: every connection freed, and clean answers again
    once the members behave."""
    wait_for(lambda: all(v == 0 for v in active(stats_port).values()),
             15, what=f"all frontends idle ({msg})")
    for m in members:
        with m.lock:
            m.calm = True
    with urllib.request.urlopen(f"http://127.0.0.1:{calm_port}/",
                                timeout=5) as r:
        assert r.status == 200
    for port in http_ports:
        wait_for(lambda: chaos_get_ok(port), 15,
                 what=f"a clean answer on port {port} ({msg})")
    assert f.alive(), (msg, f.output()[-3000:])


def test_chaos_clients_and_members(backends, ferry, tmp):
    seed = int(os.environ.get("FERRY_CHAOS_SEED", time.time_ns() % 10**9))
    calm = backends(1)
    members = [ChaosMember(seed + i) for i in range(2)]
    crt, key = make_cert(tmp)
    http_port, tcp_port, tls_port, calm_port, stats_port = (
        free_port() for _ in range(5))
    conf = chaos_conf(stats_port, http_port, tls_port, tcp_port, calm_port,
                      crt, key, [f"127.0.0.1:{m.port}" for m in members],
                      calm[0].addr)
    f = ferry(conf, [http_port])
    tls_ctx = ssl.create_default_context(cafile=crt)
    try:
        run_clients(f, seed, [http_port], tcp_port, tls_port, tls_ctx)
        settle(f, stats_port, members, calm_port, [http_port],
               f"seed {seed}")
    finally:
        for m in members:
            m.close()


def members_on_one_port(seed, hosts):
    """ChaosMembers on several loopback addresses sharing one port (a DNS
    name gives one port for all its addresses)."""
    for _ in range(20):
        first = ChaosMember(seed, hosts[0])
        try:
            rest = [ChaosMember(seed + i + 1, h, first.port)
                    for i, h in enumerate(hosts[1:])]
        except OSError:
            first.close()
            continue
        return [first] + rest
    raise AssertionError("no port free on every address")


def test_chaos_with_dns_churn_and_reloads(backends, ferry, dnsfault, tmp):
    """The same storm, plus a DNS name whose answers change, fail, time
    out and come back empty every few hundred ms (pools grow, shrink and
    expire under live connections), and a SIGHUP every half second that
    flips the name's backend between two configurations."""
    seed = int(os.environ.get("FERRY_CHAOS_SEED", time.time_ns() % 10**9))
    rng = random.Random(seed ^ 0x5EED)
    calm = backends(1)
    hosts = [f"127.0.0.{i}" for i in range(2, 6)]
    named = members_on_one_port(seed, hosts)
    fixed = [ChaosMember(seed + 100)]
    members = named + fixed
    crt, key = make_cert(tmp)
    http_port, tcp_port, tls_port, calm_port, stats_port, named_port = (
        free_port() for _ in range(6))
    dnsfault.cmd(cmd="set", name="svc.test", a=hosts, ttl=1)
    resolver = f"""[resolver]
nameservers = 127.0.0.1:{dnsfault.port}
hosts_file = off
timeout = 300ms
attempts = 2
min_ttl = 1s
negative_ttl = 1s
stale_ttl = 2s
prefetch = 20%"""

    def conf(flip):
        named_be = ("balance = hash\nhash_key = uri\n" if flip
                    else "balance = roundrobin\n")
        return chaos_conf(
            stats_port, http_port, tls_port, tcp_port, calm_port, crt, key,
            [f"127.0.0.1:{fixed[0].port}"], calm[0].addr, extra=resolver,
            extra_frontends=f"""[frontend named]
listen = 127.0.0.1:{named_port}
mode = http
backend = named
timeout_client = 2s
timeout_request = 2s
[backend named]
server = svc.test:{named[0].port}
{named_be}health_check = {"tcp" if flip else "none"}
health_interval = 200ms
timeout_connect = 1s
timeout_server = 1s
""")

    f = ferry(conf(False), [http_port])
    tls_ctx = ssl.create_default_context(cafile=crt)
    stop = threading.Event()
    churns = [0, 0]

    def churn():
        faults = (None, None, None, "servfail", "nxdomain", "drop", "empty")
        while not stop.wait(rng.uniform(0.1, 0.3)):
            fault = rng.choice(faults)
            entry = {"cmd": "set", "name": "svc.test", "ttl": 1,
                     "a": rng.sample(hosts, rng.randrange(0, len(hosts) + 1)),
                     "fault": fault, "reorder": rng.random() < 0.3}
            if fault is None and rng.random() < 0.2:
                entry["delay_ms"] = rng.randrange(100, 700)
            dnsfault.cmd(**entry)
            churns[0] += 1

    def reload():
        flip = False
        while not stop.wait(0.5):
            flip = not flip
            f.write_conf(conf(flip))
            f.p.send_signal(signal.SIGHUP)
            churns[1] += 1

    helpers = [threading.Thread(target=churn), threading.Thread(target=reload)]
    for t in helpers:
        t.start()
    try:
        try:
            run_clients(f, seed, [http_port, named_port], tcp_port, tls_port,
                        tls_ctx)
        finally:
            stop.set()
            for t in helpers:
                t.join(10)
        msg = f"seed {seed}"
        print(f"chaos: {msg}: {churns[0]} DNS changes, {churns[1]} reloads")
        assert churns[0] > 5 and churns[1] > 3, (msg, churns)
        dnsfault.cmd(cmd="set", name="svc.test", a=hosts, ttl=1)
        settle(f, stats_port, members, calm_port, [http_port, named_port], msg)
        out = f.output()
        assert "reload failed" not in out
        # The churn reached the pool, not just the resolver.
        assert out.count("backend named: pool") >= 3, (msg, out[-3000:])
    finally:
        for m in members:
            m.close()


def chaos_get_ok(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/",
                                    timeout=3) as r:
            return r.status == 200 and r.read() == b"ok\n"
    except OSError:
        return False
