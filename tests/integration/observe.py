"""What an operator sees: Dovecot's OpenMetrics endpoint fed by the shipped
metric blocks, and a scan of every log for whole tokens."""

import glob
import os
import re
import urllib.error
import urllib.request

from dovecot_instance import DOVECOT_24, free_port, wait_until

CONF_NAME = "90-deltapush.conf"
TOKEN_WINDOW = 20


def shipped_conf_path():
    """The 90-deltapush.conf that `make install` staged, else the source
    tree's copy for the installed Dovecot."""
    stage = os.environ.get("DELTAPUSH_STAGE", "")
    found = sorted(glob.glob(os.path.join(stage, "**", CONF_NAME),
                             recursive=True))
    if found:
        return found[0]
    return os.path.join(os.path.dirname(os.path.abspath(__file__)),
                        os.pardir, os.pardir, "conf.d",
                        "2.4" if DOVECOT_24 else "2.3", CONF_NAME)


def shipped_metric_blocks():
    """The `metric NAME { ... }` blocks of the shipped configuration,
    verbatim."""
    with open(shipped_conf_path()) as f:
        text = f.read()
    blocks = re.findall(r"^metric [^\s{]+ \{\n.*?^\}\n", text,
                        re.S | re.M)
    assert blocks, "no metric blocks in %s" % shipped_conf_path()
    return "".join(blocks)


class Metrics:
    """Extra configuration for a DovecotInstance that exposes the shipped
    metrics on a loopback OpenMetrics listener, and a reader for them."""

    def __init__(self):
        self.port = free_port()

    def config(self):
        return shipped_metric_blocks() + (
            "service stats {\n"
            "  inet_listener http {\n"
            "    %s = 127.0.0.1\n"
            "    port = %d\n"
            "  }\n"
            "}\n" % ("listen" if DOVECOT_24 else "address", self.port))

    @property
    def url(self):
        return "http://127.0.0.1:%d/metrics" % self.port

    def text(self):
        with urllib.request.urlopen(self.url, timeout=5) as response:
            assert response.status == 200
            return response.read().decode()

    def samples(self):
        """{(name, labels-tuple): value} of every sample line."""
        result = {}
        for line in self.text().splitlines():
            if not line or line.startswith("#"):
                continue
            m = re.match(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})? (\S+)$",
                         line)
            if m is None:
                continue
            labels = tuple(sorted(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"',
                                             m.group(2) or "")))
            result[(m.group(1), labels)] = float(m.group(3))
        return result

    def value(self, name, **labels):
        """One sample's value, 0 when the series does not exist (yet)."""
        key = (name, tuple(sorted((k, str(v)) for k, v in labels.items())))
        return self.samples().get(key, 0)

    def wait_for(self, expected, timeout=8.0):
        """Waits until every {(name, labels-dict-items): value} in
        expected matches (the stats process receives events
        asynchronously); returns the last samples."""
        last = {}

        def check():
            try:
                last.clear()
                last.update(self.samples())
            except (OSError, urllib.error.URLError):
                return False
            return all(last.get(key, 0) == value
                       for key, value in expected.items())

        wait_until(check, timeout, interval=0.2)
        return last


def key(name, **labels):
    """A samples() key."""
    return (name, tuple(sorted((k, str(v)) for k, v in labels.items())))


def log_texts(dovecot, extra=None):
    """{name: text} of every file in the instance's log directory, plus
    the given extra {name: text} (e.g. doveadm output)."""
    texts = {}
    for path in sorted(glob.glob(os.path.join(dovecot.log_dir, "*"))):
        if os.path.isfile(path):
            with open(path, "rb") as f:
                texts[path] = f.read().decode(errors="replace")
    texts.update(extra or {})
    return texts


def token_leaks(texts, tokens, window=TOKEN_WINDOW):
    """Where any `window`-character piece of a token appears in the texts
    ({name: text}). A log shows only a token's id (a hash), so no
    20-character piece of a token may appear. Returns [(name, token prefix, piece)]."""
    leaks = []
    for name, text in texts.items():
        grams = {text[i:i + window] for i in range(len(text) - window + 1)}
        for token in tokens:
            for i in range(len(token) - window + 1):
                piece = token[i:i + window]
                if piece in grams:
                    leaks.append((name, token[:12], piece))
                    break
    return leaks
