"""Runs Dovecot's programs with staged deltapush modules in place of the
compiled-in module directories, without touching the system.

Dovecot loads doveadm modules only from MODULEDIR/doveadm and, on 2.4,
settings modules only from MODULEDIR/settings. Each program runs in a
private mount namespace (unshare -m) where such a directory is replaced by
a bind mount of a temporary directory holding copies of the system's
modules plus the staged one. Needs root, unshare(1) and mount(8).
"""

import atexit
import glob
import os
import shutil
import tempfile

SYSTEM_MODULE_DIR = "/usr/lib/dovecot/modules"
# module directory (under SYSTEM_MODULE_DIR) -> the staged module for it
MODULES = {
    "doveadm": "lib10_doveadm_deltapush_plugin.so",
    "settings": "lib30_deltapush_settings.so",
}

# sh script run inside the namespace: pairs of (overlay, system dir) up to
# "--", then the program and its arguments.
_NS_SCRIPT = ('while [ "$1" != -- ]; do mount --bind "$1" "$2" || exit 111; '
              'shift 2; done; shift; exec "$@"')

_overlays = {}


def find_staged(name):
    stage = os.environ.get("DELTAPUSH_STAGE", "")
    found = sorted(glob.glob(os.path.join(stage, "**", "modules", "*",
                                          name), recursive=True))
    return os.path.abspath(found[0]) if found else None


def overlay_dir(kind):
    """A directory with the system's `kind` modules and the staged one
    (created once); None when nothing is staged for it."""
    if kind in _overlays:
        return _overlays[kind]
    module = find_staged(MODULES[kind])
    if module is None:
        _overlays[kind] = None
        return None
    directory = tempfile.mkdtemp(prefix="dpt-%s-" % kind)
    os.chmod(directory, 0o755)
    system_dir = os.path.join(SYSTEM_MODULE_DIR, kind)
    # Copies: a symlink into system_dir would point into the overlay
    # itself once it is mounted there.
    for name in sorted(os.listdir(system_dir)):
        if name != MODULES[kind]:
            shutil.copy2(os.path.join(system_dir, name),
                         os.path.join(directory, name))
    os.symlink(module, os.path.join(directory, MODULES[kind]))
    _overlays[kind] = directory
    return directory


def command(argv, kinds):
    """argv run with the overlays of the given module kinds (those that
    have a staged module); argv itself when there are none."""
    pairs = []
    for kind in kinds:
        directory = overlay_dir(kind)
        if directory is not None:
            pairs += [directory, os.path.join(SYSTEM_MODULE_DIR, kind)]
    if not pairs:
        return list(argv)
    return (["unshare", "-m", "sh", "-c", _NS_SCRIPT, "sh"] + pairs +
            ["--"] + list(argv))


@atexit.register
def cleanup():
    for directory in _overlays.values():
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
    _overlays.clear()
