"""The stats endpoint: /metrics, /stats, /, token, and real Prometheus."""
import json
import os
import re
import shutil
import signal
import subprocess
import urllib.error
import urllib.request

import pytest

from conftest import Proc, free_port, wait_for
from test_tcp import banner, tcp_conf

SPEC_METRICS = [
    "ferry_frontend_connections_total", "ferry_frontend_active_connections",
    "ferry_server_requests_total", "ferry_server_responses_total",
    "ferry_server_active_connections", "ferry_server_up",
    "ferry_server_health_checks_total", "ferry_server_response_seconds",
    "ferry_backend_members", "ferry_dns_lookups_total",
    "ferry_dns_queries_total", "ferry_dns_query_seconds",
    "ferry_dns_cache_entries", "ferry_config_reloads_total",
]


def get(port, path, token=None, method="GET"):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                 method=method)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


@pytest.fixture
def setup(backends, dnsfault, ferry):
    """ferry with a literal member and a DNS-named one, plus traffic."""
    bs = backends(2, mode="tcp")
    dnsfault.set("svc.test", a=["127.0.0.1"], ttl=60)
    port, sport = free_port(), free_port()
    text = tcp_conf(port, [bs[0].addr, f"svc.test:{bs[1].port}"],
                    stats=f"127.0.0.1:{sport}",
                    be="health_interval = 200ms\nhealth_timeout = 1s")
    text = text.replace("[frontend", "[resolver]\nnameservers = 127.0.0.1:%d\n"
                        "hosts_file = off\n\n[frontend" % dnsfault.port)
    f = ferry(text, [port])
    for _ in range(4):
        assert banner(port) in ("b1", "b2")
    return f, port, sport, bs


def parse_metrics(text):
    samples = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        name_labels, value = line.rsplit(" ", 1)
        samples[name_labels] = float(value)
    return samples


def test_every_spec_metric_present(setup):
    f, port, sport, bs = setup
    status, headers, body = get(sport, "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    for name in SPEC_METRICS:
        assert f"# TYPE {name} " in body, name
        assert re.search(rf"^{name}(_bucket|_sum|_count)?[{{ ]", body,
                         re.M), f"no sample for {name}"
    s = parse_metrics(body)
    assert s['ferry_frontend_connections_total{frontend="front"}'] >= 4
    assert s['ferry_backend_members{backend="pool"}'] == 2
    lit = f'backend="pool",server="{bs[0].addr}",address="{bs[0].addr}"'
    assert s[f"ferry_server_requests_total{{{lit}}}"] == 2
    assert s[f"ferry_server_up{{{lit}}}"] == 1
    named = (f'backend="pool",server="svc.test:{bs[1].port}",'
             f'address="127.0.0.1:{bs[1].port}"')
    assert s[f"ferry_server_requests_total{{{named}}}"] == 2
    assert s[f'ferry_server_health_checks_total{{{named},result="pass"}}'] >= 1
    assert s['ferry_dns_queries_total{name="svc.test",result="ok"}'] == 1
    assert s['ferry_dns_query_seconds_count{name="svc.test"}'] == 1
    assert s["ferry_dns_cache_entries"] == 1
    assert s['ferry_config_reloads_total{result="ok"}'] == 0


def test_reload_counters(setup):
    f, port, sport, bs = setup
    before = f.output().count("reload done")
    f.p.send_signal(signal.SIGHUP)
    wait_for(lambda: f.output().count("reload done") > before, 5,
             what="reload")
    with open(f.conf, "a") as fh:
        fh.write("nonsense\n")
    f.p.send_signal(signal.SIGHUP)
    wait_for(lambda: "still running the previous" in f.output(), 5,
             what="failed reload")
    s = parse_metrics(get(sport, "/metrics")[2])
    assert s['ferry_config_reloads_total{result="ok"}'] == 1
    assert s['ferry_config_reloads_total{result="fail"}'] == 1


@pytest.mark.skipif(shutil.which("promtool") is None,
                    reason="promtool (Debian package prometheus) missing")
def test_promtool_check_metrics_clean(setup):
    f, port, sport, bs = setup
    body = get(sport, "/metrics")[2]
    r = subprocess.run(["promtool", "check", "metrics"], input=body,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == "" and r.stderr.strip() == ""


def test_json_schema(setup):
    f, port, sport, bs = setup
    status, headers, body = get(sport, "/stats")
    assert status == 200 and headers["Content-Type"] == "application/json"
    doc = json.loads(body)
    assert set(doc) >= {"version", "uptime_seconds", "reloads", "frontends",
                        "backends", "dns"}
    fe = doc["frontends"][0]
    assert fe["name"] == "front" and fe["mode"] == "tcp"
    assert fe["connections_total"] >= 4
    be = doc["backends"][0]
    assert be["name"] == "pool" and be["members_total"] == 2
    for m in be["members"]:
        assert set(m) >= {"server", "address", "state", "reason", "weight",
                          "active_connections", "requests", "responses",
                          "connect_errors", "response_p50_seconds",
                          "response_p99_seconds", "health"}
        assert m["state"] == "up"
        assert set(m["responses"]) == {"1xx", "2xx", "3xx", "4xx", "5xx"}
        assert m["health"]["last_check"] == "ok"
        assert set(m["health"]) >= {"checks_passed", "checks_failed",
                                    "passive_ejections", "transitions",
                                    "last_check_seconds"}
    dns = doc["dns"]
    assert dns["cache_entries"] == 1
    name = dns["names"][0]
    assert name["name"] == "svc.test" and name["state"] == "resolved"
    assert name["addresses"] == ["127.0.0.1"]
    assert 0 < name["ttl_left_seconds"] <= 72
    assert name["queries"] == 1 and name["failures"] == 0


def test_html_page(setup):
    f, port, sport, bs = setup
    status, headers, body = get(sport, "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert bs[0].addr in body and f"svc.test:{bs[1].port}" in body
    assert "svc.test" in body and 'http-equiv="refresh"' in body
    assert "<script" not in body and "http://" not in body  # no assets


def test_unknown_path_and_method(setup):
    f, port, sport, bs = setup
    assert get(sport, "/nope")[0] == 404
    status, headers, _ = get(sport, "/metrics", method="POST")
    assert status == 405 and "GET" in headers["Allow"]


def test_token(backends, ferry):
    bs = backends(1, mode="tcp")
    port, sport = free_port(), free_port()
    text = tcp_conf(port, [bs[0].addr], stats=f"127.0.0.1:{sport}")
    text = text.replace("[stats]\n", "[stats]\ntoken = s3cret-T0ken\n")
    ferry(text, [port])
    for path in ("/metrics", "/stats", "/"):
        assert get(sport, path)[0] == 401
        assert get(sport, path, token="wrong")[0] == 401
        assert get(sport, path, token="s3cret-T0ken")[0] == 200
    assert get(sport, "/metrics")[1]["WWW-Authenticate"].startswith("Bearer")


def test_stats_address_change_on_reload(backends, ferry):
    bs = backends(1, mode="tcp")
    port, s1, s2 = free_port(), free_port(), free_port()
    f = ferry(tcp_conf(port, [bs[0].addr], stats=f"127.0.0.1:{s1}"), [port])
    assert get(s1, "/metrics")[0] == 200
    f.write_conf(tcp_conf(port, [bs[0].addr], stats=f"127.0.0.1:{s2}"))
    f.p.send_signal(signal.SIGHUP)
    f.wait_log("reload done")
    assert get(s2, "/metrics")[0] == 200
    with pytest.raises(OSError):
        get(s1, "/metrics")


def test_metrics_with_1000_members(ferry, tmp):
    # 1,000 members (addresses nothing listens on; checks off): every one
    # is on the page. (How long it takes is measured by the benchmark
    # tests/bench/bench_stats.py, not asserted here.)
    port, sport = free_port(), free_port()
    servers = [f"127.0.{i // 250 + 10}.{i % 250 + 1}:9" for i in range(1000)]
    ferry(tcp_conf(port, servers, stats=f"127.0.0.1:{sport}",
                   be="health_check = none").replace("log_level = debug",
                                                     "log_level = info"),
          [port])
    status, _, body = get(sport, "/metrics")
    assert status == 200
    assert body.count("ferry_server_up{") == 1000
    assert body.count('ferry_server_response_seconds_bucket{') == 1000 * 18


@pytest.mark.skipif(shutil.which("prometheus") is None,
                    reason="prometheus (Debian package) missing")
def test_real_prometheus_scrapes_ferry(setup, tmp, procs):
    f, port, sport, bs = setup
    pport = free_port()
    cfg = os.path.join(tmp, "prometheus.yml")
    with open(cfg, "w") as fh:
        fh.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                 "scrape_configs:\n  - job_name: ferry\n"
                 f"    static_configs:\n      - targets: ['127.0.0.1:{sport}']"
                 "\n")
    p = Proc(["prometheus", f"--config.file={cfg}",
              f"--storage.tsdb.path={os.path.join(tmp, 'tsdb')}",
              f"--web.listen-address=127.0.0.1:{pport}"],
             os.path.join(tmp, "prometheus.log"))
    procs.append(p)

    def query(q):
        try:
            with urllib.request.urlopen(
                    f"http://127.0.0.1:{pport}/api/v1/query?query={q}",
                    timeout=2) as r:
                return json.loads(r.read())["data"]["result"]
        except (OSError, ValueError, KeyError):
            return None

    up = wait_for(lambda: [r for r in (query("up") or [])
                           if r["value"][1] == "1"], 30,
                  interval=0.2, what="prometheus to scrape ferry")
    assert up[0]["metric"]["job"] == "ferry"
    res = wait_for(lambda: query("ferry_backend_members"), 10, interval=0.2,
                   what="a ferry metric in prometheus")
    assert res[0]["metric"]["backend"] == "pool" and res[0]["value"][1] == "2"


def chromium():
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.mark.skipif(chromium() is None,
                    reason="chromium (Debian package) missing")
def test_html_page_in_headless_chromium(setup, tmp):
    f, port, sport, bs = setup
    # --dump-dom prints the DOM after the page loaded and rendered.
    r = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync",
         f"--user-data-dir={os.path.join(tmp, 'chromium')}",
         "--dump-dom", f"http://127.0.0.1:{sport}/"],
        capture_output=True, text=True, timeout=60)
    dom = r.stdout
    assert "<title>ferry</title>" in dom, r.stderr[-2000:]
    assert dom.count('<tr class="up">') >= 3  # 2 members + 1 DNS name
    for addr in (bs[0].addr, f"127.0.0.1:{bs[1].port}"):
        assert addr in dom
    assert "svc.test" in dom
