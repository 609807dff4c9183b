"""Faults (issue 7): the database unwritable, removed, on a full file
system or corrupt; the service killed again and again under load; the
notification proxy slow, hanging or resetting connections. In every case
mail keeps being delivered within the plugin's timeout, registrations
answer NO while they cannot be kept, the log says what is wrong, nothing
grows without bound, and it all recovers by itself once the fault is
gone."""

import collections
import concurrent.futures
import os
import random
import signal
import socket
import subprocess
import threading
import time

import pytest

from dovecot_instance import lmtp_send, make_message, proc_kib, wait_until
from helpers import (DEVICETOKEN, make_token, new_user, register, tokens_of,
                     user_with_token)

# The plugin waits at most this long for the service
# (deltapush_service_timeout)
SERVICE_TIMEOUT = 1.0
# Slack on top of it for a loaded test machine
SLACK = 1.5
# How often the service checks its database file (DB_CHECK_INTERVAL_MSECS)
DB_CHECK_INTERVAL = 5.0

# Under tests/sanitize.sh memory use says nothing about our code
SANITIZED = bool(os.environ.get("DELTAPUSH_SANITIZE"))

SETTINGS = {
    "deltapush_service_timeout": "1s",
    "deltapush_http_timeout": "2s",
    "deltapush_retry_base": "1s",
}


# ---- helpers ----

def _assert_clear_error(dovecot, mark, pid, needle):
    """The service logged a deltapush line with needle since mark: a clear
    error, not a crash, and it is still the same process."""
    assert wait_for_log(dovecot, mark, "deltapush", needle), \
        dovecot.log_since(mark)
    assert "killed with signal" not in dovecot.log_since(mark), \
        dovecot.log_since(mark)
    assert dovecot.service_pids() == [pid]


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def try_register(dovecot, user, token):
    """SETMETADATA in a new session: returns the Reply (OK or NO)."""
    with dovecot.imap(user, timeout=20) as client:
        return client.setmetadata("INBOX", DEVICETOKEN, token, timeout=15)


def deliver_in_time(dovecot, user, limit=SERVICE_TIMEOUT + SLACK):
    """Delivers one message over LMTP; it must be accepted within limit."""
    start = time.monotonic()
    replies = dovecot.deliver_lmtp(user, make_message(to=user), timeout=20)
    elapsed = time.monotonic() - start
    assert [code for code, _ in replies] == [250], replies
    assert elapsed < limit, "delivery took %.1f s" % elapsed
    return elapsed


def wait_for_log(dovecot, mark, *needles, timeout=5.0):
    return dovecot.wait_for_log(lambda text: all(n in text for n in needles),
                                offset=mark, timeout=timeout)


def registration_works(dovecot, timeout):
    """Polls until a registration is answered OK (True) or timeout."""
    def attempt():
        return try_register(dovecot, new_user("probe"), make_token()).ok
    return wait_until(attempt, timeout, interval=0.5)


def chattr(flag, *paths):
    return subprocess.run(["chattr", flag] + list(paths),
                          capture_output=True, text=True)


@pytest.fixture
def db_dir(tmp_path):
    """A directory for the database that can be made immutable (the
    service runs as root, so file modes would not stop it)."""
    path = tmp_path / "db"
    path.mkdir()
    probe = chattr("+i", str(path))
    if probe.returncode != 0:
        pytest.skip("chattr +i does not work here: %s" % probe.stderr.strip())
    chattr("-i", str(path))
    yield str(path)
    chattr("-R", "-i", str(path))


def db_settings(directory):
    settings = dict(SETTINGS)
    settings["deltapush_db"] = os.path.join(directory, "deltapush.sqlite")
    return settings


def db_files(directory):
    return [os.path.join(directory, name) for name in os.listdir(directory)]


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 1 MiB tmpfs for the database, unmounted afterwards (the instance
    using it must be stopped before: see full_fs_dovecot)."""
    path = tmp_path / "tmpfs"
    path.mkdir()
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o",
                            "size=1m,mode=0755", "deltapush-test", str(path)],
                           capture_output=True, text=True)
    if mount.returncode != 0:
        pytest.skip("cannot mount a tmpfs: %s" % mount.stderr.strip())
    yield str(path)
    if subprocess.run(["umount", str(path)]).returncode != 0:
        subprocess.run(["umount", "-l", str(path)])


def fill_filesystem(directory):
    """Fills the file system of directory; returns the filler's path."""
    path = os.path.join(directory, "filler")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"x" * 65536)
    except OSError:
        pass
    try:
        while True:
            os.write(fd, b"x")
    except OSError:
        pass
    finally:
        os.close(fd)
    return path


# ---- the database ----

def test_db_unwritable_at_start(dovecot_factory, sink, db_dir):
    path = os.path.join(db_dir, "deltapush.sqlite")
    open(path, "w").close()
    assert chattr("+i", path, db_dir).returncode == 0
    dovecot = dovecot_factory(sink=sink, settings=db_settings(db_dir))
    pid = dovecot.service_pid()
    user, token = new_user(), make_token()

    assert wait_for_log(dovecot, 0, "deltapush", "Error", path), \
        dovecot.log_tail()
    deliver_in_time(dovecot, user)
    reply = try_register(dovecot, user, token)
    assert reply.status == "NO", reply
    assert reply.elapsed < SERVICE_TIMEOUT + SLACK, reply.elapsed

    # fixed: it must come back by itself
    chattr("-i", path, db_dir)
    assert registration_works(dovecot, DB_CHECK_INTERVAL + 5), \
        dovecot.log_tail()
    register(dovecot, user, token)
    since = time.monotonic()
    deliver_in_time(dovecot, user)
    assert sink.wait_for_bodies([token], since=since, timeout=10)
    assert dovecot.service_pids() == [pid]


def test_db_unwritable_while_running(dovecot_factory, sink, db_dir):
    dovecot = dovecot_factory(sink=sink, settings=db_settings(db_dir))
    pid = dovecot.service_pid()
    user, token = new_user(), make_token()
    register(dovecot, user, token)

    mark = dovecot.log_size()
    assert chattr("+i", db_dir, *db_files(db_dir)).returncode == 0
    try:
        reply = try_register(dovecot, new_user(), make_token())
        assert reply.status == "NO", reply
        deliver_in_time(dovecot, user)
        deliver_in_time(dovecot, user)
        _assert_clear_error(dovecot, mark, pid, "Error")
    finally:
        chattr("-R", "-i", db_dir)
    assert registration_works(dovecot, DB_CHECK_INTERVAL + 5), \
        dovecot.log_since(mark)
    assert tokens_of(dovecot, user) == [token]


def test_db_removed_while_running(dovecot_factory, sink, db_dir):
    dovecot = dovecot_factory(sink=sink, settings=db_settings(db_dir))
    user = new_user()
    register(dovecot, user, make_token())

    mark = dovecot.log_size()
    for path in db_files(db_dir):
        os.unlink(path)
    # Whatever is answered OK from now on must be kept: registrations
    # right after the removal and after the service noticed it.
    accepted = []
    for _ in range(2):
        token = make_token()
        reply = try_register(dovecot, user, token)
        if reply.ok:
            accepted.append(token)
        deliver_in_time(dovecot, user)
    assert wait_for_log(dovecot, mark, "deltapush", "removed",
                        timeout=DB_CHECK_INTERVAL + 3), dovecot.log_since(mark)
    late = make_token()
    assert registration_works(dovecot, 5)
    register(dovecot, user, late)
    accepted.append(late)

    # a restart reads only what is on disk
    pid = dovecot.service_pid()
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: dovecot.service_pids() and
               pid not in dovecot.service_pids(), 10)
    assert sorted(tokens_of(dovecot, user)) == sorted(accepted), \
        "registrations answered OK were lost with the removed file"


@pytest.fixture
def full_fs_dovecot(dovecot_factory, sink, small_tmpfs):
    dovecot = dovecot_factory(sink=sink, settings=db_settings(small_tmpfs))
    yield dovecot, small_tmpfs
    # before the tmpfs is unmounted
    dovecot.stop()


def test_db_on_full_filesystem(full_fs_dovecot, sink):
    dovecot, directory = full_fs_dovecot
    pid = dovecot.service_pid()
    user, token = new_user(), make_token()
    register(dovecot, user, token)

    mark = dovecot.log_size()
    filler = fill_filesystem(directory)
    reply = try_register(dovecot, new_user(), make_token())
    assert reply.status == "NO", reply
    for _ in range(3):
        deliver_in_time(dovecot, user)
    _assert_clear_error(dovecot, mark, pid, "full")

    os.unlink(filler)
    assert registration_works(dovecot, 5), dovecot.log_since(mark)
    since = time.monotonic()
    deliver_in_time(dovecot, user)
    assert sink.wait_for_bodies([token], since=since, timeout=10)
    assert tokens_of(dovecot, user) == [token]


def test_db_corrupt_at_start(dovecot_factory, sink, db_dir):
    # Issue 12: a corrupt file was retried every 5 s for ever, every
    # registration and push refused until an operator moved it. Now the
    # service moves it aside itself (keeping it), says so loudly and
    # starts a fresh database.
    path = os.path.join(db_dir, "deltapush.sqlite")
    garbage = b"this is no SQLite database\n" + os.urandom(8192)
    with open(path, "wb") as f:
        f.write(garbage)
    dovecot = dovecot_factory(sink=sink, settings=db_settings(db_dir))
    pid = dovecot.service_pid()
    user, token = new_user(), make_token()

    assert wait_for_log(dovecot, 0, "deltapush", "Error", "moved it to"), \
        dovecot.log_tail()
    kept = [name for name in os.listdir(db_dir)
            if name.startswith("deltapush.sqlite.corrupt-")]
    assert len(kept) == 1, kept
    with open(os.path.join(db_dir, kept[0]), "rb") as f:
        assert f.read() == garbage
    assert os.path.join(db_dir, kept[0]) in dovecot.log_text()

    # registrations and pushes work at once, no operator needed
    register(dovecot, user, token)
    assert tokens_of(dovecot, user) == [token]
    since = time.monotonic()
    deliver_in_time(dovecot, user)
    assert sink.wait_for_bodies([token], since=since, timeout=10)
    assert dovecot.service_pids() == [pid]


# ---- the service process ----

def test_service_killed_repeatedly_during_load(dovecot_factory, sink):
    dovecot = dovecot_factory(sink=sink, settings=SETTINGS)
    users = {new_user("kill"): make_token() for _ in range(12)}
    for user, token in users.items():
        register(dovecot, user, token)
    stop = threading.Event()
    since = time.monotonic()

    def load():
        results = []
        client = dovecot.lmtp(timeout=30)
        try:
            while not stop.is_set():
                user = random.choice(list(users))
                start = time.monotonic()
                replies = lmtp_send(client, "sender@example.net", [user],
                                    make_message(to=user))
                results.append((user, [c for c, _ in replies],
                                time.monotonic() - start))
        finally:
            client.quit()
        return results

    kills = []
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(load) for _ in range(4)]
        try:
            for _ in range(5):
                time.sleep(1.0)
                pid = dovecot.service_pid()
                os.kill(pid, signal.SIGKILL)
                kills.append(pid)
                # the master starts a new one
                assert wait_until(lambda: dovecot.service_pids() and
                                  pid not in dovecot.service_pids(), 10)
            time.sleep(1.0)
        finally:
            stop.set()
        results = [r for f in futures for r in f.result()]

    assert len(set(kills)) == 5
    assert results and all(codes == [250] for _, codes, _ in results), \
        collections.Counter(tuple(c) for _, c, _ in results)
    slowest = max(elapsed for _, _, elapsed in results)
    assert slowest < SERVICE_TIMEOUT + SLACK, \
        "a delivery took %.1f s with the service being killed" % slowest
    # every user whose mail arrived got woken at least once
    delivered = {user for user, _, _ in results}
    got = sink.wait_for_bodies([users[u] for u in delivered], since=since,
                               timeout=15)
    missing = [u for u in delivered if users[u].encode() not in
               {r.body for r in got}]
    assert not missing, "no push for %d of %d users" % (len(missing),
                                                         len(delivered))


# ---- the notification proxy ----

class BadProxy:
    """A TCP server on loopback that accepts connections and then either
    never answers ("hang") or resets them ("reset")."""

    def __init__(self, mode):
        self.mode = mode
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.held = []
        self.accepted = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return "http://127.0.0.1:%d/notify" % self.port

    def _run(self):
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepted += 1
            if self.mode == "reset":
                try:
                    conn.recv(65536)
                except OSError:
                    pass
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                b"\x01\x00\x00\x00\x00\x00\x00\x00")
                conn.close()
            else:
                self.held.append(conn)

    def stop(self):
        self.stopping.set()
        self.listener.close()
        self.thread.join(timeout=5)
        for conn in self.held:
            conn.close()


def _sink_fault_round(dovecot, users, wait):
    """Delivers to every user (each delivery must stay fast), waits, and
    returns the service's (fds, RSS KiB) afterwards."""
    for user in users:
        deliver_in_time(dovecot, user, limit=1.0)
    time.sleep(wait)
    pid = dovecot.service_pid()
    return fd_count(pid), proc_kib(pid, "VmRSS")


def _check_sink_fault(dovecot, users, needle):
    """Two rounds of deliveries against the broken proxy: the second must
    not leave more fds or much more memory than the first."""
    pid = dovecot.service_pid()
    mark = dovecot.log_size()
    fds1, rss1 = _sink_fault_round(dovecot, users, 3.0)
    fds2, rss2 = _sink_fault_round(dovecot, users, 3.0)
    log = dovecot.log_since(mark)
    assert needle in log, log[-3000:]
    assert dovecot.service_pids() == [pid]
    # a little slack for requests that happen to be in flight
    assert fds2 <= fds1 + 2, "service fds grew from %d to %d" % (fds1, fds2)
    if not SANITIZED:
        assert rss2 - rss1 < 2048, \
            "service RSS grew by %d KiB" % (rss2 - rss1)


def _users_with_tokens(dovecot, count=4):
    return dict(user_with_token(dovecot, prefix="px") for _ in range(count))


def test_sink_slow(dovecot_factory, sink):
    dovecot = dovecot_factory(sink=sink, settings=SETTINGS)
    users = _users_with_tokens(dovecot)
    pid = dovecot.service_pid()
    # the baseline includes the lmtp process's connection to the service,
    # which the plugin keeps open
    deliver_in_time(dovecot, new_user())
    baseline = fd_count(pid)
    sink.delay = 20.0
    _check_sink_fault(dovecot, users, "timed out")
    # the proxy recovers: every token gets its push
    sink.delay = 0.0
    since = time.monotonic()
    assert len({r.body for r in sink.wait_for_bodies(
        users.values(), since=since, timeout=15)}) == len(users)
    sink.wait_quiet(quiet=1.5, timeout=15)
    # what is left open: at most a kept-alive connection per push that
    # was in flight at once, and another lmtp connection
    assert fd_count(pid) <= baseline + len(users) + 1, \
        "service fds: %d before, %d after" % (baseline, fd_count(pid))


@pytest.mark.parametrize("mode,needle", [
    ("hang", "timed out"),
    ("reset", "Connection reset by peer"),
])
def test_proxy_hanging_or_resetting(dovecot_factory, sink, mode, needle):
    proxy = BadProxy(mode)
    try:
        settings = dict(SETTINGS)
        settings["deltapush_notify_url"] = proxy.url
        dovecot = dovecot_factory(sink=sink, settings=settings)
        users = _users_with_tokens(dovecot)
        _check_sink_fault(dovecot, users, needle)
        assert proxy.accepted > 0
    finally:
        proxy.stop()
