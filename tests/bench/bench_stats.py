#!/usr/bin/python3
"""How long ferry takes to build and serve /metrics and /stats with 1,000
members (target: well under 50 ms for /metrics).

    tests/bench/bench_stats.py [--ferry build/ferry] [--members 1000]
"""
import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--ferry", default="build/ferry")
    ap.add_argument("--members", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=21)
    args = ap.parse_args()
    port, sport = free_port(), free_port()
    servers = "".join(
        f"server = 127.0.{i // 250 + 10}.{i % 250 + 1}:9\n"
        for i in range(args.members))
    conf = (f"[global]\nlog_level = warn\n[stats]\nlisten = 127.0.0.1:{sport}\n"
            f"[frontend f]\nlisten = 127.0.0.1:{port}\nmode = tcp\n"
            f"backend = b\n[backend b]\nhealth_check = none\n{servers}")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.conf")
        with open(path, "w") as f:
            f.write(conf)
        p = subprocess.Popen([args.ferry, "-c", path])
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    urllib.request.urlopen(
                        f"http://127.0.0.1:{sport}/metrics", timeout=1).read()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        sys.exit("ferry did not start")
                    time.sleep(0.05)
            print(f"{args.members} members, {args.rounds} rounds each")
            for path in ("/metrics", "/stats", "/"):
                times, size = [], 0
                for _ in range(args.rounds):
                    t0 = time.perf_counter()
                    body = urllib.request.urlopen(
                        f"http://127.0.0.1:{sport}{path}", timeout=5).read()
                    times.append(time.perf_counter() - t0)
                    size = len(body)
                print(f"GET {path:9s} median {statistics.median(times)*1000:7.2f}"
                      f" ms  min {min(times)*1000:7.2f} ms  ({size} bytes)")
        finally:
            p.terminate()
            p.wait(10)


if __name__ == "__main__":
    main()
