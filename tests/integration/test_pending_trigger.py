"""Triggers folded into durably pending pushes (issue 15): new mail for a
user whose every token has a push pending, not yet sent, and on disk
already (committed with a sync by an earlier trigger) is answered without
a write, a commit or an fsync; the pending push still goes out at the end
of the window, and after a crash too. A trigger for a push on the wire,
or after a failed push's retry state was written, commits again."""

import os
import re
import signal
import time

from dovecot_instance import wait_until
from helpers import deliver, make_token, new_user, register, token_id
from service_client import ServiceConn

DEBUG = "log_debug = category=deltapush\n"
FOLDED = "(durably pending, nothing written)"


def _wal_state(dovecot):
    """What a commit changes: the WAL file's size and mtime (the service
    keeps the database locked, so a checkpoint happens in a commit)."""
    st = os.stat(dovecot.db_path + "-wal")
    return st.st_size, st.st_mtime_ns


def _commits(log):
    return len(re.findall(r"Committed \d+ write\(s\)", log))


def _triggers(log):
    """The sender's line for each trigger, written or folded."""
    return log.count(" folded into pending pushes")


def _setup(dovecot_factory, sink, debounce, prefix, **settings):
    settings["deltapush_debounce"] = debounce
    dovecot = dovecot_factory(sink=sink, extra_config=DEBUG,
                              settings=settings)
    user, token = new_user(prefix), make_token()
    register(dovecot, user, token)
    return dovecot, user, token


def _push_done(dovecot, since, status=200):
    """Waits until the push that finished after log offset `since` with
    `status` has had its outcome committed; returns the log offset."""
    finished = "finished: status %d" % status

    def saved(text):
        i = text.rfind(finished)
        return i >= 0 and "Committed" in text[i:]
    assert dovecot.wait_for_log(saved, offset=since, timeout=10), \
        dovecot.log_since(since)
    return dovecot.log_size()


def _deliver_committing(dovecot, user, expect_commit):
    """Delivers one message to user; returns the log since. The reply to
    a written trigger waits for its commit, so the commit is logged by
    the time the trigger's own line is."""
    mark = dovecot.log_size()
    deliver(dovecot, user)
    log = dovecot.wait_for_log(lambda t: _triggers(t) >= 1, offset=mark,
                               timeout=5)
    assert log is not None, dovecot.log_since(mark)
    if expect_commit:
        log = dovecot.wait_for_log(lambda t: _commits(t) >= 1,
                                   offset=mark, timeout=5)
        assert log is not None, dovecot.log_since(mark)
        assert FOLDED not in log, log
    else:
        assert FOLDED in log, log
    return log


def _first_push(dovecot, sink, user, token):
    """The first message is pushed at once; returns (its time, the log
    offset once its outcome is on disk)."""
    mark = dovecot.log_size()
    first = deliver(dovecot, user)
    assert len(sink.wait_for(1, timeout=10, since=first,
                             bodies=[token])) == 1
    return first, _push_done(dovecot, mark)


def test_triggers_for_a_pending_push_write_nothing(dovecot_factory, sink):
    dovecot, user, token = _setup(dovecot_factory, sink, "6s", "fold")
    first, _ = _first_push(dovecot, sink, user, token)

    # The second message makes a push due at the end of the window: a
    # write, synced before the reply
    log = _deliver_committing(dovecot, user, True)
    assert _commits(log) == 1, log

    # The rest only move its deadline: no commit, the WAL untouched
    before = _wal_state(dovecot)
    mark = dovecot.log_size()
    last = None
    for _ in range(5):
        last = deliver(dovecot, user)
    log = dovecot.wait_for_log(lambda t: t.count(FOLDED) >= 5,
                               offset=mark, timeout=5)
    assert log is not None, dovecot.log_since(mark)
    assert _commits(log) == 0, log
    # with debug logging on, each names the token by its id (the id is
    # hashed only for an event that is logged or exported)
    assert log.count("folded into the pending push of token %s"
                     % token_id(token)) == 5, log
    assert _wal_state(dovecot) == before
    assert len(sink.requests(since=first, bodies=[token])) == 1, \
        "pushed within the window"

    # One push at the end of the window covers them all
    got = sink.wait_for(2, timeout=15, since=first, bodies=[token])
    assert len(got) == 2 and got[1].monotonic >= last, got
    time.sleep(1)
    assert len(sink.requests(since=first, bodies=[token])) == 2


def test_folded_triggers_survive_kill_9(dovecot_factory, sink):
    dovecot, user, token = _setup(dovecot_factory, sink, "8s", "foldkill")
    first, _ = _first_push(dovecot, sink, user, token)
    _deliver_committing(dovecot, user, True)
    for _ in range(3):
        last = deliver(dovecot, user)
    mark = dovecot.log_size()
    assert dovecot.wait_for_log(lambda t: t.count(FOLDED) >= 3,
                                offset=0, timeout=5), dovecot.log_since(mark)

    # Before the window ends: the restarted service finds the push
    # pending in the database and sends it when it is due
    old = dovecot.service_pid()
    os.kill(old, signal.SIGKILL)
    assert wait_until(lambda: [p for p in dovecot.service_pids()
                               if p != old], 10.0), dovecot.log_tail()
    assert len(sink.requests(since=first, bodies=[token])) == 1
    got = sink.wait_for(2, timeout=20, since=first, bodies=[token])
    assert len(got) == 2 and got[1].monotonic >= last, got


def _state(dovecot, user):
    """The push state of user's one token, as LIST shows it."""
    with ServiceConn(dovecot) as conn:
        reply = conn.request("LIST", user)
    assert reply[0] == b"OK" and len(reply) == 7, reply
    return reply[4].decode()


def test_trigger_during_and_after_a_push_in_flight_commits(dovecot_factory,
                                                           sink):
    dovecot, user, token = _setup(dovecot_factory, sink, "6s", "foldwire")
    first, _ = _first_push(dovecot, sink, user, token)
    _deliver_committing(dovecot, user, True)
    _deliver_committing(dovecot, user, False)

    # The push at the end of the window stays on the wire for 5 s
    sink.delay = 5.0
    mark = dovecot.log_size()
    assert len(sink.wait_for(2, timeout=15, since=first,
                             bodies=[token])) == 2
    for _ in range(2):
        log = _deliver_committing(dovecot, user, True)
        assert _commits(log) == 1, log
    assert _state(dovecot, user) == "sending"

    # Once it is done, a push is due for the messages that came while it
    # was on the wire: its state went through the write-behind, so the
    # next trigger writes again, and the one after is folded
    sink.delay = 0.0
    _push_done(dovecot, mark)
    _deliver_committing(dovecot, user, True)
    last = time.monotonic()
    _deliver_committing(dovecot, user, False)
    got = sink.wait_for(3, timeout=15, since=first, bodies=[token])
    assert len(got) == 3 and got[2].monotonic >= last, got


def test_trigger_after_a_failed_push_commits(dovecot_factory, sink):
    dovecot, user, token = _setup(dovecot_factory, sink, "4s", "foldfail")
    first, _ = _first_push(dovecot, sink, user, token)
    _deliver_committing(dovecot, user, True)
    _deliver_committing(dovecot, user, False)

    # The push at the end of the window fails; its retry state is
    # written through the write-behind
    sink.set_status(token, 500)
    mark = dovecot.log_size()
    assert len(sink.wait_for(2, timeout=15, since=first,
                             bodies=[token])) == 2
    _push_done(dovecot, mark, 500)
    sink.set_status(token, 200)
    assert _state(dovecot, user) == "retrying"
    last = time.monotonic()
    _deliver_committing(dovecot, user, True)
    _deliver_committing(dovecot, user, False)
    got = sink.wait_for(3, timeout=15, since=first, bodies=[token])
    assert [r.status for r in got] == [200, 500, 200], got
    assert got[2].monotonic >= last, got


def test_without_fsync_every_trigger_writes(dovecot_factory, sink):
    # deltapush_fsync = never syncs no commit: nothing is known to be on
    # disk, so every trigger is written as before
    dovecot, user, token = _setup(dovecot_factory, sink, "6s", "foldnever",
                                  deltapush_fsync="never")
    first, _ = _first_push(dovecot, sink, user, token)
    for _ in range(3):
        log = _deliver_committing(dovecot, user, True)
        assert _commits(log) == 1, log
    assert _state(dovecot, user) == "pending"
