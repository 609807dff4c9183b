#!/usr/bin/python3
"""deltapush benchmarks: delivery overhead, push latency, login with token
re-registration, sender throughput, scale and coalescing, measured side by
side on this machine, on its disk (and on tmpfs as a second column).

Run through bench/run.sh (make bench / make bench-smoke), which installs the
tools and stages the build. Needs root (it starts Dovecot and nginx).
"""

import argparse
import datetime
import math
import os
import platform
import random
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import benchlib  # noqa: E402
from benchlib import (Dovecot, Lmtp, Nginx, Sink, make_message,  # noqa: E402
                      make_token, token_key)

SENDER = "sender@example.net"
DOMAIN = "example.org"
OX_KEY = "/private/vendor/vendor.dovecot/http-notify"
TOKEN_KEY = "/private/devicetoken"

FULL = dict(users=50, messages=1000, runs=7, sessions=4, sequential=500,
            login_sessions=100, login_rounds=3,
            login_workers=4, sender_tokens=50000, sender_runs=3,
            sender_e2e_tokens=20000,
            scale_users=1000000, scale_samples=2000, coalesce_messages=1000,
            coalesce_secs=10.0, coalesce_debounce=None)
SMOKE = dict(users=10, messages=200, runs=1, sessions=2, sequential=20,
             login_sessions=40, login_rounds=2,
             login_workers=2, sender_tokens=2000, sender_runs=2,
             sender_e2e_tokens=1000,
             scale_users=10000, scale_samples=200, coalesce_messages=50,
             coalesce_secs=2.0, coalesce_debounce="2s")

# Figures to reach (issue 15: on disk, default fsync, 2 cores)
TARGET_RATIO_DEFAULT = 0.95
TARGET_RATIO_NODEBOUNCE = 0.90
TARGET_SEQ_EXTRA_MS = 0.2
TARGET_LAT_P50_MS = 0.5
TARGET_LAT_P99_MS = 2.0
TARGET_LOGIN_RATIO = 0.95
TARGET_CPU_PER_PUSH_MS = 0.03
TARGET_H1_RATE = 30000
TARGET_H2_RATE = 50000
TARGET_DB_BYTES_PER_TOKEN = 1200
TARGET_RSS_MIB = 32

DEFAULT_DEBOUNCE_SECS = 10.0


def log(msg):
    sys.stderr.write("[%s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def pct(values, p):
    """Nearest-rank percentile."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(math.ceil(p / 100.0 * len(s))) - 1))
    return s[k]


def fmt(v, digits=2):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if isinstance(v, int):
        return "{:,}".format(v)
    return "{:,.{d}f}".format(v, d=digits)


def user_name(i):
    return "u%04d@%s" % (i, DOMAIN)


# ---------------------------------------------------------------------------
# Report


class Report:
    def __init__(self):
        self.sections = []
        self.checks = []   # (figure, what, measured, target, ok, storage)
        self.foreign = []  # (figure, share of the machine used by others)
        # Where the instances of the figures now running live
        self.storage = "disk"

    def section(self, title, header, rows, notes=(), meter=None):
        notes = list(notes)
        title = "%s [%s]" % (title, self.storage)
        if meter is not None:
            m = meter.stop()
            self.foreign.append(("%s %s" % (title.split(".")[0],
                                            self.storage),
                                 m["foreign_share"]))
            notes.append("other processes on the machine used %.0f%% of its "
                         "CPU while this figure ran%s" % (
                             100 * m["foreign_share"],
                             " -- WARNING: the figures are disturbed"
                             if m["foreign_share"] > 0.05 else ""))
        self.sections.append((title, header, rows, list(notes)))
        self.print_section(title, header, rows, notes)

    def check(self, figure, what, measured, target, ok):
        self.checks.append((figure, what, measured, target, ok,
                            self.storage))

    def check_rows(self):
        """One row per target: the disk verdict, and the tmpfs figure next
        to it where there is one."""
        rows = []
        index = {}
        for f, w, m, t, ok, storage in self.checks:
            key = (f, w)
            if key not in index:
                index[key] = len(rows)
                rows.append([f, w, t, "-", "-", "-"])
            row = rows[index[key]]
            if storage == "disk":
                row[3] = m
                row[4] = "ok" if ok else "MISS"
            else:
                row[5] = "%s (%s)" % (m, "ok" if ok else "miss")
        return rows

    def misses(self):
        return [r for r in self.check_rows() if r[4] != "ok"]

    @staticmethod
    def print_section(title, header, rows, notes):
        widths = [len(h) for h in header]
        for row in rows:
            for i, cell in enumerate(row):
                widths[i] = max(widths[i], len(str(cell)))
        out = ["", "== %s ==" % title]
        out.append("  ".join(h.ljust(widths[i])
                             for i, h in enumerate(header)))
        out.append("  ".join("-" * w for w in widths))
        for row in rows:
            out.append("  ".join(str(c).ljust(widths[i])
                                 for i, c in enumerate(row)))
        for note in notes:
            out.append("  * " + note)
        print("\n".join(out))
        sys.stdout.flush()

    CHECK_HEADER = ("fig", "what", "target", "measured (disk)", "verdict",
                    "tmpfs")

    def print_checks(self):
        self.print_section("Targets (issue 15)", self.CHECK_HEADER,
                           self.check_rows(), ())

    def markdown(self, machine):
        md = ["# deltapush benchmark results", ""]
        md.append("Measured %s with `make bench` (bench/run.sh)."
                  % machine["date"])
        md.append("")
        md.append("## Machine")
        md.append("")
        md.append("| | |")
        md.append("|---|---|")
        for k, v in machine.items():
            md.append("| %s | %s |" % (k, v))
        md.append("")
        md.append("## Targets (issue 15)")
        md.append("")
        md.append("Verdicts are on the machine's disk with Dovecot's default "
                  "`mail_fsync`; the tmpfs column is the same figure with "
                  "every instance on /dev/shm.")
        md.append("")
        md.append("| " + " | ".join(self.CHECK_HEADER) + " |")
        md.append("|---|---|---|---|---|---|")
        for row in self.check_rows():
            if row[4] == "MISS":
                row[4] = "**MISS**"
            md.append("| " + " | ".join(str(c) for c in row) + " |")
        for title, header, rows, notes in self.sections:
            md.append("")
            md.append("## " + title)
            md.append("")
            md.append("| " + " | ".join(header) + " |")
            md.append("|" + "---|" * len(header))
            for row in rows:
                md.append("| " + " | ".join(str(c) for c in row) + " |")
            if notes:
                md.append("")
                for n in notes:
                    md.append("- " + n)
        md.append("")
        return "\n".join(md)


# ---------------------------------------------------------------------------
# Machine


def _storage(d):
    mnt, fstype, dev = benchlib.storage_of(d)
    try:
        p50, p99 = benchlib.fsync_latency(d)
        lat = "4 KiB write + fdatasync p50 %.3f ms, p99 %.3f ms" % (p50, p99)
    except OSError as e:
        lat = "fsync latency not measured: %s" % e
    return "%s on %s (%s, %s); %s" % (d, mnt, fstype, dev, lat)


def machine_info():
    def cmd(*args):
        try:
            return subprocess.run(args, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except OSError:
            return "?"

    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    debian = "?"
    try:
        with open("/etc/debian_version") as f:
            debian = f.read().strip()
    except OSError:
        pass

    def pkg(name):
        return cmd("dpkg-query", "-W", "-f", "${Version}", name) or "?"

    return {
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "cores (nproc)": cmd("nproc"),
        "memory": "%.1f GiB" % (mem_kib / 1048576.0),
        "CPU": cpu,
        "kernel": platform.release(),
        "Debian": debian,
        "Dovecot": cmd("dovecot", "--version"),
        "libcurl": (pkg("libcurl4") if pkg("libcurl4") != "?"
                    else pkg("libcurl4t64")),
        "SQLite": pkg("libsqlite3-0"),
        "nginx": pkg("nginx"),
        "postfix (smtp-source)": pkg("postfix"),
        "Python": platform.python_version(),
        "instance storage (disk)": _storage(benchlib.TMPDIR),
        "instance storage (tmpfs column)": (
            _storage(benchlib.tmpfs_dir()) if benchlib.tmpfs_dir()
            else "no /dev/shm"),
        "mail_fsync": "Dovecot's default (optimized) for every "
                      "configuration; the deltapush service's default "
                      "durability",
        "load average at start": " ".join(
            open("/proc/loadavg").read().split()[:3]),
    }


# ---------------------------------------------------------------------------
# Figure 1 and 2: delivery overhead, sequential LMTP time, push latency


class Config:
    def __init__(self, label, kind, plugin=None, pushes_per_msg=False,
                 debounce_secs=0.0):
        self.label = label
        self.kind = kind
        self.plugin = plugin or {}
        self.pushes_per_msg = pushes_per_msg
        self.debounce_secs = debounce_secs


CONFIGS = [
    Config("(a) no push", "none"),
    Config("(b) ox driver", "ox", pushes_per_msg=True),
    Config("(c) deltapush", "deltapush",
           debounce_secs=DEFAULT_DEBOUNCE_SECS),
    Config("(c0) deltapush debounce=0", "deltapush",
           plugin={"deltapush_debounce": "0"}, pushes_per_msg=True),
]


def setup_users(dc, cfg, users, tokens):
    if cfg.kind == "ox":
        for u in users:
            dc.imap_setmetadata(u, "", OX_KEY, "user=" + u)
    elif cfg.kind == "deltapush":
        for u in users:
            dc.imap_setmetadata(u, "INBOX", TOKEN_KEY, tokens[u])


def smtp_source_worker(port, users, per_user, errors):
    for u in users:
        r = subprocess.run(
            [benchlib.SMTP_SOURCE, "-L", "-d", "-s", "1", "-m",
             str(per_user), "-M", "bench.example.net", "-f", SENDER,
             "-t", u, "-S", "bench", "inet:127.0.0.1:%d" % port],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE)
        if r.returncode != 0:
            errors.append("smtp-source -t %s: exit %d: %s"
                          % (u, r.returncode, r.stderr.decode()[-300:]))
            return


def start_instance(cfg, stage, sink, users, tokens):
    """A fresh Dovecot for cfg with its users set up and warmed up: one
    message per user spawns the lmtp processes, creates every mailbox and
    shows that pushes reach the sink."""
    push_url = sink.push_url("/ox" if cfg.kind == "ox" else "/notify")
    dc = Dovecot(cfg.kind, stage, push_url, cfg.plugin)
    try:
        dc.start()
        setup_users(dc, cfg, users, tokens)
        before = sink.count()
        lm = Lmtp(dc.lmtp_port)
        for i, u in enumerate(users):
            lm.send(SENDER, u, make_message(SENDER, u, i))
        lm.close()
        if cfg.kind != "none":
            sink.wait_count(before + 1, 10)
            if sink.count() == before:
                raise RuntimeError("%s: no push reached the sink after "
                                   "warm-up deliveries\n%s"
                                   % (cfg.label, dc.log_tail()))
            sink.wait_quiet(0.5, 15)
    except Exception:
        dc.cleanup()
        raise
    return dc


def smtp_source_load(port, users, sessions, per_user):
    """per_user messages to every user, one smtp-source per user, sessions
    of them at once; returns the errors."""
    errors = []
    threads = [threading.Thread(target=smtp_source_worker,
                                args=(port, users[w::sessions], per_user,
                                      errors))
               for w in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def client_cpu():
    """CPU seconds of the exited child processes (the smtp-source runs)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def delivery_run(cfg, stage, sink, sizes, tokens):
    """One throughput run of smtp-source against a fresh instance; sink is
    nginx, so that the sink's own CPU stays small."""
    users = [user_name(i) for i in range(sizes["users"])]
    dc = start_instance(cfg, stage, sink, users, tokens)
    result = {}
    try:
        per_user = sizes["messages"] // len(users)
        before = sink.count()
        cpu0 = benchlib.tree_cpu_by_name(dc.master_pid)[0]
        scpu0 = sink.cpu()
        ccpu0 = client_cpu()
        t0 = time.monotonic()
        errors = smtp_source_load(dc.lmtp_port, users, sizes["sessions"],
                                  per_user)
        t1 = time.monotonic()
        if errors:
            raise RuntimeError("; ".join(errors) + "\n" + dc.log_tail())
        delivered = per_user * len(users)
        # Let the pushes drain (trailing coalesced pushes come at the end
        # of the window) before taking the CPU figure.
        if cfg.kind != "none":
            if cfg.pushes_per_msg:
                sink.wait_count(before + delivered, 60)
            else:
                time.sleep(max(0.0, t1 + cfg.debounce_secs + 0.5 -
                               time.monotonic()))
            sink.wait_quiet(1.0, 60)
        cpu1 = benchlib.tree_cpu_by_name(dc.master_pid)[0]
        scpu1 = sink.cpu()
        ccpu1 = client_cpu()

        def per_msg(secs):
            return secs * 1000.0 / delivered

        result.update(
            rate=delivered / (t1 - t0), secs=t1 - t0, delivered=delivered,
            pushes=sink.count() - before,
            cpu_ms_per_msg=per_msg(sum(cpu1.values()) - sum(cpu0.values())),
            # Dovecot 2.4 runs an lmtp process per connection: the CPU
            # of those that exited is in the master's children's time
            lmtp_cpu_ms_per_msg=per_msg(cpu1["lmtp"] + cpu1["reaped"] -
                                        cpu0["lmtp"] - cpu0["reaped"]),
            service_cpu_ms_per_msg=per_msg(cpu1["deltapush"] -
                                           cpu0["deltapush"]),
            client_cpu_ms_per_msg=per_msg(ccpu1 - ccpu0),
            sink_cpu_ms_per_msg=per_msg(scpu1 - scpu0))
        result["errors"] = len(dc.log_errors())
        if result["errors"]:
            log("%s: %d error lines in the Dovecot log, e.g. %s"
                % (cfg.label, result["errors"], dc.log_errors()[0]))
    finally:
        dc.cleanup()
    return result


def sequential_one(cfg, lm, sink, u, tokens, i):
    """One message over lm: (LMTP time ms, push latency ms or None, True
    if the push expected did not arrive)."""
    msg = make_message(SENDER, u, 100000 + i)
    before = sink.count()
    t0, t1 = lm.send(SENDER, u, msg)
    if not cfg.pushes_per_msg:
        return (t1 - t0) / 1e6, None, False
    # The other instances share the sink: (c)'s trailing pushes may
    # arrive in between, so look for this user's push
    want = u if cfg.kind == "ox" else token_key(tokens[u])
    rec = None
    deadline = time.monotonic() + 5
    seen = before
    while rec is None and time.monotonic() < deadline:
        if sink.wait_count(seen + 1, deadline - time.monotonic()) <= seen:
            break
        for r in sink.since(seen):
            if r[4] == want:
                rec = r
                break
        seen = sink.count()
    if rec is None:
        return (t1 - t0) / 1e6, None, True
    return (t1 - t0) / 1e6, (rec[0] - t1) / 1e6, False


def figure_sequential(report, stage, sizes):
    """All four instances run at once, each with its LMTP connection; every
    message goes to each of them in turn (the order rotating), so that a
    busy moment of the machine hits all alike and the configs can also be
    compared message by message."""
    meter = benchlib.CpuMeter()
    tokens = {user_name(i): make_token(i) for i in range(sizes["users"])}
    users = [user_name(i) for i in range(sizes["users"])]
    results = {cfg.label: dict(seq_times=[], latencies=[], lat_missing=0)
               for cfg in CONFIGS}
    count = sizes["sequential"]
    sink = Sink()
    instances = {}
    conns = {}
    try:
        for cfg in CONFIGS:
            instances[cfg.label] = start_instance(cfg, stage, sink, users,
                                                  tokens)
        for cfg in CONFIGS:
            conns[cfg.label] = Lmtp(instances[cfg.label].lmtp_port)
        log("fig 2: %d messages one at a time to each of %d configs, "
            "interleaved" % (count, len(CONFIGS)))
        for i in range(count):
            u = users[i % len(users)]
            k = i % len(CONFIGS)
            for cfg in CONFIGS[k:] + CONFIGS[:k]:
                t, lat, lost = sequential_one(cfg, conns[cfg.label], sink,
                                              u, tokens, i)
                acc = results[cfg.label]
                acc["seq_times"].append(t)
                if lat is not None:
                    acc["latencies"].append(lat)
                acc["lat_missing"] += lost
    finally:
        for lm in conns.values():
            lm.close()
        for dc in instances.values():
            dc.cleanup()
        sink.stop()
    rows = []
    seq = {}
    for cfg in CONFIGS:
        r = results[cfg.label]
        t = r["seq_times"]
        seq[cfg.label] = pct(t, 50)
        lat = r["latencies"]
        rows.append((cfg.label, len(t), fmt(pct(t, 50), 3),
                     fmt(pct(t, 90), 3), fmt(pct(t, 99), 3),
                     fmt(pct(lat, 50), 3) if lat else "-",
                     fmt(pct(lat, 90), 3) if lat else "-",
                     fmt(pct(lat, 99), 3) if lat else "-",
                     fmt(max(lat), 3) if lat else "-",
                     r["lat_missing"] if cfg.pushes_per_msg else "-"))
    notes = [
        "one LMTP connection, one message at a time, users round-robin; "
        "LMTP time = MAIL FROM sent -> 250 after DATA received",
        "push latency = that 250 received -> request complete at the sink "
        "(CLOCK_MONOTONIC in both processes); negative = the push arrived "
        "before the 250 (ox sends it inside the delivery)",
        "a Dovecot per config, all four running, warmed up with one "
        "message per user; each message goes to every config in turn, "
        "the order rotating (interleaved message by message); the sink is "
        "sink.py, its own process, answering 200 at once",
        "median of the per-message differences (the same message to both, "
        "moments apart): (c) - (a) %+.3f ms, (c0) - (a) %+.3f ms; one "
        "instance per config, so a bias of an instance's processes (the "
        "CPU they land on) stays in: see bench/delivery_path.py"
        % (statistics.median(x - y for x, y in zip(
            results[CONFIGS[2].label]["seq_times"],
            results[CONFIGS[0].label]["seq_times"])),
           statistics.median(x - y for x, y in zip(
               results[CONFIGS[3].label]["seq_times"],
               results[CONFIGS[0].label]["seq_times"]))),
        "(c) runs with the default window, so most of its pushes are "
        "coalesced: latency is measured on (c0), where every message is "
        "pushed",
    ]
    report.section("2. Sequential LMTP time and push latency (ms)",
                   ("config", "msgs", "LMTP p50", "p90", "p99",
                    "push p50", "p90", "p99", "max", "lost"), rows, notes,
                   meter)
    extra = seq[CONFIGS[2].label] - seq[CONFIGS[0].label]
    report.check(2, "sequential LMTP p50, deltapush - no push",
                 "%+.3f ms" % extra,
                 "<= %.1f ms" % TARGET_SEQ_EXTRA_MS,
                 extra <= TARGET_SEQ_EXTRA_MS)
    extra0 = seq[CONFIGS[3].label] - seq[CONFIGS[0].label]
    report.check(2, "same with debounce 0", "%+.3f ms" % extra0,
                 "<= %.1f ms" % TARGET_SEQ_EXTRA_MS,
                 extra0 <= TARGET_SEQ_EXTRA_MS)
    lat = results[CONFIGS[3].label]["latencies"]
    report.check(2, "push latency (250 -> request at the proxy) p50",
                 "%.3f ms" % pct(lat, 50),
                 "<= %.1f ms" % TARGET_LAT_P50_MS,
                 pct(lat, 50) <= TARGET_LAT_P50_MS)
    report.check(2, "push latency p99", "%.3f ms" % pct(lat, 99),
                 "<= %.1f ms" % TARGET_LAT_P99_MS,
                 pct(lat, 99) <= TARGET_LAT_P99_MS)


def figure_delivery(report, stage, sizes, nginx):
    meter = benchlib.CpuMeter()
    tokens = {user_name(i): make_token(i) for i in range(sizes["users"])}
    results = {c.label: [] for c in CONFIGS}
    for run in range(sizes["runs"]):
        # the order rotates, so that no config always follows the same one
        k = run % len(CONFIGS)
        for cfg in CONFIGS[k:] + CONFIGS[:k]:
            log("fig 1: %s run %d/%d" % (cfg.label, run + 1, sizes["runs"]))
            r = delivery_run(cfg, stage, nginx, sizes, tokens)
            log("  %.0f msg/s, %d pushes, %.3f ms CPU/msg"
                % (r["rate"], r["pushes"], r["cpu_ms_per_msg"]))
            results[cfg.label].append(r)

    med = {}
    rows = []
    for cfg in CONFIGS:
        rs = results[cfg.label]
        med[cfg.label] = dict(
            rate=statistics.median(r["rate"] for r in rs),
            cpu=statistics.median(r["cpu_ms_per_msg"] for r in rs),
            **{k: statistics.median(r[k + "_cpu_ms_per_msg"] for r in rs)
               for k in ("lmtp", "service", "client", "sink")})
    a = med[CONFIGS[0].label]
    for cfg in CONFIGS:
        rs = results[cfg.label]
        m = med[cfg.label]
        rows.append((cfg.label,
                     " / ".join("%.0f" % r["rate"] for r in rs),
                     fmt(m["rate"], 0),
                     fmt(m["rate"] / a["rate"], 3),
                     fmt(m["cpu"], 3),
                     fmt(m["cpu"] / a["cpu"], 2) if a["cpu"] else "n/a",
                     fmt(m["lmtp"], 3), fmt(m["service"], 3),
                     fmt(m["client"], 3), fmt(m["sink"], 3),
                     " / ".join(str(r["pushes"]) for r in rs),
                     sum(r["errors"] for r in rs)))
    b = med[CONFIGS[1].label]
    c = med[CONFIGS[2].label]
    c0 = med[CONFIGS[3].label]
    notes = [
        "load: postfix smtp-source -L, %d messages to %d users (%d each, "
        "one smtp-source -d per user), %d parallel sessions, fresh Dovecot "
        "per run, runs interleaved (the order rotating)" % (
            sizes["users"] * (sizes["messages"] // sizes["users"]),
            sizes["users"], sizes["messages"] // sizes["users"],
            sizes["sessions"]),
        "CPU = all Dovecot processes (master, lmtp, auth, log, the deltapush "
        "service ...) from the first message until the pushes drained, of "
        "which the lmtp processes (with the exited ones: 2.4 runs one per "
        "connection) and the service are shown apart; the "
        "smtp-source clients and the sink, nginx (`return 200`), run on the "
        "same cores: their CPU is shown apart",
        "(c)/(a) = %.3f, (c0)/(a) = %.3f, (c)/(b) = %.2f, (c0)/(b) = %.2f"
        % (c["rate"] / a["rate"], c0["rate"] / a["rate"],
           c["rate"] / b["rate"], c0["rate"] / b["rate"]),
    ]
    report.section("1. Delivery overhead (LMTP throughput, median of %d runs)"
                   % sizes["runs"],
                   ("config", "runs (msg/s)", "median msg/s", "vs (a)",
                    "Dovecot CPU ms/msg", "CPU vs (a)", "lmtp", "service",
                    "smtp-source CPU ms/msg", "sink CPU ms/msg",
                    "pushes at sink",
                    "log errors"), rows, notes, meter)
    report.check(1, "LMTP throughput deltapush / no push, default debounce",
                 fmt(c["rate"] / a["rate"], 3),
                 ">= %.2f" % TARGET_RATIO_DEFAULT,
                 c["rate"] / a["rate"] >= TARGET_RATIO_DEFAULT)
    report.check(1, "same with debounce 0 (a push per message)",
                 fmt(c0["rate"] / a["rate"], 3),
                 ">= %.2f" % TARGET_RATIO_NODEBOUNCE,
                 c0["rate"] / a["rate"] >= TARGET_RATIO_NODEBOUNCE)



# ---------------------------------------------------------------------------
# Figure 6: IMAP login + SETMETADATA of the registered token + LOGOUT


def imap_session(port, user, command):
    """One IMAP session as Delta Chat opens it: LOGIN, one command,
    LOGOUT, each waiting for its tagged reply. Returns its duration (ns)."""
    t0 = time.monotonic_ns()
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        f = sock.makefile("rb")

        def tagged(tag):
            while True:
                line = f.readline()
                if not line:
                    raise RuntimeError("IMAP: connection closed")
                if line.startswith(tag + b" "):
                    if not line.startswith(tag + b" OK"):
                        raise RuntimeError("IMAP %s: %r" % (user, line))
                    return

        line = f.readline()
        if not line.startswith(b"* OK"):
            raise RuntimeError("IMAP greeting: %r" % line)
        sock.sendall(b'a LOGIN "%s" "pass"\r\n' % user.encode())
        tagged(b"a")
        sock.sendall(b"b " + command + b"\r\n")
        tagged(b"b")
        sock.sendall(b"c LOGOUT\r\n")
        tagged(b"c")
        f.close()
    finally:
        sock.close()
    return time.monotonic_ns() - t0


def login_block(dc, users, commands, count, workers):
    """count sessions over `workers` parallel clients; (sessions/s,
    session times in ms)."""
    times = []
    errors = []
    lock = threading.Lock()

    def work(w):
        mine = []
        try:
            for i in range(w, count, workers):
                u = users[i % len(users)]
                mine.append(imap_session(dc.imap_port, u, commands[u]))
        except Exception as e:  # reported below
            errors.append(str(e))
        with lock:
            times.extend(mine)

    threads = [threading.Thread(target=work, args=(w,))
               for w in range(workers)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    secs = time.monotonic() - t0
    if errors:
        raise RuntimeError("; ".join(errors[:3]) + "\n" + dc.log_tail())
    return count / secs, [t / 1e6 for t in times]


def figure_login(report, stage, sizes, nginx):
    meter = benchlib.CpuMeter()
    users = [user_name(i) for i in range(sizes["users"])]
    tokens = {u: make_token(i) for i, u in enumerate(users)}
    kinds = {
        "login + NOOP + LOGOUT": {u: b"NOOP" for u in users},
        "login + SETMETADATA (same token) + LOGOUT": {
            u: ('SETMETADATA INBOX (%s "%s")' % (TOKEN_KEY, tokens[u]))
            .encode() for u in users},
    }
    names = list(kinds)
    rates = {k: [] for k in names}
    times = {k: [] for k in names}
    svc_cpu = {k: 0.0 for k in names}
    dc_cpu = {k: 0.0 for k in names}
    n = sizes["login_sessions"]
    dc = Dovecot("deltapush", stage, nginx.url)
    try:
        dc.start()
        setup_users(dc, CONFIGS[2], users, tokens)
        # Warm-up: spawn the login, auth and imap processes
        for k in names:
            login_block(dc, users, kinds[k], min(n, 2 * len(users)),
                        sizes["login_workers"])
        pid = dc.service_pid()
        for rnd in range(sizes["login_rounds"]):
            order = names if rnd % 2 == 0 else names[::-1]
            for k in order:
                log("fig 6: round %d/%d: %d x %s"
                    % (rnd + 1, sizes["login_rounds"], n, k))
                c0 = dc.cpu()
                s0 = benchlib.proc_cpu(pid)
                rate, ts = login_block(dc, users, kinds[k], n,
                                       sizes["login_workers"])
                dc_cpu[k] += dc.cpu() - c0
                svc_cpu[k] += benchlib.proc_cpu(pid) - s0
                rates[k].append(rate)
                times[k] += ts
                log("  %.0f sessions/s" % rate)
        errors = dc.log_errors()
    finally:
        dc.cleanup()
    total = n * sizes["login_rounds"]
    med = {k: statistics.median(rates[k]) for k in names}
    rows = []
    for k in names:
        rows.append((k, " / ".join("%.0f" % r for r in rates[k]),
                     fmt(med[k], 0), fmt(med[k] / med[names[0]], 3),
                     fmt(pct(times[k], 50), 2), fmt(pct(times[k], 99), 2),
                     fmt(dc_cpu[k] * 1000.0 / total, 3),
                     fmt(svc_cpu[k] * 1000.0 / total, 4)))
    notes = [
        "%d users, each with its token registered before; rounds of %d "
        "sessions per kind, %d parallel clients, kinds interleaved (order "
        "alternating), one deltapush Dovecot (default settings) for both; "
        "each command waits for its tagged reply, as Delta Chat does"
        % (len(users), n, sizes["login_workers"]),
        "Dovecot CPU = all its processes (login, auth, imap, the deltapush "
        "service ...); the client is Python on the same 2 cores",
    ]
    if errors:
        notes.append("%d error lines in the Dovecot log, first: %s"
                     % (len(errors), errors[0]))
    report.section("6. Login with token re-registration (sessions/s)",
                   ("session", "rounds (sessions/s)", "median", "vs NOOP",
                    "session p50 ms", "p99 ms", "Dovecot CPU ms/session",
                    "service CPU ms/session"), rows, notes, meter)
    ratio = med[names[1]] / med[names[0]]
    report.check(6, "login+SETMETADATA(same token) / login+NOOP sessions/s",
                 fmt(ratio, 3), ">= %.2f" % TARGET_LOGIN_RATIO,
                 ratio >= TARGET_LOGIN_RATIO)


# ---------------------------------------------------------------------------
# Figure 3 and 4: the service alone, through its socket, with nginx as sink


def register_lines(names, first_index):
    """REGISTER lines in batches of about 1 MB."""
    batch = []
    for i, name in enumerate(names):
        batch.append("REGISTER\t%s\t%s\n" % (name, make_token(first_index +
                                                              i)))
        if len(batch) == 1000:
            yield "".join(batch).encode()
            batch = []
    if batch:
        yield "".join(batch).encode()


def notify_lines(names):
    batch = []
    for name in names:
        batch.append("NOTIFY\t%s\n" % name)
        if len(batch) == 5000:
            yield "".join(batch).encode()
            batch = []
    if batch:
        yield "".join(batch).encode()


def register_all(dc, names, first_index):
    svc = dc.service(timeout=300)
    pid = dc.service_pid()
    log_pid = dc.log_pid()
    cpu0 = benchlib.proc_cpu(pid)
    lcpu0 = benchlib.proc_cpu(log_pid) if log_pid else 0.0
    t0 = time.monotonic()
    ok, fail, done = svc.pipeline(register_lines(names, first_index),
                                  len(names))
    cpu1 = benchlib.proc_cpu(pid)
    lcpu1 = benchlib.proc_cpu(log_pid) if log_pid else 0.0
    svc.close()
    if ok != len(names):
        raise RuntimeError("REGISTER: %d of %d OK, first failure %s\n%s"
                           % (ok, len(names), fail, dc.log_tail()))
    return dict(rate=len(names) / (done - t0), secs=done - t0,
                cpu=cpu1 - cpu0, log_cpu=lcpu1 - lcpu0)


class NginxWatch(threading.Thread):
    """Notes the monotonic time nginx has answered `target` requests."""

    def __init__(self, nginx, target, timeout):
        super().__init__(daemon=True)
        self.nginx = nginx
        self.target = target
        self.timeout = timeout
        self.result = None

    def run(self):
        self.result = self.nginx.wait_requests(self.target, self.timeout,
                                               interval=0.005)


def _quiet(nginx, settle=0.3, timeout=60):
    nginx.wait_quiet(settle, timeout)
    return nginx.stats()


def notify_run(dc, nginx, names):
    """NOTIFY for every name, pipelined on one connection; each is due at
    once (a token not pushed within the window): the whole path, taking
    the NOTIFY (its commit) and sending the push."""
    svc = dc.service(timeout=300)
    pid = dc.service_pid()
    conns0, base = nginx.stats()
    watch = NginxWatch(nginx, base + len(names), 300)
    cpu0 = benchlib.proc_cpu(pid)
    t0 = time.monotonic()
    watch.start()
    ok, fail, acked = svc.pipeline(notify_lines(names), len(names))
    watch.join()
    cpu1 = benchlib.proc_cpu(pid)
    svc.close()
    got, t_done = watch.result
    if ok != len(names) or got < base + len(names):
        raise RuntimeError("NOTIFY: %d OK (first failure %s), %d of %d "
                           "pushes arrived\n%s"
                           % (ok, fail, got - base, len(names),
                              dc.log_tail()))
    conns1, _ = nginx.stats()
    return dict(rate=len(names) / (t_done - t0), conns=conns1 - conns0,
                notify_rate=len(names) / (acked - t0),
                cpu_per_1000=(cpu1 - cpu0) * 1000.0 / len(names))


def sender_alone(program, nginx, url, ca_file, count, rounds, parallel):
    """The service's HTTP sender (deltapush-http.c) in a process of its
    own: `rounds` bursts of `count` POSTs, `parallel` in flight."""
    conns0, base = nginx.stats()
    cmd = [program, url, str(count), str(parallel), str(rounds)]
    if ca_file:
        cmd.append(ca_file)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    conns1, got = nginx.stats()
    out = []
    for line in r.stdout.splitlines():
        f = line.split()
        if len(f) == 10 and f[0] == "round":
            out.append(dict(rate=int(f[3]) / float(f[7]),
                            failed=int(f[5]), secs=float(f[7]),
                            cpu_ms=float(f[9]) * 1000.0 / int(f[3])))
    if r.returncode != 0 or len(out) != rounds:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(cmd), r.returncode,
                                                 r.stderr[-500:]))
    errors = [ln for ln in r.stderr.splitlines() if ln.strip()]
    return dict(rounds=out, conns=conns1 - conns0, requests=got - base,
                errors=errors)


def figure_sender(report, stage, sizes, nginx, program):
    meter = benchlib.CpuMeter()
    n = sizes["sender_tokens"]
    protos = (("HTTP/1.1", nginx.url, None),
              ("HTTP/2 (TLS)", nginx.tls_url, nginx.ca_file))
    alone = {}
    for proto, url, ca in protos:
        log("fig 3: the sender alone, %s: %d x %d pushes"
            % (proto, sizes["sender_runs"], n))
        alone[proto] = sender_alone(program, nginx, url, ca, n,
                                    sizes["sender_runs"], 64)
        log("  " + " / ".join("%.0f pushes/s %.4f ms CPU" % (
            r["rate"], r["cpu_ms"]) for r in alone[proto]["rounds"]))

    # The whole path through the service: NOTIFY -> push, debounce 0
    e2e = {}
    m = sizes["sender_e2e_tokens"]
    names = ["s%07d@%s" % (i, DOMAIN) for i in range(m)]
    dc = Dovecot("deltapush", stage, nginx.url, {"deltapush_debounce": "0"})
    reg = None
    try:
        dc.start()
        log("fig 3: registering %d tokens" % m)
        reg = register_all(dc, names, 10000000)
        log("  %.0f registrations/s" % reg["rate"])
        for proto, url, ca in protos:
            dc.stop()
            dc.push_url = url
            if ca:
                dc.plugin["deltapush_ca_file"] = ca
            dc.write_config()
            dc.start()
            log("fig 3: %s: %d NOTIFYs through the service" % (proto, m))
            e2e[proto] = notify_run(dc, nginx, names)
            log("  %.0f pushes/s" % e2e[proto]["rate"])
        errors = dc.log_errors()
    finally:
        dc.cleanup()

    rows = []
    med = {}
    for proto, _, _ in protos:
        rs = alone[proto]["rounds"]
        mm = dict(rate=statistics.median(r["rate"] for r in rs),
                  cpu=statistics.median(r["cpu_ms"] for r in rs),
                  conns=alone[proto]["conns"],
                  failed=sum(r["failed"] for r in rs))
        med[proto] = mm
        e = e2e[proto]
        rows.append((proto, " / ".join("%.0f" % r["rate"] for r in rs),
                     fmt(mm["rate"], 0), fmt(mm["cpu"], 4), mm["conns"],
                     mm["failed"], fmt(e["rate"], 0),
                     fmt(e["cpu_per_1000"], 4), e["conns"]))
    notes = [
        "the sender alone: src/service/bench-deltapush-http, the service's "
        "HTTP sender (deltapush-http.c, libcurl on Dovecot's ioloop) in one "
        "process, %d rounds of %s POSTs of 904 bytes with 64 in flight "
        "(the service's deltapush_max_parallel default); the first round "
        "opens the connections; rate = pushes / wall time of the round; "
        "CPU = its utime+stime; connections = accepted by nginx over all "
        "rounds" % (sizes["sender_runs"], fmt(n)),
        "NOTIFY -> push: %s tokens registered in a deltapush Dovecot "
        "(debounce 0), a NOTIFY for every user pipelined on one socket "
        "connection; rate = tokens / (first NOTIFY sent -> nginx has "
        "answered all), service CPU per push: bounded by taking the "
        "NOTIFYs, a durable commit each" % fmt(m),
        "sink: nginx %s, 1 worker, `return 200`; HTTP/2 over TLS with a "
        "local CA (ALPN h2)" % _nginx_version(),
        "registering the %s tokens: %s/s, %.1f s, service %.3f CPU s per "
        "1000 registrations (+ log process %.3f)" % (
            fmt(m), fmt(reg["rate"], 0) if reg else "?",
            reg["secs"] if reg else 0,
            reg["cpu"] * 1000.0 / m if reg else 0,
            reg["log_cpu"] * 1000.0 / m if reg else 0),
    ]
    for proto, _, _ in protos:
        if alone[proto]["errors"]:
            notes.append("%s, sender alone: %d error lines, first: %s"
                         % (proto, len(alone[proto]["errors"]),
                            alone[proto]["errors"][0]))
    if errors:
        notes.append("%d error lines in the Dovecot log, first: %s"
                     % (len(errors), errors[0]))
    report.section("3. Sender throughput",
                   ("protocol", "sender alone, rounds (pushes/s)",
                    "median pushes/s", "CPU ms / push", "connections",
                    "failed", "NOTIFY -> push pushes/s",
                    "its service CPU ms / push", "its connections"), rows,
                   notes, meter)
    h1 = med["HTTP/1.1"]
    h2 = med["HTTP/2 (TLS)"]
    report.check(3, "sender, HTTP/2 over TLS, one process: pushes/s",
                 "%s (%d connections)" % (fmt(h2["rate"], 0), h2["conns"]),
                 ">= %s" % fmt(TARGET_H2_RATE), h2["rate"] >= TARGET_H2_RATE)
    report.check(3, "sender, HTTP/2 over TLS: service CPU per push",
                 "%.4f ms" % h2["cpu"],
                 "<= %.2f ms" % TARGET_CPU_PER_PUSH_MS,
                 h2["cpu"] <= TARGET_CPU_PER_PUSH_MS)
    report.check(3, "sender, HTTP/1.1 keep-alive: pushes/s",
                 "%s (%d connections)" % (fmt(h1["rate"], 0), h1["conns"]),
                 ">= %s" % fmt(TARGET_H1_RATE), h1["rate"] >= TARGET_H1_RATE)


def _nginx_version():
    try:
        out = subprocess.run([benchlib.NGINX, "-v"], capture_output=True,
                             text=True).stderr
        return out.strip().split("/")[-1]
    except OSError:
        return "?"


def figure_scale(report, stage, sizes, nginx):
    meter = benchlib.CpuMeter()
    n = sizes["scale_users"]
    names = ["m%07d@%s" % (i, DOMAIN) for i in range(n)]
    dc = Dovecot("deltapush", stage, nginx.url)
    try:
        dc.start()
        log("fig 4: registering %s users" % fmt(n))
        reg = register_all(dc, names, 20000000)
        log("  %.0f registrations/s" % reg["rate"])
        pid = dc.service_pid()
        rss_full = benchlib.proc_status_kib(pid, "VmRSS")
        sizes_db = dc.db_size()
        # Round trips of NOTIFY for random users while the table is full
        svc = dc.service()
        rnd = random.Random(9)
        sample = rnd.sample(names, sizes["scale_samples"])
        base = nginx.requests()
        rtt = []
        for name in sample:
            t0 = time.monotonic_ns()
            reply = svc.request("NOTIFY", name)
            t1 = time.monotonic_ns()
            if reply != [b"OK", b"1"]:
                raise RuntimeError("NOTIFY %s: %r" % (name, reply))
            rtt.append((t1 - t0) / 1e6)
        svc.close()
        got, _ = nginx.wait_requests(base + len(sample), 30)
        rss_after = benchlib.proc_status_kib(pid, "VmRSS")
        hwm = benchlib.proc_status_kib(pid, "VmHWM")
        errors = dc.log_errors()
    finally:
        dc.cleanup()
    mib = 1024.0 * 1024.0
    rows = [
        ("users x tokens", "%s x 1 (904 bytes)" % fmt(n)),
        ("registration rate", "%s /s (%.1f s)" % (fmt(reg["rate"], 0),
                                                  reg["secs"])),
        ("service CPU per 1000 registrations", "%.3f s (+ log process "
         "%.3f s)" % (reg["cpu"] * 1000.0 / n, reg["log_cpu"] * 1000.0 / n)),
        ("database size", "%.1f MiB (+ WAL %.1f MiB, shm %.1f MiB)" % (
            sizes_db["db"] / mib, sizes_db["-wal"] / mib,
            sizes_db["-shm"] / mib)),
        ("database bytes per token", fmt(
            (sizes_db["db"] + sizes_db["-wal"]) // n)),
        ("service RSS, table full", "%.1f MiB" % (rss_full / 1024.0)),
        ("service RSS after the triggers (peak)", "%.1f MiB (%.1f MiB)"
         % (rss_after / 1024.0, hwm / 1024.0)),
        ("NOTIFY round trip p50 / p90 / p99 / max",
         "%.3f / %.3f / %.3f / %.3f ms" % (pct(rtt, 50), pct(rtt, 90),
                                           pct(rtt, 99), max(rtt))),
        ("pushes that reached nginx", "%d of %d" % (got - base,
                                                    len(sample))),
    ]
    notes = [
        "registration: REGISTER pipelined on one socket connection; each "
        "NOTIFY round trip: one request on an open connection, %d random "
        "users, each with one token due (default window, so each is a "
        "leading-edge push to nginx over HTTP/1.1)" % len(sample),
    ]
    if errors:
        notes.append("%d error lines in the Dovecot log, first: %s"
                     % (len(errors), errors[0]))
    report.section("4. Scale: %s users" % fmt(n), ("what", "measured"),
                   rows, notes, meter)
    peak = max(rss_full, rss_after, hwm) / 1024.0
    per_token = (sizes_db["db"] + sizes_db["-wal"]) / float(n)
    report.check(4, "database per token with %s tokens" % fmt(n),
                 "%s B" % fmt(int(per_token)),
                 "<= %s B" % fmt(TARGET_DB_BYTES_PER_TOKEN),
                 per_token <= TARGET_DB_BYTES_PER_TOKEN)
    report.check(4, "service RSS with %s tokens (peak)" % fmt(n),
                 "%.1f MiB" % peak, "<= %d MiB" % TARGET_RSS_MIB,
                 peak <= TARGET_RSS_MIB)


# ---------------------------------------------------------------------------
# Figure 5: coalescing


def figure_coalesce(report, stage, sizes):
    count = sizes["coalesce_messages"]
    secs = sizes["coalesce_secs"]
    plugin = {}
    window = DEFAULT_DEBOUNCE_SECS
    if sizes["coalesce_debounce"]:
        plugin["deltapush_debounce"] = sizes["coalesce_debounce"]
        window = float(sizes["coalesce_debounce"].rstrip("s"))
    meter = benchlib.CpuMeter()
    sink = Sink()
    dc = Dovecot("deltapush", stage, sink.url(), plugin)
    user = user_name(0)
    tokens = [make_token(900001), make_token(900002)]
    try:
        dc.start()
        for tok in tokens:
            dc.imap_setmetadata(user, "INBOX", TOKEN_KEY, tok)
        lm = Lmtp(dc.lmtp_port)
        before = sink.count()
        log("fig 5: %d deliveries to one user in %.0f s" % (count, secs))
        start = time.monotonic()
        start_ns = time.monotonic_ns()
        for i in range(count):
            due = start + i * secs / count
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            lm.send(SENDER, user, make_message(SENDER, user, i))
        last_ns = time.monotonic_ns()
        lm.close()
        # The trailing push comes at the end of the window after the last
        # message.
        time.sleep(max(0.0, window + 1.5 - (time.monotonic() - last_ns /
                                             1e9)))
        sink.wait_quiet(2.0, window + 10)
        recs = sink.since(before)
        errors = dc.log_errors()
    finally:
        dc.cleanup()
        sink.stop()
    rows = []
    worst = 0
    for i, tok in enumerate(tokens):
        mine = [r for r in recs if r[4] == token_key(tok)]
        worst = max(worst, len(mine))
        offsets = ", ".join("%.2f" % ((r[0] - start_ns) / 1e9) for r in mine)
        after_last = [r for r in mine if r[0] >= last_ns]
        rows.append(("token %d" % (i + 1), len(mine), count,
                     "%.1f%%" % (100.0 * len(mine) / count), offsets or "-",
                     "yes" if after_last else "NO"))
    allowed = int(math.ceil(secs / window)) + 1
    notes = [
        "%d LMTP deliveries paced evenly over %.0f s to one user holding 2 "
        "tokens, window %.0f s (%s); one-POST-per-message would send %d per "
        "token" % (count, secs, window,
                   "the default" if not sizes["coalesce_debounce"]
                   else "smoke mode", count),
        "push times are seconds after the first delivery; the last delivery "
        "was at %.2f s" % ((last_ns - start_ns) / 1e9),
    ]
    if errors:
        notes.append("%d error lines in the Dovecot log, first: %s"
                     % (len(errors), errors[0]))
    ok = 0 < worst <= allowed and all(r[5] == "yes" for r in rows)
    notes.append("at most %d pushes per token expected (2 per window, "
                 "issue 9): %s" % (allowed, "ok" if ok else "MISS"))
    report.section("5. Coalescing", ("token", "pushes", "messages",
                                     "pushes/message", "push times (s)",
                                     "push after last message"), rows, notes,
                   meter)



# ---------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--stage", required=True,
                    help="DESTDIR the build was installed into")
    ap.add_argument("--smoke", action="store_true",
                    help="tiny sizes, writes no results file")
    ap.add_argument("--out", help="write the Markdown results here")
    ap.add_argument("--sender-bench", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "src", "service",
        "bench-deltapush-http"),
        help="the sender's benchmark program (make -C src/service "
        "bench-deltapush-http)")
    ap.add_argument("--only", default="1,2,6,3,4,5",
                    help="figures to run, e.g. 1,5")
    ap.add_argument("--tmpfs", dest="tmpfs", action="store_true",
                    default=None,
                    help="run figures 1, 2 and 6 a second time with the "
                    "instances on /dev/shm (default in the full run)")
    ap.add_argument("--no-tmpfs", dest="tmpfs", action="store_false",
                    help="the disk pass only")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench.py must run as root (it starts Dovecot and "
                         "nginx)")
    sizes = SMOKE if args.smoke else FULL
    stage = benchlib.find_stage_files(args.stage)
    only = set(args.only.split(","))
    tmpfs = not args.smoke if args.tmpfs is None else args.tmpfs
    if tmpfs and benchlib.tmpfs_dir() is None:
        print("no writable /dev/shm: the tmpfs column is skipped")
        tmpfs = False
    benchlib.use_storage("disk")
    machine = machine_info()
    print("deltapush benchmarks (%s mode) on %s cores, %s, %s; load %s; "
          "Dovecot %s" % ("smoke" if args.smoke else "full",
                          machine["cores (nproc)"], machine["memory"],
                          machine["CPU"], machine["load average at start"],
                          machine["Dovecot"]))
    print("instances on %s" % machine["instance storage (disk)"])
    report = Report()
    started = time.monotonic()
    nginx = Nginx() if only & {"1", "3", "4", "6"} else None
    try:
        for storage in ("disk", "tmpfs") if tmpfs else ("disk",):
            benchlib.use_storage(storage)
            report.storage = storage
            if storage == "tmpfs":
                log("second pass: figures 1, 2 and 6 on tmpfs")
            if "1" in only:
                figure_delivery(report, stage, sizes, nginx)
            if "2" in only:
                figure_sequential(report, stage, sizes)
            if "6" in only:
                figure_login(report, stage, sizes, nginx)
            if storage != "disk":
                continue
            if "3" in only:
                figure_sender(report, stage, sizes, nginx,
                              args.sender_bench)
            if "4" in only:
                figure_scale(report, stage, sizes, nginx)
            if "5" in only:
                figure_coalesce(report, stage, sizes)
    finally:
        if nginx is not None:
            nginx.stop()
    machine["load average at end"] = " ".join(
        open("/proc/loadavg").read().split()[:3])
    machine["duration"] = "%.0f s" % (time.monotonic() - started)
    if report.foreign:
        machine["CPU used by other processes"] = ", ".join(
            "fig %s: %.0f%%" % (f[0], 100 * f[1]) for f in report.foreign)
    report.print_checks()
    busy = [f for f in report.foreign if f[1] > 0.05]
    if busy:
        print("WARNING: other processes used the CPU while figures %s ran "
              "(%s): those figures understate deltapush; rerun on a quiet "
              "machine" % (", ".join(f[0] for f in busy),
                           ", ".join("%.0f%%" % (100 * f[1]) for f in busy)))
    misses = report.misses()
    print("\n%d target(s) met, %d missed (on disk); took %.0f s"
          % (len(report.check_rows()) - len(misses), len(misses),
             time.monotonic() - started))
    if args.out:
        with open(args.out, "w") as f:
            f.write(report.markdown(machine))
        print("results written to %s" % args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
