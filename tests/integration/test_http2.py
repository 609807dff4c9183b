"""The sender over HTTP/2 with TLS (issue 15): a burst of pushes that
arrives before the first connection to the proxy has negotiated
multiplexes over at most two connections, instead of opening one per
request. The proxy is nginx (HTTP/2 over TLS with a local CA), which
counts the connections it accepted."""

import os
import shutil
import signal
import subprocess
import tempfile

import pytest

from dovecot_instance import (MAIL_GID, MAIL_UID, free_port, stop_process,
                              wait_until)
from helpers import make_token
from pki import make_pki
from service_client import ServiceConn

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
BURST = 200


class TlsProxy:
    """nginx answering 200 on HTTPS (ALPN h2) and its status on HTTP."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="dpt-nginx-")
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        self.status_port = free_port()
        d = self.dir

        self.ca_file = make_pki(d)["ca"]
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            os.makedirs(os.path.join(d, sub))
            os.chown(os.path.join(d, sub), MAIL_UID, MAIL_GID)
        with open(d + "/nginx.conf", "w") as f:
            f.write("""\
daemon off;
master_process on;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
user nobody nogroup;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  server {{
    listen 127.0.0.1:{port} ssl http2;
    ssl_certificate {d}/server.pem;
    ssl_certificate_key {d}/server.key;
    location = /notify {{ return 200; }}
  }}
  server {{
    listen 127.0.0.1:{status};
    location = /status {{ stub_status; }}
  }}
}}
""".format(d=d, port=self.port, status=self.status_port))
        self.proc = subprocess.Popen(
            [NGINX, "-e", d + "/error.log", "-p", d, "-c",
             d + "/nginx.conf"], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_until(self._up, 10):
            self.stop()
            raise RuntimeError("nginx did not start")
        self.url = "https://127.0.0.1:%d/notify" % self.port

    def _up(self):
        try:
            self.stats()
            return True
        except OSError:
            return False

    def stats(self):
        """(connections accepted, requests) on the HTTPS port so far;
        each status poll is one connection and one request of its own."""
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", self.status_port,
                                          timeout=5)
        try:
            conn.request("GET", "/status")
            body = conn.getresponse().read().decode()
        except http.client.HTTPException as e:
            raise OSError(str(e))
        finally:
            conn.close()
        self.polls = getattr(self, "polls", 0) + 1
        accepts, _, requests = (int(x) for x in
                                body.splitlines()[2].split())
        return accepts - self.polls, requests - self.polls

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc, signal.SIGQUIT, 15)
            self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def proxy():
    if not os.path.exists(NGINX) or shutil.which("openssl") is None:
        pytest.skip("nginx and openssl are needed for an HTTP/2 TLS proxy "
                    "(tests/deps.sh installs them)")
    p = TlsProxy()
    yield p
    p.stop()


class _Url:
    def __init__(self, url):
        self.url = url


def test_http2_burst_uses_at_most_two_connections(dovecot_factory, proxy):
    dovecot = dovecot_factory(sink=_Url(proxy.url), settings={
        "deltapush_ca_file": proxy.ca_file,
        "deltapush_debounce": "0",
    })
    users = ["h2burst%03d@example.org" % i for i in range(BURST)]
    with ServiceConn(dovecot, timeout=30) as svc:
        for user in users:
            assert svc.request("REGISTER", user, make_token())[0] == \
                b"OK", user
    conns0, requests0 = proxy.stats()
    assert requests0 == 0
    # Stopped, the service takes every NOTIFY in one pass and posts all
    # pushes at once, before any TLS connection exists
    svc = ServiceConn(dovecot, timeout=30)
    pid = dovecot.service_pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        svc.sock.sendall(b"".join(b"NOTIFY\t" + u.encode() + b"\n"
                                  for u in users))
    finally:
        os.kill(pid, signal.SIGCONT)
    for user in users:
        assert svc.readline() == b"OK\t1\n", user
    svc.close()
    assert wait_until(lambda: proxy.stats()[1] >= BURST, 30), \
        (proxy.stats(), dovecot.log_tail())
    conns, requests = proxy.stats()
    assert requests == BURST
    assert 1 <= conns - conns0 <= 2, (conns - conns0, dovecot.log_tail())
