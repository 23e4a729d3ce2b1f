"""Self-test of tests/lib/dnsfault.py: answers, faults, counters, large answers.

Run with Debian's interpreter:
    /usr/bin/python3 -m pytest tests/integration/test_dnsfault_selftest.py
"""

import json
import os
import socket
import struct
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
DNSFAULT = os.path.join(os.path.dirname(HERE), "lib", "dnsfault.py")
PYTHON = "/usr/bin/python3"


def wait_ready(path, proc, deadline=10.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError("dnsfault exited with %d" % proc.returncode)
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                return json.load(f)
        time.sleep(0.02)
    raise TimeoutError("dnsfault not ready after %.0fs" % deadline)


class Control:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.f = self.sock.makefile("rwb")

    def __call__(self, **req):
        self.f.write(json.dumps(req).encode() + b"\n")
        self.f.flush()
        reply = json.loads(self.f.readline())
        return reply

    def close(self):
        self.f.close()
        self.sock.close()


def start(tmp_path, *extra):
    ready = str(tmp_path / "ready.json")
    proc = subprocess.Popen([PYTHON, DNSFAULT, "--port", "0",
                             "--control-port", "0", "--ready-file", ready,
                             *extra])
    try:
        info = wait_ready(ready, proc)
    except Exception:
        proc.kill()
        proc.wait(5)
        raise
    return proc, info


@pytest.fixture
def fault(tmp_path):
    proc, info = start(tmp_path, "--ipv6")
    ctl = Control(info["control_port"])
    yield info, ctl
    ctl.close()
    proc.kill()
    proc.wait(5)


# --- a minimal DNS client -------------------------------------------------

def make_query(name, qtype, qid=0x1234, edns=None):
    q = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 1 if edns else 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\x00" + struct.pack("!HH", qtype, 1)
    if edns:
        q += b"\x00" + struct.pack("!HHIH", 41, edns, 0, 0)
    return q


def read_name(msg, off):
    labels, end = [], None
    while True:
        n = msg[off]
        if n & 0xC0 == 0xC0:
            if end is None:
                end = off + 2
            off = ((n & 0x3F) << 8) | msg[off + 1]
            continue
        off += 1
        if n == 0:
            break
        labels.append(msg[off:off + n].decode())
        off += n
    return ".".join(labels), (end if end is not None else off)


def parse(msg):
    qid, flags, qd, an, ns, ar = struct.unpack("!HHHHHH", msg[:12])
    off = 12
    for _ in range(qd):
        _, off = read_name(msg, off)
        off += 4
    answers = []
    opt = None
    for i in range(an + ns + ar):
        owner, off = read_name(msg, off)
        rtype, rclass, ttl, rdlen = struct.unpack("!HHIH", msg[off:off + 10])
        off += 10
        rdata = msg[off:off + rdlen]
        if rtype == 1:
            value = socket.inet_ntop(socket.AF_INET, rdata)
        elif rtype == 28:
            value = socket.inet_ntop(socket.AF_INET6, rdata)
        elif rtype == 5:
            value, _ = read_name(msg, off)
        else:
            value = rdata
        off += rdlen
        if rtype == 41:
            opt = rclass
        elif i < an:
            answers.append((owner, rtype, ttl, value))
    return {"id": qid, "rcode": flags & 0xF, "tc": bool(flags & 0x0200),
            "answers": answers, "opt": opt, "size": len(msg)}


def udp(port, name, qtype, edns=None, timeout=2.0, host="127.0.0.1"):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(make_query(name, qtype, edns=edns), (host, port))
        data, _ = s.recvfrom(65535)
        return parse(data)


def tcp(port, name, qtype):
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        q = make_query(name, qtype)
        s.sendall(struct.pack("!H", len(q)) + q)
        hdr = b""
        while len(hdr) < 2:
            hdr += s.recv(2 - len(hdr))
        n = struct.unpack("!H", hdr)[0]
        data = b""
        while len(data) < n:
            chunk = s.recv(n - len(data))
            assert chunk, "connection closed early"
            data += chunk
        return parse(data)


def addrs(resp, rtype):
    return [a[3] for a in resp["answers"] if a[1] == rtype]


# --- tests ----------------------------------------------------------------

def test_ready_file_and_ping(fault):
    info, ctl = fault
    assert info["port"] > 0 and info["control_port"] > 0
    assert ctl(cmd="ping") == {"ok": True}
    assert ctl(cmd="nonsense")["ok"] is False


def test_a_and_aaaa_answers(fault):
    info, ctl = fault
    assert ctl(cmd="set", name="api.test", a=["10.0.0.1", "10.0.0.2"],
               aaaa=["fd00::1"], ttl=42)["ok"]
    r = udp(info["port"], "api.test", 1)
    assert r["rcode"] == 0 and r["id"] == 0x1234
    assert addrs(r, 1) == ["10.0.0.1", "10.0.0.2"]
    assert all(a[2] == 42 for a in r["answers"])
    r = udp(info["port"], "API.Test", 28)
    assert addrs(r, 28) == ["fd00::1"]
    r = tcp(info["port"], "api.test", 1)
    assert addrs(r, 1) == ["10.0.0.1", "10.0.0.2"]


def test_ipv6_listener(fault):
    info, ctl = fault
    if not info["ipv6"]:
        pytest.skip("no ::1 on this host")
    ctl(cmd="set", name="six.test", a=["10.6.6.6"])
    r = udp(info["port"], "six.test", 1, host="::1")
    assert addrs(r, 1) == ["10.6.6.6"]


def test_unknown_name_is_nxdomain_and_default(fault):
    info, ctl = fault
    assert udp(info["port"], "nope.test", 1)["rcode"] == 3
    assert ctl(cmd="default", answer="refused")["ok"]
    assert udp(info["port"], "nope.test", 1)["rcode"] == 5


def test_faults(fault):
    info, ctl = fault
    p = info["port"]
    ctl(cmd="set", name="sf.test", a=["10.0.0.1"], fault="servfail")
    ctl(cmd="set", name="nx.test", a=["10.0.0.1"], fault="nxdomain")
    ctl(cmd="set", name="rf.test", a=["10.0.0.1"], fault="refused")
    ctl(cmd="set", name="em.test", a=["10.0.0.1"], fault="empty")
    ctl(cmd="set", name="dr.test", a=["10.0.0.1"], fault="drop")
    assert udp(p, "sf.test", 1)["rcode"] == 2
    assert udp(p, "nx.test", 1)["rcode"] == 3
    assert udp(p, "rf.test", 1)["rcode"] == 5
    r = udp(p, "em.test", 1)
    assert r["rcode"] == 0 and r["answers"] == []
    with pytest.raises(socket.timeout):
        udp(p, "dr.test", 1, timeout=0.3)
    assert ctl(cmd="count", name="dr.test", type="A")["count"] == 1


def test_fault_types_and_count(fault):
    info, ctl = fault
    p = info["port"]
    ctl(cmd="set", name="half.test", a=["10.0.0.1"], aaaa=["fd00::1"],
        fault="drop", fault_types=["AAAA"])
    assert addrs(udp(p, "half.test", 1), 1) == ["10.0.0.1"]
    with pytest.raises(socket.timeout):
        udp(p, "half.test", 28, timeout=0.3)
    ctl(cmd="set", name="flaky.test", a=["10.0.0.9"], fault="servfail",
        fault_count=2)
    assert udp(p, "flaky.test", 1)["rcode"] == 2
    assert udp(p, "flaky.test", 1)["rcode"] == 2
    assert addrs(udp(p, "flaky.test", 1), 1) == ["10.0.0.9"]


def test_delay(fault):
    info, ctl = fault
    ctl(cmd="set", name="slow.test", a=["10.0.0.1"], delay_ms=300)
    t0 = time.monotonic()
    r = udp(info["port"], "slow.test", 1, timeout=3)
    took = time.monotonic() - t0
    assert addrs(r, 1) == ["10.0.0.1"]
    assert 0.28 <= took < 2.0


def test_counters(fault):
    info, ctl = fault
    p = info["port"]
    ctl(cmd="set", name="c.test", a=["10.0.0.1"], aaaa=["fd00::1"])
    for _ in range(3):
        udp(p, "c.test", 1)
    udp(p, "C.TEST", 28)
    tcp(p, "c.test", 1)
    assert ctl(cmd="count", name="c.test", type="A")["count"] == 4
    assert ctl(cmd="count", name="c.test", type="AAAA")["count"] == 1
    assert ctl(cmd="count", name="other.test", type="A")["count"] == 0
    counts = ctl(cmd="counts")["counts"]
    assert counts == {"c.test/A": 4, "c.test/AAAA": 1}
    ctl(cmd="reset")
    assert ctl(cmd="count", name="c.test", type="A")["count"] == 0


def test_cname_chain(fault):
    info, ctl = fault
    ctl(cmd="set", name="www.test", a=["10.1.1.1"], ttl=300,
        cname=[{"name": "edge.test", "ttl": 30},
               {"name": "node.test", "ttl": 7}])
    r = udp(info["port"], "www.test", 1)
    assert [(a[0], a[1], a[2], a[3]) for a in r["answers"]] == [
        ("www.test", 5, 30, "edge.test"),
        ("edge.test", 5, 7, "node.test"),
        ("node.test", 1, 300, "10.1.1.1"),
    ]


def test_reorder(fault):
    info, ctl = fault
    pool = ["10.0.0.%d" % i for i in range(1, 5)]
    ctl(cmd="set", name="rr.test", a=pool, reorder=True)
    seen = [addrs(udp(info["port"], "rr.test", 1), 1) for _ in range(4)]
    assert all(sorted(s) == sorted(pool) for s in seen)
    assert len({tuple(s) for s in seen}) == 4


def test_fifty_a_records_edns_udp_and_tc(fault):
    info, ctl = fault
    p = info["port"]
    pool = ["10.2.%d.%d" % (i // 200, i % 200 + 1) for i in range(50)]
    ctl(cmd="set", name="big.test", a=pool)
    r = udp(p, "big.test", 1, edns=1232)
    assert not r["tc"] and r["opt"] == 1232
    assert addrs(r, 1) == pool and r["size"] > 512
    # Without EDNS the answer does not fit 512 bytes: TC, then TCP.
    r = udp(p, "big.test", 1)
    assert r["tc"] and r["answers"] == [] and r["size"] <= 512
    r = tcp(p, "big.test", 1)
    assert addrs(r, 1) == pool
    # A small EDNS size is honoured too (raised to the 512 floor).
    r = udp(p, "big.test", 1, edns=600)
    assert r["tc"] and r["size"] <= 600


def test_zone_file_reload(tmp_path):
    zone = tmp_path / "zone.json"
    zone.write_text(json.dumps([{"name": "z.test", "a": ["10.9.9.1"]}]))
    proc, info = start(tmp_path, "--zone", str(zone))
    try:
        assert addrs(udp(info["port"], "z.test", 1), 1) == ["10.9.9.1"]
        zone.write_text(json.dumps([{"name": "z.test", "a": ["10.9.9.2"]}]))
        st = os.stat(zone)
        os.utime(zone, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        end = time.monotonic() + 5
        got = None
        while time.monotonic() < end:
            got = addrs(udp(info["port"], "z.test", 1), 1)
            if got == ["10.9.9.2"]:
                break
            time.sleep(0.05)
        assert got == ["10.9.9.2"]
    finally:
        proc.kill()
        proc.wait(5)


def test_restart_on_same_port(tmp_path):
    proc, info = start(tmp_path)
    port = info["port"]
    proc.kill()
    proc.wait(5)
    ready = str(tmp_path / "ready2.json")
    proc = subprocess.Popen([PYTHON, DNSFAULT, "--port", str(port),
                             "--control-port", "0", "--ready-file", ready])
    try:
        info2 = wait_ready(ready, proc)
        assert info2["port"] == port
        assert udp(port, "x.test", 1)["rcode"] == 3
    finally:
        proc.kill()
        proc.wait(5)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
