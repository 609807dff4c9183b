"""Many users, parallel LMTP sessions: every token that should be woken is,
and no push reaches a token whose user got no mail."""

import collections
import concurrent.futures
import time

from dovecot_instance import lmtp_send, make_message
from helpers import make_token, new_user, register

USERS = 50
DELIVERIES_PER_USER = 4
IDLE_USERS = 10
SESSIONS = 10


def test_parallel_deliveries_reach_every_token_and_only_those(dovecot, sink):
    users = {new_user("load"): make_token() for _ in range(USERS)}
    idle = {new_user("idle"): make_token() for _ in range(IDLE_USERS)}
    with concurrent.futures.ThreadPoolExecutor(SESSIONS) as pool:
        list(pool.map(lambda item: register(dovecot, *item),
                      list(users.items()) + list(idle.items())))

    # each session delivers to its share of the users, round after round
    names = list(users)
    shares = [names[i::SESSIONS] for i in range(SESSIONS)]

    def session(share):
        client = dovecot.lmtp(timeout=30)
        codes = []
        try:
            for _ in range(DELIVERIES_PER_USER):
                for user in share:
                    replies = lmtp_send(client, "sender@example.net", [user],
                                        make_message(to=user))
                    codes.extend(code for code, _ in replies)
        finally:
            client.quit()
        return codes

    since = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(SESSIONS) as pool:
        results = list(pool.map(session, shares))
    delivery_time = time.monotonic() - since
    codes = [code for result in results for code in result]
    assert codes == [250] * (USERS * DELIVERIES_PER_USER)

    got = sink.wait_for_bodies(users.values(), since=since, timeout=30)
    received = {r.body for r in got}
    missing = [u for u, t in users.items() if t.encode() not in received]
    assert not missing, "%d of %d users got no push, e.g. %s (deliveries " \
        "took %.1f s)" % (len(missing), USERS, missing[:3], delivery_time)

    # let trailing pushes of the coalescing window arrive, then check that
    # nothing went anywhere else
    sink.wait_quiet(quiet=1.5, timeout=15)
    everything = sink.requests(since=since)
    known = {t.encode() for t in users.values()}
    idle_tokens = {t.encode() for t in idle.values()}
    strays = [r for r in everything if r.body not in known]
    assert not [r for r in strays if r.body in idle_tokens], \
        "pushes went to tokens of users who got no mail"
    assert not strays, strays[:3]
    # a burst costs at most one push per delivery for each token
    counts = collections.Counter(r.body for r in everything)
    assert max(counts.values()) <= DELIVERIES_PER_USER, counts.most_common(1)
    assert dovecot.service_pids() == [dovecot.started_service_pid]
