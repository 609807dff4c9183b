"""The connection an lmtp process keeps to the service serves every later
recipient: its log lines must not carry the first user's prefix (issue
12, item 7)."""

import os
import signal

from dovecot_instance import lmtp_send, make_message, wait_until
from helpers import make_token, new_user, register


def test_kept_connection_does_not_log_as_first_user(dovecot_factory, sink):
    dovecot = dovecot_factory(sink=sink, extra_config=(
        "log_debug = category=deltapush\n"))
    first, second = new_user("first"), new_user("second")
    for user in (first, second):
        register(dovecot, user, make_token())
    client = dovecot.lmtp(timeout=30)
    try:
        lmtp_send(client, "sender@example.net", [first],
                  make_message(to=first))
        # a new service process: the kept connection is found closed (and
        # logged) while the second user's delivery uses it
        old = dovecot.service_pid()
        os.kill(old, signal.SIGTERM)
        assert wait_until(lambda: [p for p in dovecot.service_pids()
                                   if p != old], 10.0)
        mark = dovecot.log_size()
        replies = lmtp_send(client, "sender@example.net", [second],
                            make_message(to=second))
        assert [code for code, _ in replies] == [250], replies
    finally:
        client.close()
    text = dovecot.log_since(mark)
    conn_lines = [l for l in text.splitlines()
                  if "lmtp" in l and "conn unix:" in l]
    assert any("Disconnected" in l for l in conn_lines), text
    wrong = [l for l in conn_lines if first in l]
    assert not wrong, "logged under the first user: %r" % wrong
