"""L4 proxy (mode = tcp) through the real binary and real backends."""
import collections
import hashlib
import os
import signal
import socket
import struct
import threading
import time

import pytest

from conftest import (can_connect, free_port, recv_to_eof, run_ferry,
                      wait_for, with_workers)


def tcp_conf(port, servers, fe="", be="", glob="", listen=None,
             stats="off"):
    lines = ["[global]", "log_level = debug", "access_log = stderr", glob,
             "[stats]", f"listen = {stats}",
             "[frontend front]", f"listen = {listen or f'127.0.0.1:{port}'}",
             "mode = tcp", "backend = pool", fe, "[backend pool]"]
    lines += [f"server = {s}" for s in servers]
    lines.append(be)
    return "\n".join(lines) + "\n"


def connect(port, host="127.0.0.1", timeout=5):
    s = socket.create_connection((host, port), timeout=timeout)
    return s


def read_line(s, limit=200):
    data = b""
    while not data.endswith(b"\n") and len(data) < limit:
        chunk = s.recv(1)
        if not chunk:
            break
        data += chunk
    return data.decode().strip()


def banner(port):
    with connect(port) as s:
        return read_line(s)


def recv_all(s, n):
    out = bytearray()
    while len(out) < n:
        chunk = s.recv(min(1 << 20, n - len(out)))
        if not chunk:
            break
        out += chunk
    return bytes(out)


def test_round_robin_shares(backends, ferry):
    bs = backends(3, mode="tcp")
    port = free_port()
    ferry(tcp_conf(port, [b.addr for b in bs]), [port])
    seen = [banner(port) for _ in range(30)]
    assert collections.Counter(seen) == {"b1": 10, "b2": 10, "b3": 10}
    # Strict rotation, not just equal totals.
    assert seen[:6] == ["b1", "b2", "b3", "b1", "b2", "b3"]


def test_retry_when_member_port_closed(backends, ferry):
    bs = backends(2, mode="tcp")
    dead = f"127.0.0.1:{free_port()}"
    port = free_port()
    # Without active checks the dead member stays in rotation, so every
    # third session has to be retried on the next member.
    f = ferry(tcp_conf(port, [bs[0].addr, dead, bs[1].addr],
                       be="retries = 2\nhealth_check = none"), [port])
    seen = [banner(port) for _ in range(20)]
    assert set(seen) == {"b1", "b2"}
    assert "connect to " + dead + " failed" in f.output()


def test_all_members_down_closes(ferry):
    port = free_port()
    dead = [f"127.0.0.1:{free_port()}" for _ in range(3)]
    f = ferry(tcp_conf(port, dead, be="retries = 2\nhealth_check = none"),
              [port])
    with connect(port) as s:
        start = time.monotonic()
        assert s.recv(100) == b""
        assert time.monotonic() - start < 3
    assert f.alive()
    f.wait_log("end=retries exhausted")


def test_members_failing_first_check_start_down(ferry, backends):
    # Active tcp checks (the default) run before the listeners accept, so
    # a dead member never sees a client, not even the first one.
    bs = backends(1, mode="tcp")
    dead = f"127.0.0.1:{free_port()}"
    port = free_port()
    f = ferry(tcp_conf(port, [dead, bs[0].addr]), [port])
    assert [banner(port) for _ in range(6)] == ["b1"] * 6
    assert f"connect to {dead} failed" not in f.output()
    assert f"member {dead} down" in f.output() or dead in f.output()


def test_no_member_up_closes_at_once(ferry):
    port = free_port()
    dead = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    f = ferry(tcp_conf(port, dead), [port])
    with connect(port) as s:
        assert s.recv(100) == b""
    f.wait_log("end=no member up")


def test_retries_zero_gives_up_after_one(ferry, backends):
    bs = backends(1, mode="tcp")
    dead = f"127.0.0.1:{free_port()}"
    port = free_port()
    ferry(tcp_conf(port, [dead, bs[0].addr],
                   be="retries = 0\nhealth_check = none"), [port])
    results = []
    for _ in range(4):
        with connect(port) as s:
            results.append(read_line(s))
    # Rotation alternates dead/live; with no retry, half the sessions fail.
    assert results.count("b1") == 2 and results.count("") == 2


def test_50mb_integrity_both_ways(backends, ferry):
    bs = backends(1, mode="tcp")
    port = free_port()
    ferry(tcp_conf(port, [bs[0].addr]), [port])
    payload = os.urandom(50 * 1024 * 1024)
    with connect(port, timeout=60) as s:
        assert read_line(s) == "b1"

        def sender():
            view = memoryview(payload)
            for off in range(0, len(payload), 1 << 20):
                s.sendall(view[off:off + (1 << 20)])
            s.shutdown(socket.SHUT_WR)

        t = threading.Thread(target=sender)
        t.start()
        got = recv_to_eof(s, 1 << 20)
        t.join(60)
    assert len(got) == len(payload)
    assert hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()


def test_half_close_client_then_server(backends, ferry):
    bs = backends(1, mode="tcp")
    port = free_port()
    f = ferry(tcp_conf(port, [bs[0].addr]), [port])
    with connect(port) as s:
        assert read_line(s) == "b1"
        s.sendall(b"hello after half-close")
        s.shutdown(socket.SHUT_WR)
        # The member still answers after our FIN, then sends its own.
        assert recv_all(s, 22) == b"hello after half-close"
        assert s.recv(10) == b""
    f.wait_log("end=done")


def test_server_half_close_reaches_client(backends, ferry, tmp):
    # An HTTP/1.0-style exchange: the member closes its side first.
    bs = backends(1, mode="http")
    port = free_port()
    ferry(tcp_conf(port, [bs[0].addr]), [port])
    with connect(port) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = recv_to_eof(s)
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"b1\n")


def test_500_concurrent_connections(backends, ferry):
    bs = backends(2, mode="tcp")
    port = free_port()
    ferry(tcp_conf(port, [b.addr for b in bs]), [port], nofile=4096)
    socks = []
    try:
        for _ in range(500):
            socks.append(connect(port, timeout=10))
        names = collections.Counter(read_line(s) for s in socks)
        assert names == {"b1": 250, "b2": 250}
        for i, s in enumerate(socks):
            s.sendall(f"ping {i}\n".encode())
        for i, s in enumerate(socks):
            assert read_line(s) == f"ping {i}"
    finally:
        for s in socks:
            s.close()


def test_client_abort_mid_stream(backends, ferry):
    bs = backends(1, mode="tcp")
    port = free_port()
    f = ferry(tcp_conf(port, [bs[0].addr]), [port])
    s = connect(port)
    assert read_line(s) == "b1"
    s.sendall(os.urandom(200000))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    # The RST shows up on ferry's next read from the client, or on its next
    # write of the echo back to it; either way the session is aborted.
    wait_for(lambda: "end=client reset" in f.output()
             or "end=client write error" in f.output(), 5,
             what="the session to end on the client's reset")
    # ferry goes on serving.
    assert banner(port) == "b1"


def test_backend_abort_mid_stream(backends, ferry):
    bs = backends(1, mode="tcp", extra=("--abort-after", "100000"))
    port = free_port()
    f = ferry(tcp_conf(port, [bs[0].addr]), [port])
    with connect(port) as s:
        assert read_line(s) == "b1"
        try:
            s.sendall(os.urandom(1000000))
        except OSError:
            pass
        got = len(recv_to_eof(s, reset_ok=True))
        assert got < 1000000
    # The RST shows up on ferry's next read or next write to the member.
    wait_for(lambda: "end=server reset" in f.output()
             or "end=server write error" in f.output(), 5,
             what="the session to end on the member's reset")
    assert banner(port) == "b1"


def test_client_idle_timeout(backends, ferry):
    bs = backends(1, mode="tcp")
    port = free_port()
    f = ferry(tcp_conf(port, [bs[0].addr], fe="timeout_client = 500ms"),
              [port])
    with connect(port) as s:
        assert read_line(s) == "b1"
        start = time.monotonic()
        s.settimeout(5)
        assert s.recv(10) == b""
        assert 0.4 < time.monotonic() - start < 3
    f.wait_log("end=client timeout")


def test_server_idle_timeout(backends, ferry):
    bs = backends(1, mode="tcp")
    port = free_port()
    f = ferry(tcp_conf(port, [bs[0].addr], be="timeout_server = 500ms"),
              [port])
    with connect(port) as s:
        assert read_line(s) == "b1"
        s.settimeout(5)
        assert s.recv(10) == b""
    f.wait_log("end=server timeout")


def test_activity_keeps_session_open(backends, ferry):
    bs = backends(1, mode="tcp")
    port = free_port()
    ferry(tcp_conf(port, [bs[0].addr], fe="timeout_client = 600ms",
                   be="timeout_server = 600ms"), [port])
    with connect(port) as s:
        assert read_line(s) == "b1"
        end = time.monotonic() + 1.5
        i = 0
        while time.monotonic() < end:
            s.sendall(b"x\n")
            assert read_line(s) == "x"
            time.sleep(0.1)
            i += 1
        assert i >= 10


def test_connect_timeout_tries_next(backends, ferry):
    # A listener whose accept queue is full drops new SYNs, so a connect to
    # it hangs: ferry must give up after timeout_connect and go elsewhere.
    bs = backends(1, mode="tcp")
    stuck = socket.socket()
    stuck.bind(("127.0.0.1", 0))
    stuck.listen(0)
    fillers = []
    for _ in range(8):
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex(stuck.getsockname())
        fillers.append(c)
    sport = stuck.getsockname()[1]
    port = free_port()
    f = ferry(tcp_conf(port, [f"127.0.0.1:{sport}", bs[0].addr],
                       be="timeout_connect = 300ms\nhealth_check = none"),
              [port])
    try:
        start = time.monotonic()
        assert banner(port) == "b1"
        first = time.monotonic() - start
        f.wait_log(f"connect to 127.0.0.1:{sport} timed out")
        assert 0.25 < first < 3
    finally:
        for c in fillers:
            c.close()
        stuck.close()


def test_max_connections_pauses_accept(backends, ferry):
    bs = backends(1, mode="tcp")
    port = free_port()
    f = ferry(tcp_conf(port, [bs[0].addr], glob="max_connections = 3"),
              [])
    wait_for(lambda: "started" in f.output(), 5, what="start")
    held = [connect(port) for _ in range(3)]
    for s in held:
        assert read_line(s) == "b1"
    f.wait_log("max_connections (3) reached")
    extra = connect(port)  # sits in the kernel's backlog
    extra.settimeout(0.5)
    with pytest.raises(socket.timeout):
        extra.recv(10)
    held.pop().close()
    extra.settimeout(5)
    assert read_line(extra) == "b1"
    extra.close()
    # Sustained load at the limit pauses and resumes at every accept; the
    # warning must not repeat with it.
    for _ in range(20):
        with connect(port) as s:
            assert read_line(s) == "b1"
    assert f.output().count("max_connections (3) reached") <= 2
    for s in held:
        s.close()


def cpu_ticks(pid):
    """utime + stime of a process, in clock ticks."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def test_out_of_fds_pauses_accept_quietly(backends, ferry):
    """EMFILE: accepting pauses (no busy loop, one warning, not one per
    retry) and resumes once connections close."""
    bs = backends(1, mode="tcp")
    port = free_port()
    f = ferry(tcp_conf(port, [bs[0].addr]), [port], nofile=40)
    held = [connect(port) for _ in range(40)]  # the backlog takes them all
    f.wait_log("Too many open files")
    # Paused with retries every 100 ms: over a second nearly no CPU, and
    # the warning is not repeated at every retry.
    t0 = cpu_ticks(f.p.pid)
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        time.sleep(0.1)
    assert cpu_ticks(f.p.pid) - t0 < 30
    assert f.output().count("cannot accept") <= 2, f.output()
    for s in held:
        s.close()

    # Closing frees fds: accepting resumes and sessions work again. The
    # freeing is not instant: ferry first accepts what the backlog still
    # holds and sees those clients gone, and with several workers one may
    # take a new client while another still holds descriptors, so a
    # session that finds none for its member is closed; the next works.
    def session_works():
        try:
            with connect(port) as s:
                s.settimeout(5)
                return read_line(s) == "b1"
        except OSError:
            return False

    wait_for(session_works, 10, what="a session once fds were freed")
    assert f.p.poll() is None


def test_proxy_protocol_v1(backends, ferry):
    bs = backends(1, mode="tcp", extra=("--proxy-protocol",))
    port = free_port()
    ferry(tcp_conf(port, [bs[0].addr], fe="proxy_protocol = v1"), [port])
    with connect(port) as s:
        local = s.getsockname()
        assert read_line(s) == f"b1 client={local[0]}:{local[1]}"


def test_proxy_protocol_v2(backends, ferry):
    bs = backends(1, mode="tcp", extra=("--proxy-protocol",))
    port = free_port()
    ferry(tcp_conf(port, [bs[0].addr], fe="proxy_protocol = v2"), [port])
    with connect(port) as s:
        local = s.getsockname()
        assert read_line(s) == f"b1 client={local[0]}:{local[1]}"
        s.sendall(b"data\n")
        assert read_line(s) == "data"


def test_ipv6_listener_and_member(backends, ferry):
    if not can_bind_v6():
        pytest.skip("no IPv6 loopback")
    bs = backends(1, mode="tcp", host="::1")
    port = free_port("::1")
    f = ferry(tcp_conf(port, [bs[0].addr], listen=f"[::1]:{port}"))
    wait_for(lambda: can_connect("::1", port), 5, what="v6 listener")
    with connect(port, host="::1") as s:
        assert read_line(s) == "b1"
    assert f.alive()


def can_bind_v6():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def test_multiple_listen_lines(backends, ferry):
    bs = backends(1, mode="tcp")
    p1, p2 = free_port(), free_port()
    conf = tcp_conf(p1, [bs[0].addr]).replace(
        f"listen = 127.0.0.1:{p1}",
        f"listen = 127.0.0.1:{p1}\nlisten = 127.0.0.1:{p2}")
    ferry(conf, [p1, p2])
    assert banner(p1) == "b1" and banner(p2) == "b1"


def test_sigterm_lets_open_session_finish(backends, ferry):
    bs = backends(1, mode="tcp")
    port = free_port()
    f = ferry(tcp_conf(port, [bs[0].addr]), [port])
    s = connect(port)
    assert read_line(s) == "b1"
    f.p.send_signal(signal.SIGTERM)
    f.wait_log("stopping")
    # New connections are refused once listeners are closed...
    wait_for(lambda: not can_connect("127.0.0.1", port), 5,
             what="listener closed")
    # ...but the open session keeps working until it ends.
    s.sendall(b"still here\n")
    assert read_line(s) == "still here"
    assert f.alive()
    s.close()
    assert f.p.wait(5) == 0
    assert "all connections closed" in f.output()


def test_sigterm_shutdown_timeout(backends, ferry):
    bs = backends(1, mode="tcp")
    port = free_port()
    f = ferry(tcp_conf(port, [bs[0].addr], glob="shutdown_timeout = 1s"),
              [port])
    s = connect(port)
    assert read_line(s) == "b1"
    start = time.monotonic()
    f.p.send_signal(signal.SIGTERM)
    assert f.p.wait(10) == 0
    assert 0.8 < time.monotonic() - start < 5
    assert "shutdown_timeout reached" in f.output()
    s.close()


def test_bind_failure_exits_2(backends, tmp):
    bs = backends(1, mode="tcp")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        conf = os.path.join(tmp, "c.conf")
        with open(conf, "w") as fh:
            fh.write(with_workers(tcp_conf(port, [bs[0].addr])))
        r = run_ferry("-c", conf)
        assert r.returncode == 2
        assert "cannot listen on 127.0.0.1:%d" % port in r.stderr


def test_check_config_good_and_bad(tmp):
    good = os.path.join(tmp, "good.conf")
    with open(good, "w") as fh:
        fh.write(tcp_conf(free_port(), ["127.0.0.1:1"]))
    r = run_ferry("-t", "-c", good)
    assert r.returncode == 0 and r.stdout == "configuration OK\n"
    bad = os.path.join(tmp, "bad.conf")
    with open(bad, "w") as fh:
        fh.write("[frontend f]\nlisten = 127.0.0.1:1\nmode = tcp\n"
                 "backend = nope\nbogus = 1\n")
    r = run_ferry("-t", "-c", bad)
    assert r.returncode == 1 and r.stdout == ""
    assert f"{bad}:5: unknown key 'bogus' in [frontend f]" in r.stderr
    assert f"{bad}:4: [frontend f] uses backend 'nope'" in r.stderr
    r = run_ferry("-t", "-c", os.path.join(tmp, "missing.conf"))
    assert r.returncode == 1 and ":0: cannot read the file" in r.stderr


def test_cli_version_help_and_bad_option():
    r = run_ferry("-V")
    assert r.returncode == 0 and r.stdout.startswith("ferry ")
    assert len(r.stdout.split()[1].split(".")) == 3
    r = run_ferry("--version")
    assert r.returncode == 0
    r = run_ferry("-h")
    assert r.returncode == 0 and "Usage: ferry" in r.stdout
    r = run_ferry("--bogus")
    assert r.returncode == 1 and "Usage: ferry" in r.stderr


def test_example_config_is_valid():
    import conftest
    r = run_ferry("-t", "-c", os.path.join(conftest.ROOT, "lb.conf.example"))
    assert r.returncode == 0 and r.stdout == "configuration OK\n", r.stderr
