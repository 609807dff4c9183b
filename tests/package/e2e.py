"""End-to-end checks against the system Dovecot with the installed package.

Run by test-deb.sh once Dovecot is up: logs in over IMAP, registers a
token the way Delta Chat does, delivers a message over LMTP and checks
that the push reaches a local sink standing in for the notification
proxy. Prints one "PASS: ..." or "FAIL: ..." line per check.

  e2e.py IMAP_PORT LMTP_PORT SINK_PORT USER PASSWORD
"""

import os
import secrets
import smtplib
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "integration"))

from dovecot_instance import lmtp_send, make_message  # noqa: E402
from imap_client import ImapClient, ImapError  # noqa: E402
from sink import Sink  # noqa: E402

HOST = "127.0.0.1"
DEVICETOKEN = "/private/devicetoken"

results = []


def check(name, ok, detail=""):
    results.append(ok)
    line = "%s: %s" % ("PASS" if ok else "FAIL", name)
    if detail and not ok:
        line += " (%s)" % detail
    print(line, flush=True)
    return ok


def imap_checks(port, user, password, token):
    with ImapClient(HOST, port, timeout=10) as imap:
        try:
            imap.login(user, password)
        except ImapError as e:
            check("IMAP LOGIN as %s" % user, False, str(e))
            return False
        check("IMAP LOGIN as %s" % user, True)

        caps = imap.capabilities()
        check("CAPABILITY after login has XDELTAPUSH", "XDELTAPUSH" in caps,
              " ".join(sorted(caps)))

        reply = imap.setmetadata("INBOX", DEVICETOKEN, token)
        check("SETMETADATA INBOX /private/devicetoken", reply.ok,
              repr(reply))

        reply, values = imap.getmetadata("INBOX", DEVICETOKEN)
        check("GETMETADATA returns the registered token",
              reply.ok and values.get(DEVICETOKEN) == token.encode(),
              repr(values))
    return True


def deliver(port, user):
    message = make_message(to=user, subject="deltapush package test")
    lmtp = smtplib.LMTP(HOST, port, timeout=10)
    try:
        replies = lmtp_send(lmtp, "sender@example.net", [user], message)
    except smtplib.SMTPException as e:
        return check("LMTP delivery to %s" % user, False, str(e))
    finally:
        lmtp.close()
    return check("LMTP delivery to %s" % user, replies[0][0] == 250,
                 repr(replies))


def doveadm_status_tokens():
    out = subprocess.run(["doveadm", "-f", "tab", "deltapush", "status"],
                         capture_output=True, text=True, timeout=30)
    lines = out.stdout.splitlines()
    if out.returncode != 0 or len(lines) < 2:
        return None, out.stdout + out.stderr
    row = dict(zip(lines[0].split("\t"), lines[1].split("\t")))
    return row.get("tokens"), out.stdout


def main():
    imap_port, lmtp_port, sink_port = map(int, sys.argv[1:4])
    user, password = sys.argv[4:6]

    sink = Sink(HOST, sink_port)
    sink.start()
    # Printable ASCII without spaces, as Delta Chat's tokens are.
    token = "openpgp:" + secrets.token_urlsafe(48)
    try:
        if imap_checks(imap_port, user, password, token):
            tokens, text = doveadm_status_tokens()
            check("doveadm deltapush status counts the token",
                  tokens == "1", text.strip())
            if deliver(lmtp_port, user):
                requests = sink.wait_for(1, timeout=15)
                check("a push reached the sink", len(requests) >= 1)
                if requests:
                    method, path, body = (requests[0].method,
                                          requests[0].path,
                                          requests[0].body)
                    check("the push is POST /notify", (method, path) ==
                          ("POST", "/notify"), "%s %s" % (method, path))
                    check("the push body is the token, byte for byte",
                          body == token.encode(), repr(body[:80]))
                    # One message, one push: nothing more after a while.
                    time.sleep(1)
                    pushes = len(sink.all_requests())
                    check("exactly one push for one message", pushes == 1,
                          "%d pushes" % pushes)
    except (OSError, ImapError, smtplib.SMTPException) as e:
        check("end-to-end session", False, "%s: %s" % (type(e).__name__, e))
    finally:
        sink.stop()
    return 0 if results and all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
