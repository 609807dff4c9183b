"""The deltapush soak test: a steady stream of LMTP deliveries to many
users against a notification proxy that fails a share of its requests at
random. Run it through soak.sh; see there for what it checks.

It reuses the integration tests' harness (tests/integration): a throwaway
Dovecot on loopback with the staged deltapush, and the HTTP sink.
"""

import argparse
import collections
import os
import random
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

from dovecot_instance import (DovecotInstance, find_stage_files,  # noqa: E402
                              fd_targets, lmtp_send, make_message,
                              proc_kib, wait_until)
from helpers import make_token  # noqa: E402
from service_client import ServiceConn  # noqa: E402
from sink import Sink  # noqa: E402


class FlakySink(Sink):
    """The sink, answering 500 to a random share of the requests."""

    def __init__(self, fail_ratio, seed):
        super().__init__()
        self.fail_ratio = fail_ratio
        self.random = random.Random(seed)

    def _decide(self, body):
        with self._cond:
            failed = self.random.random() < self.fail_ratio
        return (500 if failed else 200), 0.0


class Process:
    """RSS and open fds of one process."""

    def __init__(self, name, pid):
        self.name = name
        self.pid = pid
        self.samples = []
        # the non-socket fds' targets of each sample
        self.files = []

    def fds(self):
        """(sockets, sorted targets of the other fds) of the process."""
        sockets, other = 0, []
        for target in fd_targets(self.pid):
            if target.startswith("socket:"):
                sockets += 1
            else:
                other.append(target)
        return sockets, sorted(other)

    def sample(self, label, reads=10):
        """Under load a request may be open at any moment: of several
        reads 50 ms apart keep the fewest fds (the state between requests)
        and the largest RSS. Sockets (connections that come and go with
        the load, kept-alive proxy connections) are counted apart from
        the other fds (files, pipes), which must not change at all."""
        sockets, others, rss = [], [], []
        for i in range(reads):
            if i:
                time.sleep(0.05)
            try:
                count = self.fds()
                value = proc_kib(self.pid, "VmRSS")
            except OSError:
                continue
            if value is None:
                continue
            sockets.append(count[0])
            others.append(count[1])
            rss.append(value)
        if not rss:
            self.samples.append((label, None, None, None))
            self.files.append([])
            return
        fewest = min(others, key=len)
        self.files.append(fewest)
        self.samples.append((label, max(rss), min(sockets), len(fewest)))

    def alive(self):
        return os.path.exists("/proc/%d" % self.pid)


def lmtp_pid_of(dovecot, client_sock):
    """The lmtp process at the other end of a TCP connection: the one
    whose fds include the server side socket's inode (lmtp serves one
    connection per process and keeps it for the whole session)."""
    port = client_sock.getsockname()[1]
    wanted = "%s:%04X" % ("0100007F", dovecot.lmtp_port)
    peer = "%s:%04X" % ("0100007F", port)
    inode = None
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1] == wanted and fields[2] == peer:
                inode = fields[9]
    if inode is None:
        return None
    for pid in dovecot.children("lmtp"):
        try:
            if "socket:[%s]" % inode in fd_targets(pid):
                return pid
        except OSError:
            continue
    return None


def register_all(dovecot, users):
    """Registers one token per user straight on the service socket (as
    doveadm does), pipelined on one connection."""
    lines = "".join("REGISTER\t%s\t%s\n" % (user, token)
                    for user, token in users.items()).encode()
    with ServiceConn(dovecot, timeout=30) as conn:
        ok, fail, _ = conn.pipeline([lines], len(users))
    if ok != len(users):
        raise RuntimeError("registration failed: %s" % fail)


class Load:
    """Deliveries at a fixed total rate from a few LMTP sessions."""

    def __init__(self, dovecot, users, rate, sessions, seed):
        self.dovecot = dovecot
        self.users = list(users)
        self.rate = rate
        self.sessions = sessions
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.last_delivery = {}          # user -> monotonic at MAIL FROM
        self.deliveries = collections.defaultdict(list)
        self.codes = collections.Counter()
        self.latencies = []
        self.errors = []
        self.threads = []
        self.lmtp_pid = None

    def pick(self):
        with self.lock:
            return self.random.choice(self.users)

    def worker(self, index, start, ready):
        client = self.dovecot.lmtp(timeout=30)
        client.ehlo_or_helo_if_needed()
        if index == 0:
            self.lmtp_pid = lmtp_pid_of(self.dovecot, client.sock)
        ready.set()
        n = 0
        try:
            while not self.stop.is_set():
                due = start + (n * self.sessions + index) / self.rate
                n += 1
                delay = due - time.monotonic()
                if delay > 0:
                    if self.stop.wait(delay):
                        break
                user = self.pick()
                sent = time.monotonic()
                try:
                    replies = lmtp_send(client, "soak@example.net", [user],
                                        make_message(to=user))
                except Exception as e:      # noqa: BLE001 - counted
                    with self.lock:
                        self.errors.append(repr(e))
                        self.codes["error"] += 1
                    client.close()
                    client = self.dovecot.lmtp(timeout=30)
                    continue
                with self.lock:
                    for code, _ in replies:
                        self.codes[code] += 1
                    self.latencies.append(time.monotonic() - sent)
                    if all(code == 250 for code, _ in replies):
                        # the first push of a window goes out before
                        # LMTP answers: count from the start of the
                        # transaction
                        self.last_delivery[user] = sent
                    self.deliveries[user].append((sent, time.monotonic()))
        finally:
            try:
                client.quit()
            except Exception:               # noqa: BLE001
                client.close()

    def start(self):
        start = time.monotonic() + 0.5
        for index in range(self.sessions):
            ready = threading.Event()
            thread = threading.Thread(target=self.worker,
                                      args=(index, start, ready),
                                      daemon=True)
            thread.start()
            ready.wait(10)
            self.threads.append(thread)

    def finish(self):
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)


def _fd_diff(before, after):
    gone = collections.Counter(before) - collections.Counter(after)
    new = collections.Counter(after) - collections.Counter(before)
    return "closed: %s; opened: %s" % (sorted(gone.elements()),
                                       sorted(new.elements()))


def pending_tokens(dovecot, tokens):
    """Those of tokens with a push still due in the service's database."""
    import shutil
    import sqlite3
    import tempfile
    # the service keeps the file locked: read a copy of it and its WAL
    path = os.path.join(dovecot.state_dir, "deltapush", "deltapush.sqlite")
    copy_dir = tempfile.mkdtemp(prefix="dpsoak-db-")
    try:
        copy = os.path.join(copy_dir, "copy.sqlite")
        for suffix in ("", "-wal"):
            if os.path.exists(path + suffix):
                shutil.copyfile(path + suffix, copy + suffix)
        db = sqlite3.connect(copy, timeout=10)
        try:
            rows = db.execute("SELECT token FROM tokens WHERE due_ms IS "
                              "NOT NULL").fetchall()
        finally:
            db.close()
    finally:
        shutil.rmtree(copy_dir)
    due = {row[0] for row in rows}
    return [t for t in tokens if t in due]


def percentile(values, p):
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=600,
                        help="seconds of load (default 600)")
    parser.add_argument("--rate", type=float, default=100,
                        help="deliveries per second (default 100)")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--fail-ratio", type=float, default=0.10,
                        help="share of proxy requests answered 500")
    parser.add_argument("--sessions", type=int, default=8,
                        help="parallel LMTP sessions")
    parser.add_argument("--debounce", default="10s",
                        help="deltapush_debounce (default the product's 10s)")
    parser.add_argument("--retry-base", default="2s",
                        help="deltapush_retry_base (shorter than the "
                        "default 8s so the drain at the end is bounded)")
    parser.add_argument("--drain", type=float, default=90,
                        help="seconds to wait for the last pushes")
    parser.add_argument("--warmup", type=float, default=None,
                        help="seconds of load before the start sample "
                        "(default 10%% of the duration, at most 60)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--rss-growth", type=float, default=0.10,
                        help="allowed RSS growth (default 0.10 = 10%%)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the Dovecot directory afterwards")
    parser.add_argument("--debug-log", action="store_true",
                        help="log_debug = category=deltapush")
    args = parser.parse_args()

    stage = os.environ.get("DELTAPUSH_STAGE")
    if not stage:
        sys.exit("DELTAPUSH_STAGE is not set (see soak.sh)")
    seed = args.seed if args.seed is not None else int(time.time())
    warmup = args.warmup if args.warmup is not None else \
        min(60.0, args.duration * 0.1)
    print("soak: %.0f s at %.0f deliveries/s over %d users, proxy failing "
          "%.0f%%, seed %d" % (args.duration, args.rate, args.users,
                               args.fail_ratio * 100, seed), flush=True)

    sink = FlakySink(args.fail_ratio, seed)
    sink.start()
    dovecot = DovecotInstance(
        stage_files=find_stage_files(stage), notify_url=sink.url,
        plugin_settings={
            "deltapush_debounce": args.debounce,
            "deltapush_retry_base": args.retry_base,
            "deltapush_service_timeout": "2s",
        },
        extra_config="log_debug = category=deltapush\n"
        if args.debug_log else "")
    failures = []
    try:
        dovecot.start()
        service = Process("service", dovecot.service_pid())
        users = {"soak%04d@example.org" % i: make_token()
                 for i in range(args.users)}
        register_all(dovecot, users)
        print("registered %d tokens" % len(users), flush=True)

        load = Load(dovecot, users, args.rate, args.sessions, seed)
        load_start = time.monotonic()
        load.start()
        if load.lmtp_pid is None:
            failures.append("could not identify session 0's lmtp process")
        lmtp = Process("lmtp", load.lmtp_pid or 0)

        time.sleep(max(0.0, warmup - (time.monotonic() - load_start)))
        service.sample("start")
        lmtp.sample("start")
        next_report = time.monotonic() + 30
        while time.monotonic() - load_start < args.duration:
            time.sleep(min(1.0, args.duration -
                           (time.monotonic() - load_start) + 0.01))
            if time.monotonic() >= next_report:
                next_report += 30
                with load.lock:
                    done = sum(load.codes.values())
                print("  %4.0f s: %d deliveries, %d pushes, service RSS "
                      "%s KiB" % (time.monotonic() - load_start, done,
                                  len(sink.requests()),
                                  proc_kib(service.pid, "VmRSS")),
                      flush=True)
        service.sample("end of load")
        lmtp.sample("end of load")
        load.finish()
        load_time = time.monotonic() - load_start

        # Every user's last delivery must be followed by a push the proxy
        # accepted; wait for the coalescing window and retries.
        def lost_users():
            ok_after = collections.defaultdict(float)
            for r in sink.requests():
                if r.status == 200:
                    ok_after[r.body] = max(ok_after[r.body], r.monotonic)
            return [u for u, t in load.last_delivery.items()
                    if ok_after.get(users[u].encode(), 0.0) < t]

        drain_start = time.monotonic()
        wait_until(lambda: not lost_users(), args.drain, interval=1.0)
        sink.wait_quiet(quiet=2.0, timeout=30)
        service.sample("after drain")
        lmtp.sample("after drain")
        # Not pushed yet but still due (a retry backing off): delayed, not
        # lost. Lost is what the service no longer means to push.
        lost = lost_users()
        still_due = set(pending_tokens(dovecot, [users[u] for u in lost]))
        delayed = [u for u in lost if users[u] in still_due]
        lost = [u for u in lost if users[u] not in still_due]

        requests = sink.requests()
        statuses = collections.Counter(r.status for r in requests)
        total = sum(load.codes.values())
        print("")
        print("deliveries: %d in %.0f s (%.1f/s), replies %s, errors %d" % (
            total, load_time, total / load_time, dict(load.codes),
            len(load.errors)))
        print("delivery latency: median %.1f ms, p99 %.1f ms, max %.1f ms" % (
            percentile(load.latencies, 0.5) * 1000,
            percentile(load.latencies, 0.99) * 1000,
            max(load.latencies or [0]) * 1000))
        print("users delivered to: %d of %d" % (len(load.last_delivery),
                                                len(users)))
        print("pushes: %d requests, %s; drained in %.0f s" % (
            len(requests), dict(statuses), time.monotonic() - drain_start))
        print("pushes lost (users whose last delivery got no accepted push "
              "after it and none is due): %d" % len(lost))
        print("pushes delayed (no accepted push yet, a retry is due): %d"
              % len(delayed))
        for user in delayed[:5]:
            print("  delayed %s: pushes %s" % (user, " ".join(
                "%.1f:%d" % (r.monotonic - load_start, r.status)
                for r in requests if r.body == users[user].encode())))
        for proc in (service, lmtp):
            for label, rss, sockets, others in proc.samples:
                fds = None if sockets is None else sockets + others
                print("%-8s %-12s RSS %6s KiB  fds %s (%s sockets, %s "
                      "other)" % (proc.name, label, rss, fds, sockets,
                                  others))

        if load.errors or any(code != 250 for code in load.codes):
            failures.append("deliveries failed: %s %s" % (
                dict(load.codes), load.errors[:3]))
        if lost:
            failures.append("%d users lost their push, e.g. %s" % (
                len(lost), lost[:3]))
            # what happened to the first few, in seconds since the load
            # started
            for user in lost[:5]:
                pushes = ["%.3f:%d" % (r.monotonic - load_start, r.status)
                          for r in requests
                          if r.body == users[user].encode()]
                print("lost %s: deliveries %s, pushes %s" % (
                    user, " ".join("%.3f-%.3f" % (a - load_start,
                                                  b - load_start)
                                   for a, b in load.deliveries[user]),
                    " ".join(pushes)))
        if dovecot.service_pids() != [service.pid]:
            failures.append("the service process changed: %s -> %s" % (
                service.pid, dovecot.service_pids()))
        for proc in (service, lmtp):
            start = proc.samples[0]
            end = proc.samples[1]
            if start[1] and end[1] and \
                    end[1] > start[1] * (1 + args.rss_growth):
                failures.append("%s RSS grew from %d to %d KiB" % (
                    proc.name, start[1], end[1]))
        for proc in (service, lmtp):
            start, end = proc.samples[0], proc.samples[1]
            if start[3] != end[3]:
                failures.append("%s has %s non-socket fds at the start, "
                                "%s at the end (%s)" % (
                                    proc.name, start[3], end[3],
                                    _fd_diff(proc.files[0], proc.files[1])))
        # connections: at most the parallel pushes (deltapush_max_parallel,
        # 64) plus the plugins' requests and the listener
        if service.samples[2][2] is not None and \
                service.samples[2][2] > 64 + args.sessions + 4:
            failures.append("service has %d sockets open after the drain"
                            % service.samples[2][2])
        if lmtp.samples[0][2] != lmtp.samples[1][2]:
            failures.append("lmtp sockets: %s at the start, %s at the end"
                            % (lmtp.samples[0][2], lmtp.samples[1][2]))
        log = dovecot.log_text()
        for word in ("Panic:", "Fatal:", "killed with signal"):
            if word in log:
                failures.append("the Dovecot log has %r" % word)
    finally:
        dovecot.stop()
        sink.stop()
        if args.keep:
            print("kept %s" % dovecot.root)
        else:
            dovecot.cleanup()

    print("")
    if failures:
        for failure in failures:
            print("FAIL: %s" % failure)
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
