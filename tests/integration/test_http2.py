"""The sender over HTTP/2 with TLS (issue 15): a burst of pushes that
arrives before the first connection to the proxy has negotiated
multiplexes over at most two connections, instead of opening one per
request. The proxy is nginx (HTTP/2 over TLS with a local CA), which
counts the connections it accepted."""

import os
import signal

import pytest

import nginx_proxy
from dovecot_instance import wait_until
from helpers import make_token
from service_client import ServiceConn

BURST = 200


@pytest.fixture
def proxy():
    if not nginx_proxy.available():
        pytest.skip("nginx and openssl are needed for an HTTP/2 TLS proxy "
                    "(tests/deps.sh installs them)")
    p = nginx_proxy.NginxProxy()
    yield p
    p.stop()


class _Url:
    def __init__(self, url):
        self.url = url


def test_http2_burst_uses_at_most_two_connections(dovecot_factory, proxy):
    dovecot = dovecot_factory(sink=_Url(proxy.tls_url), settings={
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
