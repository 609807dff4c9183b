"""End-to-end checks against the system Dovecot with the installed package.

Run by test-deb.sh once Dovecot is up: logs in over IMAP, registers a
token the way Delta Chat does, delivers a message over LMTP and checks
that the push reaches a local sink standing in for the notification
proxy. Prints one "PASS: ..." or "FAIL: ..." line per check.

  e2e.py IMAP_PORT LMTP_PORT SINK_PORT USER PASSWORD
"""

import http.server
import imaplib
import secrets
import smtplib
import subprocess
import sys
import threading
import time

HOST = "127.0.0.1"

results = []


def check(name, ok, detail=""):
    results.append(ok)
    line = "%s: %s" % ("PASS" if ok else "FAIL", name)
    if detail and not ok:
        line += " (%s)" % detail
    print(line, flush=True)
    return ok


class Sink(http.server.ThreadingHTTPServer):
    """Answers every POST with 200, like the proxy, and keeps them."""

    daemon_threads = True

    def __init__(self, port):
        super().__init__((HOST, port), SinkHandler)
        self.requests = []
        self.arrived = threading.Condition()

    def wait_for(self, count, timeout):
        deadline = time.monotonic() + timeout
        with self.arrived:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.arrived.wait(left)
            return list(self.requests)


class SinkHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
        with self.server.arrived:
            self.server.requests.append((self.command, self.path, body))
            self.server.arrived.notify_all()

    def log_message(self, fmt, *args):
        pass


def imap_checks(port, user, password, token):
    imaplib.Commands.setdefault("SETMETADATA", ("AUTH", "SELECTED"))
    imaplib.Commands.setdefault("GETMETADATA", ("AUTH", "SELECTED"))
    with imaplib.IMAP4(HOST, port, timeout=10) as imap:
        try:
            imap.login(user, password)
        except imaplib.IMAP4.error as e:
            check("IMAP LOGIN as %s" % user, False, str(e))
            return False
        check("IMAP LOGIN as %s" % user, True)

        typ, data = imap.capability()
        caps = data[0].decode().upper().split() if typ == "OK" else []
        check("CAPABILITY after login has XDELTAPUSH", "XDELTAPUSH" in caps,
              " ".join(caps))

        typ, data = imap._simple_command(
            "SETMETADATA", "INBOX", '(/private/devicetoken "%s")' % token)
        check("SETMETADATA INBOX /private/devicetoken", typ == "OK",
              "%s %r" % (typ, data))

        typ, data = imap._simple_command(
            "GETMETADATA", "INBOX", "/private/devicetoken")
        _, meta = imap._untagged_response(typ, data, "METADATA")
        text = b" ".join(m if isinstance(m, bytes) else b" ".join(m)
                         for m in meta if m is not None)
        check("GETMETADATA returns the registered token",
              typ == "OK" and token.encode() in text, repr(text))
        imap.logout()
    return True


def deliver(port, user):
    message = (
        "From: sender@example.net\r\n"
        "To: %s\r\n"
        "Subject: deltapush package test\r\n"
        "Message-ID: <%s@example.net>\r\n"
        "\r\n"
        "hello\r\n" % (user, secrets.token_hex(8)))
    with smtplib.LMTP(HOST, port, timeout=10) as lmtp:
        try:
            refused = lmtp.sendmail("sender@example.net", [user], message)
        except smtplib.SMTPException as e:
            return check("LMTP delivery to %s" % user, False, str(e))
    return check("LMTP delivery to %s" % user, not refused, repr(refused))


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

    sink = Sink(sink_port)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
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
                    method, path, body = requests[0]
                    check("the push is POST /notify", (method, path) ==
                          ("POST", "/notify"), "%s %s" % (method, path))
                    check("the push body is the token, byte for byte",
                          body == token.encode(), repr(body[:80]))
                    # One message, one push: nothing more after a while.
                    time.sleep(1)
                    check("exactly one push for one message",
                          len(sink.requests) == 1,
                          "%d pushes" % len(sink.requests))
    except (OSError, imaplib.IMAP4.error, smtplib.SMTPException) as e:
        check("end-to-end session", False, "%s: %s" % (type(e).__name__, e))
    finally:
        sink.shutdown()
    return 0 if results and all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
