"""Runs the staged `doveadm deltapush` module against a test Dovecot.

doveadm loads its plugins only from the compiled-in directory
/usr/lib/dovecot/modules/doveadm: module_overlay runs each doveadm with the
staged module in it (and, on Dovecot 2.4, the staged settings module).
`available()` says why not when that does not work here.
"""

import json
import shutil
import subprocess

import module_overlay
from dovecot_instance import DOVEADM

_unavailable = None
_checked = False


def _setup():
    """Returns None or why doveadm with the staged module cannot run here
    (checked once)."""
    global _unavailable, _checked
    if _checked:
        return _unavailable
    _checked = True
    if module_overlay.overlay_dir("doveadm") is None:
        _unavailable = ("%s not found under DELTAPUSH_STAGE"
                        % module_overlay.MODULES["doveadm"])
        return _unavailable
    if shutil.which("unshare") is None:
        _unavailable = "unshare(1) is not installed"
        return _unavailable
    # Does the namespace trick work here (container without CAP_SYS_ADMIN,
    # no mount(8), ...)? `doveadm help` lists the plugin's commands.
    try:
        probe = subprocess.run(_command([DOVEADM, "help"]),
                               capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        _unavailable = "unshare -m failed: %s" % e
        return _unavailable
    if b"deltapush" not in probe.stdout + probe.stderr:
        _unavailable = ("doveadm in a private mount namespace did not load "
                        "the staged module (exit %d): %s"
                        % (probe.returncode,
                           (probe.stderr or probe.stdout)[-400:]
                           .decode(errors="replace")))
    return _unavailable


def _command(argv):
    return module_overlay.command(argv, ("doveadm", "settings"))


def available():
    """None when doveadm with the staged module can run, else the reason."""
    return _setup()


def run(dovecot, *args, fmt=None, timeout=30.0):
    """`doveadm [-f fmt] -c <instance config> args...` with the staged
    module; returns the CompletedProcess (text)."""
    reason = _setup()
    if reason is not None:
        raise RuntimeError(reason)
    argv = [DOVEADM]
    if fmt is not None:
        argv += ["-f", fmt]
    argv += ["-c", dovecot.conf] + list(args)
    return subprocess.run(_command(argv), capture_output=True,
                          timeout=timeout, text=True)


def run_ok(dovecot, *args, fmt=None):
    result = run(dovecot, *args, fmt=fmt)
    assert result.returncode == 0, (
        "doveadm %s failed (exit %d):\n%s%s" % (
            " ".join(args), result.returncode, result.stdout,
            result.stderr))
    return result


def run_json(dovecot, *args):
    """The rows of `doveadm -f json ...` as a list of dicts."""
    result = run_ok(dovecot, *args, fmt="json")
    try:
        rows = json.loads(result.stdout)
    except ValueError:
        raise AssertionError("doveadm -f json %s printed no JSON: %r"
                             % (" ".join(args), result.stdout))
    assert isinstance(rows, list), rows
    return rows


def parse_tab(text):
    """Rows of `-f tab` output (header line, then tab-separated rows)."""
    lines = text.rstrip("\n").split("\n")
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"))) for line in lines[1:]]


def parse_table(text):
    """Rows of `-f table` output. Columns are padded with spaces; the
    header names start the columns, so values are cut at those offsets."""
    lines = [line for line in text.split("\n") if line.strip()]
    header = lines[0]
    starts = []
    names = []
    i = 0
    while i < len(header):
        if header[i] != " " and (i == 0 or header[i - 1] == " "):
            j = header.find(" ", i)
            j = len(header) if j < 0 else j
            starts.append(i)
            names.append(header[i:j])
            i = j
        else:
            i += 1
    rows = []
    for line in lines[1:]:
        row = {}
        for k, name in enumerate(names):
            end = starts[k + 1] if k + 1 < len(starts) else len(line)
            row[name] = line[starts[k]:end].strip()
        rows.append(row)
    return names, rows
