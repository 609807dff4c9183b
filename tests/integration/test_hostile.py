"""Hostile input (issue 7): over IMAP and straight on the service's socket.
Whatever arrives, the offender gets a clear error or is disconnected with
a log line, nothing stored changes, and the same service process keeps
serving everyone else."""

import os
import socket
import shutil
import sqlite3
import tempfile
import subprocess
import time

import pytest

from dovecot_instance import (DOVECOT_LDA, dovecot_command, make_message,
                              proc_kib, wait_until)
from helpers import (CLIENT_SERVER_ENTRIES, DEVICETOKEN, PUSH_TOKEN,
                     get_tokens, make_token, new_user, set_token, tokens_of)
from imap_client import Literal, parse_metadata, quote
from service_client import HANDSHAKE, ServiceConn

DELTAPUSH_SETTINGS = {
    "deltapush_max_smtp_recipients": "1000",
    "deltapush_iroh_relay": "https://iroh.example.org",
    "deltapush_service_timeout": "2s",
}

MAX_LINE = 320 * 1024           # DELTAPUSH_PROTOCOL_MAX_LINE_SIZE
SQL = "x'); DROP TABLE tokens;--"
# Under tests/sanitize.sh memory use says nothing about our code (ASan's
# quarantine, valgrind): the RSS bounds are not checked there.
SANITIZED = bool(os.environ.get("DELTAPUSH_SANITIZE"))


# ---- helpers: the service socket ----

def service_works(dovecot, timeout=3.0):
    """A well-behaved client gets its answer within timeout."""
    conn = ServiceConn(dovecot, timeout=timeout)
    try:
        return conn.request("GET", new_user("probe")) == [b"OK"]
    finally:
        conn.close()


def deltapush_log(dovecot, mark):
    return [line for line in dovecot.log_since(mark).splitlines()
            if " deltapush: " in line]


def wait_for_service_log(dovecot, mark, *needles, timeout=5.0):
    """Waits for a deltapush line containing every needle; returns it."""
    def find():
        for line in deltapush_log(dovecot, mark):
            if all(n in line for n in needles):
                return line
        return None
    return wait_until(find, timeout, interval=0.1)


def db_path(dovecot):
    return dovecot.db_path


def db_rows(dovecot, sql, args=()):
    """Reads the service's database directly. The service keeps the file
    locked (exclusive mode), so read a copy of it and its WAL, taken
    while nothing is being written."""
    copy_dir = tempfile.mkdtemp(prefix="dpt-db-")
    try:
        copy = os.path.join(copy_dir, "copy.sqlite")
        for suffix in ("", "-wal"):
            if os.path.exists(db_path(dovecot) + suffix):
                shutil.copyfile(db_path(dovecot) + suffix, copy + suffix)
        db = sqlite3.connect(copy, timeout=5)
        try:
            return db.execute(sql, args).fetchall()
        finally:
            db.close()
    finally:
        shutil.rmtree(copy_dir)


# ---- IMAP ----

def _printable(n):
    return ("openpgp:" + "Qk" * n)[:n]


TEN_MB = 10 * 1024 * 1024

# (what, value as sent, part of the reason the NO must give)
HOSTILE_TOKENS = [
    ("empty", "", b"empty"),
    ("empty literal", Literal(b""), b"empty"),
    ("4097 bytes", _printable(4097), b"too long"),
    ("4097-byte literal", Literal(_printable(4097), plus=False), b"too long"),
    ("10 MB literal+", Literal(b"A" * TEN_MB), b"too long"),
    ("10 MB literal", Literal(b"A" * TEN_MB, plus=False), b"too long"),
    ("NUL", Literal(b"openpgp:a\x00b"), b"0x00"),
    ("CR", Literal(b"openpgp:a\rb"), b"0x0d"),
    ("LF", Literal(b"openpgp:a\nb"), b"0x0a"),
    ("CRLF at end", Literal(b"openpgp:ab\r\n"), b"0x0d"),
    ("TAB", "openpgp:a\tb", b"0x09"),
    ("space", "openpgp:a b", b"0x20"),
    ("double quote", 'openpgp:a"b', b"'\"'"),
    ("backslash", "openpgp:a\\b", b"'\\'"),
    ("8-bit literal", Literal(b"openpgp:caf\xc3\xa9"), b"0xc3"),
    ("8-bit quoted", "openpgp:caf\u00e9", b"0xc3"),
    ("DEL", Literal(b"openpgp:a\x7fb"), b"0x7f"),
]


@pytest.mark.parametrize("entry", [DEVICETOKEN, PUSH_TOKEN],
                         ids=["devicetoken", "push-token"])
def test_hostile_tokens_in_one_session(dovecot, entry):
    """Every hostile value of issue 7, back to back in one session: each
    gets NO with its reason, the stored set never changes, the session
    stays in sync, and the service never hears of them."""
    user, good = new_user("hostile"), make_token()
    with dovecot.imap(user, timeout=60) as client:
        set_token(client, good)
        mark = dovecot.log_size()
        for what, value, reason in HOSTILE_TOKENS:
            reply = client.setmetadata("INBOX", entry, value, timeout=60)
            assert reply.status == "NO", (what, reply)
            assert b"Push token" in reply.text and reason in reply.text, \
                (what, reply.text)
            # a 10 MB literal is skipped, not read into memory
            assert reply.elapsed < 5, (what, reply.elapsed)
            assert client.command("NOOP").ok, what
        assert get_tokens(client) == [good]
        assert get_tokens(client, entry=PUSH_TOKEN) == [good]
    assert tokens_of(dovecot, user) == [good]
    # refused in the plugin: no request reached the service
    assert not [l for l in deltapush_log(dovecot, mark) if user in l]
    assert db_rows(dovecot, "SELECT token FROM tokens WHERE username = ?",
                   (user,)) == [(good,)]


def test_server_entries_refuse_set_and_stay(dovecot):
    entries = ["/shared/vendor/deltachat/" + name for name in
               ("maxsmtprecipients", "irohrelay", "turn", "appversions")]
    with dovecot.imap(new_user()) as client:
        reply = client.command("GETMETADATA", '""', CLIENT_SERVER_ENTRIES)
        assert reply.ok, reply
        before = parse_metadata(reply)
        assert before["/shared/vendor/deltachat/maxsmtprecipients"] == b"1000"
        for entry in entries:
            for value in (b"5", b"", b"NIL"):
                encoded = value if value == b"NIL" else quote(value)
                reply = client.command(b'SETMETADATA "" (' + entry.encode() +
                                       b" " + encoded + b")")
                assert reply.status == "NO", (entry, value, reply)
                assert b"[NOPERM]" in reply.text, reply
                assert b"read-only" in reply.text, reply
        reply = client.command("GETMETADATA", '""', CLIENT_SERVER_ENTRIES)
        assert reply.ok, reply
        assert parse_metadata(reply) == before


def _pipeline(client, commands, timeout=60):
    """Sends every command at once, then reads the tagged replies:
    returns their status words in order."""
    tags = []
    data = bytearray()
    for command in commands:
        tag = client.next_tag()
        tags.append(tag.encode())
        data += tag.encode() + b" " + command + b"\r\n"
    client.sock.settimeout(timeout)
    client.sock.sendall(bytes(data))
    statuses = []
    while len(statuses) < len(tags):
        line = client._readline()
        tag, _, rest = line.partition(b" ")
        if tag == tags[len(statuses)]:
            statuses.append(rest.split(b" ", 1)[0].decode())
    return statuses


def test_1000_registrations_in_one_session_keep_the_cap(dovecot):
    user = new_user("many")
    tokens = ["openpgp:%04d-%s" % (i, os.urandom(24).hex())
              for i in range(1000)]
    commands = [b'SETMETADATA "INBOX" (/private/devicetoken ' +
                quote(token) + b")" for token in tokens]
    def rss():
        # (under valgrind the imap process is not called imap)
        if SANITIZED:
            return 0, 0
        return (proc_kib(dovecot.imap_pids(user)[0], "VmRSS"),
                proc_kib(dovecot.service_pid(), "VmRSS"))

    with dovecot.imap(user, timeout=60) as client:
        # warm-up round, then measure what 800 more registrations cost
        assert _pipeline(client, commands[:200]) == ["OK"] * 200
        imap_rss, service_rss = rss()
        assert _pipeline(client, commands[200:]) == ["OK"] * 800
        imap_after, service_after = rss()
        imap_growth = imap_after - imap_rss
        service_growth = service_after - service_rss
        # the newest 32, in registration order
        assert get_tokens(client) == tokens[-32:]
    assert db_rows(dovecot, "SELECT COUNT(*) FROM tokens WHERE username = ?",
                   (user,)) == [(32,)]
    assert imap_growth < 4096, "imap RSS grew by %d KiB" % imap_growth
    assert service_growth < 4096, \
        "service RSS grew by %d KiB" % service_growth
    assert dovecot.service_pids() == [dovecot.started_service_pid]


def test_getmetadata_depth_infinity(dovecot):
    user, first, second = new_user(), make_token(), make_token()
    with dovecot.imap(user) as client:
        set_token(client, first)
        set_token(client, second)
        reply = client.command("GETMETADATA", "(DEPTH infinity)", '"INBOX"',
                               "(/private)")
        assert reply.ok, reply
        values = parse_metadata(reply, "INBOX")
        expected = (first + " " + second).encode()
        # both names of the set are listed, each with the whole set
        assert values[DEVICETOKEN] == expected, values
        assert values[PUSH_TOKEN] == expected, values
        for box, prefix in (('"INBOX"', "/shared"), ('""', "/shared"),
                            ('""', "/private")):
            reply = client.command("GETMETADATA", "(DEPTH infinity)", box,
                                   "(%s)" % prefix)
            assert reply.ok, (box, prefix, reply)
        reply = client.command("GETMETADATA", "(DEPTH infinity MAXSIZE 10)",
                               '"INBOX"', "(/private)")
        assert reply.ok, reply
        assert b"[METADATA LONGENTRIES" in reply.text, reply
        assert client.command("NOOP").ok
        assert get_tokens(client) == [first, second]


ODD_USERS = [
    ("double-quote", 'quo"te@example.org', '"quo\\"te"@example.org'),
    ("apostrophe", "o'brien@example.org", "o'brien@example.org"),
    ("percent", "per%cent@example.org", "per%cent@example.org"),
    ("semicolon", "semi;colon@example.org", '"semi;colon"@example.org'),
    ("sql", SQL + "@example.org", '"%s"@example.org' % SQL),
    ("unicode", "j\u00fcrgen.\u00fcn\u00efc\u00f8d\u00e9@example.org", None),
]


def dovecot_username(user):
    """The name as Dovecot passes it on: auth_username_format = %Lu
    lower-cases ASCII letters."""
    return "".join(c.lower() if c.isascii() else c for c in user)


@pytest.fixture(scope="module")
def any_name_dovecot(module_dovecot_factory, sink):
    """Dovecot refuses user names outside auth_username_chars (letters,
    digits and ".-_@") before any passdb sees them; an empty value allows
    every name, as some installations configure."""
    return module_dovecot_factory(sink=sink, settings=DELTAPUSH_SETTINGS,
                                  extra_config="auth_username_chars =\n")


@pytest.mark.parametrize("user,rcpt", [u[1:] for u in ODD_USERS],
                         ids=[u[0] for u in ODD_USERS])
def test_odd_user_names_round_trip(any_name_dovecot, sink, user, rcpt):
    """Tokens must round-trip for any user name Dovecot lets in, and a
    delivery to it must push (over LMTP where the name can be written as
    an address, else through dovecot-lda)."""
    dovecot = any_name_dovecot
    token = make_token()
    with dovecot.imap(user) as client:
        set_token(client, token)
        assert get_tokens(client) == [token]
    assert tokens_of(dovecot, user) == [token]
    assert db_rows(dovecot, "SELECT username FROM tokens WHERE token = ?",
                   (token,)) == [(dovecot_username(user),)]
    since = time.monotonic()
    if rcpt is not None:
        replies = dovecot.deliver_lmtp(rcpt, make_message(to=rcpt))
        assert [code for code, _ in replies] == [250], replies
    else:
        # no SMTPUTF8 in Dovecot 2.3's LMTP, and dovecot-lda needs -a for
        # a name that is no address
        result = subprocess.run(
            dovecot_command([DOVECOT_LDA, "-c", dovecot.conf, "-d", user,
                             "-a", "rcpt@example.org", "-f",
                             "sender@example.net"]),
            input=make_message(), capture_output=True, timeout=30)
        assert result.returncode == 0, result
    assert sink.wait_for_bodies([token], since=since, timeout=10), \
        "no push for %r" % user


def test_sql_strings_stored_verbatim(any_name_dovecot):
    dovecot = any_name_dovecot
    user = "%s%s@example.org" % (SQL, os.urandom(3).hex())
    token = "x');DROP/**/TABLE/**/tokens;--"
    other_user, other_token = new_user(), make_token()
    with dovecot.imap(other_user) as client:
        set_token(client, other_token)
    with dovecot.imap(user) as client:
        set_token(client, token)
        # with its spaces it is no token at all
        reply = client.setmetadata("INBOX", DEVICETOKEN, SQL)
        assert reply.status == "NO" and b"0x20" in reply.text, reply
        assert get_tokens(client) == [token]
    # straight on the socket: user and token exactly as given
    conn = ServiceConn(dovecot)
    try:
        assert conn.request("REGISTER", SQL, token) == [b"OK", b"1"]
        assert conn.request("GET", SQL) == [b"OK", token.encode()]
        fail = conn.request("REGISTER", SQL, SQL)
        assert fail[0] == b"FAIL" and b"0x20" in fail[1], fail
        assert conn.request("GET", SQL) == [b"OK", token.encode()]
    finally:
        conn.close()
    assert db_rows(dovecot, "SELECT name FROM sqlite_master WHERE "
                   "type = 'table' AND name = 'tokens'") == [("tokens",)]
    assert db_rows(dovecot, "SELECT username, token FROM tokens WHERE "
                   "token = ? ORDER BY username", (token,)) == \
        [(SQL, token), (dovecot_username(user), token)]
    assert tokens_of(dovecot, other_user) == [other_token]


# ---- the service socket ----

@pytest.fixture
def service(dovecot):
    """The module's Dovecot, checked afterwards: the same service process
    still serves a well-behaved client."""
    pid = dovecot.service_pid()
    yield dovecot
    assert service_works(dovecot)
    assert dovecot.service_pids() == [pid]


@pytest.mark.parametrize("line,needle", [
    (b"garbage \x01\xff\n", "didn't reply with a valid VERSION line"),
    (b"\n", "Unexpectedly received empty line"),
    (b"VERSION\tdeltapush\t3\t0\n", "Socket supports major version 3"),
    (b"VERSION\tdict\t1\t0\n", "wrong socket type"),
    (b"VERSION\tdeltapush\tone\t0\n", "didn't reply with a valid VERSION"),
    (b"GET\tuser@example.org\n", "didn't reply with a valid VERSION line"),
], ids=["garbage", "empty", "major-2", "other-service", "bad-number",
        "no-handshake"])
def test_socket_bad_handshake(service, line, needle):
    mark = service.log_size()
    conn = ServiceConn(service, handshake=False)
    assert conn.readline() == HANDSHAKE
    conn.send(line)
    assert conn.closed_by_peer()
    assert wait_for_service_log(service, mark, needle), \
        "\n".join(deltapush_log(service, mark))


@pytest.mark.parametrize("line,needle", [
    (b"\x00\x01\x02garbage\xff\n", "Unexpectedly received empty line"),
    (b"\x01\x02garbage\xff\n", "Unknown command"),
    (b"HELLO\tworld\n", "Unknown command: HELLO"),
    (b"register\tu@example.org\topenpgp:abc\n", "Unknown command: register"),
    (b"REGISTER\tu@example.org\n", "Wrong parameter count"),
    (b"NOTIFY\t\n", "Empty user name"),
    (b"\n", "Unexpectedly received empty line"),
], ids=["nul", "binary", "unknown", "lowercase", "missing-field",
        "empty-user", "empty-line"])
def test_socket_invalid_request_disconnects(service, line, needle):
    mark = service.log_size()
    conn = ServiceConn(service)
    conn.send(line)
    assert conn.closed_by_peer()
    assert wait_for_service_log(service, mark, needle), \
        "\n".join(deltapush_log(service, mark))


def test_socket_fail_keeps_the_connection(service):
    # a request that is well-formed but cannot be carried out: FAIL, and
    # the connection goes on
    conn = ServiceConn(service)
    try:
        reply = conn.request("REGISTER", new_user(), "a" * 70000)
        assert reply[0] == b"FAIL" and b"too long" in reply[1], reply[:2]
        assert conn.request("GET", new_user()) == [b"OK"]
    finally:
        conn.close()


def test_socket_line_over_64k_is_still_a_request(service):
    conn = ServiceConn(service)
    try:
        user = "u" * (100 * 1024)
        assert conn.request("NOTIFY", user) == [b"OK", b"0"]
        assert conn.request("GET", user) == [b"OK"]
    finally:
        conn.close()


def test_socket_line_over_max_size_disconnects_with_log(service):
    mark = service.log_size()
    conn = ServiceConn(service)
    try:
        conn.send(b"NOTIFY\t" + b"a" * (MAX_LINE + 64 * 1024))
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert conn.closed_by_peer()
    # the operator must be able to see why the client was dropped
    assert wait_for_service_log(service, mark, "conn unix:"), \
        "no log line for the dropped connection:\n" + \
        service.log_since(mark)


def test_socket_half_line_then_disconnect(service):
    user = new_user("half")
    conn = ServiceConn(service)
    conn.send(("REGISTER\t%s\topenpgp:abc" % user).encode())
    conn.close()
    conn = ServiceConn(service, handshake=False)
    conn.readline()
    conn.send(b"VERSION\tdeltap")
    conn.close()
    assert service_works(service)
    assert db_rows(service, "SELECT COUNT(*) FROM tokens WHERE "
                   "username = ?", (user,)) == [(0,)]


def _register_full_tokens(dovecot, user):
    conn = ServiceConn(dovecot)
    try:
        for i in range(32):
            token = ("%02d" % i) + "x" * 4094
            assert conn.request("REGISTER", user, token)[0] == b"OK"
    finally:
        conn.close()


def test_socket_client_that_never_reads(dovecot_factory):
    """A client that sends LIST after LIST for a user with 32 tokens of
    4 KiB and never reads the replies: others are still served, and the
    service's memory must not grow with what it cannot send."""
    dovecot = dovecot_factory()
    pid = dovecot.service_pid()
    user = new_user("fat")
    _register_full_tokens(dovecot, user)
    rss_before = proc_kib(pid, "VmRSS")
    hostile = ServiceConn(dovecot)
    try:
        hostile.send(("GET\t%s\n" % user).encode() * 1000)
        time.sleep(1.0)
        start = time.monotonic()
        assert service_works(dovecot, timeout=2)
        assert time.monotonic() - start < 1.0
        growth = proc_kib(pid, "VmRSS") - rss_before
    finally:
        hostile.close()
    assert service_works(dovecot)
    assert dovecot.service_pids() == [pid]
    if SANITIZED:
        return
    # 1000 replies of 128 KiB would be 128 MiB
    assert growth < 32 * 1024, \
        "service RSS grew by %d MiB buffering replies for a client that " \
        "does not read" % (growth // 1024)


IDLE_CONNECTIONS = 1000


@pytest.fixture
def idle_flood(dovecot_factory):
    """A fresh instance with 1000 connections to the service that never
    send anything; they are closed on the way out."""
    dovecot = dovecot_factory(settings={"deltapush_service_timeout": "1s"})
    pid = dovecot.service_pid()
    conns = []
    try:
        for _ in range(IDLE_CONNECTIONS):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(5)
            sock.connect(os.path.join(dovecot.base_dir, "deltapush"))
            conns.append(sock)
        # let the service accept what it will
        time.sleep(1.0)
        yield dovecot, pid
    finally:
        for sock in conns:
            sock.close()


def test_idle_connections_do_not_break_delivery(idle_flood):
    dovecot, pid = idle_flood
    user = new_user()
    start = time.monotonic()
    replies = dovecot.deliver_lmtp(user, make_message(to=user))
    assert [code for code, _ in replies] == [250], replies
    # at worst the plugin waits deltapush_service_timeout (1 s)
    assert time.monotonic() - start < 3.0
    assert dovecot.service_pids() == [pid]


def test_idle_connections_do_not_lock_out_clients(idle_flood):
    dovecot, pid = idle_flood
    mark = dovecot.log_size()
    with dovecot.imap(new_user()) as client:
        reply = client.setmetadata("INBOX", DEVICETOKEN, make_token(),
                                   timeout=10)
    assert dovecot.service_pids() == [pid]
    assert reply.ok, "registration while %d idle connections are open: " \
        "%r\n%s" % (IDLE_CONNECTIONS, reply, dovecot.log_since(mark)[-2000:])
