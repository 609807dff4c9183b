"""nginx standing in for the notification proxy where speed or HTTP/2
matters (the HTTP/2 test, the benchmarks): it answers 200 on
/notify and /ox over HTTP/1.1 and over HTTPS with HTTP/2 (a private CA),
and counts connections and requests in its stub_status."""

import http.client
import os
import shutil
import signal
import subprocess
import tempfile

from dovecot_instance import (MAIL_GID, MAIL_UID, free_port, stop_process,
                              wait_until)
from pki import make_pki

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

_CONF = """\
daemon off;
master_process on;
worker_processes {workers};
pid {d}/nginx.pid;
error_log {d}/error.log warn;
user nobody nogroup;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  keepalive_requests 100000000;
  keepalive_timeout 600s;
  server {{
    listen 127.0.0.1:{port};
    listen 127.0.0.1:{tls_port} ssl http2;
    ssl_certificate {d}/server.pem;
    ssl_certificate_key {d}/server.key;
    location = /notify {{ return 200; }}
    location = /ox {{ return 200; }}
    location = /status {{ stub_status; }}
  }}
}}
"""


def available():
    return os.path.exists(NGINX) and shutil.which("openssl") is not None


class NginxProxy:
    def __init__(self, workers=1, prefix="dpt-nginx-"):
        self.dir = tempfile.mkdtemp(prefix=prefix)
        self.port = free_port()
        self.tls_port = free_port()
        self.ca_file = make_pki(self.dir)["ca"]
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            path = os.path.join(self.dir, sub)
            os.makedirs(path)
            os.chown(path, MAIL_UID, MAIL_GID)
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(_CONF.format(workers=workers, d=self.dir,
                                 port=self.port, tls_port=self.tls_port))
        self.proc = subprocess.Popen(
            [NGINX, "-e", os.path.join(self.dir, "error.log"),
             "-p", self.dir, "-c", conf],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        self._status_conn = None
        self.status_polls = 0
        self.status_conns = 0
        if not wait_until(self._ready, 10):
            self.stop()
            raise RuntimeError("nginx did not start: %s" % self._error_log())

    def _error_log(self):
        try:
            with open(os.path.join(self.dir, "error.log")) as f:
                return f.read()
        except OSError as e:
            return str(e)

    def _ready(self):
        try:
            self.requests()
            return True
        except OSError:
            return False

    @property
    def url(self):
        return "http://127.0.0.1:%d/notify" % self.port

    @property
    def tls_url(self):
        return "https://127.0.0.1:%d/notify" % self.tls_port

    def push_url(self, path="/notify"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def stats(self):
        """(connections accepted, requests answered) so far, not counting
        our own status polls."""
        # nginx closes the kept status connection when it idles (a long
        # registration phase): then once more on a new one
        for attempt in (1, 2):
            new = self._status_conn is None
            if new:
                self._status_conn = http.client.HTTPConnection(
                    "127.0.0.1", self.port, timeout=5)
            try:
                self._status_conn.request("GET", "/status")
                body = self._status_conn.getresponse().read().decode()
                # counted only once nginx has accepted it
                if new:
                    self.status_conns += 1
                break
            except (OSError, http.client.HTTPException):
                self._status_conn.close()
                self._status_conn = None
                if attempt == 2:
                    raise OSError("nginx status failed")
        self.status_polls += 1
        fields = body.splitlines()[2].split()
        return (int(fields[0]) - self.status_conns,
                int(fields[2]) - self.status_polls)

    def requests(self):
        return self.stats()[1]

    def stop(self):
        if self._status_conn is not None:
            self._status_conn.close()
            self._status_conn = None
        if self.proc is not None:
            stop_process(self.proc, signal.SIGQUIT, 15)
            self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)
