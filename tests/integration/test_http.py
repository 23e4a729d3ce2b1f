"""L7 proxy (mode = http) through the real binary and real backends."""
import base64
import hashlib
import http.client
import json
import os
import socket
import struct
import threading
import time

from conftest import free_port, harness_workers, run_ferry


def http_conf(port, servers, fe="", be="", glob=""):
    lines = ["[global]", "log_level = debug", "access_log = stderr", glob,
             "[stats]", "listen = off",
             "[frontend web]", f"listen = 127.0.0.1:{port}", "mode = http",
             "backend = pool", fe, "[backend pool]"]
    lines += [f"server = {s}" for s in servers]
    lines.append(be)
    return "\n".join(lines) + "\n"


def backend_stats(b):
    """Asks the backend directly (not through ferry) what it has seen."""
    c = http.client.HTTPConnection(b.host, b.port, timeout=5)
    c.request("GET", "/stats", headers={"Connection": "close"})
    st = json.loads(c.getresponse().read())
    c.close()
    # Each stats request (this one included) is one request and one
    # connection the backend counted.
    b.stats_calls = getattr(b, "stats_calls", 0) + 1
    return {"requests": st["requests"] - b.stats_calls,
            "connections": st["connections"] - b.stats_calls}


def connect(port, timeout=10):
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def read_response(f, method="GET"):
    """One response from a socket file: (status, headers, body) or None."""
    line = f.readline()
    if not line:
        return None
    status = int(line.split()[1])
    headers = {}
    while True:
        h = f.readline()
        if h in (b"\r\n", b""):
            break
        k, v = h.decode("latin-1").split(":", 1)
        headers[k.strip().lower()] = v.strip()
    if status < 200 or status in (204, 304) or method == "HEAD":
        return status, headers, b""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int(f.readline().split(b";")[0], 16)
            if size == 0:
                while f.readline() not in (b"\r\n", b""):
                    pass
                return status, headers, body
            body += f.read(size)
            assert f.read(2) == b"\r\n"
    if "content-length" in headers:
        return status, headers, f.read(int(headers["content-length"]))
    return status, headers, f.read()


def raw(port, data, method="GET", timeout=10):
    """Sends data on a new connection, returns the first response and
    whether the connection was closed after it."""
    with connect(port, timeout) as s:
        s.sendall(data)
        f = s.makefile("rb")
        resp = read_response(f, method)
        if resp is None:
            return None, True
        # Only a response that announced the close is waited on.
        if resp[1].get("connection", "").lower() != "close":
            return resp, False
        return resp, f.read(1) == b""


def get(port, path="/", headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", path, headers=headers or {})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, r, body


class RawServer:
    """A member that answers each connection with a scripted handler."""

    def __init__(self, handler):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.addr = f"127.0.0.1:{self.port}"
        self.connections = 0
        self.heads = []
        self.handler = handler
        self.stopped = False
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self):
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.settimeout(10)
            threading.Thread(target=self.serve, args=(conn,),
                             daemon=True).start()

    def read_head(self, f):
        lines = []
        while True:
            line = f.readline()
            if not line:
                return None
            if line == b"\r\n":
                break
            lines.append(line.decode("latin-1").rstrip("\r\n"))
        self.heads.append(lines)
        return lines

    def serve(self, conn):
        try:
            self.handler(self, conn, conn.makefile("rb"))
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self.stopped = True
        self.sock.close()


# ---------------------------------------------------------------------------
# Forwarding and keep-alive


def test_round_robin_per_request_on_one_connection(backends, ferry):
    bs = backends(3)
    port = free_port()
    ferry(http_conf(port, [b.addr for b in bs]), [port])
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    seen = []
    for _ in range(6):
        c.request("GET", "/")
        r = c.getresponse()
        r.read()
        seen.append(r.getheader("X-Backend"))
    c.close()
    assert seen == ["b1", "b2", "b3", "b1", "b2", "b3"]


def test_keepalive_reuse_both_sides(backends, ferry):
    bs = backends(2)
    port = free_port()
    ferry(http_conf(port, [b.addr for b in bs]), [port])
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for i in range(100):
        c.request("GET", f"/?i={i}")
        r = c.getresponse()
        assert r.status == 200
        r.read()
    c.close()
    # 100 more, each on its own client connection.
    for i in range(100):
        assert get(port)[0] == 200
    st = [backend_stats(b) for b in bs]
    assert [s["requests"] for s in st] == [100, 100]
    # Sequential requests need one member connection each (a second one
    # only if a close raced a reuse). Each worker keeps its own idle
    # member connections, so with several workers each may open one.
    assert all(s["connections"] <= 1 + harness_workers() for s in st), st


def test_forwarded_headers(backends, ferry):
    bs = backends(1)
    port = free_port()
    ferry(http_conf(port, [bs[0].addr]), [port])
    st, r, _ = get(port)
    assert r.getheader("X-Seen-x-forwarded-for") == "127.0.0.1"
    assert r.getheader("X-Seen-x-forwarded-proto") == "http"
    st, r, _ = get(port, headers={"X-Forwarded-For": "203.0.113.7",
                                  "X-Forwarded-Proto": "https"})
    assert r.getheader("X-Seen-x-forwarded-for") == "203.0.113.7, 127.0.0.1"
    assert r.getheader("X-Seen-x-forwarded-proto") == "http"


def test_hop_by_hop_fields_not_forwarded(ferry):
    def handler(srv, conn, f):
        srv.read_head(f)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                     b"Connection: X-Secret\r\nX-Secret: 1\r\n"
                     b"Keep-Alive: timeout=5\r\nX-Kept: yes\r\n\r\nok")
        srv.read_head(f)
    srv = RawServer(handler)
    port = free_port()
    ferry(http_conf(port, [srv.addr]), [port])
    (status, h, body), _ = raw(
        port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close, X-Hop\r\n"
              b"X-Hop: 1\r\nTE: trailers\r\nX-Keep: 1\r\n\r\n")
    assert status == 200 and body == b"ok"
    assert "x-secret" not in h and "keep-alive" not in h
    assert h["x-kept"] == "yes" and h["connection"] == "close"
    fields = [x.split(":")[0].lower() for x in srv.heads[0][1:]]
    assert "x-hop" not in fields and "te" not in fields
    assert "connection" not in fields and "x-keep" in fields
    srv.close()


def test_chunked_both_directions(backends, ferry):
    bs = backends(1)
    port = free_port()
    ferry(http_conf(port, [bs[0].addr]), [port])
    payload = os.urandom(300000)
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)

    def pieces():
        for i in range(0, len(payload), 7001):
            yield payload[i:i + 7001]
    c.request("POST", "/echo", body=pieces(), encode_chunked=True)
    r = c.getresponse()
    assert r.status == 200 and r.read() == payload
    c.request("GET", "/chunked/123457")
    r = c.getresponse()
    assert r.getheader("Transfer-Encoding") == "chunked"
    assert r.read() == b"y" * 123457
    # The connection is still good after a chunked response.
    c.request("GET", "/")
    assert c.getresponse().read() == b"b1\n"
    c.close()


def test_large_bodies_intact(backends, ferry):
    bs = backends(1)
    port = free_port()
    ferry(http_conf(port, [bs[0].addr]), [port])
    n = 10 * 1024 * 1024
    payload = os.urandom(n)
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("POST", "/echo", body=payload)
    r = c.getresponse()
    got = r.read()
    assert hashlib.sha256(got).hexdigest() == \
        hashlib.sha256(payload).hexdigest()
    c.request("GET", f"/size/{n}")
    got = c.getresponse().read()
    assert len(got) == n and hashlib.sha256(got).digest() == \
        hashlib.sha256(b"x" * n).digest()
    c.request("GET", f"/chunked/{n}")
    assert c.getresponse().read() == b"y" * n
    c.close()


def test_head_and_pipelining(backends, ferry):
    bs = backends(1)
    port = free_port()
    ferry(http_conf(port, [bs[0].addr]), [port])
    with connect(port) as s:
        s.sendall(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /size/5 HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        f = s.makefile("rb")
        st, h, body = read_response(f, "HEAD")
        assert st == 200 and h["content-length"] == "3" and body == b""
        assert read_response(f)[2] == b"xxxxx"
        st, h, body = read_response(f)
        assert body == b"b1\n" and h["connection"] == "close"
        assert f.read(1) == b""


def test_http10_client(backends, ferry):
    bs = backends(1)
    port = free_port()
    ferry(http_conf(port, [bs[0].addr]), [port])
    (st, h, body), closed = raw(port, b"GET / HTTP/1.0\r\n\r\n")
    assert st == 200 and body == b"b1\n" and closed
    with connect(port) as s:
        f = s.makefile("rb")
        for _ in range(2):
            s.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            st, h, body = read_response(f)
            assert body == b"b1\n" and h["connection"] == "keep-alive"


def test_expect_100_continue(backends, ferry):
    bs = backends(1)
    port = free_port()
    ferry(http_conf(port, [bs[0].addr]), [port])
    with connect(port) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                  b"Expect: 100-continue\r\n\r\n")
        f = s.makefile("rb")
        st, _, _ = read_response(f)
        assert st == 100
        s.sendall(b"hello")
        st, _, body = read_response(f)
        assert st == 200 and body == b"hello"


def ws_frame(payload, opcode=1):
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        hdr = bytes([0x80 | opcode, 0x80 | n])
    else:
        hdr = bytes([0x80 | opcode, 0x80 | 126]) + struct.pack("!H", n)
    return hdr + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(payload))


def ws_read(f):
    b0, b1 = f.read(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", f.read(2))[0]
    return b0 & 0x0F, f.read(n)


def test_websocket_tunnel(backends, ferry):
    bs = backends(1)
    port = free_port()
    f_ = ferry(http_conf(port, [bs[0].addr]), [port])
    key = base64.b64encode(os.urandom(16)).decode()
    with connect(port) as s:
        s.sendall(("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                   f"Sec-WebSocket-Key: {key}\r\n\r\n").encode())
        f = s.makefile("rb")
        st, h, _ = read_response(f)
        assert st == 101
        assert h["upgrade"].lower() == "websocket"
        assert h["connection"].lower() == "upgrade"
        expect = base64.b64encode(hashlib.sha1(
            (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode())
            .digest()).decode()
        assert h["sec-websocket-accept"] == expect
        for msg in (b"hello", b"x" * 1000, b"last"):
            s.sendall(ws_frame(msg))
            assert ws_read(f) == (1, msg)
        s.sendall(ws_frame(b"\x03\xe8", opcode=8))
        assert ws_read(f) == (8, b"\x03\xe8")
        assert f.read(1) == b""
        f.close()  # the socket closes once its file is closed too
    f_.wait_log("status=101")


# ---------------------------------------------------------------------------
# Errors made by ferry


def test_400_malformed(backends, ferry):
    bs = backends(1)
    port = free_port()
    ferry(http_conf(port, [bs[0].addr]), [port])
    for bad in (b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
                b"GET / HTTP/1.1\r\n\r\n",
                b"GET / HTTP/1.1\nHost: x\n\n",
                b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n"):
        (st, h, body), closed = raw(port, bad)
        assert st == 400 and closed and h["connection"] == "close"
        assert body == b"400 Bad Request\n"
    assert backend_stats(bs[0])["requests"] == 0


def test_431_and_larger_max_header_size(backends, ferry):
    bs = backends(1)
    port = free_port()
    ferry(http_conf(port, [bs[0].addr]), [port])
    big = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n"
    (st, h, _), closed = raw(port, big)
    assert st == 431 and closed
    port2 = free_port()
    ferry(http_conf(port2, [bs[0].addr], fe="max_header_size = 64k"), [port2],
          name="ferry2")
    (st, h, body), _ = raw(port2, big.replace(b"Host: x\r\n",
                                              b"Host: x\r\nConnection: close"
                                              b"\r\n"))
    assert st == 200 and body == b"b1\n"


def test_408_request_timeout_and_slowloris(backends, ferry):
    bs = backends(1)
    port = free_port()
    ferry(http_conf(port, [bs[0].addr], fe="timeout_request = 1s"), [port])
    t0 = time.monotonic()
    (st, h, _), closed = raw(port, b"GET / HTTP/1.1\r\nHost: x\r\n")
    assert st == 408 and closed
    assert 0.8 < time.monotonic() - t0 < 3

    # Slowloris: a byte every 100 ms never completes the head in time.
    with connect(port) as s:
        t0 = time.monotonic()
        s.settimeout(0.1)
        data = b""
        msg = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 100
        for i in range(len(msg)):
            try:
                s.sendall(msg[i:i + 1])
            except OSError:
                break
            try:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            except socket.timeout:
                pass
            if time.monotonic() - t0 > 5:
                break
        assert data.startswith(b"HTTP/1.1 408 ")
        assert time.monotonic() - t0 < 3
    assert backend_stats(bs[0])["requests"] == 0


def test_503_no_member_up(ferry, backends):
    bs = backends(1)
    port = free_port()
    ferry(http_conf(port, [f"{bs[0].addr} weight=0"]), [port])
    with connect(port) as s:
        f = s.makefile("rb")
        for _ in range(2):
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            st, h, body = read_response(f)
            # No body left unread: the connection stays usable.
            assert st == 503 and body == b"503 Service Unavailable\n"
            assert "connection" not in h


def test_502_when_every_member_refuses(ferry):
    port = free_port()
    dead = [f"127.0.0.1:{free_port()}" for _ in range(3)]
    # No active checks: the members look up, and every connect fails.
    f = ferry(http_conf(port, dead, be="retries = 2\nhealth_check = none"),
              [port])
    (st, h, body), _ = raw(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert st == 502
    assert all(f"connect to {d} failed" in f.output() for d in dead)


def test_retry_on_connect_failure(backends, ferry):
    bs = backends(2)
    dead = f"127.0.0.1:{free_port()}"
    port = free_port()
    f = ferry(http_conf(port, [bs[0].addr, dead, bs[1].addr],
                        be="retries = 1\nhealth_check = none"), [port])
    seen = [get(port)[2] for _ in range(9)]
    assert set(seen) == {b"b1\n", b"b2\n"}
    assert f"connect to {dead} failed" in f.output()


def test_502_bad_response(ferry):
    def handler(srv, conn, f):
        srv.read_head(f)
        conn.sendall(b"HTTP/1.1 2000 Nope\r\n\r\n")
    srv = RawServer(handler)
    port = free_port()
    ferry(http_conf(port, [srv.addr]), [port])
    (st, h, body), _ = raw(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert st == 502 and body == b"502 Bad Gateway\n"
    srv.close()


def test_504_server_timeout(backends, ferry):
    bs = backends(1)
    port = free_port()
    ferry(http_conf(port, [bs[0].addr], be="timeout_server = 1s"), [port])
    t0 = time.monotonic()
    (st, h, body), _ = raw(port, b"GET /delay/4000 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert st == 504 and 0.8 < time.monotonic() - t0 < 3


def test_member_5xx_passed_through(backends, ferry):
    bs = backends(1)
    port = free_port()
    f = ferry(http_conf(port, [bs[0].addr]), [port])
    assert get(port, "/status/503")[0] == 503
    assert get(port, "/status/404")[0] == 404
    f.wait_log("target=/status/404 status=404")


def test_reused_connection_closed_is_retried(ferry):
    """A keep-alive member connection closed by the member before it
    answered is retried on a new connection (GET), not for a POST."""
    def handler(srv, conn, f):
        if srv.read_head(f) is None:
            return
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst")
        head = srv.read_head(f)   # the next request: close, no answer
        if head is not None:
            n = [x for x in head if x.lower().startswith("content-length")]
            if n:
                f.read(int(n[0].split(":")[1]))
    srv = RawServer(handler)
    port = free_port()
    # No active checks: they would be connections the test counts.
    fr = ferry(http_conf(port, [srv.addr], be="health_check = none"), [port])
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/a")
    assert c.getresponse().read() == b"first"
    c.request("GET", "/b")
    r = c.getresponse()
    assert r.status == 200 and r.read() == b"first"
    assert srv.connections == 2
    assert "retrying" in fr.output()
    # A POST with a body is not repeated: 502.
    c.request("POST", "/c", body=b"data")
    r = c.getresponse()
    assert r.status == 502
    r.read()
    c.close()
    srv.close()


def test_smuggling_never_reaches_member(backends, ferry):
    bs = backends(1)
    port = free_port()
    ferry(http_conf(port, [bs[0].addr]), [port])
    attacks = [
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
        b"Content-Length: 40\r\n\r\nabcdGET /smuggled HTTP/1.1\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"
        b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip"
        b"\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n"
        b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    ]
    for a in attacks:
        (st, h, _), closed = raw(port, a)
        assert st == 400 and closed, a
    assert backend_stats(bs[0])["requests"] == 0
    # A bad chunk size in a body that already started: the member gets
    # the request but never a second one hidden in the body.
    (st, h, _), closed = raw(
        port, b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
              b"chunked\r\n\r\nzz\r\nGET /smuggled HTTP/1.1\r\n\r\n")
    assert st == 400 and closed
    assert backend_stats(bs[0])["requests"] == 0


def test_client_connection_close_and_idle_timeout(backends, ferry):
    bs = backends(1)
    port = free_port()
    ferry(http_conf(port, [bs[0].addr], fe="timeout_client = 1s"), [port])
    (st, h, _), closed = raw(
        port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert st == 200 and closed and h["connection"] == "close"
    with connect(port) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        f = s.makefile("rb")
        assert read_response(f)[0] == 200
        t0 = time.monotonic()
        assert f.read(1) == b""  # closed by ferry after 1 s idle
        assert 0.5 < time.monotonic() - t0 < 3


def test_config_http_keys(tmp):
    conf = os.path.join(tmp, "c.conf")
    with open(conf, "w") as f:
        f.write("[frontend web]\nlisten = 127.0.0.1:1\nmode = http\n"
                "backend = b\ntimeout_request = 5s\nmax_header_size = 32k\n"
                "[backend b]\nserver = 127.0.0.1:2\n")
    r = run_ferry("-t", "-c", conf)
    assert r.returncode == 0, r.stderr
    with open(conf, "w") as f:
        f.write("[frontend web]\nlisten = 127.0.0.1:1\nmode = http\n"
                "backend = b\ntls_cert = /nonexistent.pem\n"
                "[backend b]\nserver = 127.0.0.1:2\n")
    r = run_ferry("-t", "-c", conf)
    assert r.returncode == 1
    assert f"{conf}:5: " in r.stderr and "tls_key" in r.stderr


def test_graceful_stop_closes_idle_finishes_busy(backends, ferry):
    bs = backends(1)
    port = free_port()
    f = ferry(http_conf(port, [bs[0].addr]), [port])
    idle = connect(port)
    idle.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    fi = idle.makefile("rb")
    assert read_response(fi)[0] == 200
    busy = connect(port)
    busy.sendall(b"GET /delay/1000 HTTP/1.1\r\nHost: x\r\n\r\n")
    f.wait_log("GET /delay/1000 to ")  # picked and being forwarded
    f.p.send_signal(15)
    assert fi.read(1) == b""  # idle keep-alive connection closed at once
    st, h, body = read_response(busy.makefile("rb"))
    assert st == 200 and body == b"b1\n" and h["connection"] == "close"
    assert f.p.wait(10) == 0
    idle.close()
    busy.close()
