#!/usr/bin/python3
"""ferry's test and demo backend: a small server that identifies itself.

Modes:
  --mode http  HTTP/1.1 with keep-alive. Every response carries
               `X-Backend: NAME` and, by default, the body "NAME\\n".
               Paths:
                 /health/ready      200, or 503 after /_ctl/fail
                 /_ctl/fail         health answers 503 from now on
                 /_ctl/ok           health answers 200 again
                 /_ctl/break        every other path answers 500 from now on
                 /_ctl/mend         ... until this
                 /status/NNN        answers with status NNN
                 /delay/MS          answers after MS milliseconds
                 /size/N            answers with N bytes
                 /echo              answers with the request body
                 /stats             JSON: requests served, connections seen
                 /chunked/N         answers with N bytes, chunked
                 /ws                WebSocket echo (101, then echoes frames)
  --mode tcp   sends "NAME\\n" on connect, then echoes every byte back; when
               the client half-closes, finishes echoing and half-closes too.
               --abort-after N resets the connection once N bytes were
               echoed.

--proxy-protocol makes it expect a PROXY protocol v1/v2 header first; the
client address it announced is reported in `X-Client` (http) or in the
banner line "NAME client=ADDR" (tcp).

--ready-file F: the chosen port is written to F once listening (use
--port 0 to let the kernel choose), so tests wait on a file, not a sleep.
"""
import argparse
import asyncio
import json
import os
import signal
import socket
import struct
import sys

STATE = {"healthy": True, "broken": False, "requests": 0, "connections": 0}


async def read_proxy_header(reader):
    """Parses a PROXY v1 or v2 header; returns the client address text."""
    first = await reader.readexactly(5)
    if first == b"PROXY":
        line = first + await reader.readuntil(b"\r\n")
        parts = line.decode().split()
        if parts[1] == "UNKNOWN":
            return "unknown"
        return f"{parts[2]}:{parts[4]}"
    sig = first + await reader.readexactly(7)
    if sig[:12] != b"\r\n\r\n\x00\r\nQUIT\n":
        raise ValueError("bad PROXY header")
    hdr = await reader.readexactly(4)
    fam, length = hdr[1], struct.unpack("!H", hdr[2:4])[0]
    body = await reader.readexactly(length)
    if fam == 0x11:
        src = socket.inet_ntop(socket.AF_INET, body[0:4])
        port = struct.unpack("!H", body[8:10])[0]
        return f"{src}:{port}"
    if fam == 0x21:
        src = socket.inet_ntop(socket.AF_INET6, body[0:16])
        port = struct.unpack("!H", body[32:34])[0]
        return f"[{src}]:{port}"
    return "unknown"


async def handle_tcp(reader, writer, args):
    STATE["connections"] += 1
    try:
        banner = args.name
        if args.proxy_protocol:
            banner += " client=" + await read_proxy_header(reader)
        writer.write((banner + "\n").encode())
        echoed = 0
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
            echoed += len(data)
            if args.abort_after and echoed >= args.abort_after:
                # Reset the connection mid-stream (RST, not FIN).
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                struct.pack("ii", 1, 0))
                writer.transport.abort()
                return
        if writer.can_write_eof():
            writer.write_eof()
        await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, ValueError):
        pass
    finally:
        writer.close()


def response(status, body, extra=(), keep=True):
    reason = {200: "OK", 503: "Service Unavailable", 404: "Not Found"}.get(
        status, "Status")
    head = [f"HTTP/1.1 {status} {reason}",
            f"Content-Length: {len(body)}",
            f"X-Backend: {ARGS.name}"]
    head += list(extra)
    if not keep:
        head.append("Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def read_body(reader, headers):
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                return body
            body += await reader.readexactly(size)
            await reader.readexactly(2)
    n = int(headers.get("content-length", "0"))
    return await reader.readexactly(n) if n else b""


async def handle_http(reader, writer, args):
    STATE["connections"] += 1
    client = None
    try:
        if args.proxy_protocol:
            client = await read_proxy_header(reader)
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                break
            lines = head.decode("latin-1").split("\r\n")
            method, target, version = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            if headers.get("expect", "").lower() == "100-continue":
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            body = await read_body(reader, headers)
            STATE["requests"] += 1
            keep = (headers.get("connection", "").lower() != "close"
                    and version == "HTTP/1.1")
            extra = []
            if client:
                extra.append(f"X-Client: {client}")
            for h in ("x-forwarded-for", "x-forwarded-proto"):
                if h in headers:
                    extra.append(f"X-Seen-{h}: {headers[h]}")
            status, out = 200, (args.name + "\n").encode()
            if target.startswith("/health"):
                status = 200 if STATE["healthy"] else 503
            elif target == "/_ctl/fail":
                STATE["healthy"] = False
            elif target == "/_ctl/ok":
                STATE["healthy"] = True
            elif target == "/_ctl/break":
                STATE["broken"] = True
            elif target == "/_ctl/mend":
                STATE["broken"] = False
            elif STATE["broken"]:
                status, out = 500, b"broken\n"
            elif target.startswith("/status/"):
                status = int(target.split("/")[2])
            elif target.startswith("/delay/"):
                await asyncio.sleep(int(target.split("/")[2]) / 1000.0)
            elif target.startswith("/size/"):
                out = b"x" * int(target.split("/")[2])
            elif target == "/echo":
                out = body
            elif target == "/stats":
                out = json.dumps({k: STATE[k] for k in
                                  ("requests", "connections")}).encode()
            elif target.startswith("/chunked/"):
                # N bytes as a chunked response (chunks of up to 1000).
                n = int(target.split("/")[2])
                writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked"
                             b"\r\nX-Backend: " + args.name.encode() +
                             b"\r\n\r\n")
                while n > 0:
                    k = min(n, 1000)
                    writer.write(b"%x\r\n" % k + b"y" * k + b"\r\n")
                    n -= k
                writer.write(b"0\r\n\r\n")
                await writer.drain()
                continue
            elif target == "/ws":
                await websocket_echo(reader, writer, headers)
                return
            full = response(status, out, extra, keep)
            # HEAD: the same head (Content-Length included), no body.
            writer.write(full[:len(full) - len(out)] if method == "HEAD"
                         else full)
            await writer.drain()
            if not keep:
                break
    except (ConnectionError, asyncio.IncompleteReadError, ValueError):
        pass
    finally:
        writer.close()


async def websocket_echo(reader, writer, headers):
    """RFC 6455 handshake, then echoes every frame until a close frame."""
    import base64
    import hashlib
    key = headers.get("sec-websocket-key", "")
    accept = base64.b64encode(hashlib.sha1(
        (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
    writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket"
                 b"\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
                 accept + b"\r\n\r\n")
    await writer.drain()
    while True:
        b0, b1 = await reader.readexactly(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", await reader.readexactly(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", await reader.readexactly(8))[0]
        mask = await reader.readexactly(4) if b1 & 0x80 else b"\0\0\0\0"
        data = bytes(c ^ mask[i % 4] for i, c in
                     enumerate(await reader.readexactly(n)))
        if n < 126:
            hdr = bytes([b0, n])
        elif n < 65536:
            hdr = bytes([b0, 126]) + struct.pack("!H", n)
        else:
            hdr = bytes([b0, 127]) + struct.pack("!Q", n)
        writer.write(hdr + data)
        await writer.drain()
        if b0 & 0x0F == 8:
            return


async def main(args):
    handler = handle_http if args.mode == "http" else handle_tcp
    server = await asyncio.start_server(
        lambda r, w: handler(r, w, args), args.host, args.port,
        reuse_address=True, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    if args.ready_file:
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(port))
        os.rename(tmp, args.ready_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--name", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--mode", choices=("http", "tcp"), default="http")
    p.add_argument("--proxy-protocol", action="store_true")
    p.add_argument("--ready-file")
    p.add_argument("--abort-after", type=int, default=0)
    ARGS = p.parse_args()
    try:
        asyncio.run(main(ARGS))
    except KeyboardInterrupt:
        sys.exit(0)
