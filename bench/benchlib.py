"""Building blocks of the deltapush benchmarks, on the test harness
(tests/integration): a throwaway Dovecot in three configurations (the
harness's DovecotInstance and its one configuration writer), the sink in a
process of its own with CLOCK_MONOTONIC timestamps, nginx, a timed LMTP
client and CPU accounting from /proc.

Everything listens on 127.0.0.1 only, lives in temporary directories and is
stopped by the pid of the process the benchmark started.
"""

import atexit
import base64
import collections
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

import dovecot_instance  # noqa: E402
from dovecot_instance import (DovecotInstance, StageError,  # noqa: E402
                              proc_kib, stop_process)
# NGINX: bench.py reports its version
from nginx_proxy import NGINX, NginxProxy  # noqa: E402,F401
from service_client import ServiceConn  # noqa: E402

SMTP_SOURCE = "/usr/sbin/smtp-source"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")



def _pick_tmpdir():
    """Instance directories go on the machine's disk by default: that is
    where a real server keeps its mail and the service its database, and
    its fsync latency is part of what delivery costs.
    DELTAPUSH_BENCH_TMPDIR overrides; use_storage("tmpfs") switches to /dev/shm for
    the second column."""
    return os.environ.get("DELTAPUSH_BENCH_TMPDIR") or "/var/tmp"


def tmpfs_dir():
    """A tmpfs directory to run on, or None."""
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        return "/dev/shm"
    return None


def use_storage(kind):
    """Where the following instances live: "disk" or "tmpfs"."""
    global TMPDIR
    TMPDIR = tmpfs_dir() if kind == "tmpfs" else _pick_tmpdir()


def storage_of(path):
    """(mount point, file system type, device) holding path."""
    best, fstype, dev = "", "?", "?"
    with open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            mnt = parts[1]
            if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) \
                    and len(mnt) >= len(best):
                best, fstype, dev = mnt, parts[2], parts[0]
    return best, fstype, dev


def fsync_latency(directory, count=200):
    """p50/p99 ms of a 4 KiB write + fdatasync() in directory: what one
    durable commit costs on this storage at least."""
    fd, path = tempfile.mkstemp(prefix="dpbench-fsync-", dir=directory)
    times = []
    try:
        block = os.urandom(4096)
        for i in range(count):
            os.pwrite(fd, block, (i % 16) * 4096)
            t0 = time.monotonic_ns()
            os.fdatasync(fd)
            times.append((time.monotonic_ns() - t0) / 1e6)
    finally:
        os.close(fd)
        os.unlink(path)
    times.sort()
    return times[len(times) // 2], times[int(len(times) * 0.99) - 1]


TMPDIR = _pick_tmpdir()

# Every process we started and have not stopped yet, by pid.
_live = {}


def _register(proc, what):
    _live[proc.pid] = (proc, what)


def _stop_proc(proc, sig=signal.SIGTERM, timeout=15.0):
    stop_process(proc, sig, timeout)
    _live.pop(proc.pid, None)


@atexit.register
def stop_leftovers():
    for pid, (proc, what) in list(_live.items()):
        try:
            _stop_proc(proc)
        except Exception as e:  # pragma: no cover - best effort at exit
            sys.stderr.write("could not stop %s (pid %d): %s\n"
                             % (what, pid, e))


def find_stage_files(stage):
    try:
        return dovecot_instance.find_stage_files(stage)
    except StageError as e:
        raise SystemExit("%s: build and stage first" % e)


# ---------------------------------------------------------------------------
# /proc accounting


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def proc_stat(pid):
    """(ppid, comm, utime+stime, cutime+cstime) in seconds, or None."""
    text = _read("/proc/%d/stat" % pid)
    if not text or ")" not in text:
        return None
    comm = text[text.index("(") + 1:text.rindex(")")]
    f = text[text.rindex(")") + 2:].split()
    # f[0] is field 3 (state): utime is field 14 -> f[11]
    own = (int(f[11]) + int(f[12])) / CLK_TCK
    children = (int(f[13]) + int(f[14])) / CLK_TCK
    return int(f[1]), comm, own, children


def proc_cpu(pid):
    st = proc_stat(pid)
    return st[2] if st else 0.0


proc_status_kib = proc_kib


def tree_cpu_by_name(root_pid):
    """CPU seconds, run-queue seconds and times scheduled in (from
    /proc/PID/schedstat) so far of root_pid and every descendant, by
    process name (comm). The CPU of children that already exited and were
    reaped is in their parent's cutime/cstime: it is counted under
    "reaped"."""
    table = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = proc_stat(int(name))
            if st:
                table[int(name)] = st
    children = {}
    for pid, (ppid, _, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    cpu = collections.Counter()
    queue = collections.Counter()
    slices = collections.Counter()
    stack = [root_pid]
    while stack:
        pid = stack.pop()
        st = table.get(pid)
        if st is None:
            continue
        cpu[st[1]] += st[2]
        cpu["reaped"] += st[3]
        sched = _read("/proc/%d/schedstat" % pid).split()
        if len(sched) > 2:
            queue[st[1]] += int(sched[1]) / 1e9
            slices[st[1]] += int(sched[2])
        stack.extend(children.get(pid, ()))
    return cpu, queue, slices


def tree_cpu(root_pid):
    """CPU seconds used so far by root_pid and every descendant, including
    the ones that already exited and were reaped."""
    return sum(tree_cpu_by_name(root_pid)[0].values())


def system_busy():
    """CPU seconds the whole machine was busy (all cores), including time
    the hypervisor stole."""
    fields = _read("/proc/stat").splitlines()[0].split()[1:]
    v = [int(x) for x in fields]
    # user nice system idle iowait irq softirq steal (guest is in user)
    return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / CLK_TCK


class CpuMeter:
    """How much CPU other processes on the machine (not this benchmark and
    what it started) used while a figure was measured: the figures are
    only as good as the machine was quiet."""

    def __init__(self):
        self.t0 = time.monotonic()
        self.busy0 = system_busy()
        self.ours0 = tree_cpu(os.getpid())

    def stop(self):
        elapsed = time.monotonic() - self.t0
        busy = system_busy() - self.busy0
        ours = tree_cpu(os.getpid()) - self.ours0
        ncpu = os.cpu_count() or 1
        return dict(elapsed=elapsed, busy=busy, ours=ours,
                    foreign=max(0.0, busy - ours),
                    foreign_share=max(0.0, busy - ours) / (elapsed * ncpu))


# ---------------------------------------------------------------------------
# The HTTP sink (sink.py in its own process)


class Sink:
    """Runs sink.py; a reader thread collects its request records."""

    def __init__(self, port=0):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "sink.py"), str(port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL)
        _register(self.proc, "sink")
        first = self.proc.stdout.readline().decode()
        if not first.startswith("PORT "):
            self.stop()
            raise RuntimeError("sink did not start: %r" % first)
        self.port = int(first.split()[1])
        self.cond = threading.Condition()
        self.records = []   # (ns, method, path, length, key)
        self.thread = threading.Thread(target=self._reader, daemon=True)
        self.thread.start()

    def _reader(self):
        for line in self.proc.stdout:
            parts = line.decode().split()
            if len(parts) != 6 or parts[0] != "REQ":
                continue
            rec = (int(parts[1]), parts[2], parts[3], int(parts[4]),
                   parts[5])
            with self.cond:
                self.records.append(rec)
                self.cond.notify_all()

    def url(self, path="/notify"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    push_url = url

    def cpu(self):
        return proc_cpu(self.proc.pid)

    def count(self):
        with self.cond:
            return len(self.records)

    def wait_count(self, n, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.records) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)
            return len(self.records)

    def wait_quiet(self, quiet, timeout):
        """Until no request arrived for `quiet` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.cond:
                last = self.records[-1][0] / 1e9 if self.records else 0
            idle = time.monotonic() - last
            if idle >= quiet:
                return True
            time.sleep(min(quiet - idle, 0.1))
        return False

    def since(self, index):
        with self.cond:
            return list(self.records[index:])

    def stop(self):
        if self.proc is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            _stop_proc(self.proc)
            self.proc = None


# ---------------------------------------------------------------------------
# nginx: a sink fast enough for the sender benchmark, HTTP/1.1 and HTTP/2


class Nginx(NginxProxy):
    def __init__(self, workers=1):
        super().__init__(workers, prefix="dpbench-nginx-")
        _register(self.proc, "nginx")

    # The counting interface of Sink, for the throughput runs

    count = NginxProxy.requests

    def wait_count(self, n, timeout):
        return self.wait_requests(n, timeout, interval=0.02)[0]

    def wait_quiet(self, quiet, timeout):
        deadline = time.monotonic() + timeout
        last = self.requests()
        since = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.05)
            n = self.requests()
            if n != last:
                last, since = n, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return True
        return False

    def wait_requests(self, target, timeout, interval=0.01):
        """Polls until `target` requests were answered; returns
        (count, monotonic time it was seen)."""
        deadline = time.monotonic() + timeout
        while True:
            n = self.requests()
            now = time.monotonic()
            if n >= target or now >= deadline:
                return n, now
            time.sleep(interval)

    def cpu(self):
        return tree_cpu(self.proc.pid)

    def stop(self):
        if self.proc is not None:
            _live.pop(self.proc.pid, None)
        super().stop()


# ---------------------------------------------------------------------------
# Tokens


def make_token(index, rng=None):
    """A ~900 byte Delta-Chat-like token, distinct per index: "openpgp:"
    and standard padded base64 of 672 bytes (= 904 bytes in all)."""
    head = index.to_bytes(8, "big")
    body = (rng or _TOKEN_FILL)
    return "openpgp:" + base64.b64encode(head + body).decode()


_TOKEN_FILL = os.urandom(664)


def token_key(token):
    """What sink.py reports as the key of a raw-token body."""
    return token[:48]


# ---------------------------------------------------------------------------
# Dovecot


class Dovecot(DovecotInstance):
    """A throwaway Dovecot. kind is "none" (no push plugin), "ox" (stock
    ox push_notification driver) or "deltapush"."""

    keep_env = "DELTAPUSH_BENCH_KEEP"

    def __init__(self, kind, stage_files=None, push_url=None, plugin=None):
        self.kind = kind
        settings = {}
        if kind == "ox":
            settings["push_notification_driver"] = \
                "ox:url=%s user_from_metadata" % push_url
        settings.update(plugin or {})
        super().__init__(stage_files=stage_files, notify_url=push_url,
                         plugin_settings=settings,
                         deltapush=kind == "deltapush",
                         push_plugins=kind != "none", tmpdir=TMPDIR,
                         prefix="dpbench-")

    # What bench.py changes between runs of one instance
    @property
    def push_url(self):
        return self.notify_url

    @push_url.setter
    def push_url(self, url):
        self.notify_url = url

    @property
    def plugin(self):
        return self.plugin_settings

    def start(self, timeout=20.0):
        super().start(timeout)

    def log_pid(self):
        pids = self.children("log")
        return pids[0] if pids else None

    def cpu(self):
        return tree_cpu(self.master_pid)

    def service(self, timeout=60.0):
        return ServiceConn(self, timeout=timeout)

    def imap_setmetadata(self, user, mailbox, entry, value):
        with self.imap(user) as client:
            reply = client.setmetadata(mailbox, entry, value)
        if not reply.ok:
            raise RuntimeError("SETMETADATA for %s: %r" % (user, reply))

    def db_size(self):
        sizes = {}
        for suffix in ("", "-wal", "-shm"):
            try:
                sizes[suffix or "db"] = os.path.getsize(self.db_path + suffix)
            except OSError:
                sizes[suffix or "db"] = 0
        return sizes


# ---------------------------------------------------------------------------
# LMTP


class Lmtp:
    """A minimal LMTP client that times each transaction."""

    def __init__(self, port, timeout=30.0):
        self.sock = socket.create_connection(("127.0.0.1", port),
                                             timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self._reply()
        self.sock.sendall(b"LHLO bench.example.net\r\n")
        self._reply()

    def _reply(self):
        """Reads one (possibly multi-line) reply; returns its code."""
        while True:
            while b"\r\n" not in self.buf:
                data = self.sock.recv(65536)
                if not data:
                    raise RuntimeError("LMTP server closed the connection")
                self.buf += data
            line, _, self.buf = self.buf.partition(b"\r\n")
            if len(line) < 4 or line[3:4] != b"-":
                return int(line[:3]), line

    def send(self, sender, rcpt, body):
        """One transaction, one recipient. Returns (start, end) monotonic
        ns: MAIL FROM sent, 250 after DATA received."""
        t0 = time.monotonic_ns()
        self.sock.sendall(b"MAIL FROM:<%s>\r\n" % sender.encode())
        code, line = self._reply()
        if code != 250:
            raise RuntimeError("MAIL FROM: %r" % line)
        self.sock.sendall(b"RCPT TO:<%s>\r\n" % rcpt.encode())
        code, line = self._reply()
        if code != 250:
            raise RuntimeError("RCPT TO: %r" % line)
        self.sock.sendall(b"DATA\r\n")
        code, line = self._reply()
        if code != 354:
            raise RuntimeError("DATA: %r" % line)
        self.sock.sendall(body + b".\r\n")
        code, line = self._reply()
        t1 = time.monotonic_ns()
        if code != 250:
            raise RuntimeError("end of DATA: %r" % line)
        return t0, t1

    def close(self):
        try:
            self.sock.sendall(b"QUIT\r\n")
            self._reply()
        except (OSError, RuntimeError):
            pass
        self.sock.close()


def make_message(sender, rcpt, n):
    """A small plain message (CRLF, dot-stuffing not needed)."""
    return dovecot_instance.make_message(
        sender="<%s>" % sender, to="<%s>" % rcpt, subject="bench %d" % n,
        body="La de da de da %d.\r\n" % n)
