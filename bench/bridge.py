"""deltapush-bridge with many accounts idling on one remote Dovecot.

A stock Dovecot on loopback (TLS with a private CA, imap processes
serving many connections) plays the remote server; the local Dovecot
runs deltapush and the bridge with N accounts (default 1000), one remote
user each, each waking one literal token. Measures, through the
integration harness (tests/integration):

  - how long until all N accounts watch their INBOX after the start,
  - the bridge's RSS and CPU time while all accounts idle (10 s),
  - new mail -> push latency: LMTP delivery to the remote finished ->
    the push for that account's token at the sink, p50/p99 over M
    sequential deliveries to random accounts; this includes the remote
    Dovecot's own IDLE notification delay and the service's coalescing
    (debounce 0 here: every NOTIFY is pushed at once),
  - the remote's IDLE delay on its own: delivery finished -> EXISTS on
    an IDLEing connection of our own (same M),
  - reconnect after the remote restarts: remote up again -> all N
    accounts watching again.

    DELTAPUSH_STAGE=build/stage python3 bench/bridge.py [N] [M]

Memory: the RSS above is taken again, in fresh bridges on the same
remote, with N and with N/10 accounts (the difference is the cost of
one account), R rounds (default 2) of each. With --compare BINARY (a
deltapush-bridge built from other sources, e.g. before a change) the
rounds alternate between that binary and the staged one, so that both
see the same machine load:

    python3 bench/bridge.py [--compare BINARY] [--rounds R] [N] [M]

--wrap "heaptrack -o DIR/bridge" runs the first bridge (the one the
latency and reconnect figures come from, which suffer from it) under a
profiler; heaptrack_print --print-peaks DIR/bridge.zst then shows where
the memory of the idling accounts was allocated (it peaks there).

Prints the figures; no assertion (targets: p99 <= 1 s plus the remote's
own delay, idle CPU ~ 0, RSS <= 64 MiB, reconnect <= 60 s).
"""

import argparse
import os
import random
import re
import shutil
import socket
import ssl
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                os.pardir, "tests", "integration"))

from dovecot_instance import (DOVECOT_24, DOVECOT_VERSION,  # noqa: E402
                              DovecotInstance, find_stage_files, proc_kib,
                              wait_until)
from helpers import make_token  # noqa: E402
from sink import Sink  # noqa: E402
from pki import make_pki  # noqa: E402
from test_bridge import Account, Bridged, Remote  # noqa: E402


class BenchBridged(Bridged):
    """Bridged, optionally with another deltapush-bridge binary."""

    def __init__(self, *args, binary=None, wrap=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.binary = binary
        self.wrap = wrap

    def config(self):
        text = super().config()
        if self.binary is not None:
            text = re.sub(r"(\n  executable = )\S+",
                          lambda m: m.group(1) + self.binary, text, count=1)
        if self.wrap is not None:
            # the master wants an absolute path
            words = self.wrap.split()
            words[0] = shutil.which(words[0]) or words[0]
            text = text.replace("\n  executable = ",
                                "\n  executable = %s " % " ".join(words), 1)
        return text


def remote_config(accounts):
    """imap processes that serve many connections each, logins too."""
    restart = "restart_request_count = unlimited" if DOVECOT_24 \
        else "service_count = 0"
    return ("service imap {\n  client_limit = %d\n  %s\n"
            "  process_limit = 8\n}\n"
            "service imap-login {\n  client_limit = %d\n  %s\n"
            "  process_min_avail = 2\n}\n"
            "default_client_limit = %d\n"
            % (accounts // 4 + 10, restart, accounts + 100, restart,
               accounts * 2 + 100))


def bridge_pid(bridge):
    # the process name is the binary's, cut to 15 characters
    name = os.path.basename(bridge.binary or "deltapush-bridge")[:15]
    if bridge.wrap is not None:
        # the profiler's process is the master's child
        name = os.path.basename(bridge.wrap.split()[0])[:15]
    pids = bridge.instance.children(name)
    return pids[0] if pids else None


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def watching_count(instance, offset):
    return len(set(re.findall(r"bridge\((b\d+)\): Watching INBOX",
                              instance.log_since(offset))))


def memory_kib(pid):
    """VmRSS, and its anonymous (heap) and file-backed parts, in KiB"""
    return (proc_kib(pid, "VmRSS"), proc_kib(pid, "RssAnon"),
            proc_kib(pid, "RssFile"))


def idle_figures(bridge, n, offset=0):
    """Waits until all n accounts watch, then returns (seconds until
    then, RSS figures, CPU seconds in 10 s of idling)."""
    start = time.monotonic()
    assert wait_until(lambda: watching_count(bridge.instance, offset) == n,
                      300, interval=0.5), watching_count(bridge.instance,
                                                         offset)
    startup = time.monotonic() - start
    pid = bridge_pid(bridge)
    time.sleep(2)
    ticks = cpu_ticks(pid)
    time.sleep(10)
    idle_cpu = (cpu_ticks(pid) - ticks) / os.sysconf("SC_CLK_TCK")
    return startup, memory_kib(pid), idle_cpu


def memory_rounds(factory, sink, accounts, binaries, rounds):
    """RSS with all accounts and with a tenth of them, alternating the
    binaries; returns {binary: {count: [(rss, anon, file), ...]}}"""
    counts = (len(accounts), max(1, len(accounts) // 10))
    result = {b: {c: [] for c in counts} for b in binaries}
    for _ in range(rounds):
        for count in counts:
            for binary in binaries:
                bridge = BenchBridged(factory, sink, accounts[:count],
                                      binary=binary)
                try:
                    bridge.start()
                    _, mem, _ = idle_figures(bridge, count)
                finally:
                    bridge.instance.cleanup()
                result[binary][count].append(mem)
                print("  %s, %d accounts: RSS %.1f MiB (anon %.1f, "
                      "file %.1f)" % (binary or "staged", count,
                                      mem[0] / 1024, mem[1] / 1024,
                                      mem[2] / 1024), flush=True)
    return result


def print_memory(result, rounds):
    for binary, by_count in result.items():
        (big, big_mems), (small, small_mems) = sorted(
            by_count.items(), reverse=True)
        rss = statistics.median(m[0] for m in big_mems)
        anon = statistics.median(m[1] for m in big_mems)
        small_rss = statistics.median(m[0] for m in small_mems)
        print("%s: RSS with %d accounts %.1f MiB (anon %.1f MiB), with "
              "%d %.1f MiB: %.0f bytes per account (median of %d)"
              % (binary or "staged bridge", big, rss / 1024, anon / 1024,
                 small, small_rss / 1024,
                 (rss - small_rss) * 1024 / (big - small), rounds))


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * len(values))))]


def idle_delay(remote, pki, user, deliveries):
    """delivery finished -> EXISTS on our own IDLE connection, in ms."""
    ctx = ssl.create_default_context(cafile=pki["ca"])
    raw = socket.create_connection(("127.0.0.1", remote.imaps_port))
    s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    f = s.makefile("rb")
    f.readline()
    s.sendall(b"a LOGIN %s pass\r\n" % user.encode())
    while not f.readline().startswith(b"a "):
        pass
    s.sendall(b"b EXAMINE INBOX\r\n")
    while not f.readline().startswith(b"b "):
        pass
    s.sendall(b"c IDLE\r\n")
    f.readline()
    times = []
    for _ in range(deliveries):
        remote.deliver(user)
        done = time.monotonic()
        while b"EXISTS" not in f.readline():
            pass
        times.append((time.monotonic() - done) * 1000)
    s.close()
    return times


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("accounts", type=int, nargs="?", default=1000)
    parser.add_argument("deliveries", type=int, nargs="?", default=200)
    parser.add_argument("--compare", metavar="BINARY",
                        help="another deltapush-bridge for the memory "
                        "rounds")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--config", metavar="TEXT", default="",
                        help="more settings for the local Dovecot, e.g. "
                        "\"ssl_curve_list = X25519:prime256v1\"")
    parser.add_argument("--wrap", metavar="COMMAND",
                        help="run the first bridge under COMMAND")
    args = parser.parse_args()
    n, m = args.accounts, args.deliveries
    if n < 2:
        parser.error("at least 2 accounts")
    stage = find_stage_files(os.environ["DELTAPUSH_STAGE"])
    pki = make_pki()
    sink = Sink()
    sink.start()
    remote = Remote(pki, extra_config=remote_config(n))
    remote.ca = pki["ca"]
    remote.start(timeout=60)

    def factory(sink=None, settings=None, start=True):
        instance = DovecotInstance(stage_files=stage, notify_url=sink.url,
                                   plugin_settings={"deltapush_debounce": "0"})
        if args.config:
            instance.extra_config += args.config + "\n"
        if start:
            instance.start()
        return instance

    users = ["bench%d@example.org" % i for i in range(n)]
    tokens = [make_token(64) for _ in range(n)]
    accounts = [Account("b%d" % i, users[i], remote.imaps_port, ca=remote.ca,
                        tokens=[tokens[i]]) for i in range(n)]
    bridge = BenchBridged(factory, sink, accounts, wrap=args.wrap)
    try:
        bridge.start()
        startup, mem, idle_cpu = idle_figures(bridge, n)
        rss = mem[0]

        latencies = []
        for _ in range(m):
            i = random.randrange(n)
            remote.deliver(users[i])
            done = time.monotonic()
            got = sink.wait_for_bodies([tokens[i]], since=done - 0.001,
                                       timeout=30)
            assert got, "no push for account b%d" % i
            latencies.append((got[0].monotonic - done) * 1000)
        own = idle_delay(remote, pki, "benchidle@example.org", m)

        offset = bridge.instance.log_size()
        remote.stop()
        remote.start(timeout=60)
        up = time.monotonic()
        assert wait_until(lambda: watching_count(bridge.instance, offset) == n,
                          600, interval=0.5)
        reconnect = time.monotonic() - up
        bridge.instance.cleanup()

        binaries = [None] if args.compare is None else \
            [os.path.abspath(args.compare), None]
        memory = memory_rounds(factory, sink, accounts, binaries,
                               args.rounds)

        print("Dovecot %s, %d accounts, %d deliveries" % (
            ".".join(map(str, DOVECOT_VERSION)), n, m))
        print("all watching after start: %.1f s" % startup)
        print("bridge RSS: %.1f MiB (anon %.1f MiB, file %.1f MiB)"
              % (rss / 1024, mem[1] / 1024, mem[2] / 1024))
        print("bridge CPU while idle: %.2f s in 10 s" % idle_cpu)
        print("new mail -> push: p50 %.1f ms, p99 %.1f ms" % (
            statistics.median(latencies), percentile(latencies, 99)))
        print("remote's own IDLE delay: p50 %.1f ms, p99 %.1f ms" % (
            statistics.median(own), percentile(own, 99)))
        print("all watching again after the remote restarted: %.1f s"
              % reconnect)
        print_memory(memory, args.rounds)
    finally:
        bridge.instance.cleanup()
        remote.cleanup()
        sink.stop()


if __name__ == "__main__":
    main()
