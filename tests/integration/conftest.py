"""Fixtures that run the real ferry binary against real processes.

Everything listens on 127.0.0.1 (or ::1) on ports the kernel picks, and
every wait is a poll on a condition with a deadline, never a bare sleep.

Environment:
  FERRY_BIN                  the binary under test (default build/ferry)
  FERRY_TEST_WORKERS=N       every configuration ferry is started or
                             reloaded with gets `workers = N` in [global],
                             unless the test sets `workers` itself
  FERRY_TEST_TIMEOUT_FACTOR  multiplies every deadline of the harness (and
                             those tests take from scaled()), for slow
                             builds such as ThreadSanitizer (default 1)
"""
import os
import re
import resource
import signal
import socket
import subprocess
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
# Helpers shared by the integration tests, the unit tests, the benchmarks
# and scripts/demo.sh.
LIB = os.path.join(ROOT, "tests", "lib")
BACKEND = os.path.join(LIB, "backend.py")
PYTHON = "/usr/bin/python3"


def ferry_bin():
    path = os.environ.get("FERRY_BIN", os.path.join(ROOT, "build", "ferry"))
    if not os.access(path, os.X_OK):
        pytest.exit(f"ferry binary not found at {path} (set FERRY_BIN)", 2)
    return path


TIMEOUT_FACTOR = float(os.environ.get("FERRY_TEST_TIMEOUT_FACTOR") or 1)


def scaled(seconds):
    """A deadline (or an upper bound on how long something may take)
    stretched for slow builds: FERRY_TEST_TIMEOUT_FACTOR times seconds."""
    return seconds * TIMEOUT_FACTOR


def wait_for(cond, timeout=5.0, interval=0.01, what="condition"):
    """Polls cond() until it returns a true value or the deadline passes
    (timeout is scaled by FERRY_TEST_TIMEOUT_FACTOR)."""
    timeout = scaled(timeout)
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def free_port(host="127.0.0.1"):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def can_connect(host, port):
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def recv_to_eof(s, size=65536, reset_ok=False):
    """Everything a socket delivers until the peer closes it. With
    reset_ok, a reset ends the read like a close does."""
    data = bytearray()
    while True:
        try:
            chunk = s.recv(size)
        except ConnectionResetError:
            if not reset_ok:
                raise
            break
        if not chunk:
            return bytes(data)
        data += chunk
    return bytes(data)


def raise_nofile(n=8192):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(max(n, soft), hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


class Proc:
    """A child process whose stderr goes to a file we can read any time."""

    def __init__(self, argv, logpath, preexec=None, env=None):
        self.logpath = logpath
        self.log = open(logpath, "wb")
        self.p = subprocess.Popen(argv, stdout=self.log, stderr=self.log,
                                  stdin=subprocess.DEVNULL,
                                  preexec_fn=preexec, env=env)

    def output(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode(errors="replace")

    def alive(self):
        return self.p.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(scaled(timeout))
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        self.log.close()
        return self.p.returncode


class Backend(Proc):
    def __init__(self, tmp, name, mode="http", extra=(), host="127.0.0.1"):
        ready = os.path.join(tmp, f"{name}.port")
        super().__init__([PYTHON, BACKEND, "--name", name, "--mode", mode,
                          "--host", host, "--port", "0",
                          "--ready-file", ready, *extra],
                         os.path.join(tmp, f"{name}.log"))
        self.name = name
        self.host = host
        wait_for(lambda: os.path.exists(ready) or not self.alive(),
                 10, what=f"backend {name} to listen")
        assert self.alive(), self.output()
        with open(ready) as f:
            self.port = int(f.read())

    @property
    def addr(self):
        if ":" in self.host:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "WARNING: ThreadSanitizer",
                   "FATAL: ThreadSanitizer", "ThreadSanitizer: CHECK failed")

WORKERS_KEY = re.compile(r"^[ \t]*workers[ \t]*=", re.M)
GLOBAL_HEADER = re.compile(r"^[ \t]*\[global\][ \t]*$", re.M)


def harness_workers():
    """The worker count FERRY_TEST_WORKERS gives ferry (1 when unset):
    for the few tests whose bounds depend on it."""
    return int(os.environ.get("FERRY_TEST_WORKERS") or 1)


def with_workers(text):
    """The configuration text ferry is given: with FERRY_TEST_WORKERS=N
    set, `workers = N` is added to [global] (the section is added when
    there is none). A text that sets workers itself keeps its value, so
    tests of the workers key mean what they say."""
    n = os.environ.get("FERRY_TEST_WORKERS")
    if not n or WORKERS_KEY.search(text):
        return text
    m = GLOBAL_HEADER.search(text)
    if m is None:
        return f"[global]\nworkers = {n}\n\n" + text
    return text[:m.end()] + f"\nworkers = {n}" + text[m.end():]


def sanitized():
    """True when the ferry under test was built with ASan."""
    with open(ferry_bin(), "rb") as f:
        return b"__asan_init" in f.read()


class Ferry(Proc):
    def __init__(self, tmp, conf_text, name="ferry", wait_ports=(),
                 nofile=4096, env=None, cpus=None):
        self.conf = os.path.join(tmp, f"{name}.conf")
        self.write_conf(conf_text)

        def preexec():
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE,
                               (min(nofile, hard), hard))
            if cpus is not None:
                # As `taskset -c CPUS ferry ...` would.
                os.sched_setaffinity(0, cpus)

        super().__init__([ferry_bin(), "-c", self.conf],
                         os.path.join(tmp, f"{name}.log"), preexec, env)
        if wait_ports:
            # The start line comes after every listener is accepting; a
            # probe connection would disturb the balancer's sequence.
            wait_for(lambda: not self.alive() or " started (" in self.output(),
                     10, what="ferry to start")
            assert self.alive(), self.output()

    def write_conf(self, text):
        """Replaces the configuration file (for a reload): the text goes
        through with_workers() like the one ferry started with."""
        with open(self.conf, "w") as f:
            f.write(with_workers(text))

    def sanitizer_report(self):
        out = self.output()
        for mark in SANITIZER_MARKS:
            i = out.find(mark)
            if i >= 0:
                return out[max(0, i - 200):i + 3000]
        return None

    def wait_log(self, text, timeout=5):
        return wait_for(lambda: text in self.output(), timeout,
                        what=f"'{text}' in ferry's log")


@pytest.fixture
def tmp():
    with tempfile.TemporaryDirectory(prefix="ferry-test-") as d:
        yield d


@pytest.fixture
def procs():
    """Collects processes and stops them all at the end of a test. A ferry
    that reports a sanitizer error (or exits badly on SIGTERM) fails it."""
    started = []
    yield started
    problems = []
    for p in reversed(started):
        rc = p.stop()
        if isinstance(p, Ferry):
            report = p.sanitizer_report()
            if report:
                problems.append(report)
            elif rc not in (0, None) and rc != -signal.SIGKILL and \
                    not getattr(p, "expect_exit", False):
                problems.append(f"ferry exited with {rc}:\n"
                                + p.output()[-2000:])
    assert not problems, "\n".join(problems)


@pytest.fixture
def backends(tmp, procs):
    def make(n, mode="http", extra=(), prefix="b", host="127.0.0.1"):
        out = []
        for i in range(n):
            b = Backend(tmp, f"{prefix}{i + 1}", mode, extra, host)
            procs.append(b)
            out.append(b)
        return out
    return make


@pytest.fixture
def ferry(tmp, procs):
    def make(conf_text, wait_ports=(), name="ferry", nofile=4096, env=None,
             cpus=None):
        f = Ferry(tmp, conf_text, name, wait_ports, nofile, env, cpus)
        procs.append(f)
        return f
    return make


def run_ferry(*args, timeout=10):
    return subprocess.run([ferry_bin(), *args], capture_output=True,
                          text=True, timeout=scaled(timeout))


raise_nofile()


DNSFAULT = os.path.join(LIB, "dnsfault.py")


class DnsFault(Proc):
    """The project's fault-injecting DNS server, driven over its control
    port (see dnsfault.py)."""

    def __init__(self, tmp, name="dnsfault", port=0):
        import json
        ready = os.path.join(tmp, f"{name}.ready")
        if os.path.exists(ready):
            os.unlink(ready)
        super().__init__([PYTHON, DNSFAULT, "--port", str(port),
                          "--control-port", "0", "--ready-file", ready],
                         os.path.join(tmp, f"{name}.log"))
        wait_for(lambda: os.path.exists(ready) or not self.alive(), 10,
                 what="dnsfault to start")
        assert self.alive(), self.output()
        with open(ready) as f:
            info = json.load(f)
        self.port = info["port"]
        self.control_port = info["control_port"]

    def cmd(self, **kw):
        import json
        with socket.create_connection(("127.0.0.1", self.control_port),
                                      timeout=5) as s:
            s.sendall((json.dumps(kw) + "\n").encode())
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        out = json.loads(data)
        assert out.get("ok"), out
        return out

    def set(self, name, **kw):
        return self.cmd(cmd="set", name=name, **kw)

    def count(self, name, qtype="A"):
        return self.cmd(cmd="count", name=name, type=qtype)["count"]


@pytest.fixture
def dnsfault(tmp, procs):
    d = DnsFault(tmp)
    procs.append(d)
    return d
