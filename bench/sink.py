#!/usr/bin/python3
"""A fast loopback HTTP/1.1 sink for the benchmarks.

Runs as its own process so that its timestamps do not depend on the
benchmark driver's threads. It answers every request with 200 at once
(keep-alive, no body) and reports each one on stdout as a line

    REQ <CLOCK_MONOTONIC ns> <method> <path> <body length> <key>

where key identifies the push: the "user" of a JSON body (Dovecot's ox
driver) or the first 48 bytes of a raw body (a deltapush token). The first
line printed is "PORT <port>". The process exits when stdin closes.
"""

import json
import os
import select
import socket
import sys
import threading
import time

RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"
            b"Content-Type: text/plain\r\n\r\n")


def request_key(body):
    if body[:1] == b"{":
        try:
            return str(json.loads(body.decode()).get("user", "-"))
        except ValueError:
            return "badjson"
    key = body[:48].decode("ascii", "replace")
    return "".join(c if c.isprintable() and not c.isspace() else "?"
                   for c in key) or "-"


class Connection:
    __slots__ = ("sock", "buf")

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""


def parse_requests(conn, out):
    """Consume complete requests from conn.buf; returns how many."""
    count = 0
    while True:
        end = conn.buf.find(b"\r\n\r\n")
        if end < 0:
            return count
        head = conn.buf[:end].decode("latin-1").split("\r\n")
        length = 0
        chunked = False
        for line in head[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value.strip())
            elif name == "transfer-encoding" and \
                    "chunked" in value.lower():
                chunked = True
        if chunked:
            body, used = parse_chunked(conn.buf, end + 4)
            if body is None:
                return count
            conn.buf = conn.buf[used:]
        else:
            if len(conn.buf) < end + 4 + length:
                return count
            body = conn.buf[end + 4:end + 4 + length]
            conn.buf = conn.buf[end + 4 + length:]
        now = time.monotonic_ns()
        parts = head[0].split(" ")
        method = parts[0] if parts else "-"
        path = parts[1] if len(parts) > 1 else "-"
        out.append("REQ %d %s %s %d %s\n" % (now, method, path, len(body),
                                             request_key(body)))
        count += 1


def parse_chunked(buf, pos):
    body = b""
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None, 0
        size = int(buf[pos:eol].split(b";")[0], 16)
        pos = eol + 2
        if size == 0:
            end = buf.find(b"\r\n", pos)
            if end < 0:
                return None, 0
            # no trailers expected
            return body, end + 2
        if len(buf) < pos + size + 2:
            return None, 0
        body += buf[pos:pos + size]
        pos += size + 2


def watch_stdin():
    # The driver closing our stdin (or dying) ends the sink.
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        os._exit(0)


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(1024)
    listener.setblocking(False)
    out = sys.stdout
    out.write("PORT %d\n" % listener.getsockname()[1])
    out.flush()
    threading.Thread(target=watch_stdin, daemon=True).start()

    ep = select.epoll()
    ep.register(listener.fileno(), select.EPOLLIN)
    conns = {}
    lines = []
    while True:
        for fd, mask in ep.poll():
            if fd == listener.fileno():
                while True:
                    try:
                        sock, _ = listener.accept()
                    except BlockingIOError:
                        break
                    sock.setblocking(False)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY,
                                    1)
                    conns[sock.fileno()] = Connection(sock)
                    ep.register(sock.fileno(), select.EPOLLIN)
                continue
            conn = conns.get(fd)
            if conn is None:
                continue
            try:
                data = conn.sock.recv(262144)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data:
                ep.unregister(fd)
                conn.sock.close()
                del conns[fd]
                continue
            conn.buf += data
            n = parse_requests(conn, lines)
            if n:
                try:
                    conn.sock.sendall(RESPONSE * n)
                except OSError:
                    pass
        if lines:
            out.write("".join(lines))
            out.flush()
            lines.clear()


if __name__ == "__main__":
    main()
