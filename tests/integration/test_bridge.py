"""deltapush-bridge: a second, stock Dovecot on loopback plays the IMAP
server "you don't run". The local Dovecot runs the deltapush service and
the bridge, which watches accounts on the remote one and wakes the
configured tokens (literal ones, or those a local user registered) when
new mail arrives there."""

import glob
import os
import pwd
import re
import shutil
import socket
import threading
import time

import pytest

from dovecot_instance import (DOVECOT_24, INTERNAL_USER, DovecotInstance,
                              free_port, make_message, wait_until)
from helpers import assert_no_push, make_token, new_user, register
from pki import make_pki

# The bridge runs as Dovecot's internal user, as shipped
BRIDGE_USER = INTERNAL_USER


@pytest.fixture(scope="module")
def pki():
    if shutil.which("openssl") is None:
        print("bridge tests skipped: openssl is not installed")
        pytest.skip("openssl is not installed")
    result = make_pki()
    yield result
    shutil.rmtree(result["dir"], ignore_errors=True)


# ---- the remote server ----

class Remote(DovecotInstance):
    """A stock Dovecot (no deltapush) with IMAP over implicit TLS and
    STARTTLS, certificates from the private CA."""

    def __init__(self, pki, extra_config="", **kwargs):
        self.imaps_port = free_port()
        if DOVECOT_24:
            tls = ("ssl = yes\n"
                   "ssl_server_cert_file = %s\n"
                   "ssl_server_key_file = %s\n" % (pki["cert"], pki["key"]))
            key = "listen"
        else:
            tls = ("ssl = yes\n"
                   "ssl_cert = <%s\n"
                   "ssl_key = <%s\n" % (pki["cert"], pki["key"]))
            key = "address"
        tls += ("service imap-login {\n"
                "  inet_listener imaps {\n"
                "    %s = 127.0.0.1\n"
                "    port = %d\n"
                "  }\n"
                "}\n" % (key, self.imaps_port))
        super().__init__(deltapush=False, prefix="dpt-remote-",
                         extra_config=tls + extra_config, **kwargs)

    def deliver(self, user, **headers):
        message = make_message(to=user, headers=headers)
        replies = self.deliver_lmtp(user, message)
        assert all(code == 250 for code, _ in replies), replies

    def snapshot(self, user):
        """Everything IMAP shows of the user's INBOX: UIDs, flags and
        bytes of every message, read with EXAMINE and BODY.PEEK."""
        with self.imap(user) as client:
            reply = client.command("EXAMINE", "INBOX")
            assert reply.ok, reply
            reply = client.command("UID", "FETCH", "1:*",
                                   "(UID FLAGS BODY.PEEK[])")
            assert reply.ok, reply
            return sorted(repr(u) for u in reply.untagged
                          if len(u) > 1 and u[1] == b"FETCH")


@pytest.fixture(scope="module")
def remote(pki):
    instance = Remote(pki)
    instance.ca = pki["ca"]
    instance.start()
    yield instance
    instance.cleanup()


# ---- the local Dovecot with the bridge ----

def bridge_binary():
    stage = os.environ["DELTAPUSH_STAGE"]
    found = sorted(p for p in glob.glob(os.path.join(
        stage, "**", "deltapush-bridge"), recursive=True)
        if os.path.isfile(p) and os.access(p, os.X_OK))
    assert found, "deltapush-bridge not found under %s" % stage
    return os.path.abspath(found[0])


def shipped_config():
    top = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    with open(os.path.join(top, "conf.d", "2.4" if DOVECOT_24 else "2.3",
                           "91-deltapush-bridge.conf")) as f:
        return f.read()


class Account:
    def __init__(self, name, remote_user, port, tls="imaps", ca=None,
                 password="pass", tokens=(), local_user=None, extra=""):
        self.name = name
        self.remote_user = remote_user
        self.port = port
        self.tls = tls
        self.ca = ca
        self.password = password
        self.tokens = list(tokens)
        self.local_user = local_user
        self.extra = extra


class Bridged:
    """The local Dovecot with deltapush and the bridge, and the bridge's
    files: accounts file, password files, state directory."""

    def __init__(self, factory, sink, accounts, settings=None):
        self.factory = factory
        self.sink = sink
        self.accounts = accounts
        self.settings = settings
        self.instance = None
        self.files = None

    def _write_files(self, root):
        pw = pwd.getpwnam(BRIDGE_USER)
        self.files = os.path.join(root, "bridge")
        self.state_dir = os.path.join(self.files, "state")
        os.makedirs(self.state_dir)
        os.chmod(self.files, 0o755)
        os.chown(self.state_dir, pw.pw_uid, pw.pw_gid)
        self.write_accounts()

    def write_accounts(self):
        """The accounts file and password files for self.accounts."""
        pw = pwd.getpwnam(BRIDGE_USER)
        lines = []
        for account in self.accounts:
            password_file = os.path.join(self.files,
                                         account.name + ".password")
            with open(password_file, "w") as f:
                f.write(account.password + "\n")
            os.chown(password_file, pw.pw_uid, pw.pw_gid)
            os.chmod(password_file, 0o600)
            words = [account.name, "host=127.0.0.1",
                     "port=%d" % account.port, "tls=" + account.tls,
                     "login=" + account.remote_user,
                     "password_file=" + password_file]
            if account.ca is not None:
                words.append("ca_file=" + account.ca)
            if account.local_user is not None:
                words.append("user=" + account.local_user)
            words += ["token=" + t for t in account.tokens]
            if account.extra:
                words.append(account.extra)
            lines.append(" ".join(words))
        self.accounts_file = os.path.join(self.files, "accounts.conf")
        with open(self.accounts_file, "w") as f:
            f.write("# generated by test_bridge.py\n" +
                    "\n".join(lines) + "\n")
        os.chmod(self.accounts_file, 0o644)

    def config(self):
        """The shipped conf.d snippet, with this test's files on the
        executable line (it runs as the internal user, as shipped)."""
        text = shipped_config()
        line = "  executable = deltapush-bridge " \
            "/etc/dovecot/deltapush-bridge.conf\n"
        assert line in text
        return text.replace(line, "  executable = %s -s %s %s\n" % (
            bridge_binary(), self.state_dir, self.accounts_file))

    def start(self):
        if self.instance is None:
            self.instance = self.factory(sink=self.sink,
                                         settings=self.settings,
                                         start=False)
            self._write_files(self.instance.root)
            self.instance.extra_config += self.config()
            self.instance.write_config()
        self.instance.start()
        return self

    def stop(self):
        self.instance.stop()

    def wait_log(self, pattern, offset=0, timeout=15.0):
        text = self.instance.wait_for_log(
            lambda t: re.search(pattern, t) is not None, offset=offset,
            timeout=timeout)
        assert text is not None, "no %r in the log:\n%s" % (
            pattern, self.instance.log_tail())
        return text

    def wait_watching(self, account, offset=0):
        """Until the bridge EXAMINEd the account's mailbox."""
        return self.wait_log(r"bridge\(%s\): Watching INBOX" %
                             re.escape(account.name), offset)


def assert_push(sink, tokens, since, timeout=15.0):
    got = sink.wait_for_bodies(tokens, since=since, timeout=timeout)
    assert {r.body for r in got} >= {t.encode() for t in tokens}, \
        "no push for %d token(s)" % len(tokens)


@pytest.fixture
def bridged(dovecot_factory, sink):
    def make(accounts, settings=None):
        return Bridged(dovecot_factory, sink, accounts, settings)
    return make


# ---- tests ----

def test_bridge_backlog_no_push_then_new_mail_pushes(remote, bridged, sink):
    """First start: what is in the mailbox is not new. New mail then
    wakes the literal tokens, and the tokens a local user registered."""
    literal_user, local_remote_user = new_user("rl"), new_user("ru")
    local_user = new_user("local")
    token, local_token = make_token(), make_token()
    remote.deliver(literal_user)
    remote.deliver(local_remote_user)
    a = Account("lit", literal_user, remote.imaps_port, ca=remote.ca,
                tokens=[token])
    b = Account("loc", local_remote_user, remote.imaps_port,
                ca=remote.ca, local_user=local_user)
    since = time.monotonic()
    bridge = bridged([a, b]).start()
    register(bridge.instance, local_user, local_token)
    bridge.wait_watching(a)
    bridge.wait_watching(b)
    assert "First look at INBOX: 1 existing messages are not new" in \
        bridge.instance.log_text()
    assert_no_push(sink, [token, local_token], since, wait=1.0)

    since = time.monotonic()
    remote.deliver(literal_user)
    assert_push(sink, [token], since)
    remote.deliver(local_remote_user)
    assert_push(sink, [local_token], since)
    assert not bridge.instance.log_errors(), bridge.instance.log_tail()


def test_bridge_mail_while_stopped_pushes_after_start(remote, bridged, sink):
    user, token = new_user("rs"), make_token()
    a = Account("stopped", user, remote.imaps_port, ca=remote.ca,
                tokens=[token])
    bridge = bridged([a]).start()
    bridge.wait_watching(a)
    bridge.stop()
    remote.deliver(user)
    since = time.monotonic()
    offset = bridge.instance.log_size()
    bridge.start()
    assert_push(sink, [token], since)
    assert "First look" not in bridge.instance.log_since(offset)


def test_bridge_seen_and_auto_submitted_do_not_push(remote, bridged, sink):
    user, token = new_user("rseen"), make_token()
    a = Account("seen", user, remote.imaps_port, ca=remote.ca,
                tokens=[token], extra="skip_auto_submitted=yes")
    bridge = bridged([a]).start()
    bridge.wait_watching(a)
    bridge.stop()
    # read by another client before the bridge looks
    remote.deliver(user)
    with remote.imap(user) as client:
        assert client.command("SELECT", "INBOX").ok
        assert client.command("STORE", "1:*", "+FLAGS", "(\\Seen)").ok
    remote.deliver(user, **{"Auto-Submitted": "auto-replied"})
    since = time.monotonic()
    offset = bridge.instance.log_size()
    bridge.start()
    bridge.wait_watching(a, offset)
    assert_no_push(sink, [token], since, wait=2.0)
    # the bridge is looking: the next ordinary message wakes the token
    remote.deliver(user)
    assert_push(sink, [token], since)


def test_bridge_leaves_remote_mailbox_unchanged(remote, bridged, sink):
    user, token = new_user("rro"), make_token()
    remote.deliver(user)
    remote.deliver(user)
    with remote.imap(user) as client:
        assert client.command("SELECT", "INBOX").ok
        assert client.command("STORE", "1", "+FLAGS", "(\\Flagged)").ok
    a = Account("ro", user, remote.imaps_port, ca=remote.ca, tokens=[token])
    bridge = bridged([a]).start()
    bridge.wait_watching(a)
    bridge.stop()
    remote.deliver(user)
    before = remote.snapshot(user)
    since = time.monotonic()
    bridge.start()
    assert_push(sink, [token], since)
    since = time.monotonic()
    remote.deliver(user)
    before_last = remote.snapshot(user)
    # pushed: the bridge fetched the last message too
    assert_push(sink, [token], since)
    bridge.stop()
    after = remote.snapshot(user)
    assert before_last == after
    # what was there before the bridge looked is still there, unchanged
    assert set(before) <= set(after)
    assert len(after) == 4
    # the bridge never set \Seen (only FLAGS shows it)
    assert not any("\\\\Seen" in m for m in after), after


def test_bridge_starttls_and_refused_certificate(remote, bridged, sink):
    ok_user, bad_user = new_user("rtls"), new_user("rbad")
    ok_token, bad_token = make_token(), make_token()
    ok = Account("starttls", ok_user, remote.imap_port, tls="starttls",
                 ca=remote.ca, tokens=[ok_token])
    # no ca_file: the system's CAs don't know the private CA
    bad = Account("noca", bad_user, remote.imaps_port, tokens=[bad_token])
    bridge = bridged([ok, bad]).start()
    bridge.wait_watching(ok)
    # imapc logs why; the bridge that it will try again later
    bridge.wait_log(r"(?i)invalid SSL certificate|certificate verify failed")
    bridge.wait_log(r"bridge\(noca\): Login .* failed: .* - retrying in")
    since = time.monotonic()
    remote.deliver(ok_user)
    remote.deliver(bad_user)
    assert_push(sink, [ok_token], since)
    assert_no_push(sink, [bad_token], since, wait=1.0)
    assert "Watching" not in "\n".join(
        l for l in bridge.instance.log_text().splitlines()
        if "bridge(noca)" in l)


def test_bridge_wrong_password_backs_off_others_go_on(remote, bridged, sink):
    ok_user, bad_user = new_user("rok"), new_user("rpw")
    ok_token, bad_token = make_token(), make_token()
    ok = Account("good", ok_user, remote.imaps_port, ca=remote.ca,
                 tokens=[ok_token])
    bad = Account("wrongpw", bad_user, remote.imaps_port, ca=remote.ca,
                  password="wrong", tokens=[bad_token])
    remote_offset = remote.log_size()
    bridge = bridged([ok, bad]).start()
    bridge.wait_watching(ok)
    text = bridge.wait_log(
        r"bridge\(wrongpw\): Login to 127\.0\.0\.1:%d as %s failed: .*"
        r"Authentication failed.* - retrying in (\d+) ms"
        % (remote.imaps_port, re.escape(bad_user)))
    delay = int(re.search(r"bridge\(wrongpw\): Login .* retrying in (\d+) ms",
                          text).group(1))
    # a refused login waits a minute or so, not seconds (+-25% jitter)
    assert delay >= 45000, delay
    since = time.monotonic()
    remote.deliver(ok_user)
    assert_push(sink, [ok_token], since)
    # one attempt so far, however long the test took
    attempts = remote.log_since(remote_offset).count(bad_user)
    assert 1 <= attempts <= 2, remote.log_since(remote_offset)
    assert "wrong" not in bridge.instance.log_text().replace("wrongpw", "")


def test_bridge_reconnects_after_remote_restart(pki, bridged, sink):
    remote = Remote(pki)
    remote.ca = pki["ca"]
    remote.start()
    try:
        user, token = new_user("rrs"), make_token()
        a = Account("restart", user, remote.imaps_port, ca=remote.ca,
                    tokens=[token])
        bridge = bridged([a]).start()
        bridge.wait_watching(a)
        offset = bridge.instance.log_size()
        remote.restart()
        bridge.wait_log(r"bridge\(restart\): .* - retrying in", offset)
        bridge.wait_watching(a, offset)
        since = time.monotonic()
        remote.deliver(user)
        assert_push(sink, [token], since)
    finally:
        remote.cleanup()


def test_bridge_polls_server_without_idle(pki, bridged, sink):
    remote = Remote(pki, extra_config=(
        "protocol imap {\n"
        "  imap_capability = IMAP4rev1 SASL-IR LITERAL+ ID ENABLE "
        "UIDPLUS\n"
        "}\n"))
    remote.ca = pki["ca"]
    remote.start()
    try:
        user, token = new_user("rpoll"), make_token()
        with remote.imap(user) as client:
            assert "IDLE" not in client.capabilities()
        a = Account("poll", user, remote.imaps_port, ca=remote.ca,
                    tokens=[token], extra="poll_interval=1s")
        bridge = bridged([a]).start()
        text = bridge.wait_watching(a)
        assert "polling every 1000 ms" in text
        since = time.monotonic()
        remote.deliver(user)
        assert_push(sink, [token], since)
    finally:
        remote.cleanup()


def test_bridge_uidvalidity_change_starts_over_without_pushes(remote, bridged,
                                                             sink):
    user, token = new_user("ruv"), make_token()
    a = Account("uidv", user, remote.imaps_port, ca=remote.ca, tokens=[token])
    remote.deliver(user)
    bridge = bridged([a]).start()
    bridge.wait_watching(a)
    bridge.stop()
    # as if the mailbox had been recreated: the old UIDs mean nothing
    state_path = os.path.join(bridge.state_dir, "uidv.state")
    with open(state_path) as f:
        uidvalidity, last_uid, failures, _, _ = map(int, f.read().split())
    assert failures == 0
    with open(state_path, "w") as f:
        f.write("%d 0 0 0 0\n" % (uidvalidity + 1))
    remote.deliver(user)
    since = time.monotonic()
    offset = bridge.instance.log_size()
    bridge.start()
    bridge.wait_log(r"bridge\(uidv\): UIDVALIDITY of INBOX changed "
                    r"\(%d -> %d\): starting over from UID 2"
                    % (uidvalidity + 1, uidvalidity), offset)
    bridge.wait_watching(a, offset)
    assert_no_push(sink, [token], since, wait=1.0)
    remote.deliver(user)
    assert_push(sink, [token], since)

    def state():
        with open(state_path) as f:
            return f.read()
    # written once the service took the NOTIFY
    assert wait_until(lambda: state() == "%d 3 0 0 0\n" % uidvalidity,
                      10), \
        state()


def test_bridge_local_user_tokens_follow_setmetadata(remote, bridged, sink):
    remote_user, local_user = new_user("rf"), new_user("lf")
    old_token, new_token = make_token(), make_token()
    a = Account("follow", remote_user, remote.imaps_port, ca=remote.ca,
                local_user=local_user)
    bridge = bridged([a]).start()
    register(bridge.instance, local_user, old_token)
    bridge.wait_watching(a)
    since = time.monotonic()
    remote.deliver(remote_user)
    assert_push(sink, [old_token], since)
    # the user removes its tokens and registers another
    with bridge.instance.imap(local_user) as client:
        assert client.setmetadata("INBOX", "/private/devicetoken", None).ok
    register(bridge.instance, local_user, new_token)
    since = time.monotonic()
    remote.deliver(remote_user)
    assert_push(sink, [new_token], since)
    assert not sink.requests(since=since, bodies=[old_token])


def test_bridge_literal_tokens_follow_the_accounts_file(remote, bridged, sink):
    user, old_token, new_token = new_user("rtok"), make_token(), make_token()
    a = Account("tokens", user, remote.imaps_port, ca=remote.ca,
                tokens=[old_token])
    bridge = bridged([a]).start()
    bridge.wait_watching(a)
    since = time.monotonic()
    remote.deliver(user)
    assert_push(sink, [old_token], since)
    bridge.stop()
    # the operator replaces the token
    a.tokens = [new_token]
    bridge.write_accounts()
    offset = bridge.instance.log_size()
    bridge.start()
    bridge.wait_watching(a, offset)
    since = time.monotonic()
    remote.deliver(user)
    assert_push(sink, [new_token], since)
    assert_no_push(sink, [old_token], since, wait=1.5)


def test_bridge_status_in_doveadm(remote, bridged, sink, doveadm):
    ok_user, bad_user = new_user("rst"), new_user("rstbad")
    token = make_token()
    ok = Account("shown", ok_user, remote.imaps_port, ca=remote.ca,
                 tokens=[token])
    bad = Account("failing", bad_user, remote.imaps_port, ca=remote.ca,
                  password="wrong", tokens=[make_token()])
    bridge = bridged([ok, bad]).start()
    bridge.wait_watching(ok)
    bridge.wait_log(r"bridge\(failing\): Login .* - retrying in")
    since = time.monotonic()
    remote.deliver(ok_user)
    assert_push(sink, [token], since)
    rows = {}

    def status():
        rows.clear()
        for row in doveadm.run_json(bridge.instance, "deltapush", "bridge",
                                    "status"):
            rows[row["account"]] = row
        return rows.get("shown", {}).get("triggers") == "1"
    assert wait_until(status, 10), rows
    assert set(rows) == {"shown", "failing"}
    assert rows["shown"]["state"] == "idling"
    assert rows["shown"]["last_trigger"] != "-"
    assert rows["shown"]["last_error"] == ""
    assert rows["failing"]["state"] == "backing_off"
    assert "Authentication failed" in rows["failing"]["last_error"]
    assert rows["failing"]["triggers"] == "0"


class BadServer:
    """A loopback TCP server that plays a broken IMAP server: "garbage"
    greets and answers every line with nonsense, "stall" accepts and
    never says anything."""

    def __init__(self, mode):
        self.mode = mode
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections = []
        self.accepted = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self.connections.append(conn)
            if self.mode == "garbage":
                threading.Thread(target=self._garbage, args=(conn,),
                                 daemon=True).start()

    @staticmethod
    def _garbage(conn):
        try:
            conn.sendall(b"* OK [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n")
            while conn.recv(4096):
                conn.sendall(b"))) \x01garbage (((\r\n* 1 FETCH )\r\n")
        except OSError:
            pass

    def close(self):
        self.sock.close()
        for conn in self.connections:
            conn.close()


@pytest.mark.parametrize("mode", ["garbage", "stall"])
def test_bridge_broken_server_affects_no_other_account(remote, bridged, sink,
                                                      mode):
    server = BadServer(mode)
    try:
        user, token = new_user("rbroken"), make_token()
        good = Account("beside", user, remote.imaps_port, ca=remote.ca,
                       tokens=[token])
        broken = Account("broken", new_user("rb"), server.port,
                         tls="starttls", ca=remote.ca,
                         tokens=[make_token()])
        bridge = bridged([broken, good]).start()
        bridge.wait_watching(good)
        assert wait_until(lambda: server.accepted >= 1, 10)
        if mode == "garbage":
            # dropped and tried again later
            bridge.wait_log(r"bridge\(broken\): .* - retrying in")
        since = time.monotonic()
        remote.deliver(user)
        assert_push(sink, [token], since)
        assert "Watching" not in "\n".join(
            l for l in bridge.instance.log_text().splitlines()
            if "bridge(broken)" in l)
    finally:
        server.close()


# ---- applying changes: doveadm deltapush bridge reload, doveadm reload ----

def remote_logins(remote, user, offset=0):
    """Logins of user the remote logged since offset: one per IMAP
    session the bridge opened (2.3 logs "Login:", 2.4 "Logged in:")."""
    return len(re.findall(r"imap-login: Info: (?:Login|Logged in): "
                          r"user=<%s>" % re.escape(user),
                          remote.log_since(offset)))


def remote_auth_failures(remote, user, offset=0):
    return sum(1 for line in remote.log_since(offset).splitlines()
               if "user=<%s>" % user in line and "auth failed" in line)


def bridge_pids(bridge):
    # comm is cut to 15 characters
    return bridge.instance.children("deltapush-bridg")


def bridge_reload(doveadm, bridge):
    """doveadm deltapush bridge reload; the reply's counts as a dict"""
    rows = doveadm.run_json(bridge.instance, "deltapush", "bridge", "reload")
    assert len(rows) == 1, rows
    return {k: int(v) for k, v in rows[0].items()}


def test_bridge_reload_applies_changes_in_place(remote, bridged, sink,
                                                doveadm):
    """Unchanged accounts keep their remote session; an account whose
    line or password file changed reconnects; a removed one is no longer
    pushed (its literal tokens are forgotten); a new one starts."""
    users = {n: new_user("rrl" + n) for n in
             ("same", "tok", "pw", "gone", "new")}
    tokens = {n: make_token() for n in users}
    same = Account("same", users["same"], remote.imaps_port, ca=remote.ca,
                   tokens=[tokens["same"]])
    tok = Account("tok", users["tok"], remote.imaps_port, ca=remote.ca,
                  tokens=[make_token()])
    # backing off for a minute: only the changed password file helps
    pw = Account("pw", users["pw"], remote.imaps_port, ca=remote.ca,
                 password="wrong", tokens=[tokens["pw"]])
    gone = Account("gone", users["gone"], remote.imaps_port, ca=remote.ca,
                   tokens=[tokens["gone"]])
    new = Account("new", users["new"], remote.imaps_port, ca=remote.ca,
                  tokens=[tokens["new"]])
    remote_offset = remote.log_size()
    bridge = bridged([same, tok, pw, gone]).start()
    for account in (same, tok, gone):
        bridge.wait_watching(account)
    bridge.wait_log(r"bridge\(pw\): Login .* - retrying in")
    since = time.monotonic()
    remote.deliver(users["gone"])
    assert_push(sink, [tokens["gone"]], since)
    assert doveadm.run_json(bridge.instance, "deltapush", "list", "-u",
                            "bridge:gone")
    pids = bridge_pids(bridge)
    assert len(pids) == 1, pids

    # every password file is written again, same's with the same content
    tok.tokens = [tokens["tok"]]
    pw.password = "pass"
    bridge.accounts = [new, same, tok, pw]
    bridge.write_accounts()
    offset = bridge.instance.log_size()
    assert bridge_reload(doveadm, bridge) == dict(
        kept=1, added=1, changed=2, removed=1)
    bridge.wait_log(r"Reloaded .*: kept 1, added 1, changed 2, removed 1 "
                    r"accounts", offset)
    for account in (new, tok, pw):
        bridge.wait_watching(account, offset)
    assert bridge_pids(bridge) == pids
    assert "bridge(same)" not in bridge.instance.log_since(offset)

    since = time.monotonic()
    for name in ("same", "tok", "pw", "new", "gone"):
        remote.deliver(users[name])
    assert_push(sink, [tokens[n] for n in ("same", "tok", "pw", "new")],
                since)
    assert_no_push(sink, [tokens["gone"]], since, wait=1.0)
    # one remote session for the unchanged account, a new one for the
    # changed; the removed account's tokens are gone from the service
    assert remote_logins(remote, users["same"], remote_offset) == 1
    assert remote_logins(remote, users["tok"], remote_offset) == 2
    assert remote_logins(remote, users["pw"], remote_offset) == 1
    assert doveadm.run_json(bridge.instance, "deltapush", "list", "-u",
                            "bridge:gone") == []
    assert not os.path.exists(os.path.join(bridge.state_dir, "gone.state"))
    rows = doveadm.run_json(bridge.instance, "deltapush", "bridge", "status")
    assert sorted(r["account"] for r in rows) == ["new", "pw", "same", "tok"]


def test_bridge_reload_refuses_bad_accounts_file(remote, bridged, sink,
                                                 doveadm):
    users = [new_user("rbf"), new_user("rbf")]
    tokens = [make_token(), make_token()]
    accounts = [Account("bf%d" % i, users[i], remote.imaps_port,
                        ca=remote.ca, tokens=[tokens[i]]) for i in (0, 1)]
    remote_offset = remote.log_size()
    bridge = bridged(accounts).start()
    for account in accounts:
        bridge.wait_watching(account)
    pids = bridge_pids(bridge)

    bridge.accounts = accounts[:1]
    bridge.write_accounts()
    with open(bridge.accounts_file, "a") as f:
        f.write("third host=127.0.0.1 colour=red\n")
    offset = bridge.instance.log_size()
    result = doveadm.run(bridge.instance, "deltapush", "bridge", "reload")
    assert result.returncode != 0, result
    # the accounts file's line 3 (a comment, then bf0)
    assert "line 3: Unknown key 'colour'" in result.stderr, result.stderr
    assert "Reload refused" in result.stderr, result.stderr
    assert "Reloaded" not in bridge.instance.log_since(offset)

    # a request the listener doesn't know closes only that connection
    status_socket = os.path.join(bridge.instance.base_dir,
                                 "deltapush-bridge-status")
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(status_socket)
        s.sendall(b"RELOAD NOW\n")
        assert s.recv(4096) == b""

    since = time.monotonic()
    for user in users:
        remote.deliver(user)
    assert_push(sink, tokens, since)
    assert bridge_pids(bridge) == pids
    for user in users:
        assert remote_logins(remote, user, remote_offset) == 1
    rows = doveadm.run_json(bridge.instance, "deltapush", "bridge", "status")
    assert sorted(r["account"] for r in rows) == ["bf0", "bf1"]


def test_bridge_backoff_survives_dovecot_reload(remote, bridged, sink,
                                                doveadm):
    """doveadm reload replaces the bridge process: an account whose login
    was refused is not tried again by the new one before its backoff
    ends."""
    ok_user, bad_user = new_user("rbk"), new_user("rbkbad")
    ok_token = make_token()
    ok = Account("steady", ok_user, remote.imaps_port, ca=remote.ca,
                 tokens=[ok_token])
    bad = Account("refused", bad_user, remote.imaps_port, ca=remote.ca,
                  password="wrong", tokens=[make_token()])
    remote_offset = remote.log_size()
    bridge = bridged([ok, bad]).start()
    bridge.wait_watching(ok)
    bridge.wait_log(r"bridge\(refused\): Login .* - retrying in")
    assert wait_until(lambda: remote_auth_failures(
        remote, bad_user, remote_offset) == 1, 10), \
        remote.log_since(remote_offset)
    old_pids = bridge_pids(bridge)

    offset = bridge.instance.log_size()
    result = bridge.instance.doveadm("reload")
    assert result.returncode == 0, result
    assert wait_until(lambda: bridge_pids(bridge) and
                      bridge_pids(bridge) != old_pids, 10), \
        bridge.instance.log_tail()
    # the new process reconnects the other account and pushes for it ...
    bridge.wait_watching(ok, offset)
    since = time.monotonic()
    remote.deliver(ok_user)
    assert_push(sink, [ok_token], since)
    # ... but leaves the refused login alone (the remote logs a refused
    # login when the client gives up, after its 2 s auth_failure_delay)
    assert not wait_until(lambda: remote_auth_failures(
        remote, bad_user, remote_offset) > 1, 5.0), \
        remote.log_since(remote_offset)
    text = bridge.wait_log(r"bridge\(refused\): Backing off after 1 failed "
                           r"connections \(before the bridge restarted\) - "
                           r"retrying in \d+ ms", offset)
    # what is left of the first backoff (a minute +-25%)
    left = int(re.search(r"bridge\(refused\): Backing off .* retrying in "
                         r"(\d+) ms", text).group(1))
    assert 0 < left <= 75000, left
    rows = {r["account"]: r for r in doveadm.run_json(
        bridge.instance, "deltapush", "bridge", "status")}
    assert rows["refused"]["state"] == "backing_off", rows


def test_bridge_forgets_accounts_removed_while_stopped(remote, bridged, sink,
                                                       doveadm):
    user, token = new_user("rrm"), make_token()
    old = Account("removed", user, remote.imaps_port, ca=remote.ca,
                  tokens=[token])
    keep = Account("kept", new_user("rrk"), remote.imaps_port, ca=remote.ca,
                   tokens=[make_token()])
    bridge = bridged([old, keep]).start()
    bridge.wait_watching(old)
    since = time.monotonic()
    remote.deliver(user)
    assert_push(sink, [token], since)
    bridge.stop()
    bridge.accounts = [keep]
    bridge.write_accounts()
    offset = bridge.instance.log_size()
    bridge.start()
    bridge.wait_log(r"Account removed is no longer in .*: forgetting its "
                    r"tokens", offset)
    bridge.wait_watching(keep, offset)
    assert doveadm.run_json(bridge.instance, "deltapush", "list", "-u",
                            "bridge:removed") == []
    assert not os.path.exists(os.path.join(bridge.state_dir,
                                           "removed.state"))
    assert os.path.exists(os.path.join(bridge.state_dir, "kept.state"))
