"""Self-test of the HTTP sink the delivery tests rely on: it must record
bodies byte-exact, answer per token, keep connections alive, and really
refuse connections while stopped."""

import http.client
import time

import pytest

from sink import listening


@pytest.fixture
def local_sink():
    with listening() as s:
        yield s


def _post(port, body, conn=None):
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("POST", "/notify", body=body,
                 headers={"User-Agent": "selftest/1"})
    response = conn.getresponse()
    return conn, response.status, response.read()


def test_records_body_and_answers_per_token(local_sink):
    local_sink.set_status(b"gone-token", 410)
    local_sink.set_status("flaky-token", 500)
    since = time.monotonic()
    conn, status, text = _post(local_sink.port, b"openpgp:abc+/=")
    assert status == 200 and text
    # keep-alive: the same connection serves the next requests
    _, status, _ = _post(local_sink.port, b"gone-token", conn)
    assert status == 410
    _, status, _ = _post(local_sink.port, b"flaky-token", conn)
    assert status == 500
    conn.close()
    got = local_sink.wait_for(3, since=since, timeout=5)
    assert [(r.body, r.status) for r in got] == [
        (b"openpgp:abc+/=", 200), (b"gone-token", 410), (b"flaky-token", 500)]
    assert got[0].header("user-agent") == "selftest/1"
    assert local_sink.requests(bodies=["gone-token"]) == [got[1]]


def test_stop_refuses_and_start_reuses_port(local_sink):
    port = local_sink.port
    conn, status, _ = _post(port, b"before")
    assert status == 200
    local_sink.stop()
    # the open keep-alive connection is dropped too
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        _post(port, b"during", conn)
    with pytest.raises(ConnectionRefusedError):
        _post(port, b"during")
    local_sink.start()
    assert local_sink.port == port
    _, status, _ = _post(port, b"after")
    assert status == 200
    assert [r.body for r in local_sink.requests()] == [b"before", b"after"]


def test_wait_helpers_are_bounded(local_sink):
    start = time.monotonic()
    assert local_sink.wait_for(1, timeout=0.3) == []
    assert local_sink.wait_for_bodies([b"never"], timeout=0.3) == []
    assert time.monotonic() - start < 2.0
    assert local_sink.wait_quiet(quiet=0.2, timeout=1.0)
