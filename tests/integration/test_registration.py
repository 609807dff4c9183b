"""Token registration over IMAP METADATA (and doveadm), against a real
Dovecot with the staged plugin and service."""

import time

import pytest

from dovecot_instance import proc_kib
from helpers import (DEVICETOKEN, PUSH_TOKEN, get_tokens, get_value,
                     make_token, new_user, register, set_token, tokens_of)
from imap_client import Literal


def test_exact_client_command_quoted(dovecot):
    user, token = new_user(), make_token()
    with dovecot.imap(user) as client:
        # Byte for byte what current Delta Chat clients send.
        reply = client.command(
            b'SETMETADATA "INBOX" (/private/devicetoken "' +
            token.encode() + b'")')
        assert reply.ok, reply
        assert get_tokens(client) == [token]
    # and it is kept beyond the session
    assert tokens_of(dovecot, user) == [token]


def test_literal_plus_form(dovecot):
    # Clients v1.151.4 - v2.57 send the token as a LITERAL+ literal.
    user, token = new_user(), make_token()
    with dovecot.imap(user) as client:
        reply = client.command(
            'SETMETADATA "INBOX" (/private/devicetoken',
            Literal(token, plus=True), ")")
        assert reply.ok, reply
        assert get_tokens(client) == [token]


def test_synchronizing_literal_form(dovecot):
    user, token = new_user(), make_token()
    with dovecot.imap(user) as client:
        reply = client.setmetadata("INBOX", DEVICETOKEN,
                                   Literal(token, plus=False))
        assert reply.ok, reply
        assert get_tokens(client) == [token]


@pytest.mark.parametrize("token", [
    "fcm-chat.delta:cXk3dmVyeWxvbmd0b2tlbg-_APA91bH0",
    "0123456789abcdef" * 4,
], ids=["fcm-plaintext", "apns-hex"])
def test_legacy_plaintext_tokens_accepted(dovecot, token):
    user = new_user()
    with dovecot.imap(user) as client:
        set_token(client, token)
        assert get_tokens(client) == [token]


def test_two_devices_returned_oldest_first(dovecot):
    user, first, second = new_user(), make_token(), make_token()
    register(dovecot, user, first)
    register(dovecot, user, second)
    with dovecot.imap(user) as client:
        value = get_value(client)
    # all tokens joined by exactly one space, oldest registration first
    assert value == (first + " " + second).encode()


def test_reregistering_keeps_one_copy(dovecot):
    user, first, second = new_user(), make_token(), make_token()
    register(dovecot, user, first, second)
    # every connection re-sends the byte-identical token
    register(dovecot, user, first)
    register(dovecot, user, first, second, first)
    assert tokens_of(dovecot, user) == [first, second]


def test_push_token_entry_is_the_same_set(dovecot):
    user, first, second = new_user(), make_token(), make_token()
    with dovecot.imap(user) as client:
        set_token(client, first, entry=DEVICETOKEN)
        set_token(client, second, entry=PUSH_TOKEN)
        assert get_tokens(client, entry=DEVICETOKEN) == [first, second]
        assert get_tokens(client, entry=PUSH_TOKEN) == [first, second]
        # setting an existing token through the other name: still one copy
        set_token(client, first, entry=PUSH_TOKEN)
        assert get_tokens(client, entry=DEVICETOKEN) == [first, second]
        # NIL through either name forgets the whole set
        reply = client.setmetadata("INBOX", PUSH_TOKEN, None)
        assert reply.ok, reply
        assert get_value(client, entry=DEVICETOKEN) is None
        assert get_value(client, entry=PUSH_TOKEN) is None


def test_nil_forgets_all_tokens(dovecot):
    user = new_user()
    tokens = [make_token() for _ in range(3)]
    register(dovecot, user, *tokens)
    with dovecot.imap(user) as client:
        assert get_tokens(client) == tokens
        reply = client.setmetadata("INBOX", DEVICETOKEN, None)
        assert reply.ok, reply
        assert get_value(client) is None
    with dovecot.imap(user) as client:
        assert get_value(client) is None
        # and registering again works after forgetting
        again = make_token()
        set_token(client, again)
        assert get_tokens(client) == [again]


def test_user_without_tokens_gets_nil(dovecot):
    with dovecot.imap(new_user()) as client:
        assert get_value(client) is None
        assert get_value(client, entry=PUSH_TOKEN) is None


def test_set_on_another_mailbox_is_the_same_set(dovecot):
    # Older clients register on their configured inbox folder, which need
    # not be INBOX: the set is per user, whatever mailbox names it.
    user, first, second = new_user(), make_token(), make_token()
    with dovecot.imap(user) as client:
        assert client.command('CREATE "DeltaChat"').ok
        set_token(client, first, mailbox="DeltaChat")
        set_token(client, second, mailbox="INBOX")
        assert get_tokens(client, mailbox="INBOX") == [first, second]
        assert get_tokens(client, mailbox="DeltaChat") == [first, second]


def test_longest_valid_token_accepted(dovecot):
    user = new_user()
    token = ("openpgp:" + "A" * 4096)[:4096]
    with dovecot.imap(user) as client:
        reply = client.setmetadata("INBOX", DEVICETOKEN, Literal(token))
        assert reply.ok, reply
        assert get_tokens(client) == [token]


def _printable(n):
    return ("openpgp:" + "Qk" * n)[:n]


# (id, value as sent): str values go quoted, Literal values as literals.
INVALID_VALUES = [
    ("empty-quoted", ""),
    ("empty-literal", Literal(b"")),
    ("4097-quoted", _printable(4097)),
    ("4097-literal", Literal(_printable(4097))),
    ("space", "openpgp:abc def"),
    ("leading-space", " openpgp:abc"),
    ("tab", Literal(b"openpgp:abc\tdef")),
    ("crlf", Literal(b"openpgp:abc\r\ndef")),
    ("lf", Literal(b"openpgp:abc\ndef")),
    ("trailing-newline", Literal(b"openpgp:abcdef\n")),
    ("nul", Literal(b"openpgp:abc\x00def")),
    ("8bit", Literal(b"openpgp:abc\xc3\xa9def")),
    ("del", Literal(b"openpgp:abc\x7fdef")),
    ("control", Literal(b"openpgp:abc\x01def")),
]


@pytest.mark.parametrize("entry", [DEVICETOKEN, PUSH_TOKEN],
                         ids=["devicetoken", "push-token"])
@pytest.mark.parametrize("value", [v for _, v in INVALID_VALUES],
                         ids=[i for i, _ in INVALID_VALUES])
def test_invalid_value_refused_and_nothing_stored(dovecot, value, entry):
    user, good = new_user(), make_token()
    with dovecot.imap(user) as client:
        set_token(client, good)
        reply = client.setmetadata("INBOX", entry, value)
        assert reply.status == "NO", reply
        # the NO carries a reason
        assert len(reply.text.strip()) > 3, reply
        # nothing changed, and the session goes on
        assert get_tokens(client) == [good]
    assert tokens_of(dovecot, user) == [good]


@pytest.mark.parametrize("token", ['openpgp:abc"def', "openpgp:abc\\def",
                                   'openpgp:"\\"\\'],
                         ids=["double-quote", "backslash", "mixed"])
def test_quote_and_backslash_tokens_refused(dovecot, token):
    # Printable, but Delta Chat refuses to send tokens with " or \: only a
    # broken or hostile client does, so they get a NO and change nothing.
    user, good = new_user(), make_token()
    with dovecot.imap(user) as client:
        set_token(client, good)
        reply = client.setmetadata("INBOX", DEVICETOKEN, Literal(token))
        assert reply.status == "NO", reply
        assert b"not allowed" in reply.text, reply
        assert get_tokens(client) == [good]


def test_invalid_value_for_user_without_tokens_stores_nothing(dovecot):
    user = new_user()
    with dovecot.imap(user) as client:
        reply = client.setmetadata("INBOX", DEVICETOKEN, "")
        assert reply.status == "NO", reply
        assert get_value(client) is None


def test_ten_megabyte_literal_refused_without_memory_growth(dovecot):
    user, good = new_user(), make_token()
    with dovecot.imap(user) as client:
        set_token(client, good)
        pids = dovecot.imap_pids(user)
        assert len(pids) == 1, "cannot identify the session's imap " \
            "process: %r" % pids
        pid = pids[0]
        hwm_before = proc_kib(pid, "VmHWM")
        big = ("openpgp:" + "QUJD" * (10 * 1024 * 1024 // 4))[:10 * 1024 * 1024]
        reply = client.setmetadata("INBOX", DEVICETOKEN, Literal(big),
                                   timeout=60)
        assert reply.status == "NO", reply
        hwm_after = proc_kib(pid, "VmHWM")
        # the plugin reads at most 4097 bytes of the value stream: the peak
        # must not grow by anything near the literal's 10 MiB
        growth = hwm_after - hwm_before
        assert growth < 4 * 1024, "imap peak RSS grew by %d KiB" % growth
        # the session is still in sync and nothing was stored
        assert client.command("NOOP").ok
        assert get_tokens(client) == [good]


def test_at_most_32_tokens_least_recently_seen_evicted(dovecot):
    user = new_user()
    oldest, second = make_token(), make_token()
    rest = [make_token() for _ in range(30)]
    with dovecot.imap(user) as client:
        set_token(client, oldest)
        # distinct last-seen times even for a store with 1 s resolution
        time.sleep(1.1)
        set_token(client, second)
        time.sleep(1.1)
        for token in rest:
            set_token(client, token)
        # refresh the oldest registration: `second` is now least recent
        set_token(client, oldest)
        assert get_tokens(client) == [oldest, second] + rest
        newest = make_token()
        set_token(client, newest)
        tokens = get_tokens(client)
    assert len(tokens) == 32
    assert second not in tokens
    assert tokens == [oldest] + rest + [newest]


def test_users_never_see_each_others_tokens(dovecot):
    alice, bob = new_user("alice"), new_user("bob")
    alice_token, bob_token = make_token(), make_token()
    register(dovecot, alice, alice_token)
    with dovecot.imap(bob) as client:
        assert get_value(client) is None
        assert get_value(client, entry=PUSH_TOKEN) is None
        set_token(client, bob_token)
        assert get_tokens(client) == [bob_token]
        # bob forgetting his tokens leaves alice's alone
        assert client.setmetadata("INBOX", DEVICETOKEN, None).ok
    assert tokens_of(dovecot, alice) == [alice_token]


def test_doveadm_get_shows_tokens(dovecot):
    user, first, second = new_user(), make_token(), make_token()
    register(dovecot, user, first, second)
    result = dovecot.doveadm("mailbox", "metadata", "get", "-u", user,
                             "INBOX", DEVICETOKEN)
    assert result.returncode == 0, result
    assert result.stdout.decode().strip() == first + " " + second


def test_doveadm_unset_forgets_tokens(dovecot):
    user, token = new_user(), make_token()
    register(dovecot, user, token)
    result = dovecot.doveadm("mailbox", "metadata", "unset", "-u", user,
                             "INBOX", DEVICETOKEN)
    assert result.returncode == 0, result
    assert tokens_of(dovecot, user) == []


def test_doveadm_list_shows_entry(dovecot):
    user = new_user()
    register(dovecot, user, make_token())
    result = dovecot.doveadm("mailbox", "metadata", "list", "-u", user,
                             "INBOX")
    assert result.returncode == 0, result
    assert "devicetoken" in result.stdout.decode().split(), result


def test_doveadm_set_registers_token(dovecot):
    user, token = new_user(), make_token()
    result = dovecot.doveadm("mailbox", "metadata", "set", "-u", user,
                             "INBOX", DEVICETOKEN, token)
    assert result.returncode == 0, result
    assert tokens_of(dovecot, user) == [token]
    # and the same rules apply to doveadm
    result = dovecot.doveadm("mailbox", "metadata", "set", "-u", user,
                             "INBOX", DEVICETOKEN, "bad token")
    assert result.returncode != 0, result
    assert tokens_of(dovecot, user) == [token]
