"""The service's database (issues 13 and 15): opening it is retried at a
pace while it can't be opened, and a registration of a token the user
has already, recently, is answered without writing."""

import os
import re
import signal

from dovecot_instance import wait_until
from helpers import (DEVICETOKEN, make_token, new_user, register, token_id,
                     tokens_of)
from service_client import ServiceConn

DEBUG = "log_debug = category=deltapush\n"


def _requests_in_one_pass(dovecot, conns, lines):
    """Sends each connection its line while the service is stopped, so
    that it reads them all in its next ioloop pass (or two: the kernel
    may hand a woken process its sockets in two); returns the replies."""
    pid = dovecot.service_pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        for conn, line in zip(conns, lines):
            conn.send(line)
    finally:
        os.kill(pid, signal.SIGCONT)
    return [conn.readline() for conn in conns]


def test_missing_db_dir_is_opened_at_most_once_a_second(dovecot_factory,
                                                        tmp_path):
    # Every request used to try opening the database again, checking the
    # directory and waiting for SQLite each time.
    directory = tmp_path / "not-yet"
    dovecot = dovecot_factory(
        settings={"deltapush_db": str(directory / "deltapush.sqlite")},
        extra_config=DEBUG)
    assert dovecot.wait_for_log(
        lambda t: "Database unavailable" in t), dovecot.log_tail()
    conns = [ServiceConn(dovecot, timeout=10) for _ in range(20)]
    mark = dovecot.log_size()
    replies = _requests_in_one_pass(
        dovecot, conns, [b"GET\t%s\n" % new_user().encode() for _ in conns])
    assert all(r.startswith(b"FAIL\tDatabase unavailable") for r in replies), \
        replies
    log = dovecot.log_since(mark)
    # One pass (or two) and perhaps the periodic check: not one per request
    assert log.count("Database still unavailable") <= 3, log
    # logged as an error once for the whole streak
    assert dovecot.log_text().count("Database unavailable, ") == 1, \
        dovecot.log_text()

    directory.mkdir()
    user, token = new_user(), make_token()
    conn = conns[0]

    def registered():
        reply = conn.request("REGISTER", user, token)
        return reply[0] == b"OK"
    assert wait_until(registered, 10, interval=0.2), dovecot.log_since(mark)
    assert conn.request("GET", user) == [b"OK", token.encode()]
    assert dovecot.log_text().count("is available again") == 1
    for c in conns:
        c.sock.close()


def _wal_state(dovecot):
    """What a commit changes: the WAL file's size and mtime (the service
    keeps the database locked, so SQLite never checkpoints it away
    between commits unnoticed: a checkpoint happens in a commit)."""
    st = os.stat(dovecot.db_path + "-wal")
    return st.st_size, st.st_mtime_ns


def _commits(log):
    return len(re.findall(r"Committed \d+ write\(s\)", log))


def test_registering_the_same_token_again_writes_nothing(dovecot_factory):
    # Delta Chat sends its token again at every IMAP login: with the
    # default TTL that must be a read, with no commit and no fsync.
    dovecot = dovecot_factory(extra_config=DEBUG)
    user, token = new_user(), make_token()
    register(dovecot, user, token)
    before = _wal_state(dovecot)
    mark = dovecot.log_size()
    for _ in range(5):
        with dovecot.imap(user) as client:
            reply = client.setmetadata("INBOX", DEVICETOKEN, token)
            assert reply.ok, reply
    assert tokens_of(dovecot, user) == [token]
    log = dovecot.log_since(mark)
    assert _commits(log) == 0, log
    assert _wal_state(dovecot) == before
    assert log.count("Refreshed token %s" % token_id(token)) == 5, log

    # A new token is a write, seen the same way
    other = make_token()
    register(dovecot, user, other)
    assert _commits(dovecot.log_since(mark)) == 1, dovecot.log_since(mark)
    assert _wal_state(dovecot) != before
    assert tokens_of(dovecot, user) == [token, other]
