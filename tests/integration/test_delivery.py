"""New mail delivered by LMTP or dovecot-lda makes the service POST each of
the recipient's tokens to the notification proxy (here: the local sink),
byte for byte; other ways mail appears do not."""

import time

from dovecot_instance import make_message
from helpers import (assert_delivery_pushes, assert_log_has_no_tokens,
                     assert_no_push, delivered, new_user, user_with_tokens,
                     wait_for_tokens)
from imap_client import Literal

# Every token this module registers, to check the log at the end.
ALL_TOKENS = []


def test_lmtp_delivery_pushes_each_token_byte_exact(dovecot, sink):
    user, tokens = user_with_tokens(dovecot, 2, record=ALL_TOKENS)
    since = time.monotonic()
    assert delivered(dovecot.deliver_lmtp(user, make_message(to=user)))
    got = sink.wait_for_bodies(tokens, since=since)
    assert {r.body for r in got} == {t.encode() for t in tokens}
    # one trigger: exactly one push per token, nothing more after a while
    time.sleep(1.5)
    got = sink.requests(since=since, bodies=tokens)
    assert sorted(r.body for r in got) == sorted(t.encode() for t in tokens)
    for request in got:
        assert request.method == "POST"
        assert request.path == "/notify"
        assert request.header("User-Agent", "").startswith("deltapush/"), \
            request.header_list
        # the raw token is the whole body
        assert request.header("Content-Length") == str(len(request.body))


def test_lmtp_delivery_to_two_recipients_pushes_both(dovecot, sink):
    alice, alice_tokens = user_with_tokens(dovecot, 1, "alice",
                                           record=ALL_TOKENS)
    bob, bob_tokens = user_with_tokens(dovecot, 1, "bob", record=ALL_TOKENS)
    since = time.monotonic()
    replies = dovecot.deliver_lmtp([alice, bob], make_message(to=alice))
    assert delivered(replies) and len(replies) == 2, replies
    got = sink.wait_for_bodies(alice_tokens + bob_tokens, since=since)
    assert {r.body for r in got} == {t.encode()
                                     for t in alice_tokens + bob_tokens}


def test_lda_delivery_pushes(dovecot, sink):
    user, tokens = user_with_tokens(dovecot, 1, record=ALL_TOKENS)
    since = time.monotonic()
    result = dovecot.deliver_lda(user, make_message(to=user))
    assert result.returncode == 0, result
    got = sink.wait_for_bodies(tokens, since=since)
    assert [r.body for r in got] == [tokens[0].encode()]


def test_imap_append_copy_move_do_not_push(dovecot, sink):
    user, tokens = user_with_tokens(dovecot, 1, record=ALL_TOKENS)
    since = time.monotonic()
    with dovecot.imap(user) as client:
        message = make_message(to=user)
        assert client.command('APPEND "INBOX"', Literal(message)).ok
        assert client.command('CREATE "Other"').ok
        assert client.command('APPEND "Other"', Literal(message)).ok
        assert client.command('SELECT "Other"').ok
        assert client.command('COPY 1 "INBOX"').ok
        assert client.command('MOVE 1 "INBOX"').ok
    assert_no_push(sink, tokens, since)
    # the same user does get a push for a delivery (the setup works)
    assert_delivery_pushes(dovecot, sink, user, tokens)


def test_own_mail_does_not_push(dovecot, sink):
    user, tokens = user_with_tokens(dovecot, 1, record=ALL_TOKENS)
    since = time.monotonic()
    # From equals the recipient's login, compared case-insensitively
    own = make_message(sender="Me Myself <%s>" % user.upper(), to=user)
    assert delivered(dovecot.deliver_lmtp(user, own, sender=user))
    result = dovecot.deliver_lda(user, own, sender=user)
    assert result.returncode == 0, result
    assert_no_push(sink, tokens, since)
    # mail from someone else still pushes
    assert_delivery_pushes(dovecot, sink, user, tokens)


def test_auto_submitted_pushes_by_default(dovecot, sink):
    user, tokens = user_with_tokens(dovecot, 1, record=ALL_TOKENS)
    since = time.monotonic()
    message = make_message(to=user, headers={"Auto-Submitted": "auto-replied"})
    assert delivered(dovecot.deliver_lmtp(user, message))
    got = sink.wait_for_bodies(tokens, since=since)
    assert [r.body for r in got] == [tokens[0].encode()]


def test_delivery_into_other_mailbox_does_not_push(dovecot, sink):
    user, tokens = user_with_tokens(dovecot, 1, record=ALL_TOKENS)
    since = time.monotonic()
    # user+Junk is filed into Junk (lmtp_save_to_detail_mailbox), which is
    # not in the default deltapush_mailboxes = INBOX
    detail = user.replace("@", "+Junk@")
    assert delivered(dovecot.deliver_lmtp(detail, make_message(to=detail)))
    result = dovecot.deliver_lda(user, make_message(to=user), mailbox="Junk")
    assert result.returncode == 0, result
    assert_no_push(sink, tokens, since)
    with dovecot.imap(user) as client:
        reply = client.command('STATUS "Junk" (MESSAGES)')
        assert reply.ok and reply.untagged[0][2] == [b"MESSAGES", b"2"], \
            reply.untagged


def test_user_without_tokens_gets_no_post(dovecot, sink):
    # nothing else may be in flight while we watch the sink
    assert sink.wait_quiet(quiet=1.2, timeout=10)
    user = new_user()
    since = time.monotonic()
    assert delivered(dovecot.deliver_lmtp(user, make_message(to=user)))
    result = dovecot.deliver_lda(user, make_message(to=user))
    assert result.returncode == 0, result
    time.sleep(1.5)
    assert sink.requests(since=since) == []


def test_410_removes_only_that_token(dovecot, sink):
    user, (gone, kept) = user_with_tokens(dovecot, 2, record=ALL_TOKENS)
    sink.set_status(gone, 410)
    since = time.monotonic()
    assert delivered(dovecot.deliver_lmtp(user, make_message(to=user)))
    got = sink.wait_for_bodies([gone, kept], since=since)
    statuses = {r.body: r.status for r in got}
    assert statuses == {gone.encode(): 410, kept.encode(): 200}
    tokens = wait_for_tokens(dovecot, user, lambda t: gone not in t)
    assert tokens == [kept]
    # a later delivery pushes only the remaining token
    since = time.monotonic()
    assert delivered(dovecot.deliver_lmtp(user, make_message(to=user)))
    assert sink.wait_for_bodies([kept], since=since)
    time.sleep(1.5)
    assert sink.requests(since=since, bodies=[gone]) == []


def test_service_keeps_running(dovecot):
    # nothing in this module should have made the service restart
    assert dovecot.service_pids() == [dovecot.started_service_pid]
    assert "Fatal" not in dovecot.log_text()
    assert "Panic" not in dovecot.log_text()


def test_tokens_never_logged_whole(dovecot):
    assert ALL_TOKENS
    assert_log_has_no_tokens(dovecot, ALL_TOKENS)
