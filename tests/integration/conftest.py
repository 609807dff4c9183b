"""Fixtures for the deltapush integration tests.

The tests need a staged install of deltapush (`make install DESTDIR=...`)
named by the environment variable DELTAPUSH_STAGE, a Debian Dovecot 2.3 or
2.4 (dovecot-core, dovecot-imapd, dovecot-lmtpd) and root, because each test
Dovecot is started as root like a real one.

A module may set DELTAPUSH_SETTINGS = {...} to override plugin settings of
its shared `dovecot` instance; tests that need other settings create their
own instances with `dovecot_factory`.
"""

import os

import pytest

import doveadm_ns
import dovecot_instance
import module_overlay
from dovecot_instance import DovecotInstance, StageError, find_stage_files
from sink import listening

# Shorter than the 10 s default so tests can see the coalescing window end.
DEFAULT_TEST_SETTINGS = {
    "deltapush_debounce": "1s",
}


def pytest_configure(config):
    stage = os.environ.get("DELTAPUSH_STAGE")
    if not stage:
        raise pytest.UsageError(
            "DELTAPUSH_STAGE is not set. The integration tests run against a "
            "staged install: run tests/run-tests.sh, or `make install "
            "DESTDIR=$PWD/build/stage` and then "
            "`DELTAPUSH_STAGE=$PWD/build/stage python3 -m pytest "
            "tests/integration`.")
    try:
        find_stage_files(stage)
    except StageError as e:
        raise pytest.UsageError(str(e))
    missing = [p for p in (dovecot_instance.DOVECOT, dovecot_instance.DOVEADM,
                           dovecot_instance.DOVECOT_LDA)
               if not os.access(p, os.X_OK)]
    missing += [m for m in dovecot_instance.SYSTEM_MODULES
                if not os.path.exists(os.path.join(
                    dovecot_instance.SYSTEM_MODULE_DIR, m))]
    if missing:
        raise pytest.UsageError(
            "Dovecot is not installed completely (missing: %s); install "
            "dovecot-core dovecot-imapd dovecot-lmtpd" % ", ".join(missing))
    if dovecot_instance.DOVECOT_24 and \
            module_overlay.find_staged(
                module_overlay.MODULES["settings"]) is None:
        raise pytest.UsageError(
            "Dovecot %s needs the settings module %s, which is not under "
            "DELTAPUSH_STAGE" % (".".join(map(str,
                                              dovecot_instance.DOVECOT_VERSION)),
                                 module_overlay.MODULES["settings"]))
    if os.geteuid() != 0:
        raise pytest.UsageError("the integration tests start Dovecot as "
                                "root; run them as root")


@pytest.fixture(scope="session")
def stage_files():
    return find_stage_files(os.environ["DELTAPUSH_STAGE"])


class DovecotFactory:
    """Creates started instances and cleans them all up at the end."""

    def __init__(self, stage_files):
        self.stage_files = stage_files
        self.instances = []

    def __call__(self, sink=None, settings=None, start=True, **kwargs):
        merged = dict(DEFAULT_TEST_SETTINGS)
        merged.update(settings or {})
        instance = DovecotInstance(
            stage_files=self.stage_files,
            notify_url=sink.url if sink is not None else None,
            plugin_settings=merged, **kwargs)
        self.instances.append(instance)
        if start:
            instance.start()
        return instance

    def cleanup(self):
        for instance in self.instances:
            instance.cleanup()
        self.instances = []


@pytest.fixture(scope="module")
def sink():
    with listening() as s:
        yield s


@pytest.fixture(autouse=True)
def _reset_sink(request):
    """Every test starts with a listening sink that answers 200."""
    yield
    if "sink" in request.fixturenames:
        s = request.getfixturevalue("sink")
        s.default_status = 200
        s.status_for.clear()
        s.delay = 0.0
        s.start()


@pytest.fixture(scope="module")
def module_dovecot_factory(stage_files):
    factory = DovecotFactory(stage_files)
    yield factory
    factory.cleanup()


@pytest.fixture
def dovecot_factory(stage_files):
    factory = DovecotFactory(stage_files)
    yield factory
    factory.cleanup()


@pytest.fixture
def doveadm():
    """The doveadm deltapush commands (doveadm_ns); the test is skipped,
    with the reason printed, where they cannot run."""
    reason = doveadm_ns.available()
    if reason is not None:
        print("doveadm deltapush tests skipped: %s" % reason)
        pytest.skip(reason)
    return doveadm_ns


@pytest.fixture(scope="module")
def dovecot(request, module_dovecot_factory, sink):
    """One Dovecot with deltapush per test module, pushing to the module's
    sink; settings from the module's DELTAPUSH_SETTINGS."""
    settings = getattr(request.module, "DELTAPUSH_SETTINGS", {})
    return module_dovecot_factory(sink=sink, settings=settings)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for instance in list(dovecot_instance.all_instances):
            report.sections.append(("dovecot log %s" % instance.name,
                                    instance.log_tail(80)))


def pytest_terminal_summary(terminalreporter):
    if not os.environ.get("IMAPTEST"):
        terminalreporter.write_line(
            "imaptest scripts (tests/imaptest) skipped: IMAPTEST not set "
            "(set it to an imaptest binary to run them)")


def pytest_report_header(config):
    return "Dovecot %s (%s configuration syntax)" % (
        ".".join(map(str, dovecot_instance.DOVECOT_VERSION)),
        "2.4" if dovecot_instance.DOVECOT_24 else "2.3")
