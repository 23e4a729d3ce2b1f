"""DNS-driven pools through the real binary: dnsmasq from Debian as a real
DNS server, and dnsfault.py (ours) for delays, drops and failures."""
import collections
import os
import shutil
import signal
import threading
import time

import pytest

from conftest import BACKEND, DnsFault, Proc, free_port, wait_for
from test_tcp import connect, read_line


def dns_conf(port, servers, dns_port, resolver="", be="", glob=""):
    lines = ["[global]", "log_level = debug", "access_log = stderr", glob,
             "[stats]", "listen = off",
             "[resolver]", f"nameservers = 127.0.0.1:{dns_port}",
             "hosts_file = off", resolver,
             "[frontend front]", f"listen = 127.0.0.1:{port}", "mode = tcp",
             "backend = pool", "[backend pool]", "health_check = none", be]
    lines += [f"server = {s}" for s in servers]
    return "\n".join(lines) + "\n"


def concurrently(n, fn, timeout=15):
    """Runs fn in n threads at once; returns results (or errors as text)."""
    results = []

    def client():
        try:
            results.append(fn())
        except OSError as e:
            results.append(repr(e))

    threads = [threading.Thread(target=client) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    return results


def banner(port, timeout=5):
    with connect(port, timeout=timeout) as s:
        return read_line(s)


def start_backends(tmp, procs, hosts, mode="tcp"):
    """Backends on 127.0.0.x sharing one port (the port a name's members
    share, as DNS gives addresses and the server line gives the port);
    returns them and the port."""
    port = free_port()
    out = []
    for i, host in enumerate(hosts):
        ready = os.path.join(tmp, f"m{i}.port")
        p = Proc(["/usr/bin/python3", BACKEND, "--name", host, "--mode",
                  mode, "--host", host, "--port", str(port),
                  "--ready-file", ready],
                 os.path.join(tmp, f"m{i}.log"))
        procs.append(p)
        wait_for(lambda: os.path.exists(ready) or not p.alive(), 10,
                 what=f"backend on {host}")
        assert p.alive(), p.output()
        out.append(p)
    return out, port


def test_multi_a_expands_into_members(tmp, procs, dnsfault, ferry):
    hosts = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    _, bport = start_backends(tmp, procs, hosts)
    dnsfault.set("api.test", a=hosts, ttl=60)
    port = free_port()
    f = ferry(dns_conf(port, [f"api.test:{bport}"], dnsfault.port), [port])
    seen = collections.Counter(banner(port) for _ in range(30))
    assert seen == {h: 10 for h in hosts}
    assert "server api.test:%d now has 3 addresses" % bport in f.output()
    assert dnsfault.count("api.test", "A") == 1


def test_reordered_answers_do_not_change_pool(tmp, procs, dnsfault, ferry):
    hosts = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    _, bport = start_backends(tmp, procs, hosts)
    dnsfault.set("api.test", a=hosts, ttl=1, reorder=True)
    port = free_port()
    f = ferry(dns_conf(port, [f"api.test:{bport}"], dnsfault.port,
                       resolver="min_ttl = 1s\njitter = 0\nprefetch = 0"),
              [port])
    wait_for(lambda: dnsfault.count("api.test", "A") >= 4, 10,
             what="several refreshes of a 1 s TTL")
    assert f.output().count("now has 3 addresses") == 1
    assert collections.Counter(banner(port) for _ in range(9)) == \
        {h: 3 for h in hosts}


def test_pool_follows_changed_records(tmp, procs, dnsfault, ferry):
    hosts = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    _, bport = start_backends(tmp, procs, hosts)
    dnsfault.set("api.test", a=hosts[:2], ttl=1)
    port = free_port()
    f = ferry(dns_conf(port, [f"api.test:{bport}"], dnsfault.port,
                       resolver="min_ttl = 1s\njitter = 0"), [port])
    assert set(banner(port) for _ in range(4)) == set(hosts[:2])
    dnsfault.set("api.test", a=hosts[1:], ttl=1)
    f.wait_log("pool 2 -> 2 members", 5)
    assert set(banner(port) for _ in range(6)) == set(hosts[1:])


def test_nxdomain_and_servfail_keep_pool(tmp, procs, dnsfault, ferry):
    hosts = ["127.0.0.2", "127.0.0.3"]
    _, bport = start_backends(tmp, procs, hosts)
    dnsfault.set("api.test", a=hosts, ttl=1)
    port = free_port()
    f = ferry(dns_conf(port, [f"api.test:{bport}"], dnsfault.port,
                       resolver="min_ttl = 1s\njitter = 0\n"
                                "negative_ttl = 1s\nattempts = 1\n"
                                "timeout = 200ms"), [port])
    assert set(banner(port) for _ in range(4)) == set(hosts)
    n = dnsfault.count("api.test", "A")
    dnsfault.set("api.test", a=hosts, ttl=1, fault="nxdomain")
    wait_for(lambda: dnsfault.count("api.test", "A") >= n + 2, 10,
             what="failing refreshes")
    dnsfault.set("api.test", a=hosts, ttl=1, fault="servfail")
    m = dnsfault.count("api.test", "A")
    wait_for(lambda: dnsfault.count("api.test", "A") >= m + 1, 10,
             what="servfail refresh")
    assert set(banner(port) for _ in range(4)) == set(hosts)
    assert "members are removed" not in f.output()


def test_dns_dead_traffic_continues_on_stale(tmp, procs, dnsfault, ferry):
    hosts = ["127.0.0.2", "127.0.0.3"]
    _, bport = start_backends(tmp, procs, hosts)
    dnsfault.set("api.test", a=hosts, ttl=1)
    port = free_port()
    f = ferry(dns_conf(port, [f"api.test:{bport}"], dnsfault.port,
                       resolver="min_ttl = 1s\njitter = 0\nstale_ttl = 1h\n"
                                "attempts = 1\ntimeout = 200ms"), [port])
    assert set(banner(port) for _ in range(4)) == set(hosts)
    dnsfault.stop()
    # Well past the TTL: answers are stale, refreshes fail, traffic flows.
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        assert banner(port) in hosts
        time.sleep(0.1)
    assert f.alive()
    assert "members are removed" not in f.output()


def test_dns_silent_at_start_then_serves(tmp, procs, dnsfault, ferry):
    # DNS drops every query: start-up waits startup_timeout, no longer.
    hosts = ["127.0.0.2"]
    _, bport = start_backends(tmp, procs, hosts)
    dnsfault.set("api.test", a=hosts, ttl=60, fault="drop")
    port = free_port()
    start = time.monotonic()
    f = ferry(dns_conf(port, [f"api.test:{bport}"], dnsfault.port,
                       resolver="startup_timeout = 1s\nattempts = 1\n"
                                "timeout = 3s\nnegative_ttl = 1s"),
              [port])
    assert 0.9 < time.monotonic() - start < 4
    assert "api.test not resolved within startup_timeout" in f.output()
    # Nothing to serve yet: a session waits timeout_connect, then closes.
    with connect(port) as s:
        s.settimeout(10)
        assert s.recv(10) == b""
    dnsfault.set("api.test", a=hosts, ttl=60)
    wait_for(lambda: "now has 1 address" in f.output(), 15,
             what="the name to resolve once DNS answers")
    assert banner(port) == "127.0.0.2"


def test_dns_down_at_start_then_serves(tmp, procs, ferry):
    # Nothing listens on the DNS port (refused at once): ferry starts right
    # away and keeps retrying with backoff until DNS comes up.
    hosts = ["127.0.0.2"]
    _, bport = start_backends(tmp, procs, hosts)
    dns_port = free_port()
    port = free_port()
    start = time.monotonic()
    f = ferry(dns_conf(port, [f"api.test:{bport}"], dns_port,
                       resolver="startup_timeout = 2s\nattempts = 1\n"
                                "timeout = 300ms\nnegative_ttl = 1s"),
              [port])
    assert time.monotonic() - start < 3
    assert "api.test did not resolve" in f.output()
    d = DnsFault(tmp, name="late", port=dns_port)
    procs.append(d)
    d.set("api.test", a=hosts, ttl=60)
    wait_for(lambda: "now has 1 address" in f.output(), 15,
             what="the name to resolve once DNS is back")
    assert banner(port) == "127.0.0.2"


def test_herd_after_expiry_one_query(tmp, procs, dnsfault, ferry):
    hosts = ["127.0.0.2", "127.0.0.3"]
    _, bport = start_backends(tmp, procs, hosts)
    dnsfault.set("api.test", a=hosts, ttl=1)
    port = free_port()
    f = ferry(dns_conf(port, [f"api.test:{bport}"], dnsfault.port,
                       resolver="min_ttl = 1s\njitter = 0\nstale_ttl = 0\n"
                                "prefetch = 0\ntimeout = 2s",
                       be="timeout_connect = 3s"), [port])
    assert set(banner(port) for _ in range(2)) == set(hosts)
    # Slow DNS: the refresh after expiry takes 500 ms; with stale_ttl = 0
    # the pool empties at expiry and every client parks on that one query.
    dnsfault.set("api.test", a=hosts, ttl=1, delay_ms=500)
    f.wait_log("no usable answer for api.test", 5)
    before = dnsfault.count("api.test", "A")
    results = concurrently(100, lambda: banner(port, timeout=10))
    assert len(results) == 100 and set(results) <= set(hosts), f.output()[-3000:]
    assert dnsfault.count("api.test", "A") - before <= 1


def test_family_any_asks_both(tmp, procs, dnsfault, ferry):
    hosts = ["127.0.0.2"]
    _, bport = start_backends(tmp, procs, hosts)
    dnsfault.set("api.test", a=hosts, aaaa=[], ttl=60)
    port = free_port()
    ferry(dns_conf(port, [f"api.test:{bport}"], dnsfault.port,
                   resolver="family = any"), [port])
    assert banner(port) == "127.0.0.2"
    assert dnsfault.count("api.test", "A") == 1
    assert dnsfault.count("api.test", "AAAA") == 1


@pytest.mark.skipif(shutil.which("dnsmasq") is None,
                    reason="dnsmasq (dnsmasq-base) not installed")
def test_dnsmasq_multi_a_and_reload(tmp, procs, ferry):
    hosts = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    _, bport = start_backends(tmp, procs, hosts)
    hostsfile = os.path.join(tmp, "dns.hosts")
    with open(hostsfile, "w") as fh:
        fh.write("".join(f"{h} svc.internal\n" for h in hosts))
    dport = free_port()
    dm = Proc(["dnsmasq", "--keep-in-foreground", "--no-daemon",
               f"--port={dport}", "--listen-address=127.0.0.1",
               "--bind-interfaces", "--no-resolv", "--no-hosts",
               f"--addn-hosts={hostsfile}", "--local-ttl=1",
               "--pid-file=" + os.path.join(tmp, "dnsmasq.pid"),
               "--user=root", "--log-facility=-"],
              os.path.join(tmp, "dnsmasq.log"))
    procs.append(dm)
    wait_for(lambda: "started" in dm.output() or not dm.alive(), 10,
             what="dnsmasq")
    assert dm.alive(), dm.output()
    port = free_port()
    f = ferry(dns_conf(port, [f"svc.internal:{bport}"], dport,
                       resolver="min_ttl = 1s\njitter = 0"), [port])
    seen = collections.Counter(banner(port) for _ in range(30))
    assert seen == {h: 10 for h in hosts}
    # Change the records and reload dnsmasq: the pool follows within TTL.
    with open(hostsfile, "w") as fh:
        fh.write("127.0.0.3 svc.internal\n")
    dm.p.send_signal(signal.SIGHUP)
    f.wait_log("pool 3 -> 1 members", 10)
    assert set(banner(port) for _ in range(5)) == {"127.0.0.3"}


def http_dns_conf(port, servers, dns_port, resolver="", be=""):
    return dns_conf(port, servers, dns_port, resolver, be).replace(
        "mode = tcp", "mode = http")


def http_status(port, timeout=10):
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request("GET", "/", headers={"Connection": "close"})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, body


def test_http_requests_park_on_cold_resolution(tmp, procs, backends,
                                               dnsfault, ferry):
    bs = backends(1, mode="http")
    # DNS answers after 1.5 s; start-up gives up waiting after 0.3 s, so
    # the first requests find an empty pool with the query in flight.
    dnsfault.set("web.test", a=["127.0.0.1"], ttl=60, delay_ms=1500)
    port = free_port()
    f = ferry(http_dns_conf(port, [f"web.test:{bs[0].port}"], dnsfault.port,
                            resolver="startup_timeout = 300ms\ntimeout = 3s",
                            be="timeout_connect = 5s"), [port])
    results = concurrently(20, lambda: http_status(port))
    assert results == [(200, b"b1\n")] * 20, f.output()[-2000:]
    assert dnsfault.count("web.test", "A") == 1


def test_http_503_when_resolution_fails(tmp, procs, dnsfault, ferry):
    dnsfault.set("gone.test", a=["127.0.0.1"], ttl=60, fault="nxdomain")
    port = free_port()
    ferry(http_dns_conf(port, ["gone.test:80"], dnsfault.port,
                        resolver="startup_timeout = 1s"), [port])
    status, _ = http_status(port)
    assert status == 503


def test_same_address_from_two_lines_is_one_member(tmp, procs, dnsfault,
                                                   ferry):
    hosts = ["127.0.0.2", "127.0.0.3"]
    _, bport = start_backends(tmp, procs, hosts)
    # Both names resolve to 127.0.0.2; a literal line names it too.
    dnsfault.set("a.test", a=hosts, ttl=60)
    dnsfault.set("b.test", a=["127.0.0.2"], ttl=60)
    port = free_port()
    f = ferry(dns_conf(port, [f"127.0.0.2:{bport}", f"a.test:{bport}",
                              f"b.test:{bport}"], dnsfault.port), [port])
    f.wait_log("server a.test:%d now has 1 address (1 more served by "
               "another server line)" % bport, 5)
    assert "server b.test:%d now has" % bport not in f.output()
    # Two members, one per address: 127.0.0.2 does not get a double share.
    seen = collections.Counter(banner(port) for _ in range(10))
    assert seen == {"127.0.0.2": 5, "127.0.0.3": 5}
