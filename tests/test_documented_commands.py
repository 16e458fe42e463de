"""Every command the README and the scripts' own help show is one the scripts accept: an option renamed or removed
in the code, or a value out of its range, fails here before a user copies it."""

import argparse
import ast
import importlib.util
import re
import shlex

import pytest

import competitions

from conftest import ROOT

COMMAND = re.compile(r"python scripts/(\w+)\.py([^#`|\n]*)")
OPTIONAL = re.compile(r"\[(--[^\]]*)\]")  # usage notation: [--postgres URL]


def documented() -> list[tuple[str, str, list[str]]]:
    """(where, script, arguments) of each command in the README and in each script's docstring."""
    texts = {"README.md": (ROOT / "README.md").read_text(encoding="utf-8")}
    for script in sorted((ROOT / "scripts").glob("*.py")):
        texts[script.name] = ast.get_docstring(ast.parse(script.read_text(encoding="utf-8"))) or ""
    return [(where, match.group(1), shlex.split(OPTIONAL.sub(r"\1", match.group(2))))
            for where, text in texts.items() for match in COMMAND.finditer(text)]


class Parsed(Exception):
    """Raised in place of running the command once its arguments parsed."""


def test_the_documentation_shows_commands():
    commands = documented()
    assert len(commands) > 50
    assert {script for _, script, _ in commands} >= {"train", "compare", "tune", "ensemble", "drift", "submit",
                                                      "leaderboard", "prune", "download"}


@pytest.mark.parametrize(("where", "script", "args"), documented(),
                         ids=lambda value: value if isinstance(value, str) else " ".join(value))
def test_a_documented_command_parses(where, script, args, monkeypatch, capsys):
    parse = argparse.ArgumentParser.parse_args

    def parse_only(self, *a, **kw):
        raise Parsed(parse(self, *a, **kw))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_only)
    monkeypatch.setattr("sys.argv", [f"{script}.py", *args])
    spec = importlib.util.spec_from_file_location(f"documented_{script}", ROOT / "scripts" / f"{script}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        module.main()
    except Parsed:
        return
    except SystemExit as exit:
        out, err = capsys.readouterr()
        assert exit.code == 0 and "--help" in args, f"{where}: {script}.py {shlex.join(args)}: " \
                                                   f"{err.strip().splitlines()[-1:]}"
        if "competition" in out:  # each name whole, as it is typed: no "digit-" at a line's end
            assert all(name in " ".join(out.split()) and f"{name.split('-')[0]}-\n" not in out
                       for name in competitions.names()), out
        return
    pytest.fail(f"{where}: {script}.py {shlex.join(args)} never parsed its arguments")
