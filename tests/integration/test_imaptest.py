"""Runs the scripts in tests/imaptest/ with Dovecot's imaptest (scripted
mode) against a Dovecot with deltapush, when the environment variable
IMAPTEST names an imaptest binary. imaptest is not packaged by Debian, so
without it these tests are skipped, saying so."""

import os
import re
import subprocess

import pytest

from helpers import new_user

SCRIPT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          os.pardir, "imaptest")
SCRIPTS = sorted(name for name in os.listdir(SCRIPT_DIR)
                 if not name.startswith(".") and not name.endswith(".mbox")
                 and os.path.isfile(os.path.join(SCRIPT_DIR, name)))


@pytest.fixture(scope="module")
def imaptest():
    binary = os.environ.get("IMAPTEST")
    if not binary:
        pytest.skip("IMAPTEST not set: set IMAPTEST to an imaptest binary "
                    "to run the scripts in tests/imaptest")
    if not os.access(binary, os.X_OK):
        pytest.fail("IMAPTEST=%s is not an executable" % binary)
    return binary


def _counts(output):
    """(failed, total) individual commands from imaptest's summary."""
    failed = total = 0
    found = False
    for match in re.finditer(r"^(?:base protocol|extensions): (\d+)/(\d+) "
                             r"individual commands failed", output, re.M):
        found = True
        failed += int(match.group(1))
        total += int(match.group(2))
    assert found, "no imaptest summary in output:\n" + output
    return failed, total


def test_scripts_exist():
    assert {"capability-login", "capability-required", "devicetoken",
            "push-token", "errors"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_imaptest_script(imaptest, dovecot, script, tmp_path):
    result = subprocess.run(
        [imaptest, "host=127.0.0.1", "port=%d" % dovecot.imap_port,
         "user=%s" % new_user("imaptest"), "pass=pass",
         "test=%s" % os.path.join(SCRIPT_DIR, script)],
        cwd=str(tmp_path), capture_output=True, timeout=120)
    output = result.stdout.decode(errors="replace") + \
        result.stderr.decode(errors="replace")
    assert result.returncode == 0, output
    failed, total = _counts(output)
    assert failed == 0, output
    # imaptest silently skips a script whose `capabilities:` are missing:
    # a script that ran no command counts as a failure here
    assert total > 0, "script ran no commands (capability missing?):\n" + \
        output
