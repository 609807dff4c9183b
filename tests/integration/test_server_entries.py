"""The read-only server entries Delta Chat reads once per process:
/shared/vendor/deltachat/{maxsmtprecipients,irohrelay,turn,appversions} on
mailbox "" (issue 5), against a real Dovecot with the staged plugin, and the
TURN credentials against a real coturn.

coturn (Debian package `coturn`, which provides `turnserver` and
`turnutils_uclient`) is needed for the coturn tests; they are skipped with a
reason when it is not installed.
"""

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from dovecot_instance import DOVECOT_24, fd_targets, wait_until
from helpers import CLIENT_SERVER_ENTRIES, DEVICETOKEN, get_value, new_user
from imap_client import quote

VENDOR = "/shared/vendor/deltachat/"
MAXSMTP = VENDOR + "maxsmtprecipients"
IROH = VENDOR + "irohrelay"
TURN = VENDOR + "turn"
APPVERSIONS = VENDOR + "appversions"
DEPLOYMENT_ENTRIES = (MAXSMTP, IROH, TURN, APPVERSIONS)

# The client's command asks for these, in this order.
CLIENT_ORDER = tuple(CLIENT_SERVER_ENTRIES.strip("()").split())
assert CLIENT_ORDER == ("/shared/comment", "/shared/admin", IROH, TURN,
                        MAXSMTP, APPVERSIONS)

SERVER_ADMIN = "mailto:postmaster@example.org"
SERVER_COMMENT = "deltapush test server"
IROH_URL = "https://iroh.example.org/"
MAX_RECIPIENTS = "50"
TURN_SERVER = "turn.example.org:3478"
TURN_TTL = "1h"
TURN_TTL_SECS = 3600
DEFAULT_TURN_TTL_SECS = 5 * 24 * 3600
# Seconds of slack for EXPIRY = now + ttl (second granularity, a cached
# ioloop time, a slow machine).
EXPIRY_SLACK = 5

# A realistic pretty-printed document with what a compactor can get wrong:
# nesting, escapes, non-ASCII, empty containers, every scalar type.
APPVERSIONS_DOC = """\
{
  "android": {
    "latest": "2.11.0",
    "minimum": "1.50.4",
    "url": "https://get.delta.chat/#android",
    "notes": [ "Fixes \\"quoted\\" names", "Tabs\\tand\\\\slashes",
               "Délta Chät 💬" ]
  },
  "ios": { "latest": "2.11.0", "beta": true, "forced": false,
           "channels": [], "extra": {}, "build": 1234, "gone": null },
  "desktop":
    [ { "platform" : "linux", "version" : "2.11.0" },
      { "platform" : "windows", "version" : "2.10.0" } ]
}
"""

INVALID_APPVERSIONS = {
    "syntax-error": '{\n  "android": "2.11.0",\n  "ios": \n}\n',
    "truncated": '{\n  "android": {"latest": "2.11.0"\n',
    "trailing-garbage": '{"android": "2.11.0"}\n{"ios": "2.11.0"}\n',
    "empty": "",
    "not-json": "android = 2.11.0\n",
}


# ---- helpers ----

def ordered_metadata(reply, mailbox=""):
    """[(entry, value)] from the untagged METADATA replies of a GETMETADATA
    reply, in the order the server sent them (values are bytes, kept
    byte-exact whether they came quoted or as literals; NIL is None)."""
    result = []
    for tokens in reply.untagged:
        if not tokens or not isinstance(tokens[0], bytes) or \
                tokens[0].upper() != b"METADATA":
            continue
        assert len(tokens) == 3, "malformed METADATA reply %r" % (tokens,)
        box, pairs = tokens[1], tokens[2]
        assert isinstance(box, bytes) and box.decode() == mailbox, tokens
        assert isinstance(pairs, list) and len(pairs) % 2 == 0, tokens
        for i in range(0, len(pairs), 2):
            name = pairs[i]
            assert isinstance(name, bytes), tokens
            value = pairs[i + 1]
            assert value is None or isinstance(value, bytes), tokens
            result.append((name.decode().lower(), value))
    return result


def client_query(client):
    """Sends exactly Delta Chat's command; asserts it answers OK and every
    entry once, in the order asked. Returns {entry: value}."""
    reply = client.command('GETMETADATA "" ' + CLIENT_SERVER_ENTRIES)
    assert reply.ok, reply
    pairs = ordered_metadata(reply)
    assert [name for name, _ in pairs] == list(CLIENT_ORDER), reply.untagged
    return dict(pairs)


def server_entry(client, entry):
    reply = client.command('GETMETADATA "" ' + entry)
    assert reply.ok, reply
    pairs = ordered_metadata(reply)
    assert [name for name, _ in pairs] == [entry], reply.untagged
    return pairs[0][1]


def compact_json(text):
    return json.dumps(json.loads(text), separators=(",", ":"),
                      ensure_ascii=False).encode()


def turn_password(secret, username):
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1)
    return base64.b64encode(digest.digest()).decode()


def parse_turn(value):
    """host:port:EXPIRY:PASSWORD -> (host:port, expiry int, password)."""
    assert value is not None, "no TURN value"
    text = value.decode("ascii")
    server, expiry, password = text.rsplit(":", 2)
    assert re.fullmatch(r"[0-9]+", expiry), text
    return server, int(expiry), password


def log_lines_matching(text, pattern):
    return [line for line in text.splitlines() if re.search(pattern, line)]


@pytest.fixture(scope="module")
def files_dir():
    """A directory the mail processes (uid nobody) can read."""
    path = tempfile.mkdtemp(prefix="dpt-entries-")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def write_file(directory, name, content):
    path = os.path.join(directory, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(content)
    os.chmod(path, 0o644)
    return path


def new_secret():
    return secrets.token_hex(24)


def turn_settings(files_dir, name, secret, **settings):
    """Settings serving TURN with secret (written to files_dir/name),
    plus the given ones."""
    return dict(settings, deltapush_turn_server=TURN_SERVER,
                deltapush_turn_secret_file=write_file(files_dir, name,
                                                      secret))


def admin_config():
    return ("mail_server_admin = %s\nmail_server_comment = %s\n"
            % (SERVER_ADMIN, SERVER_COMMENT))


# ---- a fully configured instance shared by the module ----

class Configured:
    def __init__(self, dovecot, secret, secret_path, appversions_path):
        self.dovecot = dovecot
        self.secret = secret
        self.secret_path = secret_path
        self.appversions_path = appversions_path


@pytest.fixture(scope="module")
def configured(module_dovecot_factory, sink, files_dir):
    secret = new_secret()
    # With the final newline an editor adds: not part of the secret.
    secret_path = write_file(files_dir, "turn-secret", secret + "\n")
    appversions_path = write_file(files_dir, "appversions.json",
                                  APPVERSIONS_DOC)
    instance = module_dovecot_factory(sink=sink, settings={
        "deltapush_max_smtp_recipients": MAX_RECIPIENTS,
        "deltapush_iroh_relay": IROH_URL,
        "deltapush_turn_server": TURN_SERVER,
        "deltapush_turn_secret_file": secret_path,
        "deltapush_turn_ttl": TURN_TTL,
        "deltapush_appversions_file": appversions_path,
    }, extra_config=admin_config())
    return Configured(instance, secret, secret_path, appversions_path)


# ---- the client's command ----

def test_client_command_all_configured(configured):
    before = time.time()
    with configured.dovecot.imap(new_user()) as client:
        values = client_query(client)
    after = time.time()

    assert values["/shared/comment"] == SERVER_COMMENT.encode()
    assert values["/shared/admin"] == SERVER_ADMIN.encode()
    assert values[IROH] == IROH_URL.encode()
    assert values[MAXSMTP] == MAX_RECIPIENTS.encode()
    assert values[APPVERSIONS] == compact_json(APPVERSIONS_DOC)

    server, expiry, password = parse_turn(values[TURN])
    assert server == TURN_SERVER
    assert before + TURN_TTL_SECS - EXPIRY_SLACK <= expiry <= \
        after + TURN_TTL_SECS + EXPIRY_SLACK
    assert password == turn_password(configured.secret, str(expiry))


def test_client_command_nothing_configured(dovecot):
    # The module's plain instance: no server entry settings at all. The
    # command must still succeed, or the client reconnects in a loop.
    with dovecot.imap(new_user()) as client:
        values = client_query(client)
    assert values == {entry: None for entry in CLIENT_ORDER}


def test_client_command_partly_configured(dovecot_factory, sink):
    instance = dovecot_factory(sink=sink, settings={
        "deltapush_max_smtp_recipients": "1",
        "deltapush_iroh_relay": IROH_URL,
        # a server without a secret file is not usable: NIL
        "deltapush_turn_server": TURN_SERVER,
    })
    with instance.imap(new_user()) as client:
        values = client_query(client)
    assert values == {
        "/shared/comment": None,
        "/shared/admin": None,
        IROH: IROH_URL.encode(),
        TURN: None,
        MAXSMTP: b"1",
        APPVERSIONS: None,
    }


@pytest.mark.parametrize("entry", DEPLOYMENT_ENTRIES)
def test_single_entry_query(configured, entry):
    with configured.dovecot.imap(new_user()) as client:
        value = server_entry(client, entry)
    assert value is not None
    assert b"\r" not in value and b"\n" not in value


def test_served_to_user_without_tokens(configured):
    user = new_user()
    with configured.dovecot.imap(user) as client:
        # really no token registered for this user
        assert get_value(client, DEVICETOKEN) is None
        values = client_query(client)
    assert values[MAXSMTP] == MAX_RECIPIENTS.encode()
    assert values[IROH] == IROH_URL.encode()
    assert values[APPVERSIONS] == compact_json(APPVERSIONS_DOC)
    assert parse_turn(values[TURN])[0] == TURN_SERVER


def test_served_without_push_driver(dovecot_factory, sink, files_dir):
    # Sessions where push_notification has no deltapush driver still get
    # the entries, as long as the mail plugin is loaded.
    secret = new_secret()
    instance = dovecot_factory(sink=sink, settings=turn_settings(
        files_dir, "turn-secret-nodriver", secret,
        push_notification_driver=None,
        deltapush_max_smtp_recipients=MAX_RECIPIENTS,
        deltapush_iroh_relay=IROH_URL))
    conf = open(instance.conf).read()
    assert "push_notification_driver" not in conf   # 2.3
    assert "push_notification deltapush {" not in conf   # 2.4
    with instance.imap(new_user()) as client:
        values = client_query(client)
    assert values[MAXSMTP] == MAX_RECIPIENTS.encode()
    assert values[IROH] == IROH_URL.encode()
    server, expiry, password = parse_turn(values[TURN])
    assert password == turn_password(secret, str(expiry))


# ---- TURN ----

def test_turn_password_recomputed(configured):
    with configured.dovecot.imap(new_user()) as client:
        value = server_entry(client, TURN)
    server, expiry, password = parse_turn(value)
    assert server == TURN_SERVER
    # 20 bytes of HMAC-SHA1, standard base64 with padding
    assert len(base64.b64decode(password, validate=True)) == 20
    assert password == turn_password(configured.secret, str(expiry))
    # the secret file's final newline is not part of the key
    assert password != turn_password(configured.secret + "\n", str(expiry))


def test_turn_expiry_moves_with_time(configured):
    with configured.dovecot.imap(new_user()) as client:
        first = parse_turn(server_entry(client, TURN))
        # The expiry has second granularity: wait for the next one.
        time.sleep(1.1)
        second = parse_turn(server_entry(client, TURN))
    assert second[1] > first[1]
    assert second[2] != first[2]
    assert second[2] == turn_password(configured.secret, str(second[1]))


def test_turn_default_ttl_five_days(dovecot_factory, sink, files_dir):
    secret = new_secret()
    instance = dovecot_factory(sink=sink, settings=turn_settings(
        files_dir, "turn-secret-default-ttl", secret))
    before = time.time()
    with instance.imap(new_user()) as client:
        value = server_entry(client, TURN)
    after = time.time()
    _, expiry, password = parse_turn(value)
    assert before + DEFAULT_TURN_TTL_SECS - EXPIRY_SLACK <= expiry <= \
        after + DEFAULT_TURN_TTL_SECS + EXPIRY_SLACK
    assert password == turn_password(secret, str(expiry))


def test_turn_secret_rotation_applies(dovecot_factory, sink, files_dir):
    old, new = new_secret(), new_secret()
    instance = dovecot_factory(sink=sink, settings=turn_settings(
        files_dir, "turn-secret-rotate", old, deltapush_turn_ttl=TURN_TTL))
    with instance.imap(new_user()) as client:
        _, expiry, password = parse_turn(server_entry(client, TURN))
        assert password == turn_password(old, str(expiry))
        write_file(files_dir, "turn-secret-rotate", new + "\n")
        _, expiry, password = parse_turn(server_entry(client, TURN))
        assert password == turn_password(new, str(expiry))


def test_turn_secret_not_logged(configured):
    with configured.dovecot.imap(new_user()) as client:
        client_query(client)
    assert configured.secret not in configured.dovecot.log_text()
    assert configured.secret not in open(configured.dovecot.conf).read()


@pytest.mark.parametrize("problem", ["missing", "empty"])
def test_turn_unusable_secret_file(dovecot_factory, sink, files_dir,
                                   problem):
    if problem == "missing":
        secret_path = os.path.join(files_dir, "no-such-secret")
    else:
        secret_path = write_file(files_dir, "turn-secret-empty", "\n")
    _assert_unusable_file_warned(dovecot_factory, sink, {
        "deltapush_turn_server": TURN_SERVER,
        "deltapush_turn_secret_file": secret_path,
    }, TURN, "TURN", secret_path)


def _assert_unusable_file_warned(dovecot_factory, sink, settings, entry,
                                 what, path):
    """With a file setting that cannot be used, entry is NIL, the other
    entries are not affected, and a warning names what and path (no
    error)."""
    instance = dovecot_factory(sink=sink, settings=dict(
        settings, deltapush_max_smtp_recipients=MAX_RECIPIENTS))
    offset = instance.log_size()
    with instance.imap(new_user()) as client:
        values = client_query(client)
    assert values[entry] is None
    assert values[MAXSMTP] == MAX_RECIPIENTS.encode()
    log = instance.wait_for_log(
        lambda t: log_lines_matching(t, r"Warning: .*%s.*%s"
                                     % (what, re.escape(path))),
        offset=offset)
    assert log is not None, instance.log_tail()
    assert not log_lines_matching(log, r"(Error|Fatal|Panic):")


# ---- a real coturn ----

TURNSERVER = shutil.which("turnserver")
UCLIENT = shutil.which("turnutils_uclient")
needs_coturn = pytest.mark.skipif(
    TURNSERVER is None or UCLIENT is None,
    reason="coturn is not installed (turnserver/turnutils_uclient missing); "
    "install the Debian package coturn")


def _free_tcp_udp_port():
    """A loopback port free for both TCP and UDP (coturn listens on both)."""
    for _ in range(50):
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
        finally:
            tcp.close()
            udp.close()
    raise RuntimeError("no free TCP+UDP port on 127.0.0.1")


def _socket_inodes(pid):
    return {target[8:-1] for target in fd_targets(pid)
            if target.startswith("socket:[")}


def bound_addresses(pid):
    """Local IPv4/IPv6 addresses (hex, as in /proc/net) of the inet sockets
    process pid has open."""
    inodes = _socket_inodes(pid)
    found = []
    for table in ("tcp", "tcp6", "udp", "udp6"):
        try:
            with open("/proc/%d/net/%s" % (pid, table)) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[9] in inodes:
                found.append((table, fields[1]))
    return found


def _is_loopback(table, hex_addr):
    addr = hex_addr.split(":")[0]
    if table.endswith("6"):
        # ::1, or ::ffff:127.x.x.x (little-endian words)
        return addr == "00000000000000000000000001000000" or \
            (addr[:24] == "0000000000000000FFFF0000" and
             addr[-2:] == "7F")
    return addr[-2:] == "7F"    # 127.x.x.x, little-endian


class Coturn:
    """A throwaway turnserver on 127.0.0.1 with use-auth-secret, no config
    file, no TLS/DTLS, no CLI, its database, pid file and log in a
    temporary directory. Stopped by the pid of the process we started."""

    def __init__(self, secret, realm="example.org"):
        self.secret = secret
        self.realm = realm
        self.dir = tempfile.mkdtemp(prefix="dpt-coturn-")
        self.log_path = os.path.join(self.dir, "turnserver.log")
        self.port = _free_tcp_udp_port()
        # Relay endpoints: a small range above Linux's default ephemeral
        # ports (32768-60999), so it rarely meets other sockets; coturn
        # skips ports that are busy anyway.
        base = 61000 + secrets.randbelow(4000)
        self.relay_ports = (base, base + 100)
        self.process = None
        self._log = None

    def start(self, timeout=10.0):
        args = [
            TURNSERVER,
            "-n",                       # no configuration file at all
            "--listening-ip=127.0.0.1",
            "--relay-ip=127.0.0.1",
            "--listening-port=%d" % self.port,
            "--min-port=%d" % self.relay_ports[0],
            "--max-port=%d" % self.relay_ports[1],
            "--use-auth-secret",
            "--static-auth-secret=%s" % self.secret,
            "--realm=%s" % self.realm,
            "--no-tls", "--no-dtls", "--no-cli", "--no-rfc5780",
            # uclient -y relays between two allocations on 127.0.0.1
            "--allow-loopback-peers",
            "--db=%s" % os.path.join(self.dir, "turndb"),
            "--pidfile=%s" % os.path.join(self.dir, "turnserver.pid"),
            "--log-file=stdout", "--simple-log",
            # logs "ALLOCATE processed, success" per session
            "--verbose",
        ]
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                        stdout=self._log,
                                        stderr=subprocess.STDOUT)
        ready = wait_until(self._ready, timeout, interval=0.1)
        if not ready:
            self.stop()
            raise RuntimeError("turnserver did not start:\n%s"
                               % self.log_tail())

    def _ready(self):
        if self.process.poll() is not None:
            raise RuntimeError("turnserver exited with %s:\n%s"
                               % (self.process.returncode, self.log_tail()))
        # the TCP and UDP listeners are set up together, before the log
        # line below
        if "Total General servers" not in self.log_text():
            return False
        try:
            with socket.create_connection(("127.0.0.1", self.port),
                                          timeout=1):
                return True
        except OSError:
            return False

    def stop(self, timeout=10.0):
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines=40):
        return "\n".join(self.log_text().splitlines()[-lines:])

    def allocate(self, server, username, password, timeout=30):
        """One turnutils_uclient run: two allocations relaying a single
        message to each other (-y), over UDP. Returns (exit code,
        output)."""
        host, port = server.rsplit(":", 1)
        args = [UCLIENT, "-y", "-n", "1", "-m", "1", "-p", port,
                "-u", username, "-w", password, host]
        try:
            result = subprocess.run(args, stdin=subprocess.DEVNULL,
                                    capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            out = (e.stdout or b"") + (e.stderr or b"")
            return None, out.decode(errors="replace")
        return result.returncode, (result.stdout + result.stderr).decode(
            errors="replace")


@pytest.fixture
def coturn_and_dovecot(dovecot_factory, sink, files_dir):
    if TURNSERVER is None or UCLIENT is None:
        pytest.skip("coturn is not installed")
    secret = new_secret()
    turn = Coturn(secret)
    try:
        turn.start()
        # Only loopback sockets, whatever coturn's defaults are.
        addresses = bound_addresses(turn.process.pid)
        assert addresses, "turnserver has no inet sockets"
        assert all(_is_loopback(t, a) for t, a in addresses), addresses
        secret_path = write_file(files_dir, "turn-secret-coturn",
                                 secret + "\n")
        instance = dovecot_factory(sink=sink, settings={
            "deltapush_turn_server": "127.0.0.1:%d" % turn.port,
            "deltapush_turn_secret_file": secret_path,
            "deltapush_turn_ttl": TURN_TTL,
        })
        yield turn, instance
    finally:
        turn.cleanup()


def _allocation_succeeded(turn, username, since):
    return re.search(r"user <%s>: incoming packet ALLOCATE processed, "
                     r"success" % re.escape(username),
                     turn.log_text()[since:]) is not None


@needs_coturn
def test_coturn_accepts_served_credentials(coturn_and_dovecot):
    turn, instance = coturn_and_dovecot
    with instance.imap(new_user()) as client:
        values = client_query(client)
    server, expiry, password = parse_turn(values[TURN])
    assert server == "127.0.0.1:%d" % turn.port

    since = len(turn.log_text())
    rc, out = turn.allocate(server, str(expiry), password)
    assert rc == 0, "uclient failed (%s):\n%s\n--- turnserver ---\n%s" % (
        rc, out, turn.log_tail())
    assert "ERROR" not in out, out
    # the message relayed between the two allocations came back
    received = [int(n) for n in re.findall(r"tot_recv_msgs=([0-9]+)", out)]
    assert received and max(received) > 0, out
    assert wait_until(lambda: _allocation_succeeded(turn, str(expiry),
                                                    since), 5), \
        turn.log_tail()
    # and over the instance's whole log, the secret was never written
    assert turn.secret not in instance.log_text()


@needs_coturn
@pytest.mark.parametrize("wrong", ["password", "other-secret", "expired"])
def test_coturn_rejects_wrong_credentials(coturn_and_dovecot, wrong):
    turn, instance = coturn_and_dovecot
    with instance.imap(new_user()) as client:
        server, expiry, password = parse_turn(server_entry(client, TURN))
    username = str(expiry)
    if wrong == "password":
        # the served password with one character changed
        password = ("A" if password[0] != "A" else "B") + password[1:]
    elif wrong == "other-secret":
        password = turn_password(new_secret(), username)
    else:
        # correct HMAC, but coturn reads the username as an expiry time
        username = str(int(time.time()) - 60)
        password = turn_password(turn.secret, username)

    since = len(turn.log_text())
    rc, out = turn.allocate(server, username, password)
    assert rc is not None, "uclient hung:\n%s" % out
    assert rc != 0, out
    assert "Cannot complete Allocation" in out, out
    assert not _allocation_succeeded(turn, username, since), turn.log_tail()


# ---- appversions ----

def test_appversions_compacted_to_one_line(configured):
    offset = configured.dovecot.log_size()
    with configured.dovecot.imap(new_user()) as client:
        value = server_entry(client, APPVERSIONS)
    assert APPVERSIONS_DOC.count("\n") > 5      # really multi-line input
    assert b"\n" not in value and b"\r" not in value
    assert value == compact_json(APPVERSIONS_DOC)
    # and it is the same document
    assert json.loads(value.decode("utf-8")) == json.loads(APPVERSIONS_DOC)
    assert not log_lines_matching(configured.dovecot.log_since(offset),
                                  r"appversions")


@pytest.mark.parametrize("document", [
    '[\n  1,\n  2.5,\n  -3e2\n]\n',
    '"just a string"\n',
    '{\n}\n',
], ids=["array", "string", "empty-object"])
def test_appversions_any_json_value(dovecot_factory, sink, files_dir,
                                    document):
    path = write_file(files_dir, "appversions-value.json", document)
    instance = dovecot_factory(sink=sink, settings={
        "deltapush_appversions_file": path})
    with instance.imap(new_user()) as client:
        value = server_entry(client, APPVERSIONS)
    assert b"\n" not in value
    assert json.loads(value.decode()) == json.loads(document)


@pytest.mark.parametrize("case", sorted(INVALID_APPVERSIONS) + ["missing"])
def test_appversions_invalid_file(dovecot_factory, sink, files_dir, case):
    if case == "missing":
        path = os.path.join(files_dir, "no-such-appversions.json")
    else:
        path = write_file(files_dir, "appversions-%s.json" % case,
                          INVALID_APPVERSIONS[case])
    _assert_unusable_file_warned(dovecot_factory, sink, {
        "deltapush_appversions_file": path,
    }, APPVERSIONS, "appversions", path)


# ---- read-only ----

def _setmetadata_raw(client, entry, value):
    """SETMETADATA "" (entry value): value is bytes (sent quoted) or None
    (NIL, i.e. delete)."""
    encoded = b"NIL" if value is None else quote(value)
    return client.command(b'SETMETADATA "" (' + entry.encode() + b" " +
                          encoded + b")")


@pytest.mark.parametrize("value", [b"attacker", b"", None],
                         ids=["value", "empty", "NIL"])
@pytest.mark.parametrize("entry", DEPLOYMENT_ENTRIES)
def test_setmetadata_refused(configured, entry, value):
    with configured.dovecot.imap(new_user()) as client:
        before = server_entry(client, entry)
        reply = _setmetadata_raw(client, entry, value)
        assert reply.status == "NO", reply
        assert b"read-only" in reply.text, reply
        after = server_entry(client, entry)
        if entry == TURN:
            # a fresh credential each time; same server and secret
            _, expiry, password = parse_turn(after)
            assert parse_turn(before)[0] == parse_turn(after)[0]
            assert password == turn_password(configured.secret, str(expiry))
        else:
            assert after == before
        assert after is not None


@pytest.mark.parametrize("entry", DEPLOYMENT_ENTRIES)
def test_setmetadata_refused_when_unconfigured(dovecot, entry):
    # Not configured means NIL for everyone, not a per-user entry.
    user = new_user()
    with dovecot.imap(user) as client:
        reply = _setmetadata_raw(client, entry, b"attacker")
        assert reply.status == "NO", reply
        assert b"read-only" in reply.text, reply
        assert server_entry(client, entry) is None
    with dovecot.imap(user) as client:
        assert server_entry(client, entry) is None


# ---- invalid deltapush_max_smtp_recipients ----

@pytest.mark.parametrize("value", ["0", "abc", "-5"])
def test_invalid_max_smtp_recipients_refused(dovecot_factory, sink, value):
    instance = dovecot_factory(sink=sink, start=False, settings={
        "deltapush_max_smtp_recipients": value})
    if DOVECOT_24:
        # 2.4 checks the settings when it reads the configuration:
        # Dovecot does not start, and says which setting and why.
        with pytest.raises(RuntimeError) as failed:
            instance.start()
        assert re.search(r"deltapush_max_smtp_recipients: Invalid value "
                         r"'%s'" % re.escape(value), str(failed.value)), \
            failed.value
        return
    # The service dies at start, so don't wait for it as start() does:
    # only for IMAP and LMTP.
    instance.deltapush = False
    try:
        instance.start()
    finally:
        instance.deltapush = True

    fatal = r"Fatal: .*deltapush_max_smtp_recipients.*'%s'" % re.escape(value)
    log = instance.wait_for_log(lambda t: log_lines_matching(t, fatal),
                                timeout=15)
    assert log is not None, instance.log_tail()
    assert log_lines_matching(log, r"deltapush\S*: Fatal: .*"
                              r"deltapush_max_smtp_recipients")

    # The mail processes reject the setting too, on login.
    offset = instance.log_size()
    with instance.imap(new_user()) as client:
        reply = client.command('GETMETADATA "" ' + CLIENT_SERVER_ENTRIES)
    log = instance.wait_for_log(
        lambda t: log_lines_matching(
            t, r"Invalid settings: deltapush_max_smtp_recipients"),
        offset=offset)
    assert log is not None, instance.log_tail()
    # Even then the client's command must not fail, or Delta Chat
    # reconnects in a loop; nothing is served.
    assert reply.ok, reply
    assert dict(ordered_metadata(reply)) == {e: None for e in CLIENT_ORDER}
