"""When the deltapush service cannot be reached, token commands answer NO
within deltapush_service_timeout, the session goes on, the error is logged,
and mail delivery still works."""

import os
import signal
import time

import pytest

from dovecot_instance import lmtp_send, make_message
from helpers import DEVICETOKEN, PUSH_TOKEN, make_token, new_user, \
    register, tokens_of


# The plugins look for a socket that does not exist.
MISSING_SOCKET = {
    "deltapush_socket": "no-such-deltapush-socket",
    "deltapush_service_timeout": "2s",
}


def _log_mentions_failure(text):
    lines = [l for l in text.splitlines()
             if ("Error" in l or "Warning" in l) and "deltapush" in l.lower()]
    return bool(lines)


def _assert_answers_no(client, entry, within, timeout):
    """SETMETADATA and GETMETADATA of entry answer NO in under `within`
    seconds."""
    reply = client.setmetadata("INBOX", entry, make_token(), timeout=timeout)
    assert reply.status == "NO", reply
    assert reply.elapsed < within, reply.elapsed
    reply, _ = client.getmetadata("INBOX", entry, timeout=timeout)
    assert reply.status == "NO", reply
    assert reply.elapsed < within, reply.elapsed


def test_missing_socket_answers_no_within_timeout(dovecot_factory):
    dovecot = dovecot_factory(settings=MISSING_SOCKET)
    user = new_user()
    mark = dovecot.log_size()
    with dovecot.imap(user) as client:
        for entry in (DEVICETOKEN, PUSH_TOKEN):
            # a missing socket is retried (the master may be re-creating
            # it), but only within deltapush_service_timeout (2s + slack)
            _assert_answers_no(client, entry, 3.5, timeout=10)
        # the session is still usable
        assert client.command("NOOP").ok
    assert dovecot.wait_for_log(_log_mentions_failure, offset=mark), \
        dovecot.log_since(mark)


def test_missing_socket_does_not_break_delivery(dovecot_factory):
    dovecot = dovecot_factory(settings=MISSING_SOCKET)
    user = new_user()
    start = time.monotonic()
    replies = dovecot.deliver_lmtp(user, make_message(to=user))
    assert time.monotonic() - start < 3.0
    assert [code for code, _ in replies] == [250], replies
    new = os.listdir(os.path.join(dovecot.user_home(user), "Maildir", "new"))
    assert len(new) == 1


@pytest.fixture
def stopped_service(dovecot_factory):
    """An instance whose service is SIGSTOPped (SIGCONT on the way out)."""
    dovecot = dovecot_factory(settings={"deltapush_service_timeout": "1s"})
    pid = dovecot.service_pid()
    stopped = {"pid": pid, "dovecot": dovecot}
    os.kill(pid, signal.SIGSTOP)
    try:
        yield stopped
    finally:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


def test_stopped_service_answers_no_within_timeout(stopped_service):
    dovecot = stopped_service["dovecot"]
    user = new_user()
    mark = dovecot.log_size()
    with dovecot.imap(user, timeout=20) as client:
        # deltapush_service_timeout = 1s, plus slack for a slow machine
        _assert_answers_no(client, DEVICETOKEN, 3.0, timeout=15)
        assert client.command("NOOP", timeout=5).ok
    assert dovecot.wait_for_log(_log_mentions_failure, offset=mark), \
        dovecot.log_since(mark)

    # once the service runs again, registration works again
    os.kill(stopped_service["pid"], signal.SIGCONT)
    token = make_token()
    register(dovecot, user, token)
    assert token in tokens_of(dovecot, user)
    # the same service process: the master did not have to replace it
    assert dovecot.service_pids() == [stopped_service["pid"]]


def test_stopped_service_delays_delivery_at_most_the_timeout(stopped_service):
    dovecot = stopped_service["dovecot"]
    user = new_user()
    start = time.monotonic()
    replies = dovecot.deliver_lmtp(user, make_message(to=user), timeout=20)
    elapsed = time.monotonic() - start
    assert [code for code, _ in replies] == [250], replies
    assert elapsed < 3.5, elapsed


def _timeouts(text):
    return [l for l in text.splitlines()
            if "Timed out after" in l and "waiting for the service" in l]


def test_stopped_service_costs_one_timeout_per_delivery(dovecot_factory,
                                                        sink):
    """A stuck service costs a 10-recipient delivery one service timeout,
    not one per recipient (issue 12, item 4), and pushes resume by
    themselves once it runs again."""
    dovecot = dovecot_factory(sink=sink, settings={
        "deltapush_service_timeout": "500ms",
        "deltapush_debounce": "0",
    })
    users = [new_user("rcpt") for _ in range(10)]
    probe = new_user("probe")
    token = make_token()
    register(dovecot, probe, token)
    pid = dovecot.service_pid()
    client = dovecot.lmtp(timeout=30)
    try:
        # the lmtp process has its kept connection before the stop
        lmtp_send(client, "sender@example.net", [probe],
                  make_message(to=probe))
        assert sink.wait_for_bodies([token]), dovecot.log_tail()
        mark = dovecot.log_size()
        os.kill(pid, signal.SIGSTOP)
        try:
            start = time.monotonic()
            replies = lmtp_send(client, "sender@example.net", users,
                                make_message(to=users[0]))
            elapsed = time.monotonic() - start
            assert [code for code, _ in replies] == [250] * 10, replies
            text = dovecot.log_since(mark)
            print("10-recipient delivery with the service stopped: "
                  "%.2f s, %d timeout(s)" % (elapsed, len(_timeouts(text))))
            assert len(_timeouts(text)) == 1, text
            assert text.count("did not answer in time: not notifying") == 1, \
                text
            # loose: well under one timeout per recipient
            assert elapsed < 5 * 0.5, elapsed
        finally:
            os.kill(pid, signal.SIGCONT)

        # The same lmtp process notifies the service again by itself once
        # the pause (ten timeouts) is over.
        since = time.monotonic()
        pushed = []
        deadline = since + 20
        while not pushed and time.monotonic() < deadline:
            lmtp_send(client, "sender@example.net", [probe],
                      make_message(to=probe))
            pushed = sink.wait_for(1, timeout=1.0, since=since,
                                   bodies=[token])
        assert pushed, dovecot.log_since(mark)
    finally:
        client.close()
