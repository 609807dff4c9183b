"""A small IMAP client for the tests.

imaplib hides too much of the wire (it re-quotes nothing, but it also cannot
send LITERAL+ literals or report how a value came back), so the tests speak
IMAP through this class: every command is sent exactly as written, literals
are sent as synchronizing `{N}` or non-synchronizing `{N+}` literals, and
replies are parsed into tokens with literals kept byte-exact.
"""

import socket
import time


class ImapError(Exception):
    pass


class Literal:
    """A command argument sent as an IMAP literal."""

    def __init__(self, data, plus=True):
        self.data = data.encode() if isinstance(data, str) else data
        self.plus = plus


class Atom(bytes):
    """An unquoted atom in a parsed reply (NIL is None, not an Atom)."""


class Reply:
    def __init__(self, tag, status, text, untagged, elapsed):
        self.tag = tag
        self.status = status          # "OK", "NO" or "BAD"
        self.text = text              # bytes after the status word
        self.untagged = untagged      # list of token lists (without "*")
        self.elapsed = elapsed        # seconds from sending to tagged reply

    @property
    def ok(self):
        return self.status == "OK"

    def __repr__(self):
        return "<Reply %s %s %r>" % (self.tag, self.status, self.text[:200])


def quote(value):
    """An IMAP quoted string for a str/bytes value without CR, LF or NUL."""
    if isinstance(value, str):
        value = value.encode()
    return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


class _Tokenizer:
    """Turns a reply (text chunks interleaved with literal data) into a
    nested list of tokens: bytes for strings (quoted or literal), Atom for
    atoms, None for NIL, lists for parenthesised groups."""

    def __init__(self, pieces):
        # pieces: list of ("text", bytes) / ("literal", bytes)
        self.pieces = pieces

    def parse(self):
        stack = [[]]
        for kind, data in self.pieces:
            if kind == "literal":
                stack[-1].append(bytes(data))
                continue
            i = 0
            n = len(data)
            while i < n:
                c = data[i:i + 1]
                if c in (b" ", b"\r", b"\n"):
                    i += 1
                elif c == b"(" or c == b"[":
                    stack.append([])
                    i += 1
                elif c == b")" or c == b"]":
                    if len(stack) == 1:
                        # stray bracket in free text: ignore it
                        i += 1
                        continue
                    group = stack.pop()
                    stack[-1].append(group)
                    i += 1
                elif c == b'"':
                    i += 1
                    out = bytearray()
                    while True:
                        if i >= n:
                            # unterminated (free text): keep what we have
                            break
                        ch = data[i:i + 1]
                        if ch == b"\\":
                            out += data[i + 1:i + 2]
                            i += 2
                        elif ch == b'"':
                            i += 1
                            break
                        else:
                            out += ch
                            i += 1
                    stack[-1].append(bytes(out))
                elif c == b"{":
                    # literal announcement: the data is the next piece
                    end = data.index(b"}", i)
                    i = end + 1
                else:
                    j = i
                    while j < n and data[j:j + 1] not in b" ()[]\r\n":
                        j += 1
                    word = data[i:j]
                    if word.upper() == b"NIL":
                        stack[-1].append(None)
                    else:
                        stack[-1].append(Atom(word))
                    i = j
        while len(stack) > 1:
            # tolerate an unclosed group (e.g. "[" in free text)
            group = stack.pop()
            stack[-1].append(group)
        return stack[0]


class ImapClient:
    def __init__(self, host, port, timeout=15.0):
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.file = self.sock.makefile("rb")
        self._tag = 0
        greeting = self._read_response()
        self.greeting = greeting
        if not greeting[0][1].startswith(b"* OK"):
            raise ImapError("bad greeting %r" % (greeting,))

    # ---- low level ----

    def _readline(self):
        line = self.file.readline()
        if not line:
            raise ImapError("connection closed by server")
        return line

    def _read_response(self):
        """Reads one response line with its literals:
        returns list of ("text", bytes) / ("literal", bytes)."""
        pieces = []
        while True:
            line = self._readline()
            pieces.append(("text", line))
            stripped = line.rstrip(b"\r\n")
            if stripped.endswith(b"}") and b"{" in stripped:
                size_text = stripped[stripped.rindex(b"{") + 1:-1]
                size_text = size_text.rstrip(b"+")
                if size_text.isdigit():
                    size = int(size_text)
                    data = self._read_exact(size)
                    pieces.append(("literal", data))
                    continue
            return pieces

    def _read_exact(self, size):
        chunks = []
        while size > 0:
            chunk = self.file.read(size)
            if not chunk:
                raise ImapError("connection closed inside a literal")
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def next_tag(self):
        self._tag += 1
        return "T%04d" % self._tag

    def command(self, *args, timeout=None):
        """Sends one command built from args (str/bytes are sent verbatim
        and joined by single spaces, Literal objects as literals) and
        returns its Reply."""
        tag = self.next_tag()
        segments = []          # list of bytes, each ending where a
        current = bytearray(tag.encode())  # sync literal must wait
        for arg in args:
            current += b" "
            if isinstance(arg, Literal):
                if arg.plus:
                    current += b"{%d+}\r\n" % len(arg.data)
                    current += arg.data
                else:
                    current += b"{%d}\r\n" % len(arg.data)
                    segments.append(bytes(current))
                    current = bytearray(arg.data)
            elif isinstance(arg, str):
                current += arg.encode()
            else:
                current += arg
        current += b"\r\n"
        segments.append(bytes(current))

        old_timeout = self.sock.gettimeout()
        if timeout is not None:
            self.sock.settimeout(timeout)
        try:
            start = time.monotonic()
            untagged = []
            for i, segment in enumerate(segments):
                self.sock.sendall(segment)
                if i + 1 < len(segments):
                    # wait for the continuation of a synchronizing literal
                    while True:
                        pieces = self._read_response()
                        first = pieces[0][1]
                        if first.startswith(b"+"):
                            break
                        if first.startswith(tag.encode() + b" "):
                            return self._tagged(tag, pieces, untagged, start)
                        untagged.append(_Tokenizer(pieces).parse()[1:])
            while True:
                pieces = self._read_response()
                first = pieces[0][1]
                if first.startswith(tag.encode() + b" "):
                    return self._tagged(tag, pieces, untagged, start)
                if first.startswith(b"* "):
                    untagged.append(_Tokenizer(pieces).parse()[1:])
                # anything else (a stray continuation) is ignored
        finally:
            if timeout is not None:
                self.sock.settimeout(old_timeout)

    def _tagged(self, tag, pieces, untagged, start):
        elapsed = time.monotonic() - start
        line = b"".join(d for k, d in pieces if k == "text").rstrip(b"\r\n")
        parts = line.split(b" ", 2)
        status = parts[1].decode().upper() if len(parts) > 1 else ""
        text = parts[2] if len(parts) > 2 else b""
        return Reply(tag, status, text, untagged, elapsed)

    # ---- commands ----

    def capabilities(self):
        reply = self.command("CAPABILITY")
        if not reply.ok:
            raise ImapError("CAPABILITY failed: %r" % reply)
        for tokens in reply.untagged:
            if tokens and tokens[0].upper() == b"CAPABILITY":
                return {t.decode().upper() for t in tokens[1:]
                        if isinstance(t, bytes)}
        raise ImapError("no CAPABILITY reply")

    def greeting_capabilities(self):
        """Capabilities from the greeting's [CAPABILITY ...] code, if any."""
        tokens = _Tokenizer(self.greeting).parse()
        for tok in tokens:
            if isinstance(tok, list) and tok and isinstance(tok[0], bytes) \
                    and tok[0].upper() == b"CAPABILITY":
                return {t.decode().upper() for t in tok[1:]
                        if isinstance(t, bytes)}
        return None

    def login(self, user, password="pass"):
        reply = self.command("LOGIN", quote(user), quote(password))
        if not reply.ok:
            raise ImapError("LOGIN %s failed: %r" % (user, reply))
        return reply

    def logout(self):
        try:
            self.command("LOGOUT", timeout=5)
        except (OSError, ImapError):
            pass
        self.close()

    def close(self):
        try:
            self.file.close()
        finally:
            self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.logout()
        return False

    # ---- METADATA helpers ----

    def setmetadata(self, mailbox, entry, value, timeout=None):
        """value: str/bytes (sent quoted), Literal, or None (NIL)."""
        if value is None:
            encoded = b"NIL"
        elif isinstance(value, Literal):
            encoded = value
        else:
            encoded = quote(value)
        if isinstance(encoded, Literal):
            return self.command("SETMETADATA", quote(mailbox),
                                b"(" + entry.encode(), encoded, b")",
                                timeout=timeout)
        return self.command("SETMETADATA", quote(mailbox),
                            b"(" + entry.encode() + b" " + encoded + b")",
                            timeout=timeout)

    def getmetadata(self, mailbox, *entries, timeout=None):
        """Returns (reply, {entry: value-bytes-or-None}) for mailbox."""
        if len(entries) == 1:
            arg = entries[0]
        else:
            arg = "(" + " ".join(entries) + ")"
        reply = self.command("GETMETADATA", quote(mailbox), arg,
                             timeout=timeout)
        return reply, parse_metadata(reply, mailbox)


def parse_metadata(reply, mailbox=None):
    """Collects entry -> value from the untagged METADATA replies of a
    GETMETADATA reply (values may have come as quoted strings or literals;
    NIL gives None). Entry names are lower-cased."""
    result = {}
    for tokens in reply.untagged:
        if len(tokens) < 3 or not isinstance(tokens[0], bytes) \
                or tokens[0].upper() != b"METADATA":
            continue
        box = tokens[1]
        if mailbox is not None and isinstance(box, bytes) and \
                box.decode() != mailbox and \
                not (mailbox.upper() == "INBOX" and box.upper() == b"INBOX"):
            continue
        pairs = tokens[2]
        if not isinstance(pairs, list):
            continue
        for i in range(0, len(pairs) - 1, 2):
            name = pairs[i].decode().lower()
            value = pairs[i + 1]
            result[name] = None if value is None else bytes(value)
    return result
