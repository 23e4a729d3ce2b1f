"""Balancing algorithms through the real binary (tcp mode)."""
import collections
import socket

from conftest import free_port, wait_for
from test_tcp import banner, read_line, tcp_conf


def conf(port, servers, balance, extra=""):
    return tcp_conf(port, servers,
                    be=f"balance = {balance}\nhealth_check = none\n{extra}")


def test_weighted_exact_shares_and_order(backends, ferry):
    bs = backends(2, mode="tcp")
    port = free_port()
    ferry(conf(port, [f"{bs[0].addr} weight=3", f"{bs[1].addr} weight=1"],
               "weighted"), [port])
    seen = [banner(port) for _ in range(40)]
    assert collections.Counter(seen) == {"b1": 30, "b2": 10}
    # Smooth: the light member is spread out, never bunched.
    assert seen[:4] == ["b1", "b1", "b2", "b1"]


def test_weighted_zero_weight_drains(backends, ferry):
    bs = backends(2, mode="tcp")
    port = free_port()
    ferry(conf(port, [f"{bs[0].addr} weight=1", f"{bs[1].addr} weight=0"],
               "weighted"), [port])
    assert collections.Counter(banner(port) for _ in range(6)) == {"b1": 6}


def test_backup_only_when_normal_members_down(backends, ferry):
    bs = backends(2, mode="tcp")
    dead = f"127.0.0.1:{free_port()}"
    port = free_port()
    ferry(tcp_conf(port, [bs[0].addr, f"{bs[1].addr} backup"],
                   be="health_interval = 100ms\nfall = 1\nrise = 1"), [port])
    assert collections.Counter(banner(port) for _ in range(4)) == {"b1": 4}
    port2 = free_port()
    ferry(tcp_conf(port2, [dead, f"{bs[1].addr} backup"],
                   be="health_interval = 100ms"), [port2], name="f2")
    assert collections.Counter(banner(port2) for _ in range(4)) == {"b2": 4}


def test_leastconn_with_long_held_connections(backends, ferry):
    bs = backends(2, mode="tcp")
    port = free_port()
    f = ferry(conf(port, [b.addr for b in bs], "leastconn"), [port])
    held = []
    for _ in range(4):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        held.append((s, read_line(s)))
    assert collections.Counter(n for _, n in held) == {"b1": 2, "b2": 2}
    # Close b1's connections: new ones go to b1 until the loads even out.
    for s, n in held:
        if n == "b1":
            s.close()
    held = [(s, n) for s, n in held if n == "b2"]
    # Both sessions must have ended inside ferry (after the member's FIN)
    # before the next picks, or b1 still counts them.
    wait_for(lambda: f.output().count("end=done") >= 2, 5,
             what="b1's sessions to end")
    new = []
    for _ in range(2):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        new.append((s, read_line(s)))
    assert [n for _, n in new] == ["b1", "b1"]
    for s, _ in held + new:
        s.close()


def client_from(ip, port):
    s = socket.socket()
    s.settimeout(5)
    s.bind((ip, 0))
    s.connect(("127.0.0.1", port))
    name = read_line(s)
    s.close()
    return name


def test_hash_client_ip_is_sticky_and_spreads(backends, ferry):
    bs = backends(3, mode="tcp")
    port = free_port()
    ferry(conf(port, [b.addr for b in bs], "hash"), [port])
    ips = [f"127.0.{i // 250}.{i % 250 + 2}" for i in range(60)]
    first = {ip: client_from(ip, port) for ip in ips}
    again = {ip: client_from(ip, port) for ip in ips}
    assert first == again
    # 60 client addresses over 3 members: every member gets some.
    assert set(first.values()) == {"b1", "b2", "b3"}


def test_hash_same_mapping_in_two_instances(backends, ferry):
    bs = backends(3, mode="tcp")
    p1, p2 = free_port(), free_port()
    ferry(conf(p1, [b.addr for b in bs], "hash"), [p1], name="a")
    # The second instance lists the servers in another order.
    ferry(conf(p2, [b.addr for b in reversed(bs)], "hash"), [p2], name="b")
    ips = [f"127.0.2.{i + 2}" for i in range(30)]
    assert {ip: client_from(ip, p1) for ip in ips} == \
        {ip: client_from(ip, p2) for ip in ips}


def test_hash_header_same_value_same_member(backends, ferry):
    from test_http import get, http_conf
    bs = backends(3, mode="http")
    port = free_port()
    ferry(http_conf(port, [b.addr for b in bs],
                    be="balance = hash\nhash_key = header:X-User\n"
                       "health_check = none"), [port])
    owner = {}
    for user in (f"user-{i}" for i in range(30)):
        seen = {get(port, "/", {"X-User": user})[2] for _ in range(3)}
        assert len(seen) == 1, (user, seen)
        owner[user] = seen.pop()
    # 30 users spread over the 3 members.
    assert len(set(owner.values())) == 3
    # No header: weighted rotation instead of one hot member.
    assert {get(port)[2] for _ in range(3)} == {b"b1\n", b"b2\n", b"b3\n"}


def test_hash_uri_same_path_same_member(backends, ferry):
    from test_http import get, http_conf
    bs = backends(3, mode="http")
    port = free_port()
    ferry(http_conf(port, [b.addr for b in bs],
                    be="balance = hash\nhash_key = uri\nhealth_check = none"),
          [port])
    owner = {}
    for i in range(30):
        path = f"/item/{i}"
        seen = {get(port, path)[2] for _ in range(3)}
        assert len(seen) == 1
        owner[path] = seen.pop()
    assert len(set(owner.values())) == 3
