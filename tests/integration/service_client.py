"""A raw client of the deltapush service's unix socket: the line protocol
the plugins speak (one reply line per request, in order), for the tests
and the benchmarks."""

import os
import socket
import threading
import time

HANDSHAKE = b"VERSION\tdeltapush\t2\t0\n"


def socket_path(dovecot):
    return os.path.join(dovecot.base_dir, "deltapush")


class ServiceConn:
    """A connection to the service socket of a DovecotInstance (or at a
    path)."""

    def __init__(self, dovecot, handshake=True, timeout=5.0):
        path = dovecot if isinstance(dovecot, str) else socket_path(dovecot)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""
        if handshake:
            line = self.readline()
            if line != HANDSHAKE:
                raise RuntimeError("unexpected handshake %r" % line)
            self.send(HANDSHAKE)

    def send(self, data):
        self.sock.sendall(data)

    def readline(self, timeout=None):
        if timeout is not None:
            self.sock.settimeout(timeout)
        while b"\n" not in self.buf:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError("service closed the connection")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line + b"\n"

    def request(self, *fields):
        """Sends one request; returns the reply's fields (bytes)."""
        self.send(b"\t".join(f.encode() if isinstance(f, str) else f
                             for f in fields) + b"\n")
        return self.readline().rstrip(b"\n").split(b"\t")

    def pipeline(self, line_batches, total):
        """Sends every request line from the iterable of byte batches in a
        writer thread and reads the replies here. Returns (replies that
        started with OK, first failure or None, monotonic time the last
        reply arrived)."""
        error = []

        def writer():
            try:
                for batch in line_batches:
                    self.sock.sendall(batch)
            except OSError as e:
                error.append(e)

        t = threading.Thread(target=writer, daemon=True)
        t.start()
        ok = 0
        fail = None
        for _ in range(total):
            line = self.readline()
            if line.startswith(b"OK"):
                ok += 1
            elif fail is None:
                fail = line.decode(errors="replace").rstrip("\n")
        done = time.monotonic()
        t.join()
        if error:
            raise error[0]
        return ok, fail, done

    def closed_by_peer(self, timeout=5.0):
        """True once the service closed the connection (anything it sent
        before is discarded), False if it is still open after timeout."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.sock.settimeout(remaining)
            try:
                if not self.sock.recv(65536):
                    return True
            except socket.timeout:
                return False
            except (ConnectionResetError, BrokenPipeError):
                return True

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
