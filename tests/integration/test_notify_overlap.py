"""The delivery path sends its NOTIFY as soon as the message is saved and
reads the acknowledgement when the mail transaction ends (issue 15), so
the service's fsync runs while the mail storage commits. The guarantee
stays: a delivery is answered only once the service acknowledged the
trigger (or the service timeout passed, as before), and the pushes
arrive."""

import os
import signal
import threading
import time

import pytest

from dovecot_instance import DOVECOT_24, SYSTEM_MODULE_DIR, MAIL_GID, \
    MAIL_UID, lmtp_send, make_message
from helpers import make_token, new_user, register


def _new_mail(dovecot, user, mailbox=None):
    path = os.path.join(dovecot.user_home(user), "Maildir")
    if mailbox is not None:
        path = os.path.join(path, "." + mailbox)
    try:
        return os.listdir(os.path.join(path, "new"))
    except FileNotFoundError:
        return []


def _wait(predicate, timeout):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _errors(dovecot, mark):
    return [line for line in dovecot.log_since(mark).splitlines()
            if "Error" in line or "Timed out" in line or "Panic" in line]


def test_delivery_waits_for_the_acknowledgement(dovecot_factory, sink):
    """With the service stopped, the message is committed (the NOTIFY went
    out before that) but the delivery gets no 250 until the service runs
    again and acknowledges; then the push arrives."""
    dovecot = dovecot_factory(sink=sink, settings={
        "deltapush_service_timeout": "60s",
        "deltapush_debounce": "0",
    })
    user = new_user("overlap")
    token = make_token()
    register(dovecot, user, token)
    pid = dovecot.service_pid()
    client = dovecot.lmtp(timeout=90)
    try:
        # the lmtp process has its kept connection before the stop
        assert lmtp_send(client, "sender@example.net", [user],
                         make_message(to=user))[0][0] == 250
        assert sink.wait_for_bodies([token]), dovecot.log_tail()
        mark = dovecot.log_size()
        os.kill(pid, signal.SIGSTOP)
        result = {}

        def deliver():
            result["replies"] = lmtp_send(client, "sender@example.net",
                                          [user], make_message(to=user))

        try:
            thread = threading.Thread(target=deliver)
            thread.start()
            # committed: the second message is in new/
            assert _wait(lambda: len(_new_mail(dovecot, user)) == 2, 20), \
                dovecot.log_tail()
            # ... and still unanswered: no 250 before the service acked
            thread.join(1.0)
            assert thread.is_alive(), result
            assert "replies" not in result
            since = time.monotonic()
        finally:
            os.kill(pid, signal.SIGCONT)
        thread.join(60)
        assert not thread.is_alive()
        assert [code for code, _ in result["replies"]] == [250], result
        assert sink.wait_for_bodies([token], since=since), dovecot.log_tail()
        assert _errors(dovecot, mark) == []
        # the same kept connection and service: nothing was re-sent
        assert dovecot.service_pids() == [pid]
    finally:
        client.close()


def test_delivery_after_the_service_closed_the_kept_connection(
        dovecot_factory, sink):
    """The lmtp process's kept connection dies with its service process;
    the next delivery notices before sending and pushes without an error
    or a wait."""
    dovecot = dovecot_factory(sink=sink, settings={
        "deltapush_debounce": "0",
    })
    user = new_user("overlap")
    token = make_token()
    register(dovecot, user, token)
    client = dovecot.lmtp(timeout=30)
    try:
        assert lmtp_send(client, "sender@example.net", [user],
                         make_message(to=user))[0][0] == 250
        assert sink.wait_for_bodies([token]), dovecot.log_tail()
        old = dovecot.service_pid()
        os.kill(old, signal.SIGKILL)
        assert _wait(lambda: dovecot.service_pids() not in ([], [old]), 20)
        mark = dovecot.log_size()
        since = time.monotonic()
        assert lmtp_send(client, "sender@example.net", [user],
                         make_message(to=user))[0][0] == 250
        assert sink.wait_for_bodies([token], since=since), dovecot.log_tail()
        assert _errors(dovecot, mark) == []
    finally:
        client.close()


SIEVE_SCRIPT = """require ["fileinto", "mailbox"];
fileinto :create "INBOX";
fileinto :create "Other";
"""


def _sieve_config():
    if DOVECOT_24:
        return ("protocol lmtp {\n  mail_plugins {\n    sieve = yes\n"
                "  }\n}\n"
                "sieve_script personal {\n  driver = file\n"
                "  path = ~/sieve\n  active_path = ~/.dovecot.sieve\n}\n")
    return ("protocol lmtp {\n  mail_plugins = $mail_plugins sieve\n}\n"
            "plugin {\n  sieve = file:~/sieve;active=~/.dovecot.sieve\n}\n")


def _install_sieve_script(dovecot, user):
    home = dovecot.user_home(user)
    sieve_dir = os.path.join(home, "sieve")
    os.makedirs(sieve_dir)
    with open(os.path.join(sieve_dir, "main.sieve"), "w") as f:
        f.write(SIEVE_SCRIPT)
    os.symlink("sieve/main.sieve", os.path.join(home, ".dovecot.sieve"))
    for path in (home, sieve_dir, os.path.join(sieve_dir, "main.sieve")):
        os.chown(path, MAIL_UID, MAIL_GID)


def test_sieve_two_wanted_mailboxes_pipeline_two_notifies(dovecot_factory,
                                                          sink):
    """Sieve keeps both mailbox transactions open until it commits them
    all: two NOTIFYs are in flight on the kept connection at once, and
    each transaction reads its own acknowledgement."""
    plugin = os.path.join(SYSTEM_MODULE_DIR, "lib90_sieve_plugin.so")
    if not os.path.exists(plugin):
        pytest.skip("Pigeonhole (dovecot-sieve) is not installed: %s"
                    % plugin)
    dovecot = dovecot_factory(sink=sink, start=False, settings={
        "deltapush_debounce": "0",
        "deltapush_mailboxes": "INBOX Other",
    }, extra_config=_sieve_config() + "log_debug = category=deltapush\n")
    os.symlink(plugin, os.path.join(dovecot.module_dir,
                                    os.path.basename(plugin)))
    dovecot.start()
    user = new_user("sieve")
    token = make_token()
    register(dovecot, user, token)
    _install_sieve_script(dovecot, user)
    mark = dovecot.log_size()
    since = time.monotonic()
    replies = dovecot.deliver_lmtp(user, make_message(to=user), timeout=30)
    assert [code for code, _ in replies] == [250], replies
    assert len(_new_mail(dovecot, user)) == 1, dovecot.log_tail()
    assert len(_new_mail(dovecot, user, "Other")) == 1, dovecot.log_tail()
    log = dovecot.wait_for_log(
        lambda t: t.count("Notified the push service") >= 2, offset=mark)
    assert log is not None, dovecot.log_since(mark)
    assert sink.wait_for_bodies([token], since=since), dovecot.log_tail()
    assert _errors(dovecot, mark) == []
