"""XDELTAPUSH and METADATA as a Delta Chat client sees them."""

from helpers import CLIENT_SERVER_ENTRIES, new_user
from imap_client import _Tokenizer


def _code_capabilities(text):
    """Capabilities from a `[CAPABILITY ...]` response code in text."""
    for token in _Tokenizer([("text", text)]).parse():
        if isinstance(token, list) and token and \
                bytes(token[0]).upper() == b"CAPABILITY":
            return {bytes(t).decode().upper() for t in token[1:]}
    return None


def test_not_advertised_before_login(dovecot):
    with dovecot.imap() as client:
        greeting = client.greeting_capabilities()
        # Dovecot puts the pre-login capabilities into the greeting; the
        # assertion below would be vacuous without them.
        assert greeting is not None and "IMAP4REV1" in greeting
        assert "XDELTAPUSH" not in greeting
        caps = client.capabilities()
        assert "IMAP4REV1" in caps
        assert "XDELTAPUSH" not in caps


def test_advertised_after_login(dovecot):
    with dovecot.imap() as client:
        reply = client.login(new_user())
        # Delta Chat reads the LOGIN reply's CAPABILITY code first.
        login_caps = _code_capabilities(reply.text)
        assert login_caps is not None, reply
        assert {"XDELTAPUSH", "METADATA", "IDLE"} <= login_caps
        caps = client.capabilities()
        assert {"XDELTAPUSH", "METADATA", "IDLE"} <= caps


def test_xchatmail_not_advertised(dovecot):
    # XCHATMAIL changes client behaviour (deletes mail after download) and
    # must not appear by default.
    with dovecot.imap(new_user()) as client:
        assert "XCHATMAIL" not in client.capabilities()


def test_client_server_entries_query_succeeds(dovecot):
    # A client that sees METADATA sends exactly this once per process and
    # reconnects in a loop if it fails.
    with dovecot.imap(new_user()) as client:
        reply = client.command('GETMETADATA "" ' + CLIENT_SERVER_ENTRIES)
        assert reply.ok, reply
        names = set()
        for tokens in reply.untagged:
            if tokens and bytes(tokens[0]).upper() == b"METADATA":
                pairs = tokens[2]
                names.update(bytes(pairs[i]).decode().lower()
                             for i in range(0, len(pairs), 2))
        # Every entry is answered, missing ones as NIL.
        wanted = set(CLIENT_SERVER_ENTRIES.strip("()").split())
        assert names == wanted, reply.untagged
