"""Group commit (issue 12): every request answered OK is on disk (fsynced
with the default deltapush_fsync = optimized), and the writes of all
requests that arrive in one ioloop pass share one transaction and one
sync; their replies wait for it."""

import os
import re
import signal

from helpers import make_token, new_user, register
from service_client import ServiceConn


def _notify_commits(log):
    """[(writes committed, NOTIFYs answered since the last commit)] for
    the commits that followed NOTIFYs."""
    commits, due = [], 0
    for line in log.splitlines():
        if ": New mail for user " in line and " token(s) due" in line:
            due += 1
        m = re.search(r"Committed (\d+) write\(s\)", line)
        if m and due:
            commits.append((int(m.group(1)), due))
            due = 0
    return commits


def test_notifies_of_one_pass_share_one_commit(dovecot_factory, sink):
    dovecot = dovecot_factory(
        sink=sink, extra_config="log_debug = category=deltapush\n")
    users = [new_user("group") for _ in range(10)]
    for user in users:
        register(dovecot, user, make_token())
    conns = [ServiceConn(dovecot, timeout=10) for _ in users]
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
    log = dovecot.wait_for_log(lambda t: sum(
        n for n, _ in _notify_commits(t)) >= 10, offset=mark, timeout=5)
    assert log is not None, dovecot.log_since(mark)
    # One commit for the pass; the kernel may hand a woken process its
    # sockets in two passes, never one per request.
    commits = _notify_commits(log)
    assert sum(due for _, due in commits) == 10, log
    assert len(commits) <= 2, (commits, log)
    for conn in conns:
        conn.sock.close()
    sink.wait_for(10, timeout=5)
