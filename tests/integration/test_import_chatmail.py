"""Migration from a chatmail relay (issue 8): `doveadm deltapush
import-chatmail DIR` reads the relay's DIR/<address>/metadata.json files in
both of their forms, imports every token with its last seen time, skips
expired, future and invalid entries, reports malformed files without
stopping, and changes nothing when run again."""

import json
import os
import time

from helpers import make_token, new_user, register, token_id, tokens_of
from observe import token_leaks

COLUMNS = ["users", "tokens_imported", "tokens_known", "tokens_expired",
           "tokens_invalid", "files_failed"]
EX_USAGE = 64
EX_DATAERR = 65
EX_NOINPUT = 66
DAY = 24 * 3600
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def _write_metadata(root, user, data, mtime=None):
    """DIR/<user>/metadata.json as the relay writes it; data is a dict or
    the raw text."""
    directory = os.path.join(root, user)
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "metadata.json")
    with open(path, "w") as f:
        f.write(data if isinstance(data, str) else json.dumps(data))
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def _import(doveadm, dovecot, root):
    """Runs the import with -f json; returns (counts, CompletedProcess)."""
    result = doveadm.run(dovecot, "deltapush", "import-chatmail", str(root),
                         fmt="json")
    try:
        rows = json.loads(result.stdout)
    except ValueError:
        raise AssertionError("import-chatmail printed no JSON (exit %d):\n"
                             "%s%s" % (result.returncode, result.stdout,
                                       result.stderr))
    assert len(rows) == 1 and list(rows[0]) == COLUMNS, rows
    return {name: int(value) for name, value in rows[0].items()}, result


def _counts(users=0, imported=0, known=0, expired=0, invalid=0, failed=0):
    return dict(zip(COLUMNS, (users, imported, known, expired, invalid,
                              failed)))


def _last_seen(doveadm, dovecot, user):
    """{token id: last seen unix time} from doveadm list."""
    rows = doveadm.run_json(dovecot, "deltapush", "list", "-u", user)
    return {row["id"]: time.mktime(time.strptime(row["last_seen"],
                                                         TIME_FORMAT))
            for row in rows}


def test_import_both_forms_then_nothing_changes(dovecot_factory, doveadm,
                                                tmp_path):
    dovecot = dovecot_factory()
    root = tmp_path / "example.org"
    root.mkdir()
    now = time.time()
    alice, bob, carol, dave, erin, frank = (
        new_user(name) for name in ("alice", "bob", "carol", "dave", "erin",
                                    "frank"))

    # the current form: float and integer times, one expired (older than
    # the 90 day default TTL), one too far in the future
    a_recent, a_older, a_expired, a_future = (make_token() for _ in range(4))
    _write_metadata(root, alice, {"devicetoken": {
        a_recent: now - 3600.25,
        a_older: int(now - 10 * DAY),
        a_expired: now - 91 * DAY,
        a_future: now + 3600,
    }})
    # the older list form: the file's mtime is the last seen time
    b1, b2 = make_token(), make_token()
    bob_mtime = int(now - 2 * DAY)
    _write_metadata(root, bob, {"devicetoken": [b1, b2]}, mtime=bob_mtime)
    # a truncated file: reported, and the others are still imported
    c1 = make_token()
    carol_path = _write_metadata(
        root, carol, json.dumps({"devicetoken": {c1: now}})[:-2])
    # other keys only
    _write_metadata(root, dave, {"other": {"devicetoken": [make_token()]},
                                 "n": None})
    # a user without a metadata file
    (root / erin).mkdir()
    # entries deltapush can't take, next to a good one
    f1 = make_token()
    _write_metadata(root, frank, {"devicetoken": {
        "not a token": now, make_token(): "yesterday", f1: now - 60}})
    # not an address: skipped with a warning, whatever it holds
    _write_metadata(root, "not-an-address", {"devicetoken": [make_token()]})
    # a plain file next to the user directories
    (root / "README").write_text("not a user\n")

    counts, result = _import(doveadm, dovecot, root)
    assert counts == _counts(users=4, imported=5, expired=1, invalid=3,
                             failed=1), (counts, result.stderr)
    # a failed file makes the exit code EX_DATAERR
    assert result.returncode == EX_DATAERR, result
    assert carol_path in result.stderr and "Invalid JSON" in result.stderr, \
        result.stderr
    assert "not-an-address" in result.stderr, result.stderr
    assert "in the future" in result.stderr, result.stderr
    frank_path = str(root / frank / "metadata.json")
    assert "%s: Skipping devicetoken entry 1:" % frank_path in \
        result.stderr, result.stderr
    assert "%s: Skipping devicetoken entry 2: Last seen time is a string" \
        % frank_path in result.stderr, result.stderr
    leaks = token_leaks({"stdout": result.stdout, "stderr": result.stderr},
                        [a_recent, a_older, a_expired, a_future, b1, b2, c1,
                         f1])
    assert not leaks, leaks

    # Delta Chat sees exactly the imported tokens
    assert sorted(tokens_of(dovecot, alice)) == sorted([a_recent, a_older])
    assert sorted(tokens_of(dovecot, bob)) == sorted([b1, b2])
    assert tokens_of(dovecot, carol) == []
    assert tokens_of(dovecot, dave) == []
    assert tokens_of(dovecot, frank) == [f1]
    # with the relay's last seen times (doveadm shows whole seconds)
    seen = _last_seen(doveadm, dovecot, alice)
    assert abs(seen[token_id(a_recent)] - (now - 3600)) <= 2, seen
    assert abs(seen[token_id(a_older)] - (now - 10 * DAY)) <= 2, seen
    seen = _last_seen(doveadm, dovecot, bob)
    assert seen == {token_id(b1): bob_mtime, token_id(b2): bob_mtime}, seen

    # again: nothing new, the same verdicts
    before = {user: sorted(tokens_of(dovecot, user))
              for user in (alice, bob, frank)}
    counts, result = _import(doveadm, dovecot, root)
    assert counts == _counts(users=4, known=5, expired=1, invalid=3,
                             failed=1), (counts, result.stderr)
    assert result.returncode == EX_DATAERR, result
    assert {user: sorted(tokens_of(dovecot, user))
            for user in (alice, bob, frank)} == before
    assert _last_seen(doveadm, dovecot, bob) == seen

    # the repaired file is picked up; the rest stays known
    _write_metadata(root, carol, {"devicetoken": {c1: now}})
    counts, result = _import(doveadm, dovecot, root)
    assert counts == _counts(users=5, imported=1, known=5, expired=1,
                             invalid=3), (counts, result.stderr)
    assert result.returncode == 0, result
    assert tokens_of(dovecot, carol) == [c1]


def test_import_never_moves_last_seen_back(dovecot_factory, doveadm,
                                           tmp_path):
    dovecot = dovecot_factory()
    user, token = new_user("seen"), make_token()
    registered = time.time()
    register(dovecot, user, token)
    _write_metadata(tmp_path, user, {"devicetoken": {
        token: registered - 30 * DAY}})

    counts, result = _import(doveadm, dovecot, tmp_path)
    assert counts == _counts(users=1, known=1), (counts, result.stderr)
    assert result.returncode == 0, result
    seen = _last_seen(doveadm, dovecot, user)
    assert abs(seen[token_id(token)] - registered) <= 2, seen
    assert tokens_of(dovecot, user) == [token]


def test_import_uses_the_token_ttl_setting(dovecot_factory, doveadm,
                                           tmp_path):
    dovecot = dovecot_factory(settings={"deltapush_token_ttl": "2d"})
    user = new_user("ttl")
    kept, dropped = make_token(), make_token()
    now = time.time()
    _write_metadata(tmp_path, user, {"devicetoken": {
        kept: now - 1 * DAY, dropped: now - 3 * DAY}})

    counts, result = _import(doveadm, dovecot, tmp_path)
    assert counts == _counts(users=1, imported=1, expired=1), \
        (counts, result.stderr)
    assert result.returncode == 0, result
    assert tokens_of(dovecot, user) == [kept]


def test_import_usage_errors(dovecot_factory, doveadm, tmp_path):
    dovecot = dovecot_factory()
    result = doveadm.run(dovecot, "deltapush", "import-chatmail")
    assert result.returncode == EX_USAGE, result
    missing = str(tmp_path / "missing")
    result = doveadm.run(dovecot, "deltapush", "import-chatmail", missing)
    assert result.returncode == EX_NOINPUT, result
    assert missing in result.stderr, result.stderr
    # an empty directory is a successful import of nothing
    counts, result = _import(doveadm, dovecot, tmp_path)
    assert counts == _counts(), counts
    assert result.returncode == 0, result


def test_import_stops_when_the_service_fails(dovecot_factory, doveadm,
                                             tmp_path):
    dovecot = dovecot_factory()
    first, second = sorted([new_user("down"), new_user("down")])
    _write_metadata(tmp_path, first, {"devicetoken": [make_token()]})
    _write_metadata(tmp_path, second, {"devicetoken": [make_token()]})
    dovecot.stop()

    counts, result = _import(doveadm, dovecot, tmp_path)
    # EX_TEMPFAIL after the first request, with the counts so far
    assert result.returncode == 75, result
    assert "deltapush service" in result.stderr, result.stderr
    assert counts == _counts(users=1), counts

    dovecot.start()
    counts, result = _import(doveadm, dovecot, tmp_path)
    assert counts == _counts(users=2, imported=2), (counts, result.stderr)
    assert result.returncode == 0, result
