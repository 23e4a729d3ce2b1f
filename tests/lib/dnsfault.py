#!/usr/bin/python3
"""dnsfault: a small fault-injecting authoritative DNS server for tests.

Stdlib only. Serves DNS over UDP and TCP on 127.0.0.1:PORT (and [::1]:PORT
with --ipv6 when the host has ::1), answering A, AAAA and CNAME chains from
an in-memory zone that tests change at run time, with faults per name.

Usage:
    dnsfault.py --port 0 --control-port 0 --ready-file F [--ipv6]
                [--zone FILE] [--default nxdomain|refused|drop]

--port 0 / --control-port 0 pick free ports. Once every socket is bound, the
ready file is written atomically (write + rename) as one JSON object:
    {"port": P, "control_port": C, "ipv6": true|false, "pid": N}
so a test waits for the file to exist (with a deadline) and reads the ports.
The same PORT is used for UDP and TCP (and for ::1 when "ipv6" is true).
Restarting with --port P re-binds the same port (SO_REUSEADDR on TCP).

Zone entry (one per name, names are case-insensitive, no trailing dot):
    {"name": "api.test",
     "a": ["10.0.0.1", ...],        A records
     "aaaa": ["::1", ...],          AAAA records
     "ttl": 60,                     TTL of the address records (default 60)
     "cname": [{"name": "x.test", "ttl": 5}, ...],
                                    CNAME chain: api.test -> x.test -> ...;
                                    the addresses are served as records of
                                    the last name of the chain
     "fault": "drop" | "servfail" | "nxdomain" | "refused" | "empty" | null,
     "fault_types": ["AAAA"],       only these query types get the fault
                                    (default: all)
     "fault_count": N,              fault only the first N matching queries,
                                    then answer normally (default: always)
     "delay_ms": N,                 answer (or fault) N ms late
     "reorder": true}               rotate the address records by one on
                                    every answer
A name not in the zone gets the --default answer (nxdomain). A query type
other than A, AAAA or CNAME gets an empty NOERROR answer.

Control interface: TCP 127.0.0.1:CONTROL_PORT, one JSON object per line in,
one JSON object per line out ({"ok": true, ...} or {"ok": false,
"error": "..."}). Commands ("cmd"):
    ping                        -> {"ok": true}
    set    <zone entry fields>  add or replace the entry for "name"
    delete name                 remove an entry
    clear                       remove every entry and reset counters
    count  name type            -> {"ok": true, "count": N} queries received
                                   for (name, type); type "A", "AAAA", ...
    counts                      -> {"ok": true, "counts": {"name/TYPE": N}}
    reset                       zero the counters
    default answer              set the answer for unknown names
Counters count every query received (UDP and TCP, dropped ones included).

--zone FILE: a JSON list of zone entries, loaded at start and reloaded when
its mtime changes (checked every 100 ms): entries from the file replace the
whole zone, control-port changes last until the next reload.

EDNS: a query with an OPT record gets an OPT record back and may receive
UDP answers up to its advertised payload size (at least 512); without OPT
the limit is 512. A UDP answer over the limit is sent truncated (TC bit,
question only) so the client retries over TCP, where there is no limit.
"""

import argparse
import errno
import ipaddress
import json
import os
import socket
import struct
import sys
import threading
import time

TYPE_A = 1
TYPE_CNAME = 5
TYPE_OPT = 41
TYPE_AAAA = 28
TYPE_NAMES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX",
              16: "TXT", 28: "AAAA", 33: "SRV", 41: "OPT", 255: "ANY"}

RCODE_NOERROR = 0
RCODE_FORMERR = 1
RCODE_SERVFAIL = 2
RCODE_NXDOMAIN = 3
RCODE_REFUSED = 5

FAULTS = (None, "drop", "servfail", "nxdomain", "refused", "empty")


def type_name(qtype):
    return TYPE_NAMES.get(qtype, "TYPE%d" % qtype)


def encode_name(name):
    out = bytearray()
    for label in name.rstrip(".").split("."):
        if not label:
            continue
        raw = label.encode("ascii")
        if len(raw) > 63:
            raise ValueError("label too long")
        out.append(len(raw))
        out += raw
    out.append(0)
    return bytes(out)


def decode_name(msg, off):
    """Returns (name, offset after the name); follows compression."""
    labels = []
    end = None
    hops = 0
    while True:
        if off >= len(msg):
            raise ValueError("name runs past the message")
        n = msg[off]
        if n & 0xC0 == 0xC0:
            if off + 1 >= len(msg) or hops > 20:
                raise ValueError("bad compression pointer")
            if end is None:
                end = off + 2
            off = ((n & 0x3F) << 8) | msg[off + 1]
            hops += 1
            continue
        off += 1
        if n == 0:
            break
        labels.append(msg[off:off + n].decode("ascii", "replace"))
        off += n
    return ".".join(labels), (end if end is not None else off)


class Query:
    """The parts of a request the server needs."""

    def __init__(self, data):
        if len(data) < 12:
            raise ValueError("short header")
        (self.id, self.flags, qd, an, ns, ar) = struct.unpack(
            "!HHHHHH", data[:12])
        if qd != 1:
            raise ValueError("qdcount %d" % qd)
        self.qname, off = decode_name(data, 12)
        self.qtype, self.qclass = struct.unpack("!HH", data[off:off + 4])
        self.question = data[12:off + 4]
        off += 4
        self.edns_size = None
        # Skip answer and authority records, look for OPT in additional.
        for i in range(an + ns + ar):
            _, off = decode_name(data, off)
            rtype, rclass, _ttl, rdlen = struct.unpack(
                "!HHIH", data[off:off + 10])
            if rtype == TYPE_OPT and i >= an + ns:
                self.edns_size = max(512, rclass)
            off += 10 + rdlen


class Entry:
    """One name of the zone and its faults."""

    def __init__(self, spec):
        self.name = str(spec["name"]).lower().rstrip(".")
        self.a = [str(ipaddress.IPv4Address(x)) for x in spec.get("a", [])]
        self.aaaa = [str(ipaddress.IPv6Address(x))
                     for x in spec.get("aaaa", [])]
        self.ttl = int(spec.get("ttl", 60))
        self.cname = [(str(c["name"]).lower().rstrip("."),
                       int(c.get("ttl", 60))) for c in spec.get("cname", [])]
        self.fault = spec.get("fault")
        if self.fault not in FAULTS:
            raise ValueError("unknown fault %r" % (self.fault,))
        self.fault_types = spec.get("fault_types")
        self.fault_count = spec.get("fault_count")
        self.delay_ms = int(spec.get("delay_ms", 0))
        self.reorder = bool(spec.get("reorder", False))
        self.rotation = 0


def rr(owner, rtype, ttl, rdata):
    return owner + struct.pack("!HHIH", rtype, 1, ttl, len(rdata)) + rdata


class Server:
    def __init__(self, default="nxdomain"):
        self.lock = threading.Lock()
        self.zone = {}
        self.counts = {}
        self.default = default

    # --- zone and counters (control side) ---

    def set_entry(self, spec):
        e = Entry(spec)
        with self.lock:
            self.zone[e.name] = e

    def replace_zone(self, specs):
        entries = [Entry(s) for s in specs]
        with self.lock:
            self.zone = {e.name: e for e in entries}

    def count_of(self, name, qtype):
        key = "%s/%s" % (name.lower().rstrip("."), qtype.upper())
        with self.lock:
            return self.counts.get(key, 0)

    # --- answering ---

    def decide(self, q):
        """Returns (delay seconds, response builder args or None to drop)."""
        name = q.qname.lower().rstrip(".")
        tname = type_name(q.qtype)
        with self.lock:
            key = "%s/%s" % (name, tname)
            self.counts[key] = self.counts.get(key, 0) + 1
            e = self.zone.get(name)
            if e is None:
                if self.default == "drop":
                    return 0, None
                rc = (RCODE_REFUSED if self.default == "refused"
                      else RCODE_NXDOMAIN)
                return 0, (rc, [])
            fault = e.fault
            if fault and e.fault_types and tname not in [
                    t.upper() for t in e.fault_types]:
                fault = None
            if fault and e.fault_count is not None:
                if e.fault_count <= 0:
                    fault = None
                else:
                    e.fault_count -= 1
            delay = e.delay_ms / 1000.0
            if fault == "drop":
                return delay, None
            if fault == "servfail":
                return delay, (RCODE_SERVFAIL, [])
            if fault == "nxdomain":
                return delay, (RCODE_NXDOMAIN, [])
            if fault == "refused":
                return delay, (RCODE_REFUSED, [])
            if fault == "empty":
                return delay, (RCODE_NOERROR, [])
            answers = []
            owner = b"\xc0\x0c"         # pointer to the question name
            for target, ttl in e.cname:
                tenc = encode_name(target)
                answers.append(rr(owner, TYPE_CNAME, ttl, tenc))
                owner = tenc
            if q.qtype == TYPE_A:
                addrs = [socket.inet_pton(socket.AF_INET, a) for a in e.a]
            elif q.qtype == TYPE_AAAA:
                addrs = [socket.inet_pton(socket.AF_INET6, a)
                         for a in e.aaaa]
            else:
                addrs = []
            if e.reorder and addrs:
                k = e.rotation % len(addrs)
                addrs = addrs[k:] + addrs[:k]
                e.rotation += 1
            for raw in addrs:
                answers.append(rr(owner, q.qtype, e.ttl, raw))
            if q.qtype not in (TYPE_A, TYPE_AAAA, TYPE_CNAME):
                answers = []
            return delay, (RCODE_NOERROR, answers)

    @staticmethod
    def build(q, rcode, answers, limit):
        """Encodes a response; truncates it (TC, no records) over limit."""
        # QR, opcode copied, AA, RD copied, RA.
        flags = 0x8000 | (q.flags & 0x7800) | 0x0400 | (q.flags & 0x0100) \
            | 0x0080 | (rcode & 0xF)
        opt = b""
        if q.edns_size is not None:
            opt = b"\x00" + struct.pack("!HHIH", TYPE_OPT, 1232, 0, 0)
        body = b"".join(answers)
        msg = struct.pack("!HHHHHH", q.id, flags, 1, len(answers), 0,
                          1 if opt else 0) + q.question + body + opt
        if limit is not None and len(msg) > limit:
            msg = struct.pack("!HHHHHH", q.id, flags | 0x0200, 1, 0, 0,
                              1 if opt else 0) + q.question + opt
        return msg

    def respond(self, data, send, udp):
        try:
            q = Query(data)
        except (ValueError, struct.error, UnicodeError):
            if len(data) >= 2:
                # FORMERR with the request's id, no question.
                send(struct.pack("!HHHHHH", struct.unpack("!H", data[:2])[0],
                                 0x8000 | RCODE_FORMERR, 0, 0, 0, 0))
            return
        delay, decision = self.decide(q)
        if decision is None:
            return
        limit = (q.edns_size or 512) if udp else None
        msg = self.build(q, decision[0], decision[1], limit)
        if delay > 0:
            t = threading.Timer(delay, send, args=(msg,))
            t.daemon = True
            t.start()
        else:
            send(msg)


def serve_udp(server, sock):
    while True:
        try:
            data, peer = sock.recvfrom(65535)
        except OSError:
            return

        def send(msg, peer=peer):
            try:
                sock.sendto(msg, peer)
            except OSError:
                pass
        server.respond(data, send, udp=True)


def recv_exact(conn, n):
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def serve_tcp_conn(server, conn):
    lock = threading.Lock()

    def send(msg):
        with lock:
            try:
                conn.sendall(struct.pack("!H", len(msg)) + msg)
            except OSError:
                pass
    with conn:
        conn.settimeout(30)
        while True:
            try:
                hdr = recv_exact(conn, 2)
                if hdr is None:
                    return
                data = recv_exact(conn, struct.unpack("!H", hdr)[0])
                if data is None:
                    return
            except OSError:
                return
            server.respond(data, send, udp=False)


def accept_loop(sock, handler):
    while True:
        try:
            conn, _ = sock.accept()
        except OSError:
            return
        threading.Thread(target=handler, args=(conn,), daemon=True).start()


def control_conn(server, conn):
    with conn:
        f = conn.makefile("rwb")
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                reply = control_command(server, json.loads(line))
            except (ValueError, KeyError, TypeError) as exc:
                reply = {"ok": False, "error": str(exc)}
            f.write(json.dumps(reply).encode() + b"\n")
            f.flush()


def control_command(server, req):
    cmd = req.get("cmd")
    if cmd == "ping":
        return {"ok": True}
    if cmd == "set":
        server.set_entry(req)
        return {"ok": True}
    if cmd == "delete":
        with server.lock:
            server.zone.pop(str(req["name"]).lower().rstrip("."), None)
        return {"ok": True}
    if cmd == "clear":
        with server.lock:
            server.zone.clear()
            server.counts.clear()
        return {"ok": True}
    if cmd == "count":
        return {"ok": True,
                "count": server.count_of(req["name"], req["type"])}
    if cmd == "counts":
        with server.lock:
            return {"ok": True, "counts": dict(server.counts)}
    if cmd == "reset":
        with server.lock:
            server.counts.clear()
        return {"ok": True}
    if cmd == "default":
        if req["answer"] not in ("nxdomain", "refused", "drop"):
            raise ValueError("bad default answer")
        server.default = req["answer"]
        return {"ok": True}
    raise ValueError("unknown command %r" % (cmd,))


def watch_zone(server, path):
    mtime = None
    while True:
        try:
            m = os.stat(path).st_mtime_ns
            if m != mtime:
                with open(path, encoding="utf-8") as f:
                    server.replace_zone(json.load(f))
                mtime = m
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print("dnsfault: zone %s: %s" % (path, exc), file=sys.stderr)
            mtime = None
        time.sleep(0.1)


def bind_all(port, want6):
    """Binds UDP+TCP on 127.0.0.1 (and ::1) to one port number.

    With port 0 the kernel picks the UDP port and the others follow it; a
    clash on one of them retries with a new pick. Returns (port, udp
    sockets, tcp sockets)."""
    for _ in range(50):
        socks = []
        try:
            u4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            socks.append(u4)
            u4.bind(("127.0.0.1", port))
            p = u4.getsockname()[1]
            t4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(t4)
            t4.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            t4.bind(("127.0.0.1", p))
            t4.listen(64)
            udps, tcps = [u4], [t4]
            if want6:
                six = []
                try:
                    u6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
                    six.append(u6)
                    u6.bind(("::1", p))
                    t6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
                    six.append(t6)
                    t6.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    t6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                    t6.bind(("::1", p))
                    t6.listen(64)
                    udps.append(u6)
                    tcps.append(t6)
                except OSError as exc:
                    for s in six:
                        s.close()
                    if exc.errno == errno.EADDRINUSE:
                        raise
                    # No ::1 on this host: serve IPv4 only.
            return p, udps, tcps
        except OSError:
            for s in socks:
                s.close()
            if port != 0:
                raise
    raise OSError("no free port found for UDP and TCP")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--control-port", type=int, default=0)
    ap.add_argument("--ready-file", required=True)
    ap.add_argument("--ipv6", action="store_true",
                    help="also serve on [::1]:PORT when available")
    ap.add_argument("--zone", help="JSON list of zone entries, reloaded")
    ap.add_argument("--default", default="nxdomain",
                    choices=("nxdomain", "refused", "drop"))
    args = ap.parse_args()

    server = Server(args.default)
    if args.zone:
        with open(args.zone, encoding="utf-8") as f:
            server.replace_zone(json.load(f))
    port, udps, tcps = bind_all(args.port, args.ipv6)
    ctl = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ctl.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ctl.bind(("127.0.0.1", args.control_port))
    ctl.listen(16)

    threads = [threading.Thread(target=serve_udp, args=(server, u))
               for u in udps]
    threads += [threading.Thread(
        target=accept_loop,
        args=(t, lambda c: serve_tcp_conn(server, c))) for t in tcps]
    threads.append(threading.Thread(
        target=accept_loop, args=(ctl, lambda c: control_conn(server, c))))
    if args.zone:
        threads.append(threading.Thread(target=watch_zone,
                                        args=(server, args.zone)))
    for t in threads:
        t.daemon = True
        t.start()

    ready = {"port": port, "control_port": ctl.getsockname()[1],
             "ipv6": len(udps) > 1, "pid": os.getpid()}
    tmp = args.ready_file + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(ready, f)
        f.write("\n")
    os.rename(tmp, args.ready_file)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
