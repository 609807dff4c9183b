"""Observability (issue 6): the shipped metric blocks feed Dovecot's
OpenMetrics endpoint, `doveadm deltapush status|list|forget|flush` work
against a running service in table, JSON and tab output, and no log line
or doveadm output ever holds a whole token."""

import datetime
import time

import doveadm_ns
from dovecot_instance import wait_until
from helpers import (PUSH_TOKEN, assert_no_token_leaks, deliver,
                     make_token, new_user, register, retry_settings,
                     set_token, token_id, tokens_of)
from observe import Metrics, key, log_texts, token_leaks

STATUS_COLUMNS = ["tokens", "users", "pending", "in_flight",
                  "oldest_pending_secs", "last_error", "last_error_time"]
LIST_COLUMNS = ["id", "created", "last_seen", "state", "next_attempt",
                "failed_attempts"]
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def _wait_for_status(doveadm, dovecot, predicate, timeout):
    """Polls `doveadm deltapush status` until predicate(row) holds;
    returns the last row."""
    last = []

    def check():
        last[:] = doveadm.run_json(dovecot, "deltapush", "status")
        return predicate(last[0])

    wait_until(check, timeout, interval=0.2)
    return last[0]


def _short(token):
    return token_id(token)


def _local_time(text):
    """A doveadm time column (local time, 1 s resolution) as a Unix time."""
    return time.mktime(datetime.datetime.strptime(text, TIME_FORMAT)
                       .timetuple())


def _stats_dump_sum(dovecot, metric, field):
    """The sum of a field of a metric from `doveadm stats dump`."""
    result = dovecot.doveadm("-f", "tab", "stats", "dump")
    assert result.returncode == 0, result
    rows = doveadm_ns.parse_tab(result.stdout.decode())
    for row in rows:
        if row["metric_name"] == metric and row["field"] == field:
            return int(row["sum"])
    raise AssertionError("no %s/%s in stats dump: %r" % (metric, field, rows))


# ---- metrics ----

def test_metrics_count_pushes_by_status_and_removed_tokens(dovecot_factory,
                                                           sink):
    metrics = Metrics()
    dovecot = dovecot_factory(sink=sink, extra_config=metrics.config(),
                              settings=retry_settings("1s", "2s"))
    u1, u2, u3 = new_user("m"), new_user("m"), new_user("m")
    ok1, gone = make_token(), make_token()
    ok2, failing = make_token(), make_token()
    ok3 = make_token()
    register(dovecot, u1, ok1, gone)
    register(dovecot, u2, ok2, failing)
    register(dovecot, u3, ok3)
    sink.set_status(gone, 410)
    sink.set_status(failing, 500)

    # One message for three users: 3 x 200, one 410 (token removed), and
    # a 500 tried twice (0 s, +1 s) and then dropped at the 2 s deadline.
    started = deliver(dovecot, [u1, u2, u3])
    sink.wait_for(2, timeout=4, since=started, bodies=[failing])
    expected = {
        key("dovecot_deltapush_push_finished_total", status=200): 3,
        key("dovecot_deltapush_push_finished_total", status=410): 1,
        key("dovecot_deltapush_push_finished_total", status=500): 2,
        key("dovecot_deltapush_token_removed_total", reason="gone"): 1,
        key("dovecot_deltapush_push_dropped_total"): 1,
        key("dovecot_deltapush_trigger_total"): 3,
        key("dovecot_deltapush_push_coalesced_total"): 0,
        key("dovecot_deltapush_token_registered_total", refresh=0): 5,
    }
    samples = metrics.wait_for(expected)
    assert {k: samples.get(k, 0) for k in expected} == expected, samples
    assert tokens_of(dovecot, u1) == [ok1]

    # Three messages in a row while the first push is on the wire: two
    # of them fold into one more push when the window closes.
    wait_until(lambda: time.monotonic() - sink.requests(
        bodies=[ok3])[-1].monotonic > 1.2, 3)
    sink.delay = 0.5
    since = time.monotonic()
    for _ in range(3):
        deliver(dovecot, u3)
    sink.wait_for(2, timeout=4, since=since, bodies=[ok3])
    sink.delay = 0.0
    # re-registering a known token is a refresh
    register(dovecot, u3, ok3)
    expected.update({
        key("dovecot_deltapush_push_finished_total", status=200): 5,
        key("dovecot_deltapush_trigger_total"): 6,
        key("dovecot_deltapush_push_coalesced_total"): 2,
        key("dovecot_deltapush_token_registered_total", refresh=1): 1,
    })
    samples = metrics.wait_for(expected)
    assert {k: samples.get(k, 0) for k in expected} == expected, samples
    assert len(sink.requests(since=since, bodies=[ok3])) == 2

    # the push durations are exported as seconds with the status
    assert samples.get(key(
        "dovecot_deltapush_push_finished_duration_seconds_total",
        status=200), 0) > 0, samples
    if doveadm_ns.available() is None:
        # forgetting both tokens of u2 counts two removed tokens; a
        # forget that removes nothing counts none
        assert doveadm_ns.run_json(dovecot, "deltapush", "forget",
                                   "-u", u2) == [{"removed": "2"}]
        assert doveadm_ns.run_json(dovecot, "deltapush", "forget",
                                   "-u", u2) == [{"removed": "0"}]
        expected[key("dovecot_deltapush_token_removed_total",
                      reason="unset")] = 2
        samples = metrics.wait_for(expected)
        assert {k: samples.get(k, 0) for k in expected} == expected, samples
        assert _stats_dump_sum(dovecot, "deltapush_token_removed_unset",
                               "count") == 2
    assert_no_token_leaks(dovecot, [ok1, gone, ok2, failing, ok3],
                           {"metrics": metrics.text()})


# ---- doveadm ----

def test_doveadm_status(dovecot_factory, sink, doveadm):
    dovecot = dovecot_factory(sink=sink, settings={
        "deltapush_debounce": "1s",
        "deltapush_retry_base": "30s",
        "deltapush_max_parallel": "1",
    })
    alice, bob = new_user("alice"), new_user("bob")
    a1, a2, b1 = make_token(), make_token(), make_token()
    register(dovecot, alice, a1, a2)
    register(dovecot, bob, b1)
    outputs = {}

    def status(fmt="json"):
        result = doveadm.run_ok(dovecot, "deltapush", "status", fmt=fmt)
        outputs["status %s %d" % (fmt, len(outputs))] = result.stdout
        return result.stdout

    rows = doveadm.run_json(dovecot, "deltapush", "status")
    assert rows == [{"tokens": "3", "users": "2", "pending": "0",
                     "in_flight": "0", "oldest_pending_secs": "0",
                     "last_error": "", "last_error_time": "-"}]

    # One push at a time and a slow proxy: one in flight, one waiting.
    sink.delay = 2.2
    started = deliver(dovecot, alice)
    row = _wait_for_status(doveadm, dovecot,
                           lambda r: int(r["oldest_pending_secs"]) >= 1,
                           timeout=2.0)
    assert (row["pending"], row["in_flight"]) == ("2", "1"), row
    assert int(row["oldest_pending_secs"]) >= 1, row
    sink.delay = 0.0
    assert len(sink.wait_for(2, timeout=5, since=started,
                             bodies=[a1, a2])) == 2
    assert wait_until(lambda: doveadm.run_json(
        dovecot, "deltapush", "status")[0]["pending"] == "0", 3)

    # a failure is the last error, with the user and a short token
    sink.set_status(b1, 500)
    mark = dovecot.log_size()
    before_error = time.time()
    deliver(dovecot, bob)
    assert dovecot.wait_for_log(lambda t: "(attempt 1," in t, offset=mark,
                                timeout=4)
    json_rows = doveadm.run_json(dovecot, "deltapush", "status")
    assert len(json_rows) == 1
    json_row = json_rows[0]
    assert list(json_row) == STATUS_COLUMNS
    assert {k: json_row[k] for k in STATUS_COLUMNS[:5]} == {
        "tokens": "3", "users": "2", "pending": "1", "in_flight": "0",
        "oldest_pending_secs": "0"}, json_row
    error = json_row["last_error"]
    assert "HTTP status 500" in error and bob in error, error
    assert _short(b1) in error, error
    error_time = _local_time(json_row["last_error_time"])
    assert before_error - 2 <= error_time <= time.time() + 1, json_row

    # tab: the same row, tab-separated
    assert doveadm.parse_tab(status("tab")) == json_rows
    # table: the same header and values (doveadm pads and may squeeze the
    # columns, so compare the words)
    table = status("table").rstrip("\n").split("\n")
    assert table[0].split() == STATUS_COLUMNS, table
    assert len(table) == 2, table
    words = table[1].split()
    assert words[:5] == [json_row[k] for k in STATUS_COLUMNS[:5]], table
    assert " ".join(words[5:]) == "%s %s" % (error,
                                             json_row["last_error_time"])
    # the default formatter is the table
    assert status(None).split("\n")[0].split() == STATUS_COLUMNS

    # a push waiting for its retry keeps ageing from its mail's arrival
    row = _wait_for_status(doveadm, dovecot,
                           lambda r: int(r["oldest_pending_secs"]) >= 2,
                           timeout=5.0)
    assert row["pending"] == "1" and int(row["oldest_pending_secs"]) >= 2, \
        row
    assert_no_token_leaks(dovecot, [a1, a2, b1], outputs)


def test_doveadm_list(dovecot_factory, sink, doveadm):
    dovecot = dovecot_factory(sink=sink, settings={
        "deltapush_debounce": "1s",
        "deltapush_retry_base": "30s",
    })
    user = new_user("list")
    healthy, failing = make_token(), make_token()
    registered = time.time()
    register(dovecot, user, healthy, failing)
    sink.set_status(failing, 500)
    mark = dovecot.log_size()
    deliver(dovecot, user)
    failed_at = time.time()
    assert dovecot.wait_for_log(lambda t: "(attempt 1," in t, offset=mark,
                                timeout=4)

    rows = doveadm.run_json(dovecot, "deltapush", "list", "-u", user)
    assert [list(row) for row in rows] == [LIST_COLUMNS] * 2, rows
    by_token = {row["id"]: row for row in rows}
    assert set(by_token) == {_short(healthy), _short(failing)}, rows
    ok, bad = by_token[_short(healthy)], by_token[_short(failing)]
    for row in rows:
        for column in ("created", "last_seen"):
            assert registered - 2 <= _local_time(row[column]) <= \
                time.time() + 1, row
    assert (ok["state"], ok["next_attempt"], ok["failed_attempts"]) == \
        ("idle", "-", "0"), ok
    assert (bad["state"], bad["failed_attempts"]) == ("retrying", "1"), bad
    # next attempt: retry base (30 s) after the failure
    assert failed_at + 27 <= _local_time(bad["next_attempt"]) <= \
        failed_at + 32, (bad, failed_at)

    outputs = {}
    for fmt in ("table", "tab"):
        result = doveadm.run_ok(dovecot, "deltapush", "list", "-u", user,
                                fmt=fmt)
        outputs[fmt] = result.stdout
    assert doveadm.parse_tab(outputs["tab"]) == rows
    # doveadm pads the table to the values of the first rows and squeezes
    # it into 80 columns, so compare words per line
    lines = outputs["table"].rstrip("\n").split("\n")
    assert lines[0].split() == LIST_COLUMNS, lines
    assert [line.split() for line in lines[1:]] == \
        [" ".join(row[c] for c in LIST_COLUMNS).split() for row in rows], \
        lines

    # no tokens: an empty list; no user: a usage error
    other = new_user("nobody")
    assert doveadm.run_json(dovecot, "deltapush", "list", "-u", other) == []
    result = doveadm.run(dovecot, "deltapush", "list")
    assert result.returncode == 64, result
    assert "-u" in result.stderr, result
    assert_no_token_leaks(dovecot, [healthy, failing], outputs)


def test_doveadm_forget_changes_getmetadata_and_pushes(dovecot_factory, sink,
                                                       doveadm):
    dovecot = dovecot_factory(sink=sink, settings={"deltapush_debounce": "0"})
    user = new_user("forget")
    t1, t2, t3 = make_token(), make_token(), make_token()
    register(dovecot, user, t1, t2, t3)
    outputs = {}

    # the ids tell the tokens apart, though every Delta Chat token starts
    # with the same header, which picks none
    listed = [row["id"] for row in doveadm.run_json(
        dovecot, "deltapush", "list", "-u", user)]
    assert listed == [token_id(t) for t in (t1, t2, t3)], listed
    assert doveadm.run_json(dovecot, "deltapush", "forget", "-u", user,
                            "openpgp:") == [{"removed": "0"}]
    assert tokens_of(dovecot, user) == [t1, t2, t3]

    # an unknown id removes nothing
    assert doveadm.run_json(dovecot, "deltapush", "forget", "-u", user,
                            "00000000" if token_id(t2) != "00000000"
                            else "11111111") == [{"removed": "0"}]

    # one token by its id (table output)
    result = doveadm.run_ok(dovecot, "deltapush", "forget", "-u", user,
                            token_id(t2), fmt="table")
    outputs["one"] = result.stdout
    names, rows = doveadm.parse_table(result.stdout)
    assert (names, rows) == (["removed"], [{"removed": "1"}]), result.stdout
    assert tokens_of(dovecot, user) == [t1, t3]
    since = deliver(dovecot, user)
    got = sink.wait_for_bodies([t1, t3], timeout=5, since=since)
    assert {r.body for r in got} == {t1.encode(), t3.encode()}
    time.sleep(1.0)
    assert sink.requests(since=since, bodies=[t2]) == []

    # all of the user's tokens (JSON output)
    assert doveadm.run_json(dovecot, "deltapush", "forget", "-u", user) == \
        [{"removed": "2"}]
    assert tokens_of(dovecot, user) == []
    since = deliver(dovecot, user)
    time.sleep(1.5)
    assert sink.requests(since=since, bodies=[t1, t2, t3]) == []
    assert "Forgot 2 token(s) of user %s" % user in dovecot.log_text()
    assert_no_token_leaks(dovecot, [t1, t2, t3], outputs)


def test_doveadm_flush_sends_waiting_pushes_now(dovecot_factory, sink,
                                               doveadm):
    # retries 30 s apart: during the test only a flush sends them
    dovecot = dovecot_factory(sink=sink,
                              settings=retry_settings("30s", "10m"))
    alice, bob = new_user("alice"), new_user("bob")
    alice_token, bob_token = make_token(), make_token()
    register(dovecot, alice, alice_token)
    register(dovecot, bob, bob_token)
    outputs = {}

    sink.stop()
    try:
        mark = dovecot.log_size()
        deliver(dovecot, [alice, bob])
        assert dovecot.wait_for_log(
            lambda t: t.count("(attempt 1,") == 2, offset=mark, timeout=4), \
            dovecot.log_since(mark)
        rows = doveadm.run_json(dovecot, "deltapush", "list", "-u", alice)
        assert [(r["state"], r["failed_attempts"]) for r in rows] == \
            [("retrying", "1")], rows
    finally:
        sink.start()
    recovered = time.monotonic()
    # the proxy is back, but nothing is due for 30 s
    time.sleep(1.0)
    assert sink.requests(since=recovered) == []

    # one user's pushes (table output)
    result = doveadm.run_ok(dovecot, "deltapush", "flush", "-u", alice,
                            fmt="table")
    outputs["alice"] = result.stdout
    assert doveadm.parse_table(result.stdout) == \
        (["flushed"], [{"flushed": "1"}]), result.stdout
    got = sink.wait_for_bodies([alice_token], timeout=3, since=recovered)
    assert [r.status for r in got] == [200]
    rows = doveadm.run_json(dovecot, "deltapush", "list", "-u", alice)
    assert [(r["state"], r["failed_attempts"], r["next_attempt"])
            for r in rows] == [("idle", "0", "-")], rows
    assert sink.requests(since=recovered, bodies=[bob_token]) == []

    # everyone's (JSON); the proxy now says bob's token is gone, which
    # GETMETADATA then shows
    sink.set_status(bob_token, 410)
    assert tokens_of(dovecot, bob) == [bob_token]
    assert doveadm.run_json(dovecot, "deltapush", "flush") == \
        [{"flushed": "1"}]
    got = sink.wait_for_bodies([bob_token], timeout=3, since=recovered)
    assert [r.status for r in got] == [410]
    assert wait_until(lambda: tokens_of(dovecot, bob) == [], 3)

    # nothing left to flush; every folded message cost no extra push
    assert doveadm.run_json(dovecot, "deltapush", "flush") == \
        [{"flushed": "0"}]
    time.sleep(1.2)
    assert len(sink.requests(since=recovered, bodies=[alice_token])) == 1
    assert len(sink.requests(since=recovered, bodies=[bob_token])) == 1
    assert_no_token_leaks(dovecot, [alice_token, bob_token], outputs)


# ---- logs ----

def test_no_whole_token_in_any_log(dovecot_factory, sink):
    """A run through every path that logs a token (registration, refresh,
    eviction, invalid tokens, 200, 410, 500 with retries and drop,
    forget, flush, list, status) with deltapush debug logging on; then no
    log file or doveadm output may hold any piece of a token (only its id)."""
    dovecot = dovecot_factory(
        sink=sink, extra_config="log_debug = category=deltapush\n",
        settings=retry_settings("1s", "2s"))

    def big():
        # ~900 bytes: "openpgp:" and 896 base64 characters
        return make_token(670)

    u1, u2, u3, u4 = (new_user("scan") for _ in range(4))
    ok, gone, failing, other, forgotten = (big() for _ in range(5))
    many = [big() for _ in range(33)]          # one more than a user keeps
    register(dovecot, u1, ok, gone)
    register(dovecot, u1, ok)                   # refresh
    register(dovecot, u2, failing)
    with dovecot.imap(u3) as client:
        set_token(client, other, entry=PUSH_TOKEN)
        set_token(client, forgotten)
        # invalid tokens are refused; their text must not be logged
        bad_space = big()[:400] + " " + big()[8:400]
        bad_long = "openpgp:" + "".join(big()[8:] for _ in range(6))
        for bad in (bad_space, bad_long):
            reply = client.setmetadata("INBOX", "/private/devicetoken", bad)
            assert not reply.ok, reply
    register(dovecot, u4, *many)
    sink.set_status(gone, 410)
    sink.set_status(failing, 500)

    started = deliver(dovecot, [u1, u2, u3, u4])
    sink.wait_for(2, timeout=4, since=started, bodies=[failing])
    assert dovecot.wait_for_log(lambda t: "Giving up pushing token" in t,
                                timeout=3)
    sink.wait_for_bodies([ok, gone, other, forgotten], timeout=5,
                         since=started)
    # 32 of the 33 are still registered
    assert len(sink.wait_for(32, timeout=5, since=started,
                             bodies=many)) == 32

    outputs = {}
    if doveadm_ns.available() is None:
        for args in (["deltapush", "status"],
                     ["deltapush", "list", "-u", u1],
                     ["deltapush", "list", "-u", u4],
                     ["deltapush", "forget", "-u", u3, token_id(forgotten)],
                     ["deltapush", "flush"],
                     ["deltapush", "forget", "-u", u3, "openpgp:"]):
            for fmt in ("table", "json"):
                result = doveadm_ns.run(dovecot, *args, fmt=fmt)
                outputs[" ".join(args + [fmt])] = \
                    result.stdout + result.stderr
    else:
        print("doveadm output not scanned: %s" % doveadm_ns.available())
    dovecot.stop()

    texts = log_texts(dovecot, outputs)
    log = texts[dovecot.log_path]
    # the scan is not vacuous: the paths above did log, with token ids
    for needle in ("Registered token " + _short(ok),
                   "Evicted token ",
                   "Removed token " + _short(gone),
                   "Giving up pushing token " + _short(failing),
                   "Debug: Push to token " + _short(other)):
        assert needle in log, needle
    every = [ok, gone, failing, other, forgotten, bad_space, bad_long] + many
    # the invalid ones: each half of the spaced one, and the long one
    every += bad_space.split(" ")
    leaks = token_leaks(texts, every)
    assert not leaks, "whole tokens in logs or output: %r" % leaks
