"""TLS termination on http frontends: curl, openssl s_client, config checks."""
import os
import socket
import subprocess

import pytest

from conftest import free_port, recv_to_eof, run_ferry
from test_http import backend_stats, http_conf


def make_cert(tmp, name="cert"):
    """A self-signed certificate for localhost and 127.0.0.1."""
    crt = os.path.join(tmp, f"{name}.pem")
    key = os.path.join(tmp, f"{name}.key")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-addext",
         "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", key, "-out", crt],
        check=True, capture_output=True, timeout=30)
    return crt, key


def tls_conf(port, servers, crt, key, fe="", be=""):
    return http_conf(port, servers,
                     fe=f"tls_cert = {crt}\ntls_key = {key}\n{fe}", be=be)


def curl(*args):
    return subprocess.run(["curl", "-sS", "--max-time", "10", *args],
                          capture_output=True, text=True, timeout=20)


def s_client(port, *args, data=b""):
    return subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
         "-servername", "localhost", "-ign_eof", *args],
        input=data, capture_output=True, timeout=20)


@pytest.fixture
def cert(tmp):
    return make_cert(tmp)


def test_curl_over_tls(backends, ferry, cert):
    bs = backends(2)
    crt, key = cert
    port = free_port()
    ferry(tls_conf(port, [b.addr for b in bs], crt, key), [port])
    url = f"https://localhost:{port}/"
    r = curl("--cacert", crt, "-D", "-", "--resolve",
             f"localhost:{port}:127.0.0.1", url, url, url, url)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("HTTP/1.1 200") == 4
    assert "X-Seen-x-forwarded-proto: https" in r.stdout
    assert "X-Seen-x-forwarded-for: 127.0.0.1" in r.stdout
    # Round-robin per request on curl's one keep-alive connection.
    assert r.stdout.count("X-Backend: b1") == 2
    assert r.stdout.count("X-Backend: b2") == 2
    # The certificate is checked: without the CA curl refuses.
    r = curl("--resolve", f"localhost:{port}:127.0.0.1", url)
    assert r.returncode != 0


def test_tls_large_body(backends, ferry, cert, tmp):
    bs = backends(1)
    crt, key = cert
    port = free_port()
    ferry(tls_conf(port, [bs[0].addr], crt, key), [port])
    body = os.path.join(tmp, "body.bin")
    with open(body, "wb") as f:
        f.write(os.urandom(3 * 1024 * 1024))
    out = os.path.join(tmp, "out.bin")
    r = curl("--cacert", crt, "--data-binary", f"@{body}", "-o", out,
             f"https://127.0.0.1:{port}/echo")
    assert r.returncode == 0, r.stderr
    with open(body, "rb") as a, open(out, "rb") as b:
        assert a.read() == b.read()


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_s_client_versions_and_alpn(backends, ferry, cert, version):
    bs = backends(1)
    crt, key = cert
    port = free_port()
    ferry(tls_conf(port, [bs[0].addr], crt, key), [port])
    r = s_client(port, version, "-alpn", "http/1.1", "-CAfile", crt,
                 data=b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close"
                      b"\r\n\r\n")
    out = r.stdout.decode(errors="replace")
    want = "TLSv1.2" if version == "-tls1_2" else "TLSv1.3"
    assert f"Protocol  : {want}" in out or f"New, {want}" in out, out
    assert "ALPN protocol: http/1.1" in out
    assert "Verify return code: 0 (ok)" in out
    assert "HTTP/1.1 200 OK" in out and "\nb1\n" in out


def test_request_read_with_the_handshake_is_served(backends, ferry, cert):
    """A client's Finished and its first request can reach ferry in one
    read that also completes the handshake; OpenSSL then holds the request
    and the socket has nothing more to say. It must be served at once, not
    when the client gives up. The coalescing is a race (s_client, quick to
    follow its Finished with the request, hit it about one time in 15
    here), so many tries."""
    bs = backends(1)
    crt, key = cert
    port = free_port()
    ferry(tls_conf(port, [bs[0].addr], crt, key), [port])
    req = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    for i in range(50):
        try:
            r = subprocess.run(
                ["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
                 "-servername", "localhost", "-ign_eof", "-quiet",
                 "-tls1_3", "-CAfile", crt],
                input=req, capture_output=True, timeout=5)
        except subprocess.TimeoutExpired:
            pytest.fail(f"try {i}: no response in 5 s")
        assert r.stdout.startswith(b"HTTP/1.1 200 OK"), (i, r.stdout)


def test_session_resumption(backends, ferry, cert, tmp):
    bs = backends(1)
    crt, key = cert
    port = free_port()
    ferry(tls_conf(port, [bs[0].addr], crt, key), [port])
    sess = os.path.join(tmp, "sess.pem")
    req = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    r = s_client(port, "-tls1_2", "-sess_out", sess, "-CAfile", crt,
                 data=req)
    assert b"HTTP/1.1 200 OK" in r.stdout
    r = s_client(port, "-tls1_2", "-sess_in", sess, "-CAfile", crt,
                 data=req)
    assert b"Reused, TLSv1.2" in r.stdout, r.stdout.decode(errors="replace")


def test_plain_http_to_tls_port_never_reaches_member(backends, ferry, cert):
    bs = backends(1)
    crt, key = cert
    port = free_port()
    # No active checks, so every connection the backend saw came from a
    # client.
    ferry(tls_conf(port, [bs[0].addr], crt, key, be="health_check = none"),
          [port])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        # Closed with the request unread, so possibly with an RST.
        data = recv_to_eof(s, reset_ok=True)
    assert b"HTTP/1.1 200" not in data
    assert backend_stats(bs[0])["requests"] == 0
    assert backend_stats(bs[0])["connections"] == 0


def test_handshake_timeout(backends, ferry, cert):
    bs = backends(1)
    crt, key = cert
    port = free_port()
    ferry(tls_conf(port, [bs[0].addr], crt, key, fe="timeout_request = 1s"),
          [port])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"\x16\x03\x01")  # a record header, then silence
        assert s.recv(4096) == b""


def test_mismatched_cert_key_is_config_error(tmp, cert):
    crt, _ = cert
    _, other_key = make_cert(tmp, "other")
    conf = os.path.join(tmp, "bad.conf")
    with open(conf, "w") as f:
        f.write("[frontend web]\nlisten = 127.0.0.1:1\nmode = http\n"
                f"backend = b\ntls_cert = {crt}\ntls_key = {other_key}\n"
                "[backend b]\nserver = 127.0.0.1:2\n")
    r = run_ferry("-t", "-c", conf)
    assert r.returncode == 1
    assert r.stderr.startswith(f"{conf}:5: "), r.stderr
    assert "does not match" in r.stderr
    # A missing file is an error too, and a good pair passes.
    with open(conf, "w") as f:
        f.write("[frontend web]\nlisten = 127.0.0.1:1\nmode = http\n"
                f"backend = b\ntls_cert = {crt}.missing\ntls_key = "
                f"{other_key}\n[backend b]\nserver = 127.0.0.1:2\n")
    r = run_ferry("-t", "-c", conf)
    assert r.returncode == 1 and f"{conf}:5: " in r.stderr
    with open(conf, "w") as f:
        f.write("[frontend web]\nlisten = 127.0.0.1:1\nmode = http\n"
                f"backend = b\ntls_cert = {crt}\ntls_key = {crt[:-4]}.key\n"
                "[backend b]\nserver = 127.0.0.1:2\n")
    r = run_ferry("-t", "-c", conf)
    assert r.returncode == 0, r.stderr


def test_tls_file_that_would_block_is_refused(tmp, cert):
    # A FIFO (or /dev/stdin) as a certificate must not hang the check, nor
    # a reload on the event loop: only regular files are read.
    crt, key = cert
    fifo = os.path.join(tmp, "cert.fifo")
    os.mkfifo(fifo)
    path = os.path.join(tmp, "fifo.conf")
    with open(path, "w") as fh:
        fh.write("[frontend web]\nlisten = 127.0.0.1:1\nmode = http\n"
                 f"backend = b\ntls_cert = {fifo}\ntls_key = {key}\n"
                 "[backend b]\nserver = 127.0.0.1:2\n")
    r = run_ferry("-t", "-c", path, timeout=5)
    assert r.returncode == 1
    assert f"{path}:5: [frontend web]: certificate {fifo} is not a regular " \
        "file" in r.stderr


def served_cert(port):
    import ssl
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            return t.getpeercert(binary_form=True)


def test_reload_picks_up_renewed_certificate(backends, ferry, tmp):
    import signal
    bs = backends(1)
    old_crt, old_key = make_cert(tmp, "old")
    new_crt, new_key = make_cert(tmp, "new")
    port = free_port()
    f = ferry(tls_conf(port, [bs[0].addr], old_crt, old_key), [port])
    first = served_cert(port)
    # Renew in place (same paths), as certbot or cert-manager would.
    os.replace(new_crt, old_crt)
    os.replace(new_key, old_key)
    f.p.send_signal(signal.SIGHUP)
    f.wait_log("reload done")
    second = served_cert(port)
    assert first != second
    with open(old_crt) as fh:
        import ssl
        assert ssl.DER_cert_to_PEM_cert(second).strip() == fh.read().strip()
