"""The delivery settings: deltapush_skip_self, deltapush_skip_auto_submitted
and deltapush_mailboxes, each turned away from its default."""

import time

import pytest

from dovecot_instance import make_message
from helpers import assert_no_push, delivered, user_with_token


@pytest.fixture(scope="module")
def opts_dovecot(module_dovecot_factory, sink):
    return module_dovecot_factory(sink=sink, settings={
        "deltapush_skip_self": "no",
        "deltapush_skip_auto_submitted": "yes",
    })


@pytest.fixture(scope="module")
def mailboxes_dovecot(module_dovecot_factory, sink):
    return module_dovecot_factory(sink=sink, settings={
        "deltapush_mailboxes": "Other Archive/2026",
    })


def test_own_mail_pushes_with_skip_self_off(opts_dovecot, sink):
    user, token = user_with_token(opts_dovecot)
    since = time.monotonic()
    own = make_message(sender=user, to=user)
    assert delivered(opts_dovecot.deliver_lmtp(user, own, sender=user))
    assert [r.body for r in sink.wait_for_bodies([token], since=since)] \
        == [token.encode()]


@pytest.mark.parametrize("value", ["auto-replied", "auto-generated",
                                   "Auto-Replied; owner-email=x@example.org"])
def test_auto_submitted_skipped_with_option_on(opts_dovecot, sink, value):
    user, token = user_with_token(opts_dovecot)
    since = time.monotonic()
    message = make_message(to=user, headers={"Auto-Submitted": value})
    assert delivered(opts_dovecot.deliver_lmtp(user, message))
    result = opts_dovecot.deliver_lda(user, message)
    assert result.returncode == 0, result
    assert_no_push(sink, [token], since)


def test_auto_submitted_no_still_pushes_with_option_on(opts_dovecot, sink):
    # "Auto-Submitted: no" marks a message written by a person (RFC 3834)
    user, token = user_with_token(opts_dovecot)
    since = time.monotonic()
    message = make_message(to=user, headers={"Auto-Submitted": "no"})
    assert delivered(opts_dovecot.deliver_lmtp(user, message))
    assert sink.wait_for_bodies([token], since=since)


def test_inbox_not_listed_in_mailboxes_gives_no_push(mailboxes_dovecot, sink):
    user, token = user_with_token(mailboxes_dovecot)
    since = time.monotonic()
    assert delivered(mailboxes_dovecot.deliver_lmtp(user,
                                                    make_message(to=user)))
    result = mailboxes_dovecot.deliver_lda(user, make_message(to=user))
    assert result.returncode == 0, result
    assert_no_push(sink, [token], since)


def test_listed_mailbox_pushes(mailboxes_dovecot, sink):
    user, token = user_with_token(mailboxes_dovecot)
    # filed into Other by the address detail (lmtp_save_to_detail_mailbox)
    since = time.monotonic()
    detail = user.replace("@", "+Other@")
    assert delivered(mailboxes_dovecot.deliver_lmtp(detail,
                                                    make_message(to=detail)))
    assert sink.wait_for_bodies([token], since=since)
    # the second listed name, a nested mailbox, by dovecot-lda -m
    time.sleep(1.2)   # past the 1 s coalescing window
    since = time.monotonic()
    result = mailboxes_dovecot.deliver_lda(user, make_message(to=user),
                                           mailbox="Archive/2026")
    assert result.returncode == 0, result
    assert sink.wait_for_bodies([token], since=since)
