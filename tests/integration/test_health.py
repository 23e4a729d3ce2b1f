"""Active and passive health through the real binary."""
import collections
import selectors
import socket
import threading
import time
import urllib.request

from conftest import free_port
from test_tcp import tcp_conf


def http_get(port, path="/", timeout=5):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                 headers={"Connection": "close"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode().strip()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode().strip()


def names_seen(port, n):
    return collections.Counter(http_get(port)[1] for _ in range(n))


def test_http_check_takes_member_out_and_back(backends, ferry):
    bs = backends(2, mode="http")
    port = free_port()
    f = ferry(tcp_conf(port, [b.addr for b in bs],
                       be="health_check = http\nhealth_interval = 100ms\n"
                          "health_timeout = 500ms\nrise = 2\nfall = 3"),
              [port])
    assert names_seen(port, 4) == {"b1": 2, "b2": 2}
    # b2's readiness endpoint starts failing: after `fall` checks it is out.
    assert http_get(bs[1].port, "/_ctl/fail")[0] == 200
    t0 = time.monotonic()
    f.wait_log(f"member {bs[1].addr} down: 3 checks failed: status 503", 5)
    assert time.monotonic() - t0 >= 0.2  # three checks ~100 ms apart
    assert names_seen(port, 6) == {"b1": 6}
    # Back after `rise` passes.
    assert http_get(bs[1].port, "/_ctl/ok")[0] == 200
    f.wait_log(f"member {bs[1].addr} up: 2 checks passed", 5)
    assert names_seen(port, 4) == {"b1": 2, "b2": 2}


def test_killed_backend_goes_down_and_gets_no_traffic(backends, ferry):
    bs = backends(3, mode="http")
    port = free_port()
    f = ferry(tcp_conf(port, [b.addr for b in bs],
                       be="health_interval = 100ms\nfall = 2\nrise = 2\n"
                          "health_check = tcp"),
              [port])
    assert set(names_seen(port, 6)) == {"b1", "b2", "b3"}
    bs[2].stop()
    f.wait_log(f"member {bs[2].addr} down", 5)
    seen = names_seen(port, 20)
    assert seen == {"b1": 10, "b2": 10}


def test_member_failing_first_check_starts_down(backends, ferry):
    bs = backends(2, mode="http")
    # b2 is unready before ferry starts: it must not serve the first request.
    assert http_get(bs[1].port, "/_ctl/fail")[0] == 200
    port = free_port()
    f = ferry(tcp_conf(port, [b.addr for b in bs],
                       be="health_check = http\nhealth_interval = 5s"),
              [port])
    assert "first check failed: status 503" in f.output()
    assert names_seen(port, 5) == {"b1": 5}


def test_health_check_none_is_up_at_once(backends, ferry):
    bs = backends(2, mode="http")
    port = free_port()
    ferry(tcp_conf(port, [b.addr for b in bs], be="health_check = none"),
          [port])
    assert names_seen(port, 4) == {"b1": 2, "b2": 2}


def test_passive_connect_errors_eject_member(backends, ferry):
    # health_check = none: only the passive window can take the dead member
    # out; retries hide its failures from clients meanwhile.
    bs = backends(1, mode="http")
    dead = f"127.0.0.1:{free_port()}"
    port = free_port()
    f = ferry(tcp_conf(port, [bs[0].addr, dead],
                       be="health_check = none\npassive_window = 4\n"
                          "passive_error_rate = 50%\nretries = 1"),
              [port])
    for _ in range(12):
        assert http_get(port)[1] == "b1"
    f.wait_log(f"member {dead} down: passive: 4/4 errors", 5)
    before = f.output().count(f"connect to {dead} failed")
    for _ in range(6):
        assert http_get(port)[1] == "b1"
    assert f.output().count(f"connect to {dead} failed") == before


class CountingServer:
    """Listens on many loopback addresses and counts connects per address."""

    def __init__(self, n, port):
        self.sel = selectors.DefaultSelector()
        self.counts = collections.Counter()
        self.socks = []
        for i in range(n):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((f"127.0.1.{i + 1}", port))
            s.listen(128)
            s.setblocking(False)
            self.sel.register(s, selectors.EVENT_READ, f"127.0.1.{i + 1}")
            self.socks.append(s)
        self.stop = False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop:
            for key, _ in self.sel.select(0.05):
                try:
                    c, _ = key.fileobj.accept()
                    self.counts[key.data] += 1
                    c.close()
                except OSError:
                    pass

    def close(self):
        self.stop = True
        self.t.join(5)
        for s in self.socks:
            s.close()


def test_200_members_check_rate(ferry):
    n, sport = 200, free_port()
    srv = CountingServer(n, sport)
    try:
        port = free_port()
        servers = [f"127.0.1.{i + 1}:{sport}" for i in range(n)]
        f = ferry(tcp_conf(port, servers,
                           be="health_interval = 100ms\n"
                              "health_timeout = 1s"), [port])
        start = time.monotonic()
        srv.counts.clear()
        time.sleep(2.0)  # measuring a rate over a fixed window
        elapsed = time.monotonic() - start
        counts = dict(srv.counts)
        assert f.alive()
    finally:
        srv.close()
    # Every member is checked (no starvation), at about 10/s each
    # (interval 100 ms, jittered by up to 10%), with no storm.
    assert len(counts) == n
    per_member = [counts[a.split(":")[0]] for a in servers]
    expected = elapsed / 0.1
    assert min(per_member) >= expected * 0.6, min(per_member)
    assert max(per_member) <= expected * 1.3, max(per_member)
    total = sum(per_member)
    assert expected * n * 0.75 <= total <= expected * n * 1.15


def test_new_member_gets_traffic_after_first_pass(backends, ferry):
    import signal
    bs = backends(2, mode="http")
    port = free_port()
    be = "health_check = tcp\nhealth_interval = 10s\nrise = 3"
    f = ferry(tcp_conf(port, [bs[0].addr], be=be), [port])
    f.write_conf(tcp_conf(port, [b.addr for b in bs], be=be))
    t0 = time.monotonic()
    f.p.send_signal(signal.SIGHUP)
    # Checked at once (not after the 10 s interval), up after one pass
    # (not `rise` passes: it was never down).
    f.wait_log(f"member {bs[1].addr} up: first check passed", 3)
    assert time.monotonic() - t0 < 3
    assert names_seen(port, 4) == {"b1": 2, "b2": 2}


def test_passive_5xx_ejects_member_in_http_mode(backends, ferry):
    from test_http import http_conf
    bs = backends(2, mode="http")
    port = free_port()
    f = ferry(http_conf(port, [b.addr for b in bs],
                        be="health_check = http\nhealth_interval = 10s\n"
                           "passive_window = 5\npassive_error_rate = 50%"),
              [port])
    assert http_get(bs[1].port, "/_ctl/break")[0] == 200
    # Round-robin: b2 answers every second request with a 500 until its
    # window is full of errors (5 of its requests), then it is taken out.
    statuses = [http_get(port)[0] for _ in range(10)]
    assert statuses.count(500) == 5
    f.wait_log(f"member {bs[1].addr} down: passive: 5/5 errors", 2)
    assert [http_get(port) for _ in range(6)] == [(200, "b1")] * 6
