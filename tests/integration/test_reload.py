"""SIGHUP reload through the real binary."""
import collections
import os
import signal
import socket
import threading
import time

from conftest import (can_connect, free_port, recv_to_eof, sanitized,
                      wait_for)
from test_tcp import banner, connect, read_line, tcp_conf


def reload(f, text=None, expect="reload done"):
    if text is not None:
        f.write_conf(text)
    before = f.output().count(expect)
    f.p.send_signal(signal.SIGHUP)
    wait_for(lambda: f.output().count(expect) > before, 5,
             what=f"'{expect}' after SIGHUP")


def test_new_backend_list_takes_effect(backends, ferry):
    bs = backends(3, mode="tcp")
    port = free_port()
    f = ferry(tcp_conf(port, [bs[0].addr]), [port])
    assert banner(port) == "b1"
    reload(f, tcp_conf(port, [bs[1].addr, bs[2].addr]))
    # New members are checked first, then get traffic.
    wait_for(lambda: "member %s up" % bs[2].addr in f.output()
             or banner(port) in ("b2", "b3"), 5, what="new members")
    seen = collections.Counter(banner(port) for _ in range(10))
    assert seen == {"b2": 5, "b3": 5}
    assert "listeners 1 kept, 0 added, 0 closed" in f.output()


def test_bad_file_keeps_running_config(backends, ferry):
    bs = backends(1, mode="tcp")
    port = free_port()
    f = ferry(tcp_conf(port, [bs[0].addr]), [port])
    reload(f, tcp_conf(port, [bs[0].addr]) + "bogus_key = 1\n",
           expect="still running the previous configuration")
    assert f"{f.conf}:" in f.output() and "unknown key 'bogus_key'" in \
        f.output()
    assert banner(port) == "b1"
    # A good file afterwards is taken.
    reload(f, tcp_conf(port, [bs[0].addr]))


def test_bind_failure_keeps_running_config(backends, ferry):
    bs = backends(1, mode="tcp")
    port = free_port()
    f = ferry(tcp_conf(port, [bs[0].addr]), [port])
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        bport = busy.getsockname()[1]
        text = tcp_conf(port, [bs[0].addr]).replace(
            f"listen = 127.0.0.1:{port}",
            f"listen = 127.0.0.1:{port}\nlisten = 127.0.0.1:{bport}")
        reload(f, text, expect="still running the previous configuration")
    assert "cannot listen on 127.0.0.1:%d" % bport in f.output()
    assert banner(port) == "b1"


def test_listeners_added_and_removed(backends, ferry):
    bs = backends(1, mode="tcp")
    p1, p2 = free_port(), free_port()
    f = ferry(tcp_conf(p1, [bs[0].addr]), [p1])
    reload(f, tcp_conf(p2, [bs[0].addr]))
    assert banner(p2) == "b1"
    wait_for(lambda: not can_connect("127.0.0.1", p1), 5,
             what="old listener closed")


def test_open_session_finishes_on_old_backend(backends, ferry):
    bs = backends(2, mode="tcp")
    port = free_port()
    f = ferry(tcp_conf(port, [bs[0].addr]), [port])
    s = connect(port)
    assert read_line(s) == "b1"
    reload(f, tcp_conf(port, [bs[1].addr]))
    wait_for(lambda: f"member {bs[1].addr} up" in f.output(), 5,
             what="new member checked")
    # The session opened before the reload still talks to b1...
    s.sendall(b"after reload\n")
    assert read_line(s) == "after reload"
    s.close()
    # ...and new sessions go to the new backend list.
    assert banner(port) == "b2"


def test_member_health_survives_reload(backends, ferry):
    bs = backends(2, mode="http")
    port = free_port()
    be = ("health_check = http\nhealth_interval = 5s\nrise = 1\nfall = 1\n"
          "health_timeout = 1s")
    conf = tcp_conf(port, [b.addr for b in bs], be=be)
    import urllib.request
    urllib.request.urlopen(f"http://{bs[1].addr}/_ctl/fail").read()
    f = ferry(conf, [port])
    assert "first check failed: status 503" in f.output()
    # Same backend and address: the member stays down, without waiting
    # for a new first check (checks run only every 5 s here).
    reload(f, conf + "\n; touched\n")
    for _ in range(4):
        with connect(port) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            assert recv_to_eof(s).endswith(b"b1\n")


def test_traffic_during_50_reloads(backends, ferry):
    bs = backends(2, mode="tcp")
    port = free_port()
    conf = tcp_conf(port, [b.addr for b in bs], be="health_check = none")
    f = ferry(conf, [port])
    stop = threading.Event()
    failures, ok = [], [0]
    long_lived = connect(port)
    assert read_line(long_lived) in ("b1", "b2")

    def client():
        while not stop.is_set():
            try:
                name = banner(port)
                if name not in ("b1", "b2"):
                    failures.append(repr(name))
                else:
                    ok[0] += 1
            except OSError as e:
                failures.append(repr(e))

    t = threading.Thread(target=client)
    t.start()
    try:
        for i in range(50):
            reload(f, conf + f"\n; reload {i}\n")
            long_lived.sendall(b"ping %d\n" % i)
            assert read_line(long_lived) == f"ping {i}"
    finally:
        stop.set()
        t.join(10)
        long_lived.close()
    assert failures == []
    assert ok[0] > 50
    assert f.output().count("reload done") == 50


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_memory_stable_over_1000_reloads(backends, ferry):
    bs = backends(2, mode="tcp")
    port = free_port()
    conf = tcp_conf(port, [b.addr for b in bs], be="health_check = none")
    env = None
    if sanitized():
        # ASan keeps freed memory in quarantine, which would look like
        # growth; LeakSanitizer checks for real leaks when ferry exits.
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + \
            ":quarantine_size_mb=0:thread_local_quarantine_size_kb=0"
    f = ferry(conf.replace("log_level = debug", "log_level = info"), [port],
              env=env)
    log = open(f.logpath, "rb")
    log.seek(0, os.SEEK_END)

    def reload_n(n):
        done = 0
        for _ in range(n):
            f.p.send_signal(signal.SIGHUP)
            # One at a time: a burst would be folded into fewer reloads.
            deadline = time.monotonic() + 5
            while True:
                chunk = log.read()
                done += chunk.count(b"reload done")
                if done >= _ + 1:
                    break
                assert time.monotonic() < deadline, "reload not done"
                time.sleep(0.001)
        assert f.alive()

    reload_n(200)
    assert banner(port) in ("b1", "b2")
    base = rss_kb(f.p.pid)
    reload_n(800)
    assert banner(port) in ("b1", "b2")
    grown = rss_kb(f.p.pid) - base
    log.close()
    # Leak-free reloads keep RSS flat; allow allocator noise.
    assert grown < 2048, f"RSS grew by {grown} kB over 800 reloads"


def test_http_keepalive_and_slow_request_through_reloads(backends, ferry):
    import http.client
    from test_http import http_conf
    bs = backends(2, mode="http")
    port = free_port()
    conf = http_conf(port, [b.addr for b in bs], be="health_check = none")
    f = ferry(conf, [port])
    # A slow request starts before the reloads and ends after them.
    slow = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    slow.request("GET", "/delay/1500")
    keep = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    failures, served = [], 0
    for i in range(50):
        reload(f, conf + f"\n; reload {i}\n")
        # The same keep-alive connection goes on serving...
        keep.request("GET", "/")
        r = keep.getresponse()
        body = r.read()
        if r.status != 200 or body not in (b"b1\n", b"b2\n"):
            failures.append((r.status, body))
        # ...and new connections are accepted.
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", "/", headers={"Connection": "close"})
        r = c.getresponse()
        if r.status != 200:
            failures.append((r.status, r.read()))
        else:
            r.read()
            served += 1
        c.close()
    r = slow.getresponse()
    assert (r.status, r.read()) in ((200, b"b1\n"), (200, b"b2\n"))
    assert failures == [] and served == 50
    keep.close()
    slow.close()
