"""pytest plugin for tests/sanitize.sh: runs the integration tests with the
deltapush code under a memory checker, and fails the session when the
checker reported anything.

    DELTAPUSH_SANITIZE=asan      the staged build is an --enable-sanitizers
                                 build: the service runs as it is, and the
                                 imap and lmtp processes (which load the
                                 plugins) get libasan preloaded
    DELTAPUSH_SANITIZE=valgrind  the staged build is a normal one: the imap
                                 and lmtp processes run under valgrind
                                 memcheck
    DELTAPUSH_SANITIZE_LOGS      directory for the reports (required)

Load it with `-p sanitize_pytest` and tests/ on PYTHONPATH. It appends
service blocks to every test Dovecot's configuration; dovecot-lda and
doveadm, which the tests start themselves, get the same treatment.
"""

import glob
import os
import subprocess
import sys

_here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(_here, "integration"))

import dovecot_instance  # noqa: E402

MODE = os.environ.get("DELTAPUSH_SANITIZE", "")
LOG_DIR = os.environ.get("DELTAPUSH_SANITIZE_LOGS", "")
LIBEXEC = "/usr/lib/dovecot"
VALGRIND = "/usr/bin/valgrind"


def _libasan():
    out = subprocess.run(["gcc", "-print-file-name=libasan.so"],
                         capture_output=True, text=True).stdout.strip()
    return os.path.realpath(out) if out and os.path.isabs(out) else None


def _asan_env():
    # detect_leaks: the mail processes live long, a leak there matters.
    # UBSan aborts on its first report (the build uses
    # -fno-sanitize-recover), so every report ends up in a file.
    return {
        "LD_PRELOAD": _libasan(),
        "ASAN_OPTIONS": "log_path=%s/asan:detect_leaks=1:"
                        "detect_stack_use_after_return=1" % LOG_DIR,
        "UBSAN_OPTIONS": "log_path=%s/ubsan:print_stacktrace=1" % LOG_DIR,
    }


def _valgrind_args():
    # --vgdb=no: the processes change their uid and could not remove
    # vgdb's pipes from /tmp
    return [VALGRIND, "-q", "--vgdb=no", "--leak-check=full",
            "--show-leak-kinds=definite",
            "--errors-for-leak-kinds=definite", "--error-exitcode=213",
            "--log-file=%s/valgrind.%%p" % LOG_DIR]


def _env_prefix(env):
    return "/usr/bin/env " + " ".join("%s=%s" % kv for kv in env.items())


def _extra_config(instance):
    if MODE == "asan":
        prefix = _env_prefix(_asan_env())
        # ASan reserves terabytes of address space: no vsz_limit.
        text = "default_vsz_limit = 0\n"
        wrapped = {"imap": "%s/imap" % LIBEXEC, "lmtp": "%s/lmtp" % LIBEXEC}
        if instance.deltapush:
            wrapped["deltapush"] = instance.stage_files["service"]
    elif MODE == "valgrind":
        prefix = " ".join(_valgrind_args())
        text = "default_vsz_limit = 0\n"
        wrapped = {"imap": "%s/imap" % LIBEXEC, "lmtp": "%s/lmtp" % LIBEXEC}
    else:
        return ""
    for service, binary in wrapped.items():
        text += "service %s {\n  executable = %s %s\n}\n" % (
            service, prefix, binary)
    return text


_orig_write_config = dovecot_instance.DovecotInstance.write_config


def _write_config(self):
    _orig_write_config(self)
    with open(self.conf, "a") as f:
        f.write("# added by tests/sanitize_pytest.py\n")
        f.write(_extra_config(self))


_orig_process_table = dovecot_instance.process_table


def _process_table():
    """Under valgrind a process is named after valgrind's tool: name it
    after the program valgrind runs, so the harness finds imap and lmtp
    processes by name."""
    table = _orig_process_table()
    for pid, (ppid, comm, cmdline) in list(table.items()):
        if comm.startswith("memcheck"):
            args = [a for a in cmdline.split(" ")[1:]
                    if a and not a.startswith("-")]
            if args:
                table[pid] = (ppid, os.path.basename(args[0])[:15], cmdline)
    return table


_orig_popen_init = subprocess.Popen.__init__


def _popen_init(self, args, *pargs, **kwargs):
    """dovecot-lda and doveadm, which the tests start themselves (directly
    or through unshare), load the plugins too: give them the checker.
    Dovecot binaries re-exec themselves through doveconf, which keeps only
    the variables named in DOVECOT_PRESERVE_ENVS."""
    if isinstance(args, (list, tuple)):
        binaries = (dovecot_instance.DOVECOT_LDA, dovecot_instance.DOVEADM)
        hits = [i for i, arg in enumerate(args) if arg in binaries]
        if hits and MODE == "asan":
            env = dict(kwargs.get("env") or os.environ)
            extra = _asan_env()
            env.update(extra)
            env["DOVECOT_PRESERVE_ENVS"] = " ".join(extra)
            kwargs["env"] = env
        elif hits and MODE == "valgrind":
            args = list(args[:hits[0]]) + _valgrind_args() + \
                list(args[hits[0]:])
    _orig_popen_init(self, args, *pargs, **kwargs)


def pytest_configure(config):
    if MODE not in ("asan", "valgrind"):
        raise RuntimeError("DELTAPUSH_SANITIZE must be asan or valgrind")
    if not LOG_DIR or not os.path.isdir(LOG_DIR):
        raise RuntimeError("DELTAPUSH_SANITIZE_LOGS must name a directory")
    if MODE == "asan" and not _libasan():
        raise RuntimeError("libasan.so not found (gcc -print-file-name)")
    # the mail processes run as other users
    os.chmod(LOG_DIR, 0o1777)
    dovecot_instance.DovecotInstance.write_config = _write_config
    subprocess.Popen.__init__ = _popen_init
    if MODE == "valgrind":
        dovecot_instance.process_table = _process_table


def reports():
    """The checker's reports so far: {path: text} of non-empty files."""
    found = {}
    for path in sorted(glob.glob(os.path.join(LOG_DIR, "*"))):
        try:
            with open(path, errors="replace") as f:
                text = f.read()
        except OSError:
            continue
        if text.strip():
            found[path] = text
    return found


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    found = reports()
    terminalreporter.section("%s reports" % MODE)
    if not found:
        terminalreporter.write_line("none (%s)" % LOG_DIR)
        return
    for path, text in found.items():
        terminalreporter.write_line("--- %s" % path)
        terminalreporter.write_line(text[:6000])


def pytest_sessionfinish(session, exitstatus):
    if reports() and session.exitstatus == 0:
        session.exitstatus = 1
