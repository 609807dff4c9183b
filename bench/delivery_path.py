#!/usr/bin/python3
"""Where the delivery and registration time goes (issue 15, figures 2 and 6).

  delivery_path.py --stage STAGE seq [--count N] [--configs a,p,...]
      Sequential LMTP p50 (MAIL FROM -> 250 after DATA, one connection per
      instance, users round-robin) for instances running at once, each
      message sent to every instance in turn:
        a   no push plugins
        p   notify + push_notification loaded, no driver
        n   deltapush loaded, its driver skipping every mailbox (no NOTIFY)
        c   deltapush, default window
        c0  deltapush, debounce 0
      and variants of them (CONFIGS below: fsync never, no From: parse,
      a wrapped WAL, a second identical instance); per message also the
      CPU and run-queue time of each instance's lmtp and service.
  delivery_path.py --stage STAGE pair [--count N] [--configs a,c,...]
      Per instance, one lmtp process delivering each user's messages
      alternately into INBOX and into Other (no NOTIFY): the NOTIFY's
      cost without the bias between instances.
  delivery_path.py --stage STAGE trace [--count N] [--configs a,c,c0]
      The deliveries under `perf trace`: the lmtp's fsync time, its wait
      for the service's reply, the service's fdatasync.
  delivery_path.py --stage STAGE strace CONFIG [--count N]
      The same deliveries to one instance under
      `strace -f -tt -T -p <lmtp> -p <service>`; prints the syscalls whose
      time adds up most per delivery and keeps the trace (--keep DIR).
  delivery_path.py --stage STAGE load [--runs R] [--configs a,c,c0]
      Figure 1's load (smtp-source, 4 sessions, fresh Dovecot per run,
      runs interleaved) with the CPU split by process: each Dovecot
      process kind (lmtp, the service, log, auth, master ...), the
      smtp-source clients, the nginx sink and the whole machine, per
      message, and the run-queue wait of the live Dovecot processes.
  delivery_path.py --stage STAGE instr [--count N] [--configs a,p,...]
      Instructions per delivery, counted by valgrind's callgrind in the
      lmtp process and the deltapush service (user space only):
      the work each config adds, without the noise of timing a busy
      machine (system calls: the strace command).
  delivery_path.py --stage STAGE login [--rounds R] [--sessions N]
      Login sessions per second (LOGIN + one command + LOGOUT, 4 parallel
      clients, interleaved): a Dovecot without deltapush doing NOOP and
      SETMETADATA INBOX /private/comment, and a deltapush Dovecot doing
      NOOP, /private/comment and the already registered token.

As root, with a staged install (see bench/README); instances on
DELTAPUSH_BENCH_TMPDIR (default /var/tmp, on disk).
"""

import argparse
import collections
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bench  # noqa: E402
import benchlib  # noqa: E402
from benchlib import Dovecot, Lmtp, Sink, make_message, make_token  # noqa

SENDER = bench.SENDER
TOKEN_KEY = bench.TOKEN_KEY


class Plain(benchlib.Dovecot):
    """A Dovecot with or without the push plugins, no deltapush."""

    def __init__(self, push_plugins):
        benchlib.DovecotInstance.__init__(
            self, stage_files=None, notify_url=None, plugin_settings={},
            deltapush=False, push_plugins=push_plugins,
            tmpdir=benchlib.TMPDIR, prefix="dpbench-")
        self.kind = "none"


CONFIGS = {
    "a": "no push plugins",
    "p": "notify + push_notification, no driver",
    "n": "deltapush, driver skips the mailbox (no NOTIFY)",
    "c": "deltapush, default window",
    "c0": "deltapush, debounce 0",
    "cW": "deltapush, default window, 1500 registrations of others before (WAL wrapped)",
    "c0W": "deltapush, debounce 0, 1500 registrations of others before (WAL wrapped)",
    "cN": "deltapush, default window, deltapush_fsync = never",
    "cS": "deltapush, default window, deltapush_skip_self = no",
    "a2": "no push plugins (a second, identical instance)",
    "c2": "deltapush, default window (a second, identical instance)",
    "c0N": "deltapush, debounce 0, deltapush_fsync = never",
}


def make_instance(name, stage, sink):
    if name in ("a", "a2"):
        return Plain(False)
    if name == "p":
        return Plain(True)
    plugin = {}
    if name == "n":
        plugin["deltapush_mailboxes"] = "NoSuchMailbox"
    if name.startswith("c0"):
        plugin["deltapush_debounce"] = "0"
    if name.endswith("S"):
        plugin["deltapush_skip_self"] = "no"
    if name.endswith("N"):
        plugin["deltapush_fsync"] = "never"
    return Dovecot("deltapush", stage, sink.push_url("/notify"), plugin)


def warm_up(dc, users, tokens):
    """Registers every user's token (deltapush instances) and delivers a
    message to each user; returns that LMTP connection."""
    if dc.deltapush:
        for u in users:
            dc.imap_setmetadata(u, "INBOX", TOKEN_KEY, tokens[u])
    lm = Lmtp(dc.lmtp_port)
    for i, u in enumerate(users):
        lm.send(SENDER, u, make_message(SENDER, u, i))
    return lm


def start_one(name, stage, sink, users, tokens):
    dc = make_instance(name, stage, sink)
    try:
        dc.start()
        warm_up(dc, users, tokens).close()
        if name.endswith("W"):
            # past the first WAL checkpoint, SQLite writes its frames over
            # the old ones instead of growing the file: registrations of
            # other users, so that the mailboxes stay as in the others
            with dc.service() as sc:
                for i in range(1500):
                    r = sc.request("REGISTER", "wal%04d@example.org" % i,
                                   make_token(100000 + i))
                    if not r or r[0] != b"OK":
                        raise RuntimeError("REGISTER: %r" % (r,))
    except Exception:
        dc.cleanup()
        raise
    return dc


def start(names, stage, sink, users, tokens):
    instances = {}
    for name in names:
        instances[name] = start_one(name, stage, sink, users, tokens)
    return instances


def deliver(dc, users, count, first, lm=None):
    """count messages on lm, or on a connection of their own."""
    own = lm is None
    if own:
        lm = Lmtp(dc.lmtp_port)
    times = []
    for i in range(first, first + count):
        u = users[i % len(users)]
        t0, t1 = lm.send(SENDER, u, make_message(SENDER, u, 100000 + i))
        times.append((t1 - t0) / 1e6)
    if own:
        lm.close()
    return times


def cmd_seq(args, stage):
    """Each message goes to every instance in turn (order rotating), so a
    busy moment of the machine hits all alike; the difference to the first
    config is also taken message by message (median of the pairs)."""
    names = args.configs.split(",")
    users = [bench.user_name(i) for i in range(args.users)]
    tokens = {u: make_token(i) for i, u in enumerate(users)}
    sink = Sink()
    instances = {}
    times = {n: [] for n in names}
    load0 = open("/proc/loadavg").read().split()[:3]
    try:
        instances = start(names, stage, sink, users, tokens)
        conns = {n: Lmtp(instances[n].lmtp_port) for n in names}
        sched0 = {n: sched(instances[n]) for n in names}
        for i in range(args.count):
            u = users[i % len(users)]
            k = i % len(names)
            for n in names[k:] + names[:k]:
                t0, t1 = conns[n].send(SENDER, u,
                                       make_message(SENDER, u, 100000 + i))
                times[n].append((t1 - t0) / 1e6)
        sched1 = {n: sched(instances[n]) for n in names}
        for c in conns.values():
            c.close()
    finally:
        for dc in instances.values():
            dc.cleanup()
        sink.stop()
    load1 = open("/proc/loadavg").read().split()[:3]
    base = names[0]
    print("| config | msgs | p50 ms | p90 ms | p50 - %s | median of "
          "per-message differences |" % base)
    print("|---|---|---|---|---|---|")
    for n in names:
        t = times[n]
        diffs = [x - y for x, y in zip(t, times[base])]
        print("| %s %s | %d | %.3f | %.3f | %+.3f | %+.3f |"
              % (n, CONFIGS[n], len(t), bench.pct(t, 50), bench.pct(t, 90),
                 bench.pct(t, 50) - bench.pct(times[base], 50),
                 statistics.median(diffs)))
    print()
    print("Per message, from /proc/<pid>/schedstat of the lmtp process(es) "
          "and the deltapush service: on CPU, waiting for a CPU (run "
          "queue), and the rest of the LMTP time the lmtp process was "
          "neither (blocked: fsync, waiting for the client or the service)")
    print()
    print("| config | lmtp CPU ms | lmtp run queue ms | lmtp blocked ms "
          "| lmtp wakeups | service CPU ms | service run queue ms |")
    print("|---|---|---|---|---|---|---|")
    for n in names:
        d = {k: sched1[n][k][i] - sched0[n][k][i]
             for k in sched0[n] for i in range(1)}
        cnt = len(times[n])
        lm = [sched1[n]["lmtp"][i] - sched0[n]["lmtp"][i] for i in range(3)]
        sv = [sched1[n]["service"][i] - sched0[n]["service"][i]
              for i in range(3)]
        wall = sum(times[n]) / cnt
        print("| %s | %.3f | %.3f | %.3f | %.1f | %.3f | %.3f |"
              % (n, lm[0] / 1e6 / cnt, lm[1] / 1e6 / cnt,
                 wall - (lm[0] + lm[1]) / 1e6 / cnt, lm[2] / cnt,
                 sv[0] / 1e6 / cnt, sv[1] / 1e6 / cnt))
    print("load average: before %s, after %s" % (" ".join(load0),
                                                 " ".join(load1)))


def sched(dc):
    """Summed /proc/<pid>/schedstat (ns on CPU, ns waiting on a run queue,
    timeslices) of the instance's lmtp processes and its service."""
    def read(pids):
        total = [0, 0, 0]
        for p in pids:
            try:
                v = [int(x) for x in
                     open("/proc/%d/schedstat" % p).read().split()]
            except OSError:
                continue
            total = [a + b for a, b in zip(total, v)]
        return total
    return {"lmtp": read(dc.children("lmtp")),
            "service": read(dc.service_pids() if dc.deltapush else [])}


LINE = re.compile(r"^(?:\[pid\s+(\d+)\] |(\d+) )?(\d+):(\d+):(\d+\.\d+) "
                  r"(\w+)\((.*?)(?: <(\d+\.\d+)>)?$")


def cmd_strace(args, stage):
    users = [bench.user_name(i) for i in range(args.users)]
    tokens = {u: make_token(i) for i, u in enumerate(users)}
    sink = Sink()
    instances = {}
    keep = args.keep or "/tmp"
    out = os.path.join(keep, "strace-%s.txt" % args.config)
    try:
        instances = start([args.config], stage, sink, users, tokens)
        dc = instances[args.config]
        # one connection throughout: Dovecot 2.4 runs an lmtp process per
        # connection, and the one traced must be the one delivering
        lm = Lmtp(dc.lmtp_port)
        deliver(dc, users, 20, 0, lm)
        pids = dc.children("lmtp")
        if dc.deltapush:
            pids.append(dc.service_pid())
        names = {p: open("/proc/%d/comm" % p).read().strip() for p in pids}
        cmd = ["strace", "-f", "-tt", "-T", "-o", out]
        if args.trace:
            cmd += ["-e", "trace=" + args.trace]
        for p in pids:
            cmd += ["-p", str(p)]
        st = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        t = deliver(dc, users, args.count, 1000, lm)
        time.sleep(0.3)
        st.send_signal(signal.SIGINT)
        st.wait()
        lm.close()
    finally:
        for dc in instances.values():
            dc.cleanup()
        sink.stop()
    print("config %s (%s), %d deliveries under strace, p50 %.3f ms; "
          "trace in %s" % (args.config, CONFIGS[args.config], len(t),
                           bench.pct(t, 50), out))
    total = collections.defaultdict(float)
    calls = collections.Counter()
    for line in open(out):
        m = LINE.match(line.strip())
        if not m or m.group(8) is None:
            continue
        pid = int(m.group(1) or m.group(2) or 0)
        who = names.get(pid, "thread")
        call = m.group(6)
        total[(who, call)] += float(m.group(8)) * 1000
        calls[(who, call)] += 1
    print("| process | syscall | calls/delivery | ms/delivery |")
    print("|---|---|---|---|")
    for key, ms in sorted(total.items(), key=lambda kv: -kv[1])[:25]:
        print("| %s | %s | %.2f | %.3f |" % (key[0], key[1],
                                             calls[key] / len(t),
                                             ms / len(t)))


def cmd_pair(args, stage):
    """One instance per config, one lmtp process each: every user gets its
    messages alternately into INBOX (a NOTIFY in deltapush configs) and,
    by the +detail address, into the mailbox Other (deltapush_mailboxes
    leaves it out: no NOTIFY), the order alternating. The pairs share the
    process, its CPU and the moment, so their difference is the NOTIFY
    alone; config a (no push) gives the difference between the two
    mailboxes without push."""
    names = args.configs.split(",")
    users = [bench.user_name(i) for i in range(args.users)]
    tokens = {u: make_token(i) for i, u in enumerate(users)}
    sink = Sink()
    instances = {}
    inbox = {n: [] for n in names}
    other = {n: [] for n in names}
    load0 = open("/proc/loadavg").read().split()[:3]
    try:
        instances = start(names, stage, sink, users, tokens)
        conns = {n: Lmtp(instances[n].lmtp_port) for n in names}
        for n in names:
            for u in users:
                conns[n].send(SENDER, u.replace("@", "+Other@"),
                              make_message(SENDER, u, 0))
        for i in range(args.count):
            u = users[i % len(users)]
            k = i % len(names)
            for n in names[k:] + names[:k]:
                order = [(inbox, u), (other, u.replace("@", "+Other@"))]
                if (i // len(users)) % 2:
                    order.reverse()
                for acc, rcpt in order:
                    t0, t1 = conns[n].send(SENDER, rcpt, make_message(
                        SENDER, rcpt, 100000 + i))
                    acc[n].append((t1 - t0) / 1e6)
        for c in conns.values():
            c.close()
    finally:
        for dc in instances.values():
            dc.cleanup()
        sink.stop()
    load1 = open("/proc/loadavg").read().split()[:3]
    print("| config | pairs | INBOX p50 ms | Other p50 ms | INBOX - Other, "
          "p50 difference | median of per-pair differences |")
    print("|---|---|---|---|---|---|")
    for n in names:
        diffs = [x - y for x, y in zip(inbox[n], other[n])]
        print("| %s %s | %d | %.3f | %.3f | %+.3f | %+.3f |"
              % (n, CONFIGS[n], len(diffs), bench.pct(inbox[n], 50),
                 bench.pct(other[n], 50),
                 bench.pct(inbox[n], 50) - bench.pct(other[n], 50),
                 statistics.median(diffs)))
    print("load average: before %s, after %s" % (" ".join(load0),
                                                 " ".join(load1)))


PERF = re.compile(r"^\s*([\d.]+) \(\s*([\d.]+) ms\): (\S+?)/(\d+) "
                  r"(\w+)\((.*)\)\s+= (-?\d+)")


PERF_START = re.compile(r"^\s*([\d.]+) \(\s+\): (\S+?)/(\d+) (\w+)\((.*)\)"
                        r"\s+\.\.\.$")
PERF_END = re.compile(r"^\s*[\d.]+ \(\s*([\d.]+) ms\): (\S+?)/(\d+)\s+"
                      r"\.\.\. \[continued\]: (\w+)\(\)\)\s+= (-?\d+)")


def perf_run(name, stage, users, tokens, count, keep):
    """count deliveries to a fresh instance of config name under
    `perf trace` (tracepoints: the processes are not stopped per call as
    under strace)."""
    sink = Sink()
    out = os.path.join(keep, "perf-%s.txt" % name)
    instances = {}
    try:
        instances = start([name], stage, sink, users, tokens)
        dc = instances[name]
        deliver(dc, users, 20, 0)
        pids = dc.children("lmtp")
        if dc.deltapush:
            pids.append(dc.service_pid())
        st = subprocess.Popen(
            ["perf", "trace", "-o", out, "-e",
             "fsync,fdatasync,epoll_wait,read,write,rename,pwrite64",
             "-p", ",".join(str(p) for p in pids)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.5)
        t = deliver(dc, users, count, 1000)
        time.sleep(0.3)
        st.send_signal(signal.SIGINT)
        st.wait()
    finally:
        for dc in instances.values():
            dc.cleanup()
        sink.stop()
    calls = []
    started = {}
    for line in open(out):
        m = PERF.match(line)
        if m:
            calls.append((float(m.group(1)), float(m.group(2)),
                          m.group(3), int(m.group(4)), m.group(5),
                          m.group(6), int(m.group(7))))
            continue
        # A call that another process's line interrupted is printed in two
        m = PERF_START.match(line)
        if m:
            started[int(m.group(3))] = m
            continue
        m = PERF_END.match(line)
        if m and int(m.group(3)) in started:
            s0 = started.pop(int(m.group(3)))
            calls.append((float(s0.group(1)), float(m.group(1)),
                          s0.group(2), int(s0.group(3)), s0.group(4),
                          s0.group(5), int(m.group(5))))
    calls.sort()
    return t, calls


def fd_of(args):
    m = re.match(r"fd: (\d+)", args)
    return int(m.group(1)) if m else None


def cmd_trace(args, stage):
    users = [bench.user_name(i) for i in range(args.users)]
    tokens = {u: make_token(i) for i, u in enumerate(users)}
    os.makedirs(args.keep, exist_ok=True)
    print("| config | msgs | LMTP p50 ms | lmtp fsync+fdatasync ms/msg "
          "(calls) | lmtp waits for the OK ms/msg, p50 of waits | service "
          "fdatasync ms/msg, p50 |")
    print("|---|---|---|---|---|---|")
    for name in args.configs.split(","):
        t, calls = perf_run(name, stage, users, tokens, args.count,
                            args.keep)
        n = len(t)
        lm = [c for c in calls if c[2] == "lmtp"]
        svc = [c for c in calls if c[2] == "deltapush"]
        syncs = [c[1] for c in lm if c[4] in ("fsync", "fdatasync")]
        notify_len = len("NOTIFY\t%s\n" % users[0])
        fds = collections.Counter(fd_of(c[5]) for c in lm
                                  if c[4] == "write" and c[6] == notify_len)
        waits = []
        if fds:
            sfd = fds.most_common(1)[0][0]
            for a, b in zip(lm, lm[1:]):
                if a[4] == "epoll_wait" and b[4] == "read" and \
                        fd_of(b[5]) == sfd:
                    waits.append(a[1])
        ssync = [c[1] for c in svc if c[4] == "fdatasync"]
        print("| %s | %d | %.3f | %.3f (%.1f) | %s | %s |"
              % (name, n, bench.pct(t, 50), sum(syncs) / n, len(syncs) / n,
                 "%.3f, %.3f" % (sum(waits) / n, bench.pct(waits, 50))
                 if waits else "-",
                 "%.3f, %.3f" % (sum(ssync) / n, bench.pct(ssync, 50))
                 if ssync else "-"))
        sys.stdout.flush()


def cmd_login(args, stage):
    users = [bench.user_name(i) for i in range(args.users)]
    tokens = {u: make_token(i) for i, u in enumerate(users)}
    comment = {u: b'SETMETADATA INBOX (/private/comment "bench")'
               for u in users}
    noop = {u: b"NOOP" for u in users}
    token = {u: ('SETMETADATA INBOX (%s "%s")' % (TOKEN_KEY, tokens[u]))
             .encode() for u in users}
    sink = Sink()
    plain = Plain(False)
    dp = Dovecot("deltapush", stage, sink.push_url("/notify"), {})
    kinds = [("plain", plain, "NOOP", noop),
             ("plain", plain, "SETMETADATA /private/comment", comment),
             ("deltapush", dp, "NOOP", noop),
             ("deltapush", dp, "SETMETADATA /private/comment", comment),
             ("deltapush", dp, "SETMETADATA token (registered)", token)]
    rates = collections.defaultdict(list)
    times = collections.defaultdict(list)
    cpu = collections.defaultdict(float)
    load0 = open("/proc/loadavg").read().split()[:3]
    try:
        plain.start()
        dp.start()
        for u in users:
            dp.imap_setmetadata(u, "INBOX", TOKEN_KEY, tokens[u])
            plain.imap_setmetadata(u, "INBOX", "/private/comment", "bench")
            dp.imap_setmetadata(u, "INBOX", "/private/comment", "bench")
        for k in kinds:
            bench.login_block(k[1], users, k[3], 2 * len(users),
                              args.workers)
        for rnd in range(args.rounds):
            order = kinds if rnd % 2 == 0 else kinds[::-1]
            for k in order:
                c0 = k[1].cpu()
                rate, ts = bench.login_block(k[1], users, k[3],
                                             args.sessions, args.workers)
                cpu[k[:3]] += k[1].cpu() - c0
                rates[k[:3]].append(rate)
                times[k[:3]] += ts
    finally:
        plain.cleanup()
        dp.cleanup()
        sink.stop()
    load1 = open("/proc/loadavg").read().split()[:3]
    print("| Dovecot | command | rounds (sessions/s) | median | vs its NOOP "
          "| session p50 ms | Dovecot CPU ms/session |")
    print("|---|---|---|---|---|---|---|")
    base = {}
    for k in kinds:
        key = k[:3]
        med = statistics.median(rates[key])
        if k[2] == "NOOP":
            base[k[0]] = med
        print("| %s | %s | %s | %.1f | %.3f | %.2f | %.2f |"
              % (k[0], k[2], " / ".join("%.0f" % r for r in rates[key]),
                 med, med / base[k[0]], bench.pct(times[key], 50),
                 cpu[key] * 1000 / (args.sessions * args.rounds)))
    print("load average: before %s, after %s" % (" ".join(load0),
                                                 " ".join(load1)))


def cmd_load(args, stage):
    sizes = dict(bench.FULL)
    sizes["messages"] = args.messages
    names = args.configs.split(",")
    users = [bench.user_name(i) for i in range(sizes["users"])]
    tokens = {u: make_token(i) for i, u in enumerate(users)}
    nginx = benchlib.Nginx()
    rows = {n: [] for n in names}
    load0 = open("/proc/loadavg").read().split()[:3]
    try:
        for run in range(args.runs):
            order = names[run % len(names):] + names[:run % len(names)]
            for n in order:
                dc = start_one(n, stage, nginx, users, tokens)
                try:
                    per_user = sizes["messages"] // len(users)
                    before = nginx.count()
                    cpu0, q0, s0 = benchlib.tree_cpu_by_name(dc.master_pid)
                    ng0 = nginx.cpu()
                    ch0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                    perf = None
                    if args.perf and run == 0:
                        perf = subprocess.Popen(
                            ["perf", "record", "-a", "-q"] +
                            args.perf_args.split() + ["-o",
                             os.path.join(args.perf, n + ".data")],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
                        time.sleep(1.0)
                    busy0 = benchlib.system_busy()
                    t0 = time.monotonic()
                    errors = bench.smtp_source_load(
                        dc.lmtp_port, users, sizes["sessions"], per_user)
                    t1 = time.monotonic()
                    busy1 = benchlib.system_busy()
                    cpu1, q1, s1 = benchlib.tree_cpu_by_name(dc.master_pid)
                    ch1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                    ng1 = nginx.cpu()
                    if perf is not None:
                        perf.send_signal(signal.SIGINT)
                        perf.wait()
                    if errors:
                        raise RuntimeError("; ".join(errors))
                    msgs = per_user * len(users)
                    r = {k: (cpu1[k] - cpu0[k]) * 1000 / msgs
                         for k in set(cpu1) | set(cpu0)}
                    r.update({"queue " + k: (q1[k] - q0[k]) * 1000 / msgs
                              for k in q1})
                    r.update({"switches " + k: (s1[k] - s0[k]) / msgs
                              for k in s1})
                    r["smtp-source"] = ((ch1.ru_utime + ch1.ru_stime) -
                                        (ch0.ru_utime + ch0.ru_stime)) \
                        * 1000 / msgs
                    r["nginx"] = (ng1 - ng0) * 1000 / msgs
                    r["machine"] = (busy1 - busy0) * 1000 / msgs
                    r["rate"] = msgs / (t1 - t0)
                    r["pushes"] = nginx.count() - before
                    rows[n].append(r)
                    bench.log("load %s run %d: %.0f msg/s, lmtp %.3f, "
                              "service %.3f, machine %.3f ms/msg"
                              % (n, run + 1, r["rate"], r.get("lmtp", 0),
                                 r.get("deltapush", 0), r["machine"]))
                finally:
                    dc.cleanup()
                if dc.deltapush:
                    nginx.wait_quiet(0.5, 30)
    finally:
        nginx.stop()
    load1 = open("/proc/loadavg").read().split()[:3]
    keys = sorted({k for n in names for r in rows[n] for k in r}
                  - {"rate", "pushes"})
    keys = [k for k in keys
            if any(statistics.median(r.get(k, 0) for r in rows[n]) >= 0.0005
                   for n in names)]
    print("%d runs of %d messages per config, interleaved; medians per "
          "message, from the first message to the last 250 (the pushes of "
          "the default window mostly come after): NAME = CPU ms of the "
          "Dovecot processes of that name (deltapush: the service; "
          "reaped: exited ones), smtp-source and nginx likewise, machine = "
          "every CPU busy; queue NAME = ms waiting for a CPU; switches "
          "NAME = times scheduled in" % (args.runs, sizes["messages"]))
    print()
    print("| | " + " | ".join(names) + " | " +
          " | ".join("%s - %s" % (n, names[0]) for n in names[1:]) + " |")
    print("|---" * (1 + 2 * len(names) - 1) + "|")
    for k in ["rate"] + keys:
        med = [statistics.median(r.get(k, 0) for r in rows[n])
               for n in names]
        fmtv = "%.0f" if k == "rate" else "%.3f"
        if k.startswith("switches"):
            fmtv = "%.2f"
        print("| %s | " % k + " | ".join(fmtv % v for v in med) + " | " +
              " | ".join(fmtv.replace("%", "%+") % (v - med[0])
                         for v in med[1:]) + " |")
    print()
    for n in names:
        print("%s rates: %s" % (n, " ".join("%.0f" % r["rate"]
                                            for r in rows[n])))
    print("load average: before %s, after %s" % (" ".join(load0),
                                                 " ".join(load1)))


CALLGRIND = ["/usr/bin/valgrind", "-q", "--tool=callgrind", "--dump-instr=no",
             "--collect-atstart=yes"]


def callgrind_pid(dc, kind):
    """The pid of the instance's process of kind ("lmtp", "deltapush")
    running under callgrind."""
    for pid, (ppid, name, _) in \
            benchlib.dovecot_instance.process_table().items():
        if ppid != dc.process.pid or not name.startswith("callgrind"):
            continue
        try:
            argv = open("/proc/%d/cmdline" % pid).read().split("\0")
        except OSError:
            continue
        if any(os.path.basename(a) == kind for a in argv):
            return pid
    return None


def callgrind_ir(out_dir, pid, before):
    """Instructions counted in pid since the last zeroing: dump and read
    the newest dump's totals."""
    subprocess.run(["callgrind_control", "-d", str(pid)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        dumps = [f for f in os.listdir(out_dir)
                 if f.startswith("cg.%d" % pid) and f not in before]
        for f in dumps:
            text = open(os.path.join(out_dir, f)).read()
            m = re.search(r"^(?:totals|summary): (\d+)", text, re.M)
            if m:
                return int(m.group(1)), f
        time.sleep(0.2)
    raise RuntimeError("no callgrind dump from %d" % pid)


def cmd_instr(args, stage):
    names = args.configs.split(",")
    users = [bench.user_name(i) for i in range(args.users)]
    tokens = {u: make_token(i) for i, u in enumerate(users)}
    sink = Sink()
    out_dir = args.keep or tempfile.mkdtemp(prefix="dpbench-callgrind-")
    os.makedirs(out_dir, exist_ok=True)
    os.chmod(out_dir, 0o1777)
    rows = {}
    try:
        for n in names:
            cg = " ".join(CALLGRIND + ["--callgrind-out-file=%s/cg.%%p"
                                       % out_dir])
            dc = make_instance(n, stage, sink)
            # valgrind needs more address space than Dovecot's default
            unlimited = ("unlimited" if benchlib.dovecot_instance.DOVECOT_24
                         else "0")
            dc.extra_config += (
                "service lmtp {\n  executable = %s /usr/lib/dovecot/lmtp\n"
                "  vsz_limit = %s\n}\n" % (cg, unlimited))
            if dc.deltapush:
                service = dc.stage_files["service"]
                dc.stage_files = dict(dc.stage_files,
                                      service="%s %s" % (cg, service))
                dc.extra_config += ("service deltapush {\n"
                                    "  vsz_limit = %s\n}\n" % unlimited)
                # under valgrind the process has the tool's name
                dc.service_pids = (
                    lambda dc=dc: [p for p in [callgrind_pid(dc, "deltapush")]
                                   if p])
            dc.write_config()
            try:
                dc.start()
                lm = warm_up(dc, users, tokens)
                pids = {"lmtp": callgrind_pid(dc, "lmtp")}
                if dc.deltapush:
                    pids["service"] = callgrind_pid(dc, "deltapush")
                for pid in pids.values():
                    subprocess.run(["callgrind_control", "-z", str(pid)],
                                   check=True, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
                time.sleep(1.0)
                for i in range(args.count):
                    u = users[i % len(users)]
                    lm.send(SENDER, u, make_message(SENDER, u, 1000 + i))
                time.sleep(1.0)
                before = set(os.listdir(out_dir))
                rows[n] = {}
                for k, pid in pids.items():
                    ir, dump = callgrind_ir(out_dir, pid, before)
                    rows[n][k] = ir / args.count
                    if args.keep:
                        os.rename(os.path.join(out_dir, dump),
                                  os.path.join(out_dir, "%s.%s" % (k, n)))
                lm.close()
            finally:
                dc.cleanup()
    finally:
        sink.stop()
        if not args.keep:
            subprocess.run(["rm", "-rf", out_dir])
    base = rows[names[0]]["lmtp"]
    print("%d sequential deliveries per config after a warm-up; "
          "instructions per delivery (user space, callgrind)" % args.count)
    print()
    print("| config | lmtp instructions | - %s | service instructions |"
          % names[0])
    print("|---|---|---|---|")
    for n in names:
        r = rows[n]
        print("| %s %s | %.0f | %+.0f | %s |"
              % (n, CONFIGS[n], r["lmtp"], r["lmtp"] - base,
                 "%.0f" % r["service"] if "service" in r else "-"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stage", required=True)
    ap.add_argument("--users", type=int, default=50)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("seq")
    s.add_argument("--configs", default="a,p,n,c,c0")
    s.add_argument("--count", type=int, default=500)
    s = sub.add_parser("pair")
    s.add_argument("--configs", default="a,c,c0")
    s.add_argument("--count", type=int, default=1000)
    s = sub.add_parser("strace")
    s.add_argument("config", choices=sorted(CONFIGS))
    s.add_argument("--count", type=int, default=200)
    s.add_argument("--trace", default="")
    s.add_argument("--keep")
    s = sub.add_parser("trace")
    s.add_argument("--configs", default="a,c,c0")
    s.add_argument("--count", type=int, default=300)
    s.add_argument("--keep", default="/tmp/deltapush-trace")
    s = sub.add_parser("load")
    s.add_argument("--configs", default="a,c,c0")
    s.add_argument("--runs", type=int, default=7)
    s.add_argument("--messages", type=int, default=1000)
    s.add_argument("--perf-args", default="",
                   help="more perf record arguments, e.g. '-g'")
    s.add_argument("--perf", help="perf record -a the first run of each "
                   "config into DIR/CONFIG.data")
    s = sub.add_parser("instr")
    s.add_argument("--configs", default="a,p,n,c,c0")
    s.add_argument("--count", type=int, default=200)
    s.add_argument("--keep", help="keep the callgrind files in this "
                   "directory, as lmtp.CONFIG")
    s = sub.add_parser("login")
    s.add_argument("--rounds", type=int, default=4)
    s.add_argument("--sessions", type=int, default=100)
    s.add_argument("--workers", type=int, default=4)
    args = ap.parse_args()
    stage = benchlib.find_stage_files(args.stage)
    {"seq": cmd_seq, "pair": cmd_pair, "strace": cmd_strace, "trace": cmd_trace,
     "load": cmd_load, "instr": cmd_instr, "login": cmd_login}[args.cmd](
        args, stage)
    return 0


if __name__ == "__main__":
    sys.exit(main())
