"""Least privilege (issue 12, item 6): the service runs as Dovecot's
internal user with its database in a directory that user owns, and only
root or that user may use the admin commands (doveadm's); the mail
processes' uid keeps its own commands."""

import os
import pwd
import socket
import subprocess
import sys

from dovecot_instance import MAIL_UID, MAIL_GID, INTERNAL_USER, \
    make_message, proc_status
from helpers import make_token, new_user, register, tokens_of

SERVICE_USER = "$default_internal_user"

# Talks the service protocol on the socket as whatever uid runs it: sends
# the handshake and each request line, prints each reply line.
CLIENT = r"""
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rwb")
f.write(b"VERSION\tdeltapush\t2\t0\n"); f.flush()
assert f.readline().startswith(b"VERSION\t")
for line in sys.argv[2:]:
    f.write(line.encode() + b"\n"); f.flush()
    sys.stdout.write(f.readline().decode())
"""


def _ask(dovecot, uid, gid, *lines):
    proc = subprocess.run(
        [sys.executable, "-c", CLIENT,
         os.path.join(dovecot.base_dir, "deltapush")] + list(lines),
        capture_output=True, text=True, timeout=20, user=uid, group=gid)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_service_runs_unprivileged(dovecot_factory, sink):
    dovecot = dovecot_factory(sink=sink, service_user=SERVICE_USER)
    internal = pwd.getpwnam(INTERNAL_USER)
    status = proc_status(dovecot.service_pid())
    assert status["Uid"].split() == [str(internal.pw_uid)] * 4, status
    assert status["Gid"].split()[0] == str(internal.pw_gid), status

    # and it works: its database is in state_dir/deltapush, its own
    user, token = new_user(), make_token()
    register(dovecot, user, token)
    assert tokens_of(dovecot, user) == [token]
    assert os.stat(dovecot.db_path).st_uid == internal.pw_uid
    replies = dovecot.deliver_lmtp(user, make_message(to=user))
    assert [code for code, _ in replies] == [250], replies
    assert sink.wait_for_bodies([token]), dovecot.log_tail()


def test_admin_commands_refused_to_the_mail_uid(dovecot_factory):
    dovecot = dovecot_factory(service_user=SERVICE_USER)
    user, token = new_user(), make_token()
    register(dovecot, user, token)
    admin = ["STATUS", "LIST\t%s" % user, "FLUSH", "FLUSH\t%s" % user,
             "IMPORT\t%s\t%s\t1700000000" % (new_user(), make_token()),
             "FORGET\t%s\t%s" % (user, token[:20])]
    mark = dovecot.log_size()
    replies = _ask(dovecot, MAIL_UID, MAIL_GID, *admin)
    assert replies == ["FAIL\tPermission denied"] * len(admin), replies
    text = dovecot.log_since(mark)
    assert text.count("Refused") == len(admin), text
    # nothing changed
    assert tokens_of(dovecot, user) == [token]

    # the mail processes' own commands still work for that uid
    replies = _ask(dovecot, MAIL_UID, MAIL_GID, "GET\t%s" % user,
                   "NOTIFY\t%s" % user)
    assert replies[0] == "OK\t%s" % token, replies
    assert replies[1] == "OK\t1", replies

    # root (doveadm) may use them
    replies = _ask(dovecot, 0, 0, "STATUS", "LIST\t%s" % user)
    assert all(r.startswith("OK") for r in replies), replies


def test_database_of_0_1_is_not_replaced(dovecot_factory):
    """A 0.1 database in state_dir itself is never silently replaced by
    an empty one: the service says what to do."""
    dovecot = dovecot_factory(service_user=SERVICE_USER, start=False)
    old = os.path.join(dovecot.state_dir, "deltapush.sqlite")
    with open(old, "wb"):
        pass
    dovecot.start()
    text = dovecot.wait_for_log(lambda t: "deltapush 0.1" in t)
    assert text and dovecot.db_path in text, dovecot.log_tail()
    assert not os.path.exists(dovecot.db_path)
