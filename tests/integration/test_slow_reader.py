"""A client that sends requests but never reads the replies holds its
connection slot and the service's memory only for a bounded time: once
its replies have waited for the idle timeout it is disconnected, with a
log line (issue 12, item 7)."""

import os
import socket
import time

from helpers import new_user

TOKEN_SIZE = 4096


def _token(i):
    body = ("%02d" % i) * (TOKEN_SIZE // 2)
    return "openpgp:" + body[:TOKEN_SIZE - len("openpgp:")]


def test_client_not_reading_replies_is_disconnected(dovecot_factory):
    dovecot = dovecot_factory()
    user = new_user()
    path = os.path.join(dovecot.base_dir, "deltapush")
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(path)
    f = sock.makefile("rwb")
    f.write(b"VERSION\tdeltapush\t2\t0\n")
    f.flush()
    assert f.readline().startswith(b"VERSION\t")
    # 32 tokens of 4 KiB: each GET reply is 128 KiB
    for i in range(32):
        f.write(("REGISTER\t%s\t%s\n" % (user, _token(i))).encode())
        f.flush()
        assert f.readline().startswith(b"OK"), i
    mark = dovecot.log_size()
    # ask for far more than the socket buffers, read nothing
    sock.setblocking(False)
    request = ("GET\t%s\n" % user).encode()
    sent = 0
    for _ in range(60):
        try:
            sent += sock.send(request)
        except BlockingIOError:
            break
    assert sent > 0
    text = dovecot.wait_for_log(lambda t: "read no replies" in t,
                                offset=mark, timeout=30)
    assert text, dovecot.log_since(mark)
    # the connection is gone: what is buffered then EOF, or a reset when
    # the service closed it with our requests still unread
    sock.setblocking(True)
    sock.settimeout(10)
    try:
        while sock.recv(1 << 20):
            pass
    except ConnectionResetError:
        pass
    sock.close()
