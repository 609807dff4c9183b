"""Every deltapush_* setting the code reads is documented everywhere an
operator looks: the README's reference, the man page and the shipped
conf.d snippet."""

import os
import re

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def _read(*path):
    with open(os.path.join(TOP, *path), encoding="utf-8") as f:
        return f.read()


def _code_settings():
    names = set(re.findall(r'"(deltapush_[a-z_]+)"',
                           _read("src", "lib-deltapush", "deltapush-settings.c")))
    assert len(names) >= 15, names
    return names


def test_settings_module_declares_every_setting():
    # Dovecot 2.4 refuses a setting its settings module does not declare.
    declared = set(re.findall(
        r"DEF\((deltapush_[a-z_]+)\)",
        _read("src", "lib-deltapush", "deltapush-dovecot-settings.c")))
    assert declared == _code_settings()


def test_every_setting_is_documented():
    docs = {
        "README": _read("README"),
        "docs/deltapush.7": _read("docs", "deltapush.7"),
        "conf.d/2.3/90-deltapush.conf":
            _read("conf.d", "2.3", "90-deltapush.conf"),
        "conf.d/2.4/90-deltapush.conf":
            _read("conf.d", "2.4", "90-deltapush.conf"),
    }
    missing = ["%s in %s" % (name, doc)
               for name in sorted(_code_settings())
               for doc, text in docs.items()
               if not re.search(r"\b%s\b" % name, text)]
    assert not missing, "undocumented settings: " + ", ".join(missing)


def test_no_unknown_setting_is_documented():
    known = _code_settings()
    for doc in (_read("README"), _read("docs", "deltapush.7"),
                _read("conf.d", "2.3", "90-deltapush.conf"),
                _read("conf.d", "2.4", "90-deltapush.conf")):
        for name in set(re.findall(r"\bdeltapush_[a-z_]+\b", doc)):
            if name.endswith("_plugin") or name.startswith("deltapush_push_") \
                    or name.startswith("deltapush_token_r") \
                    or name.startswith("deltapush_bridge_") \
                    or name == "deltapush_trigger":
                continue  # module and event names, not settings
            assert name in known, "%s is documented but not read" % name


def test_every_doveadm_command_is_documented():
    commands = re.findall(r'\.name = "(deltapush [a-z -]+)"',
                          _read("src", "plugin",
                                "doveadm-deltapush-plugin.c"))
    assert "deltapush bridge reload" in commands, commands
    man = _read("docs", "deltapush.7").replace("\\-", "-")
    missing = ["doveadm %s in %s" % (command, doc)
               for command in commands
               for doc, text in (("README", _read("README")),
                                 ("docs/deltapush.7", man))
               if "doveadm " + command not in text]
    assert not missing, "undocumented commands: " + ", ".join(missing)
