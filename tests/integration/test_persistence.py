"""Tokens live in the service's SQLite file: they survive a restart of
Dovecot, and expire after deltapush_token_ttl."""

import os
import time

from helpers import get_tokens, get_value, make_token, new_user, register, \
    tokens_of


def test_tokens_survive_dovecot_restart(dovecot_factory):
    dovecot = dovecot_factory()
    alice, bob = new_user("alice"), new_user("bob")
    alice_tokens = [make_token(), make_token()]
    bob_token = make_token()
    register(dovecot, alice, *alice_tokens)
    register(dovecot, bob, bob_token)
    old_service = dovecot.service_pid()

    dovecot.stop()
    dovecot.start()

    # a new service process, reading what the old one stored
    assert dovecot.service_pid() != old_service
    assert tokens_of(dovecot, alice) == alice_tokens
    assert tokens_of(dovecot, bob) == [bob_token]
    # the database defaults to a file in state_dir/deltapush
    assert os.path.exists(dovecot.db_path)


def test_configured_database_path_is_used(dovecot_factory, tmp_path):
    dbdir = tmp_path / "db"
    dbdir.mkdir()
    db = dbdir / "tokens.sqlite"
    dovecot = dovecot_factory(settings={"deltapush_db": str(db)})
    user, token = new_user(), make_token()
    register(dovecot, user, token)
    assert db.exists()
    assert not os.path.exists(dovecot.db_path)
    assert tokens_of(dovecot, user) == [token]


def test_tokens_unseen_for_ttl_are_not_returned(dovecot_factory):
    dovecot = dovecot_factory(settings={"deltapush_token_ttl": "2s"})
    user, token = new_user(), make_token()
    start = time.monotonic()
    with dovecot.imap(user) as client:
        client_set = client.setmetadata("INBOX", "/private/devicetoken", token)
        assert client_set.ok, client_set
        assert get_tokens(client) == [token]
        # bounded poll: gone once the TTL has passed
        deadline = start + 6.0
        while get_value(client) is not None:
            assert time.monotonic() < deadline, "token did not expire"
            time.sleep(0.25)
    # not earlier than the TTL (allowing for a store with 1 s resolution)
    assert time.monotonic() - start >= 1.0
    assert tokens_of(dovecot, user) == []
