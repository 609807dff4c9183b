"""What a new LMTP connection per delivery costs the push path.

Dovecot 2.4 runs one lmtp process per connection by default
(`service lmtp { restart_request_count = 1 }`): every delivery then comes
from a fresh process that connects to the deltapush service, sends its
handshake and NOTIFY and waits for the acknowledgement. This measures
sequential deliveries, each on a new LMTP connection, to users with a
registered token, on the installed Dovecot (2.3 or 2.4) through the
integration harness:

  (a) Dovecot without the deltapush plugins,
  (c) Dovecot with deltapush (debounce 0, so every delivery NOTIFYs),

interleaved in rounds, with the Dovecot default for lmtp processes and
with one process per connection forced on (restart_request_count /
service_count = 1). Prints p50/p90 connect-to-250 times in ms, the
difference (c) - (a) and the ratio; no assertion.

    DELTAPUSH_STAGE=build/stage python3 bench/lmtp_connections.py [N]
"""

import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                os.pardir, "tests", "integration"))

from dovecot_instance import (DOVECOT_24, DOVECOT_VERSION,  # noqa: E402
                              DovecotInstance, find_stage_files, lmtp_send,
                              make_message)
from helpers import make_token, register  # noqa: E402
from sink import Sink  # noqa: E402

USERS = 20
ROUNDS = 5


def one_process_per_connection():
    name = "restart_request_count" if DOVECOT_24 else "service_count"
    return "service lmtp {\n  %s = 1\n}\n" % name


def deliveries(dovecot, count, users):
    """count deliveries, each on a new LMTP connection; ms each."""
    times = []
    for i in range(count):
        rcpt = users[i % len(users)]
        message = make_message(to=rcpt, subject="bench %d" % i)
        start = time.monotonic()
        client = dovecot.lmtp()
        try:
            replies = lmtp_send(client, "sender@example.net", [rcpt], message)
        finally:
            client.quit()
        times.append((time.monotonic() - start) * 1000)
        assert replies[0][0] == 250, replies
    return times


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))]


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    stage = find_stage_files(os.environ["DELTAPUSH_STAGE"])
    sink = Sink()
    sink.start()
    users = ["bench%d@example.org" % i for i in range(USERS)]
    results = {}
    instances = {}
    try:
        for per_conn in (False, True):
            extra = one_process_per_connection() if per_conn else ""
            plain = DovecotInstance(deltapush=False, extra_config=extra)
            push = DovecotInstance(stage_files=stage, notify_url=sink.url,
                                   plugin_settings={
                                       "deltapush_debounce": "0"},
                                   extra_config=extra)
            for d in (plain, push):
                d.start()
            for user in users:
                register(push, user, make_token())
            instances[per_conn] = (plain, push)
            for d in (plain, push):
                deliveries(d, 20, users)   # warm up
        for _ in range(ROUNDS):
            for per_conn, (plain, push) in instances.items():
                for label, d in (("a", plain), ("c", push)):
                    results.setdefault((per_conn, label), []).extend(
                        deliveries(d, count // ROUNDS, users))
        pushed = len(sink.all_requests())
    finally:
        for pair in instances.values():
            for d in pair:
                d.cleanup()
        sink.stop()

    print("Dovecot %s: %d sequential deliveries per configuration, each on "
          "a new LMTP connection, %d rounds interleaved"
          % (".".join(map(str, DOVECOT_VERSION)), count, ROUNDS))
    print("%-34s %8s %8s %8s %8s %8s" % ("lmtp processes", "a p50",
                                          "c p50", "c-a p50", "c/a p50",
                                          "c p90"))
    for per_conn in (False, True):
        a = results[(per_conn, "a")]
        c = results[(per_conn, "c")]
        name = ("one per connection (forced)" if per_conn
                else "Dovecot's default")
        print("%-34s %8.3f %8.3f %8.3f %8.3f %8.3f" % (
            name, statistics.median(a), statistics.median(c),
            statistics.median(c) - statistics.median(a),
            statistics.median(c) / statistics.median(a), pct(c, 90)))
    print("pushes at the sink: %d" % pushed)


if __name__ == "__main__":
    main()
