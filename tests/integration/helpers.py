"""Shared helpers: realistic tokens, unique users, token registration and
reading over IMAP, log checks."""

import base64
import hashlib
import itertools
import os
import time

from dovecot_instance import make_message, wait_until
from observe import log_texts, token_leaks

DEVICETOKEN = "/private/devicetoken"
PUSH_TOKEN = "/private/vendor/deltachat/push-token"

# What Delta Chat core sends once per process after LOGIN; it drops the
# connection if this fails.
CLIENT_SERVER_ENTRIES = (
    "(/shared/comment /shared/admin /shared/vendor/deltachat/irohrelay "
    "/shared/vendor/deltachat/turn /shared/vendor/deltachat/maxsmtprecipients "
    "/shared/vendor/deltachat/appversions)")

_counter = itertools.count(1)


def make_token(nbytes=650):
    """A token shaped like Delta Chat's: "openpgp:" + padded base64 of an
    encrypted blob (650 random bytes give 876 characters)."""
    return "openpgp:" + base64.b64encode(os.urandom(nbytes)).decode()


def token_id(token):
    """The id logs, events and doveadm show for a token: 8 hex digits of
    its SHA-256."""
    return hashlib.sha256(token.encode()).hexdigest()[:8]


def new_user(prefix="u"):
    """A user name no other test uses (static passdb accepts any)."""
    return "%s%d-%s@example.org" % (prefix, next(_counter),
                                    os.urandom(3).hex())


def set_token(client, token, entry=DEVICETOKEN, mailbox="INBOX"):
    reply = client.setmetadata(mailbox, entry, token)
    assert reply.ok, "SETMETADATA %s failed: %r" % (entry, reply)
    return reply


def get_value(client, entry=DEVICETOKEN, mailbox="INBOX"):
    """The raw value of the entry (bytes) or None for NIL."""
    reply, values = client.getmetadata(mailbox, entry)
    assert reply.ok, "GETMETADATA %s failed: %r" % (entry, reply)
    assert entry in values, "no METADATA reply for %s: %r" % (
        entry, reply.untagged)
    return values[entry]


def get_tokens(client, entry=DEVICETOKEN, mailbox="INBOX"):
    """The user's tokens in the order GETMETADATA returns them ([] for NIL).
    Also checks the value is joined by single spaces."""
    value = get_value(client, entry, mailbox)
    if value is None:
        return []
    tokens = value.decode("ascii").split(" ")
    assert all(tokens), "empty token (double or edge space) in %r" % value
    return tokens


def register(dovecot, user, *tokens):
    """Registers tokens for user in one IMAP session, in order."""
    with dovecot.imap(user) as client:
        for token in tokens:
            set_token(client, token)


def tokens_of(dovecot, user):
    with dovecot.imap(user) as client:
        return get_tokens(client)


def wait_for_tokens(dovecot, user, predicate, timeout=8.0):
    """Polls the user's tokens until predicate(tokens) holds; returns the
    last tokens seen."""
    last = []

    def check():
        last[:] = tokens_of(dovecot, user)
        return predicate(last)

    wait_until(check, timeout, interval=0.2)
    return last


def assert_no_push(sink, tokens, since, wait=1.5):
    """Waits `wait` seconds and asserts no push for tokens arrived since."""
    time.sleep(wait)
    got = sink.requests(since=since, bodies=tokens)
    assert not got, "unexpected pushes: %r" % got


def assert_log_has_no_tokens(dovecot, tokens):
    """Whole tokens must never reach the log (only their ids do). Looks
    for a slice well past any reasonable prefix length."""
    log = dovecot.log_text()
    for token in tokens:
        middle = token[20:60]
        assert middle not in log, "token %s... appears in the log" % token[:12]


def user_with_tokens(dovecot, count=1, prefix="u", record=None):
    """A new user with `count` fresh tokens registered; the tokens are
    also appended to `record` (a module's list of every token it made,
    for the log checks at the end). Returns (user, tokens)."""
    user = new_user(prefix)
    tokens = [make_token() for _ in range(count)]
    register(dovecot, user, *tokens)
    if record is not None:
        record.extend(tokens)
    return user, tokens


def user_with_token(dovecot, prefix="u", record=None):
    """A new user with one fresh token registered: (user, token)."""
    user, tokens = user_with_tokens(dovecot, prefix=prefix, record=record)
    return user, tokens[0]


def retry_settings(base, deadline):
    """A 1 s coalescing window and the given retry schedule."""
    return {
        "deltapush_debounce": "1s",
        "deltapush_retry_base": base,
        "deltapush_retry_deadline": deadline,
    }


def user_with_failing_token(dovecot_factory, sink, retry_base,
                            retry_deadline, prefix="u"):
    """A new instance (1 s window, the given retry schedule) and a user
    whose one token the sink answers 500: (dovecot, user, token)."""
    dovecot = dovecot_factory(sink=sink, settings=retry_settings(
        retry_base, retry_deadline))
    user, token = user_with_token(dovecot, prefix=prefix)
    sink.set_status(token, 500)
    return dovecot, user, token


def deliver_until_failed(dovecot, sink, user, token, attempts, timeout,
                         logged):
    """Delivers to user, whose token the sink fails; waits for `attempts`
    pushes of it and for the log line with `logged`. Returns (the
    delivery's start, the log offset before it)."""
    mark = dovecot.log_size()
    started = deliver(dovecot, user)
    assert len(sink.wait_for(attempts, timeout=timeout, since=started,
                             bodies=[token])) == attempts
    assert dovecot.wait_for_log(lambda t: logged in t, offset=mark,
                                timeout=3)
    return started, mark


def delivered(replies):
    """Every recipient of an LMTP transaction got 250."""
    return [code for code, _ in replies] == [250] * len(replies)


def deliver(dovecot, users, message=None):
    """One LMTP transaction to users, asserted delivered; returns the
    monotonic time just before it started (the trigger happens after)."""
    started = time.monotonic()
    replies = dovecot.deliver_lmtp(users, message or make_message())
    assert delivered(replies), replies
    return started


def assert_delivery_pushes(dovecot, sink, user, tokens):
    """A delivery to user pushes each of tokens (the setup works)."""
    since = time.monotonic()
    assert delivered(dovecot.deliver_lmtp(user, make_message(to=user)))
    assert sink.wait_for_bodies(tokens, since=since)


def assert_no_token_leaks(dovecot, tokens, extra=None):
    """No piece of a token in any log file of the instance (or in the
    extra {name: text}, e.g. doveadm output): logs show token ids only."""
    leaks = token_leaks(log_texts(dovecot, extra), tokens)
    assert not leaks, "whole tokens in logs or output: %r" % leaks
