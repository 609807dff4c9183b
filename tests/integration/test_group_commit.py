"""Group commit (issue 12): every request answered OK is on disk (fsynced
with the default deltapush_fsync = optimized), and the writes of all
requests that arrive in one ioloop pass share one transaction and one
sync; their replies wait for it."""

import os
import signal
import socket

from helpers import make_token, new_user, register

HANDSHAKE = b"VERSION\tdeltapush\t1\t0\n"


class _Conn:
    def __init__(self, dovecot):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(os.path.join(dovecot.base_dir, "deltapush"))
        self.buf = b""
        assert self.readline() == HANDSHAKE
        self.sock.sendall(HANDSHAKE)

    def readline(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("service closed the connection")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line + b"\n"


def test_notifies_of_one_pass_share_one_commit(dovecot_factory, sink):
    dovecot = dovecot_factory(
        sink=sink, extra_config="log_debug = category=deltapush\n")
    users = [new_user("group") for _ in range(10)]
    for user in users:
        register(dovecot, user, make_token())
    conns = [_Conn(dovecot) for _ in users]
    pid = dovecot.service_pid()
    mark = dovecot.log_size()
    # Stopped, the service reads all ten requests in its next pass
    os.kill(pid, signal.SIGSTOP)
    try:
        for conn, user in zip(conns, users):
            conn.sock.sendall(b"NOTIFY\t" + user.encode() + b"\n")
    finally:
        os.kill(pid, signal.SIGCONT)
    replies = [conn.readline() for conn in conns]
    assert replies == [b"OK\t1\n"] * 10, replies
    log = dovecot.wait_for_log(lambda t: "Committed 10 write(s)" in t,
                               offset=mark, timeout=5)
    assert log is not None, dovecot.log_since(mark)
    for conn in conns:
        conn.sock.close()
    sink.wait_for(10, timeout=5)
