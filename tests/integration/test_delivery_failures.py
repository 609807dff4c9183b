"""Push failures never break mail delivery: a proxy that is down or answers
500 leaves the push pending, the token in place and the service running."""

import os
import time

from dovecot_instance import make_message, wait_until
from helpers import (assert_log_has_no_tokens, deliver, token_id, tokens_of,
                     user_with_token, user_with_tokens)

# A short first retry, so a push that failed during an outage is seen to
# arrive once the proxy is back.
DELTAPUSH_SETTINGS = {"deltapush_retry_base": "1s"}

ALL_TOKENS = []


def _inbox_count(dovecot, user):
    return len(os.listdir(os.path.join(dovecot.user_home(user), "Maildir",
                                       "new")))


def test_sink_down_delivery_still_fast(dovecot, sink):
    user, token = user_with_token(dovecot, record=ALL_TOKENS)
    mark = dovecot.log_size()
    sink.stop()
    start = time.monotonic()
    replies = dovecot.deliver_lmtp(user, make_message(to=user))
    elapsed = time.monotonic() - start
    assert [code for code, _ in replies] == [250], replies
    assert elapsed < 3.0, elapsed
    result = dovecot.deliver_lda(user, make_message(to=user))
    assert result.returncode == 0, result
    assert _inbox_count(dovecot, user) == 2

    # the failed POST is logged (by the service) ...
    def failure_logged(text):
        return any("deltapush" in line.lower() and
                   ("Error" in line or "Warning" in line)
                   for line in text.splitlines())
    assert dovecot.wait_for_log(failure_logged, offset=mark, timeout=10), \
        dovecot.log_since(mark)
    # ... and the service is still the same process, still answering
    assert dovecot.service_pids() == [dovecot.started_service_pid]
    other, other_token = user_with_token(dovecot, record=ALL_TOKENS)
    assert tokens_of(dovecot, other) == [other_token]
    # the token whose push failed is not dropped
    assert tokens_of(dovecot, user) == [token]


def test_500_keeps_token_without_tight_retry_loop(dovecot, sink):
    user, token = user_with_token(dovecot, record=ALL_TOKENS)
    sink.set_status(token, 500)
    since = deliver(dovecot, user, make_message(to=user))
    got = sink.wait_for_bodies([token], since=since)
    assert [r.status for r in got][:1] == [500]
    time.sleep(2.0)
    # a temporary failure is retried later, not hammered
    attempts = sink.requests(since=since, bodies=[token])
    assert len(attempts) <= 3, attempts
    assert tokens_of(dovecot, user) == [token]
    assert dovecot.service_pids() == [dovecot.started_service_pid]


def test_slow_proxy_does_not_delay_delivery(dovecot, sink):
    user, token = user_with_token(dovecot, record=ALL_TOKENS)
    sink.delay = 3.0
    since = time.monotonic()
    start = time.monotonic()
    replies = dovecot.deliver_lmtp(user, make_message(to=user))
    assert [code for code, _ in replies] == [250], replies
    assert time.monotonic() - start < 2.0
    # the push still arrives (the sink records it before its delay)
    assert sink.wait_for_bodies([token], since=since)


def test_push_failed_during_outage_is_not_lost(dovecot, sink):
    user, token = user_with_token(dovecot, record=ALL_TOKENS)
    mark = dovecot.log_size()
    sink.stop()
    since = deliver(dovecot, user, make_message(to=user))
    prefix = token_id(token)
    assert dovecot.wait_for_log(
        lambda text: any(user in line and prefix in line
                         for line in text.splitlines()),
        offset=mark, timeout=10), dovecot.log_since(mark)
    assert sink.requests(since=since, bodies=[token]) == []
    sink.start()
    got = sink.wait_for_bodies([token], since=since, timeout=20)
    assert [r.status for r in got] == [200], got


def test_tokens_never_logged_whole(dovecot):
    assert ALL_TOKENS
    assert_log_has_no_tokens(dovecot, ALL_TOKENS)


def test_410_burst_removes_at_most_the_limit(dovecot_factory, sink):
    # Issue 12: a proxy that lost its keyring answers 410 for every token;
    # without a limit one delivery round wiped them all. Here the limit is
    # 3 per hour: 3 of 6 tokens go, the others stay and are retried.
    dovecot = dovecot_factory(sink=sink, settings={
        "deltapush_gone_limit": "3",
        "deltapush_debounce": "1s",
        "deltapush_retry_base": "1s",
    })
    user, tokens = user_with_tokens(dovecot, 6, "gone")
    for token in tokens:
        sink.set_status(token, 410)
    mark = dovecot.log_size()
    since = deliver(dovecot, user, make_message(to=user))
    sink.wait_for_bodies(tokens, since=since, timeout=5)
    assert dovecot.wait_for_log(
        lambda t: "reported more than 3 tokens gone" in t and
        t.count("the notification proxy reports it gone") == 3,
        offset=mark, timeout=5), dovecot.log_since(mark)
    kept = tokens_of(dovecot, user)
    assert len(kept) == 3, len(kept)
    # the proxy recovers: the kept tokens' pushes are retried and arrive
    for token in kept:
        sink.set_status(token, 200)
    def pushed():
        return {r.body for r in sink.requests(since=since, bodies=kept)
                if r.status == 200} == {t.encode() for t in kept}
    assert wait_until(pushed, timeout=8), sink.requests(since=since)
    assert len(tokens_of(dovecot, user)) == 3
    print("410 for 6 tokens with deltapush_gone_limit=3: 3 removed, 3 kept")
