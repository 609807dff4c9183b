"""doveadm reload (SIGHUP to the master) under load loses nothing (issue
12, item 1): the old service process gives the database up before it
drains its in-flight pushes, the new one opens it at once, and the mail
processes retry a socket that is missing or refuses while the master
replaces the service. Every delivery acknowledged before, during and after
the reload gets its push; every SETMETADATA answered OK is stored."""

import signal
import smtplib
import threading
import time

from dovecot_instance import make_message, wait_until
from helpers import DEVICETOKEN, make_token, new_user, register, tokens_of

# One delivery (to its own user) this often, across the reload
DELIVERY_INTERVAL = 0.25
DELIVERIES = 20
# The proxy answers this slowly, so pushes are in flight at the reload
SINK_DELAY = 1.8


def _register_across(dovecot, stop, results):
    """SETMETADATA for new users, one after another, until stop is set;
    records (user, token, answered OK)."""
    while not stop.is_set():
        user, token = new_user("reg"), make_token()
        try:
            client = dovecot.imap(user, timeout=20)
        except Exception as e:
            # Dovecot's own reload: an old imap-login says "* BYE Server
            # shutting down". The client connects again; SETMETADATA
            # was never sent, so nothing was refused.
            print("registration session not started: %r" % (e,))
        else:
            try:
                with client:
                    reply = client.setmetadata("INBOX", DEVICETOKEN, token,
                                               timeout=15)
                    results.append((user, token, reply.ok))
            except Exception as e:  # sent, but no OK
                results.append((user, token, False))
                print("registration session failed: %r" % (e,))
        time.sleep(0.1)


def test_reload_under_load_loses_nothing(dovecot_factory, sink):
    dovecot = dovecot_factory(sink=sink, settings={
        "deltapush_debounce": "1s",
        "deltapush_service_timeout": "2s",
    })
    inflight = [new_user("fly") for _ in range(3)]
    steady = [new_user("mail") for _ in range(DELIVERIES)]
    token_of = {}
    for user in inflight + steady:
        token_of[user] = make_token()
        register(dovecot, user, token_of[user])
    old_pid = dovecot.service_pid()

    sink.delay = SINK_DELAY
    acknowledged = []

    def deliver(user):
        try:
            replies = dovecot.deliver_lmtp(user, make_message(to=user),
                                           timeout=20)
        except smtplib.SMTPException as e:
            # e.g. 421 from an lmtp process the reload stops: the MTA
            # retries, no push is owed for it
            print("delivery to %s not acknowledged: %r" % (user, e))
            return
        if [code for code, _ in replies] == [250]:
            acknowledged.append(user)
        else:
            print("delivery to %s: %r" % (user, replies))

    since = time.monotonic()
    for user in inflight:
        deliver(user)
    # the three pushes are on the wire now (the sink holds them)
    sink.wait_for_bodies([token_of[u] for u in inflight], timeout=5,
                         since=since)

    stop = threading.Event()
    registrations = []
    registrar = threading.Thread(target=_register_across,
                                 args=(dovecot, stop, registrations))
    registrar.start()
    try:
        for i, user in enumerate(steady):
            if i == 2:
                dovecot.process.send_signal(signal.SIGHUP)
            deliver(user)
            time.sleep(DELIVERY_INTERVAL)
    finally:
        stop.set()
        registrar.join(60)

    # the reload really replaced the service process
    assert wait_until(lambda: old_pid not in dovecot.service_pids() and
                      dovecot.service_pids(), 10.0), dovecot.log_tail()
    unacknowledged = set(inflight + steady) - set(acknowledged)
    print("deliveries not acknowledged: %r" % (unacknowledged,))

    wanted = {token_of[u] for u in acknowledged}
    got = sink.wait_for_bodies(wanted, timeout=30)
    lost = wanted - {r.body.decode() for r in got}
    print("pushes lost across the reload: %d of %d" % (len(lost),
                                                       len(wanted)))
    assert not lost, "%d acknowledged deliveries got no push\n%s" % (
        len(lost), dovecot.log_tail())

    sink.delay = 0
    ok = [(u, t) for u, t, answered in registrations if answered]
    refused = [u for u, _, answered in registrations if not answered]
    print("registrations across the reload: %d OK, %d refused"
          % (len(ok), len(refused)))
    assert ok, "no registration ran across the reload"
    missing = [u for u, t in ok if t not in tokens_of(dovecot, u)]
    assert not missing, "registrations answered OK but not stored: %r" % (
        missing,)
    # Nothing refused merely because the old process was draining
    assert not refused, "registrations refused across the reload: %r\n%s" \
        % (refused, dovecot.log_tail())
