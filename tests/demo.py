"""The deltapush demo: one delivery, one push, on loopback only."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "integration"))

from dovecot_instance import DovecotInstance, find_stage_files, make_message  # noqa: E402
from helpers import make_token  # noqa: E402
from sink import Sink  # noqa: E402

USER = "alice@example.org"


def main():
    sink = Sink()
    sink.start()
    dovecot = DovecotInstance(
        stage_files=find_stage_files(os.environ["DELTAPUSH_STAGE"]),
        notify_url=sink.url)
    try:
        dovecot.start()
        print("Dovecot with deltapush running in %s" % dovecot.root)
        print("  IMAP 127.0.0.1:%d, LMTP 127.0.0.1:%d, sink %s" % (
            dovecot.imap_port, dovecot.lmtp_port, sink.url))

        token = make_token()
        with dovecot.imap(USER) as client:
            caps = client.capabilities()
            print("Capabilities after login include XDELTAPUSH: %s" %
                  ("XDELTAPUSH" in caps))
            reply = client.setmetadata("INBOX", "/private/devicetoken",
                                       token)
            print("SETMETADATA INBOX (/private/devicetoken \"%s...\"): %s" %
                  (token[:20], reply.status))

        start = time.monotonic()
        replies = dovecot.deliver_lmtp(
            USER, make_message(sender="bob@example.net", to=USER,
                               subject="hello"))
        print("LMTP delivery to %s: %s" % (USER, replies[0][0]))
        requests = sink.wait_for(1, timeout=10.0)
        if not requests:
            print("No push arrived at the sink. Dovecot log:")
            print(dovecot.log_tail(40))
            return 1
        req = requests[0]
        ok = req.body == token.encode()
        print("Push arrived at the sink after %.1f ms: POST %s, %d bytes, "
              "User-Agent %s, body %s the registered token" % (
                  (req.monotonic - start) * 1000,
                  req.path, len(req.body), req.header("User-Agent"),
                  "is exactly" if ok else "DIFFERS FROM"))
        print("\nService log lines:")
        for line in dovecot.log_text().splitlines():
            if " deltapush: " in line and "Debug" not in line:
                print("  " + line)
        return 0 if ok else 1
    finally:
        dovecot.cleanup()
        sink.stop()


if __name__ == "__main__":
    sys.exit(main())
