"""A throwaway Dovecot for the integration tests, the benchmarks, the soak
test and the demo.

Everything lives in a fresh temporary directory: configuration, base_dir,
state_dir, log, mail homes and a module directory of symlinks (the system's
notify and push_notification plugins plus the staged deltapush plugins). The
instance listens on 127.0.0.1 only, on free ports, and is stopped by the pid
of the master process it started.
"""

import atexit
import glob
import os
import pwd
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import time

import module_overlay
from imap_client import ImapClient

DOVECOT = "/usr/sbin/dovecot"
DOVEADM = "/usr/bin/doveadm"
DOVECOT_LDA = "/usr/lib/dovecot/dovecot-lda"
SYSTEM_MODULE_DIR = "/usr/lib/dovecot/modules"
SYSTEM_MODULES = ("lib15_notify_plugin.so", "lib20_push_notification_plugin.so")
MAIL_UID = 65534
MAIL_GID = 65534
# default_internal_user in the generated configuration
INTERNAL_USER = "dovecot"


def dovecot_version():
    """The installed Dovecot's version as a tuple, e.g. (2, 4, 1)."""
    out = subprocess.run([DOVECOT, "--version"], capture_output=True,
                         text=True).stdout
    parts = out.split()[0].split("-")[0].split(".") if out.strip() else []
    return tuple(int(p) for p in parts if p.isdigit())


DOVECOT_VERSION = dovecot_version() if os.access(DOVECOT, os.X_OK) else ()
# 2.4 has another configuration syntax, and settings modules
DOVECOT_24 = DOVECOT_VERSION >= (2, 4)


def dovecot_command(argv):
    """argv (a Dovecot program) run so that it sees the staged settings
    module on 2.4 (module_overlay); argv itself on 2.3."""
    if not DOVECOT_24:
        return list(argv)
    return module_overlay.command(argv, ("settings",))

_live_instances = set()
# Instances created and not yet cleaned up (their logs are shown when a test
# fails).
all_instances = []


class StageError(Exception):
    pass


def find_stage_files(stage):
    """Locates the staged plugins and service binary under a DESTDIR."""
    if not stage or not os.path.isdir(stage):
        raise StageError("DELTAPUSH_STAGE=%r is not a directory" % (stage,))

    def one(pattern, want_exec=False):
        found = sorted(p for p in glob.glob(os.path.join(stage, "**", pattern),
                                            recursive=True)
                       if os.path.isfile(p) and
                       (not want_exec or os.access(p, os.X_OK)))
        if not found:
            raise StageError("%s not found under DELTAPUSH_STAGE=%s"
                             % (pattern, stage))
        return os.path.abspath(found[0])

    return {
        "plugin": one("lib30_deltapush_plugin.so"),
        "imap_plugin": one("lib31_imap_deltapush_plugin.so"),
        "service": one("deltapush", want_exec=True),
    }


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _read(path, mode="r"):
    try:
        with open(path, mode) as f:
            return f.read()
    except OSError:
        return b"" if "b" in mode else ""


def process_table():
    """{pid: (ppid, comm, cmdline)} for every process we can read."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        stat = _read("/proc/%s/stat" % name)
        if not stat or ")" not in stat:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        cmdline = _read("/proc/%s/cmdline" % name, "rb").replace(b"\0", b" ")
        table[int(name)] = (int(fields[1]), comm,
                            cmdline.decode(errors="replace").strip())
    return table


def proc_status(pid):
    """Fields of /proc/<pid>/status as a dict of strings."""
    result = {}
    for line in _read("/proc/%d/status" % pid).splitlines():
        key, _, value = line.partition(":")
        result[key] = value.strip()
    return result


def fd_targets(pid):
    """What the open fds of a process point to ("socket:[123]", paths,
    "pipe:[..]"), fds closed while reading left out."""
    directory = "/proc/%d/fd" % pid
    targets = []
    for name in os.listdir(directory):
        try:
            targets.append(os.readlink(os.path.join(directory, name)))
        except OSError:
            continue
    return targets


def proc_kib(pid, field):
    value = proc_status(pid).get(field)
    if value is None:
        return None
    return int(value.split()[0])


def stop_process(proc, sig=signal.SIGTERM, timeout=10.0):
    """Stops a process we started (a subprocess.Popen) by its pid: sig,
    then SIGKILL if it has not exited within timeout."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)


def wait_until(predicate, timeout, interval=0.05):
    """Polls predicate until it returns something truthy or timeout
    seconds pass; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


class DovecotInstance:
    # Set in the environment, the instance's directory is kept.
    keep_env = "DELTAPUSH_KEEP_TMP"

    def __init__(self, stage_files=None, notify_url=None,
                 plugin_settings=None, extra_config="", deltapush=True,
                 service_user=None, push_plugins=True, tmpdir=None,
                 prefix="dpt-"):
        """stage_files: dict from find_stage_files() (needed when
        deltapush is True). plugin_settings: extra or overriding plugin {}
        settings; a value of None removes a default setting. service_user:
        the deltapush service's `user =` (e.g. "$default_internal_user",
        as shipped; its database directory in state_dir is then given to
        that user, as the packages do); None runs it as root.
        push_plugins: False loads neither notify nor push_notification (a
        Dovecot without push at all). tmpdir: where the instance's
        directory goes (default $DELTAPUSH_TEST_TMPDIR or /tmp)."""
        self.deltapush = deltapush
        self.push_plugins = push_plugins
        self.service_user = service_user
        self.stage_files = stage_files
        self.notify_url = notify_url
        self.plugin_settings = dict(plugin_settings or {})
        self.extra_config = extra_config
        # A short path (unix socket names are limited to 108 bytes) whose
        # ancestors the mail uid can traverse, whatever TMPDIR says.
        parent = tmpdir or os.environ.get("DELTAPUSH_TEST_TMPDIR", "/tmp")
        self.root = tempfile.mkdtemp(prefix=prefix, dir=parent)
        os.chmod(self.root, 0o755)
        self.name = os.path.basename(self.root)
        self.conf = os.path.join(self.root, "dovecot.conf")
        self.base_dir = os.path.join(self.root, "run")
        self.state_dir = os.path.join(self.root, "state")
        self.log_dir = os.path.join(self.root, "log")
        self.log_path = os.path.join(self.log_dir, "dovecot.log")
        self.home_root = os.path.join(self.root, "home")
        self.module_dir = os.path.join(self.root, "modules")
        self.imap_port = free_port()
        self.lmtp_port = free_port()
        self.process = None
        self._master_out = None
        for d in (self.state_dir, self.log_dir, self.home_root,
                  self.module_dir):
            os.makedirs(d, exist_ok=True)
        os.chown(self.home_root, MAIL_UID, MAIL_GID)
        if service_user is not None:
            os.makedirs(self.db_dir, mode=0o700)
            user = INTERNAL_USER if service_user.startswith("$") \
                else service_user
            pw = pwd.getpwnam(user)
            os.chown(self.db_dir, pw.pw_uid, pw.pw_gid)
        self._link_modules()
        self.write_config()
        all_instances.append(self)

    @property
    def db_dir(self):
        """The directory of the default database."""
        return os.path.join(self.state_dir, "deltapush")

    @property
    def db_path(self):
        """The default database."""
        return os.path.join(self.db_dir, "deltapush.sqlite")

    @property
    def socket_path(self):
        """The deltapush service's unix socket."""
        return os.path.join(self.base_dir, "deltapush")

    # ---- configuration ----

    def _link_modules(self):
        for name in SYSTEM_MODULES:
            os.symlink(os.path.join(SYSTEM_MODULE_DIR, name),
                       os.path.join(self.module_dir, name))
        if self.deltapush:
            for key in ("plugin", "imap_plugin"):
                path = self.stage_files[key]
                os.symlink(path, os.path.join(self.module_dir,
                                              os.path.basename(path)))

    def deltapush_settings(self):
        """The plugin settings of this instance (2.3 plugin {} names),
        overrides applied."""
        settings = {}
        if self.deltapush:
            settings = {
                "push_notification_driver": "deltapush",
                "deltapush_notify_url": self.notify_url or
                "http://127.0.0.1:9/notify",
                "deltapush_socket": "deltapush",
            }
        settings.update(self.plugin_settings)
        return {k: v for k, v in settings.items() if v is not None}

    def service_block(self):
        if not self.deltapush:
            return ""
        return (
            "service deltapush {\n"
            "  executable = %s\n"
            "  process_limit = 1\n"
            "  process_min_avail = 1\n"
            "  client_limit = 10000\n"
            "%s"
            "  unix_listener deltapush {\n"
            "    mode = 0600\n"
            "    user = nobody\n"
            "  }\n"
            "}\n" % (self.stage_files["service"],
                      "" if self.service_user is None else
                      "  user = %s\n" % self._config_value(
                          self.service_user)))

    @staticmethod
    def _config_value(value):
        """$default_internal_user and the like: 2.4 spells a reference
        to another setting $SET:name."""
        if DOVECOT_24 and value.startswith("$") and \
                not value.startswith("$SET:"):
            return "$SET:" + value[1:]
        return value

    def write_config(self):
        """One writer for both configuration syntaxes: Dovecot 2.3's
        (plugin {}, $mail_plugins lists) and 2.4's (top-level settings,
        boolean lists, named filters)."""
        settings = self.deltapush_settings()
        v = dict(name=self.name, base_dir=self.base_dir,
                 state_dir=self.state_dir, log_path=self.log_path,
                 uid=MAIL_UID, gid=MAIL_GID, home_root=self.home_root,
                 module_dir=self.module_dir, imap_port=self.imap_port,
                 lmtp_port=self.lmtp_port, service=self.service_block(),
                 extra=self.extra_config)
        # the settings both versions spell alike
        v["head"] = """\
instance_name = {name}
base_dir = {base_dir}
state_dir = {state_dir}
log_path = {log_path}
protocols = imap lmtp
listen = 127.0.0.1
ssl = no
auth_mechanisms = plain login
default_login_user = dovenull
default_internal_user = {internal_user}
verbose_proctitle = yes
""".format(internal_user=INTERNAL_USER, **v)
        if DOVECOT_24:
            text = self._config_24(settings, v)
        else:
            text = self._config_23(settings, v)
        with open(self.conf, "w") as f:
            f.write(text)

    @staticmethod
    def _delivery_and_imap(imap_plugins):
        """Delivery and IMAP settings both versions spell alike."""
        return """\
recipient_delimiter = +
lmtp_save_to_detail_mailbox = yes
lda_mailbox_autocreate = yes
postmaster_address = postmaster@example.org
protocol imap {
%s  imap_metadata = yes
  mail_max_userip_connections = 200
}
""" % imap_plugins

    def _listeners(self, address_setting):
        """IMAP and LMTP on loopback (2.3 names the address `address`,
        2.4 `listen`)."""
        return """\
service imap-login {{
  inet_listener imap {{
    {key} = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    {key} = 127.0.0.1
    port = {lmtp_port}
  }}
}}
""".format(key=address_setting, imap_port=self.imap_port,
           lmtp_port=self.lmtp_port)

    def _config_23(self, settings, v):
        plugins = "notify push_notification" if self.push_plugins else ""
        imap_plugins = ""
        if self.deltapush:
            plugins += " deltapush"
            imap_plugins = "  mail_plugins = $mail_plugins imap_deltapush\n"
        v["listeners"] = self._listeners("address")
        v["delivery"] = self._delivery_and_imap(imap_plugins)
        return """\
# Generated by the deltapush test harness.
{head}disable_plaintext_auth = no
passdb {{
  driver = static
  args = password=pass
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={home_root}/%u
}}
mail_location = maildir:~/Maildir
namespace inbox {{
  inbox = yes
  separator = /
}}
mail_attribute_dict = file:%h/dovecot-attributes
mail_plugin_dir = {module_dir}
mail_plugins = $mail_plugins {plugins}
{delivery}plugin {{
{plugin_lines}}}
{listeners}{service}{extra}
""".format(plugins=plugins,
           plugin_lines="".join("  %s = %s\n" % kv
                                for kv in settings.items()), **v)

    def _config_24(self, settings, v):
        plugins = ["notify", "push_notification"] if self.push_plugins \
            else []
        imap_plugins = ""
        push = ""
        settings = dict(settings)
        if self.deltapush:
            plugins.append("deltapush")
            imap_plugins = "  mail_plugins {\n    imap_deltapush = yes\n  }\n"
        # 2.4 names push_notification drivers in filters; 2.3's driver
        # options ("ox:url=... user_from_metadata") become its settings.
        driver = settings.pop("push_notification_driver", None)
        if driver is not None:
            name, _, options = driver.partition(":")
            lines = []
            for option in options.split():
                key, eq, value = option.partition("=")
                lines.append("  push_notification_%s_%s = %s\n"
                             % (name, key, value if eq else "yes"))
            push = "push_notification %s {\n%s}\n" % (name, "".join(lines))
        v["listeners"] = self._listeners("listen")
        v["delivery"] = self._delivery_and_imap(imap_plugins)
        return """\
# Generated by the deltapush test harness.
dovecot_config_version = {version}
dovecot_storage_version = {version}
{head}auth_allow_cleartext = yes
passdb static {{
  password = pass
}}
userdb static {{
  fields {{
    uid = {uid}
    gid = {gid}
    home = {home_root}/%{{user}}
  }}
}}
mail_driver = maildir
mail_path = ~/Maildir
namespace inbox {{
  inbox = yes
  separator = /
}}
mail_attribute {{
  dict file {{
    path = %{{home}}/dovecot-attributes
  }}
}}
mail_plugin_dir = {module_dir}
mail_plugins {{
{plugins}}}
{delivery}{push}{settings}{listeners}{service}{extra}
""".format(version=".".join(str(n) for n in DOVECOT_VERSION[:3]),
           plugins="".join("  %s = yes\n" % p for p in plugins),
           push=push,
           settings="".join("%s = %s\n" % kv for kv in settings.items()),
           **v)

    # ---- lifecycle ----

    def start(self, timeout=10.0):
        if self.process is not None:
            raise RuntimeError("already started")
        self._master_out = open(os.path.join(self.log_dir, "master.out"), "ab")
        self.process = subprocess.Popen(
            dovecot_command([DOVECOT, "-F", "-c", self.conf]),
            stdin=subprocess.DEVNULL,
            stdout=self._master_out, stderr=subprocess.STDOUT)
        _live_instances.add(self)
        try:
            self._wait_ready(timeout)
        except Exception:
            self.stop()
            raise
        self.started_service_pid = (self.service_pids() or [None])[0] \
            if self.deltapush else None

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout

        def check(what, predicate):
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        "dovecot exited with %s while waiting for %s\n%s"
                        % (self.process.returncode, what, self.log_tail()))
                if predicate():
                    return
                if time.monotonic() >= deadline:
                    raise RuntimeError("dovecot: timed out waiting for %s\n%s"
                                       % (what, self.log_tail()))
                time.sleep(0.05)

        check("IMAP greeting", self._imap_ready)
        check("LMTP port", lambda: self._port_open(self.lmtp_port))
        if self.deltapush:
            check("the deltapush socket",
                  lambda: os.path.exists(self.socket_path))
            check("the deltapush service process",
                  lambda: self.service_pids())

    @staticmethod
    def _port_open(port):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            return False

    def _imap_ready(self):
        try:
            with socket.create_connection(("127.0.0.1", self.imap_port),
                                          timeout=2) as s:
                s.settimeout(2)
                return s.recv(100).startswith(b"* OK")
        except OSError:
            return False

    def stop(self, timeout=10.0):
        """SIGTERM to the master we started, then wait for it and for the
        children it had to go away."""
        if self.process is None:
            return
        children = list(self.children())
        stop_process(self.process, timeout=timeout)

        def children_gone():
            for pid in children:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    continue
                state = proc_status(pid).get("State", "")
                if not state.startswith("Z"):
                    return False
            return True

        if not wait_until(children_gone, timeout):
            # A child that outlived its master (seen with anvil) would
            # spin on: it is ours, stop it by its pid.
            for pid in children:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.process = None
        if self._master_out is not None:
            self._master_out.close()
            self._master_out = None
        _live_instances.discard(self)

    def restart(self):
        self.stop()
        self.start()

    def cleanup(self):
        self.stop()
        if self in all_instances:
            all_instances.remove(self)
        if os.environ.get(self.keep_env):
            return
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def master_pid(self):
        return self.process.pid if self.process is not None else None

    def children(self, comm=None):
        """Pids of the running master's direct children (optionally only
        those whose process name is comm)."""
        if self.process is None:
            return []
        master = self.process.pid
        return [pid for pid, (ppid, name, _) in process_table().items()
                if ppid == master and (comm is None or name == comm)]

    def service_pids(self):
        return self.children("deltapush")

    def service_pid(self, timeout=10.0):
        pids = wait_until(self.service_pids, timeout)
        if len(pids) != 1:
            raise RuntimeError("expected one deltapush service, found %r"
                               % (pids,))
        return pids[0]

    def imap_pids(self, user=None):
        """imap processes of this instance; with user, only those serving
        that user (verbose_proctitle names the user in the cmdline)."""
        result = []
        master = self.master_pid
        for pid, (ppid, name, cmdline) in process_table().items():
            if ppid != master or name != "imap":
                continue
            if user is not None:
                environ = _read("/proc/%d/environ" % pid, "rb").split(b"\0")
                if ("[%s " % user) not in cmdline and \
                        ("USER=%s" % user).encode() not in environ:
                    continue
            result.append(pid)
        return result

    # ---- logs ----

    def log_text(self):
        return _read(self.log_path, "rb").decode(errors="replace")

    def log_size(self):
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def log_since(self, offset):
        """The log written after log_size() returned offset."""
        return _read(self.log_path, "rb")[offset:].decode(errors="replace")

    def log_errors(self):
        """The log's error, fatal and panic lines."""
        return [line for line in self.log_text().splitlines()
                if "Error:" in line or "Fatal:" in line or "Panic:" in line]

    def log_tail(self, lines=60):
        text = self.log_text().splitlines()
        master_out = _read(os.path.join(self.log_dir, "master.out"))
        tail = "\n".join(text[-lines:])
        if master_out.strip():
            tail += "\n--- master stdout/stderr ---\n" + master_out[-4000:]
        return "--- %s (%s) ---\n%s" % (self.log_path, self.name, tail)

    def wait_for_log(self, predicate, offset=0, timeout=5.0):
        """Waits until predicate(log text since offset) is true; returns
        the text (or None on timeout)."""
        result = wait_until(lambda: (lambda t: t if predicate(t) else None)(
            self.log_since(offset)), timeout, interval=0.1)
        return result

    # ---- clients ----

    def imap(self, user=None, timeout=15.0):
        client = ImapClient("127.0.0.1", self.imap_port, timeout=timeout)
        if user is not None:
            try:
                client.login(user)
            except Exception:
                client.close()
                raise
        return client

    def lmtp(self, timeout=15.0):
        return smtplib.LMTP("127.0.0.1", self.lmtp_port, timeout=timeout)

    def deliver_lmtp(self, recipients, message, sender="sender@example.net",
                     timeout=15.0):
        """Delivers one message over a new LMTP connection. Returns the
        list of per-recipient (code, text) replies to DATA."""
        if isinstance(recipients, str):
            recipients = [recipients]
        client = self.lmtp(timeout=timeout)
        try:
            return lmtp_send(client, sender, recipients, message)
        finally:
            try:
                client.quit()
            except (smtplib.SMTPException, OSError):
                client.close()

    def deliver_lda(self, user, message, sender="sender@example.net",
                    mailbox=None, timeout=30.0):
        args = [DOVECOT_LDA, "-c", self.conf, "-d", user, "-f", sender]
        if mailbox is not None:
            args += ["-m", mailbox]
        return subprocess.run(dovecot_command(args), input=message,
                              capture_output=True, timeout=timeout)

    def doveadm(self, *args, timeout=30.0):
        return subprocess.run(
            dovecot_command([DOVEADM, "-c", self.conf] + list(args)),
            capture_output=True, timeout=timeout)

    def user_home(self, user):
        return os.path.join(self.home_root, user)


def lmtp_send(client, sender, recipients, message):
    """One LMTP transaction on an open smtplib.LMTP. smtplib reads only the
    first reply after DATA; LMTP sends one per accepted recipient, so the
    rest are read here. Returns [(code, text)] per recipient; raises on a
    refused envelope."""
    if isinstance(message, str):
        message = message.encode()
    client.ehlo_or_helo_if_needed()
    code, text = client.mail(sender)
    if code != 250:
        raise smtplib.SMTPSenderRefused(code, text, sender)
    for rcpt in recipients:
        code, text = client.rcpt(rcpt)
        if code not in (250, 251):
            raise smtplib.SMTPRecipientsRefused({rcpt: (code, text)})
    replies = [client.data(message)]
    for _ in recipients[1:]:
        replies.append(client.getreply())
    return replies


def make_message(sender="sender@example.net", to="user@example.org",
                 subject="test", headers=None, body="hello\r\n"):
    """A small RFC 5322 message as bytes with CRLF line ends."""
    lines = [
        "From: %s" % sender,
        "To: %s" % to,
        "Subject: %s" % subject,
        "Date: %s" % time.strftime("%a, %d %b %Y %H:%M:%S +0000",
                                   time.gmtime()),
        "Message-ID: <%s.%d@test.example>" % (os.urandom(8).hex(),
                                              os.getpid()),
    ]
    for name, value in (headers or {}).items():
        lines.append("%s: %s" % (name, value))
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


@atexit.register
def _stop_leftovers():
    for instance in list(_live_instances):
        try:
            instance.stop()
        except Exception:
            pass
