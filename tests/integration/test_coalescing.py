"""Coalescing and retries (issue 4): a burst of mail costs at most one push
per token per deltapush_debounce window, the first message is pushed at
once and the last one always has a push after it; failed pushes are retried
max(deltapush_retry_base, deltapush_debounce) apart until
deltapush_retry_deadline, new mail during a retry wait is attempted within
one window, and a proxy outage loses nothing.

The settings are shortened (debounce 1 s, retry base of a few seconds) so
the schedules fit in a few seconds; every wait is bounded."""

import re
import time

from dovecot_instance import lmtp_send, make_message, wait_until
from helpers import (assert_no_token_leaks, deliver, deliver_until_failed,
                     delivered, make_token, new_user, register,
                     retry_settings, token_id, user_with_failing_token,
                     user_with_tokens)


def _arrivals(sink, token, since):
    return [r.monotonic for r in sink.requests(since=since, bodies=[token])]


def _gaps(times):
    return [b - a for a, b in zip(times, times[1:])]


def test_burst_of_100_deliveries_is_coalesced(dovecot_factory, sink):
    dovecot = dovecot_factory(sink=sink, settings={"deltapush_debounce": "1s"})
    user, tokens = user_with_tokens(dovecot, 2, "burst")

    # 100 deliveries spread evenly over ~2.5 s on one LMTP connection
    client = dovecot.lmtp()
    starts = []
    try:
        t0 = time.monotonic()
        for i in range(100):
            pause = t0 + i * 0.025 - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            starts.append(time.monotonic())
            assert delivered(lmtp_send(client, "sender@example.net", [user],
                                       make_message(to=user)))
        done = time.monotonic()
    finally:
        client.quit()
    # A loaded machine stretches the burst: coalescing allows the first
    # push, one per 1 s window while it lasts and one after it.
    most = int(done - starts[0]) + 3

    # the trailing push comes at most one window after the last message
    def trailing_arrived():
        return all(any(t >= starts[-1] for t in _arrivals(sink, tok, t0))
                   for tok in tokens)
    wait_until(trailing_arrived, 5, interval=0.1)
    time.sleep(1.5)  # nothing more may follow

    for token in tokens:
        times = _arrivals(sink, token, t0)
        rel = [round(t - starts[0], 3) for t in times]
        assert 2 <= len(times) <= most, (rel, most)
        # the first message is not delayed by coalescing
        assert times[0] - starts[0] <= 1.0, rel
        # the last message has a push sent after it arrived
        assert times[-1] >= starts[-1], (rel, starts[-1] - starts[0])
        # at most one push per window (small allowance for timer jitter)
        assert all(gap >= 0.9 for gap in _gaps(times)), rel
        assert all(r.status == 200
                   for r in sink.requests(since=t0, bodies=[token]))
    assert_no_token_leaks(dovecot, tokens)


def test_debounce_zero_pushes_every_message(dovecot_factory, sink):
    dovecot = dovecot_factory(sink=sink, settings={"deltapush_debounce": "0"})
    user, tokens = user_with_tokens(dovecot, 2, "nodebounce")
    since = time.monotonic()
    client = dovecot.lmtp()
    try:
        for _ in range(5):
            assert delivered(lmtp_send(client, "sender@example.net", [user],
                                       make_message(to=user)))
    finally:
        client.quit()
    sink.wait_for(10, timeout=8, since=since, bodies=tokens)
    time.sleep(1.0)  # and no more than one per message
    for token in tokens:
        assert len(_arrivals(sink, token, since)) == 5


def test_500_is_retried_on_schedule_until_the_deadline(dovecot_factory, sink):
    # attempts at 0, +4 s, +8 s; the next (+12 s) is past the 9 s deadline
    dovecot = dovecot_factory(sink=sink,
                              settings=retry_settings("4s", "9s"))
    user = new_user("flaky")
    failing, healthy = make_token(), make_token()
    register(dovecot, user, failing, healthy)
    sink.set_status(failing, 500)
    mark = dovecot.log_size()

    started = deliver(dovecot, user)
    got = sink.wait_for(3, timeout=14, since=started, bodies=[failing])
    times = [r.monotonic for r in got]
    rel = [round(t - started, 2) for t in times]
    assert len(times) == 3, rel
    assert all(r.status == 500 for r in got)
    assert times[0] - started < 1.0, rel
    gap1, gap2 = _gaps(times)
    assert 3.9 <= gap1 <= 4.6, rel
    assert 3.9 <= gap2 <= 4.6, rel

    log = dovecot.wait_for_log(lambda t: "Giving up pushing token" in t,
                               offset=mark, timeout=3)
    assert log is not None, dovecot.log_since(mark)
    line = [l for l in log.splitlines() if "Giving up pushing token" in l][0]
    assert "after 3 attempts" in line, line
    assert token_id(failing) in line and user in line, line
    # the retries were logged as warnings with the delay
    assert re.search(r"Warning: Push to token \S+ of user \S+ failed "
                     r"\(attempt 1, retrying in 4000 ms\)", log), log
    # dropped: nothing more is sent, and the healthy token got one push
    time.sleep(1.5)
    assert len(_arrivals(sink, failing, started)) == 3
    assert len(_arrivals(sink, healthy, started)) == 1
    assert_no_token_leaks(dovecot, [failing, healthy])


def test_refused_connections_recover_by_schedule_alone(dovecot_factory,
                                                        sink):
    # base 1.25 s: attempts at +0, +1.25 s and +11.25 s, so the third one
    # of every trigger falls after the 10 s outage; no flush involved
    dovecot = dovecot_factory(sink=sink,
                              settings=retry_settings("1250ms", "30s"))
    alice, bob, carol = (new_user("alice"), new_user("bob"),
                         new_user("carol"))
    alice_tokens = [make_token(), make_token()]
    bob_tokens = [make_token()]
    carol_tokens = [make_token()]
    register(dovecot, alice, *alice_tokens)
    register(dovecot, bob, *bob_tokens)
    register(dovecot, carol, *carol_tokens)
    everything = alice_tokens + bob_tokens + carol_tokens

    sink.stop()
    outage = time.monotonic()
    try:
        deliver(dovecot, alice)
        time.sleep(0.5)
        deliver(dovecot, alice)      # folded into the waiting retry
        time.sleep(0.5)
        deliver(dovecot, bob)
        time.sleep(1.0)
        deliver(dovecot, carol)
        time.sleep(1.0)
        last = deliver(dovecot, [alice, bob])  # folded again
        time.sleep(max(0.0, outage + 10.0 - time.monotonic()))
    finally:
        sink.start()
    recovered = time.monotonic()
    assert last < recovered

    got = sink.wait_for_bodies(everything, timeout=10, since=outage)
    assert {r.body for r in got} == {t.encode() for t in everything}, \
        dovecot.log_tail(40)
    time.sleep(1.5)
    got = sink.requests(since=outage, bodies=everything)
    # none lost, none duplicated: the retry covers every folded message
    assert sorted(r.body for r in got) == sorted(t.encode()
                                                 for t in everything)
    assert all(r.monotonic >= recovered and r.status == 200 for r in got)
    assert "Giving up" not in dovecot.log_text()
    assert_no_token_leaks(dovecot, everything)


def test_new_mail_during_retry_wait_is_pushed_within_a_window(
        dovecot_factory, sink):
    # Issue 12: new mail for a token whose push waits for a retry was
    # folded into that retry (here 60 s away) with the old deadline. Now
    # it gets a fresh attempt within one window (1 s).
    dovecot, user, token = user_with_failing_token(
        dovecot_factory, sink, "60s", "10m", prefix="outage")
    started, _ = deliver_until_failed(dovecot, sink, user, token, 1, 4,
                                      "(attempt 1, retrying in")
    # the proxy is back; the old failure's retry is a minute away
    sink.set_status(token, 200)
    second = deliver(dovecot, user)
    got = sink.wait_for(1, timeout=10, since=second, bodies=[token])
    assert [r.status for r in got] == [200], got
    print("new mail during a 60 s retry wait pushed after %.2f s" %
          (got[0].monotonic - second))
    # and that push covered everything: nothing more is sent
    time.sleep(1.5)
    assert len(_arrivals(sink, token, started)) == 2
    assert_no_token_leaks(dovecot, [token])
