"""A local HTTP sink standing in for the Delta Chat notification proxy.

It answers POST /notify the way notifications.delta.chat does (200 sent,
410 token invalid, 500 temporary failure), records every request exactly as
it arrived, and can stop listening (connection refused) and come back on the
same port, so tests can simulate a proxy outage.
"""

import contextlib
import http.server
import socket
import threading
import time


class Request:
    """One request as the sink received it."""

    def __init__(self, method, path, headers, body, status):
        self.method = method
        self.path = path
        # list of (name, value) in arrival order
        self.header_list = headers
        self.body = body
        self.status = status
        self.monotonic = time.monotonic()
        self.wallclock = time.time()

    def header(self, name, default=None):
        lname = name.lower()
        for key, value in self.header_list:
            if key.lower() == lname:
                return value
        return default

    def __repr__(self):
        return "<Request %s %s %d bytes -> %d>" % (
            self.method, self.path, len(self.body), self.status)


_REASONS = {
    200: b"OK\n",
    410: b"Gone: token is not valid\n",
    500: b"Internal error, try again later\n",
}


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "deltapush-test-sink/1"

    def setup(self):
        super().setup()
        self.server.sink._connection_opened(self.connection)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.sink._connection_closed(self.connection)

    def log_message(self, format, *args):
        # Keep pytest's output clean; requests are recorded instead.
        pass

    def _read_body(self):
        length = self.headers.get("Content-Length")
        if length is not None:
            return self.rfile.read(int(length))
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while True:
                size_line = self.rfile.readline()
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    # trailers until an empty line
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return body
                body += self.rfile.read(size)
                self.rfile.readline()
        return b""

    def _answer(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def do_POST(self):
        sink = self.server.sink
        body = self._read_body()
        if self.path != "/notify":
            sink._record(Request("POST", self.path, list(self.headers.items()),
                                 body, 404))
            self._answer(404, b"Not found\n")
            return
        status, delay = sink._decide(body)
        request = Request("POST", self.path, list(self.headers.items()),
                          body, status)
        sink._record(request)
        if delay:
            time.sleep(delay)
        self._answer(status, _REASONS.get(status, b"Error\n"))

    def do_GET(self):
        self.server.sink._record(Request("GET", self.path,
                                         list(self.headers.items()), b"", 405))
        self._answer(405, b"Method not allowed\n")


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class Sink:
    """Records POST /notify requests; status per token is configurable.

    default_status: answer for tokens not in status_for (200).
    status_for: dict token-bytes -> HTTP status (e.g. 410 or 500).
    delay: seconds to wait before answering every request.
    """

    def __init__(self, host="127.0.0.1", port=0):
        self.host = host
        self.port = port
        self.default_status = 200
        self.status_for = {}
        self.delay = 0.0
        self._cond = threading.Condition()
        self._requests = []
        self._connections = set()
        self._server = None
        self._thread = None

    # ---- lifecycle ----

    def start(self):
        """Start listening (again, on the same port once it has one)."""
        if self._server is not None:
            return
        self._server = _Server((self.host, self.port), _Handler)
        self._server.sink = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="sink-%d" % self.port,
                                        daemon=True)
        self._thread.start()

    def stop(self):
        """Stop listening and drop every open connection: new connections
        are refused until start() is called again."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        with self._cond:
            conns = list(self._connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    @property
    def running(self):
        return self._server is not None

    @property
    def url(self):
        return "http://%s:%d/notify" % (self.host, self.port)

    # ---- behaviour ----

    def set_status(self, token, status):
        if isinstance(token, str):
            token = token.encode()
        with self._cond:
            self.status_for[token] = status

    def _decide(self, body):
        with self._cond:
            return self.status_for.get(body, self.default_status), self.delay

    def _record(self, request):
        with self._cond:
            self._requests.append(request)
            self._cond.notify_all()

    def _connection_opened(self, conn):
        with self._cond:
            self._connections.add(conn)

    def _connection_closed(self, conn):
        with self._cond:
            self._connections.discard(conn)

    # ---- inspection ----

    def requests(self, since=None, bodies=None):
        """Recorded requests to /notify, optionally only those that arrived
        at or after monotonic time `since` and whose body is in `bodies`."""
        bodies = _as_bytes_set(bodies)
        with self._cond:
            result = [r for r in self._requests if r.path == "/notify"]
        if since is not None:
            result = [r for r in result if r.monotonic >= since]
        if bodies is not None:
            result = [r for r in result if r.body in bodies]
        return result

    def all_requests(self):
        with self._cond:
            return list(self._requests)

    def wait_for(self, count, timeout=10.0, since=None, bodies=None):
        """Wait until at least `count` matching requests have arrived or
        `timeout` seconds passed; returns the matching requests."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.requests(since=since, bodies=bodies)
            remaining = deadline - time.monotonic()
            if len(found) >= count or remaining <= 0:
                return found
            with self._cond:
                self._cond.wait(timeout=min(remaining, 0.1))

    def wait_for_bodies(self, bodies, timeout=10.0, since=None):
        """Wait until every body in `bodies` has arrived at least once;
        returns the matching requests."""
        wanted = _as_bytes_set(bodies)
        deadline = time.monotonic() + timeout
        while True:
            found = self.requests(since=since, bodies=wanted)
            if {r.body for r in found} >= wanted:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return found
            with self._cond:
                self._cond.wait(timeout=min(remaining, 0.1))

    def wait_quiet(self, quiet=1.0, timeout=10.0):
        """Wait until no request has arrived for `quiet` seconds (bounded by
        `timeout`). Returns True if the sink went quiet."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._cond:
                last = self._requests[-1].monotonic if self._requests else None
            now = time.monotonic()
            if last is None or now - last >= quiet:
                return True
            time.sleep(min(quiet - (now - last), deadline - now, 0.1))
        return False


@contextlib.contextmanager
def listening(sink=None):
    """A started sink (a new Sink by default), stopped afterwards."""
    sink = sink if sink is not None else Sink()
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


def _as_bytes_set(bodies):
    if bodies is None:
        return None
    if isinstance(bodies, (bytes, str)):
        bodies = [bodies]
    return {b.encode() if isinstance(b, str) else b for b in bodies}
