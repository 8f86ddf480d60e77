"""Noun-verb commands, and the earlier verbs that still run them."""

from __future__ import annotations

import pytest

from mechscope.cli.main import ALIASES, main


def _help(args: list[str], capsys) -> str:
    assert main([*args, "--help"]) == 0
    text = capsys.readouterr().out
    return text.split("\n", 1)[1]  # without the usage line, which names the path typed


@pytest.mark.parametrize("alias", sorted(ALIASES))
def test_every_alias_runs_its_noun_verb_command(alias, capsys):
    assert _help([alias], capsys) == _help(ALIASES[alias].split(), capsys)


def test_bare_command_lists_nouns_and_verbs_not_aliases(capsys):
    assert main([]) == 2
    err = capsys.readouterr().err
    listed = err.split("needs a command: ")[1].split(" (see")[0].split(", ")
    assert {"model", "units", "probe", "report", "attribute", "circuits", "formula", "fourier", "patch", "lens",
            "sweep", "tour"} == set(listed)
    assert err.count("\n") == 1


@pytest.mark.parametrize("group, default", [("report", "build"), ("probe", "fit")])
def test_group_without_its_verb_runs_the_default(group, default, capsys):
    assert main([group, "/no/such/checkpoint", "--out", "/tmp/none"] if group == "report"
                else [group, "/no/such/checkpoint"]) == 1  # reached the command: its checkpoint is missing
    assert "No checkpoint folder at '/no/such/checkpoint'" in capsys.readouterr().err
    assert main([group]) == 2
    assert f"mechscope {group} needs a command" in capsys.readouterr().err


def test_the_command_line_starts_without_importing_torch():
    import subprocess
    import sys

    code = ("import sys, mechscope.cli.main as m; m.main(['--help']); "
            "print('torch' in sys.modules, 'matplotlib' in sys.modules, 'sympy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert out.strip().splitlines()[-1] == "False False False"
    assert "model" in out and "report" in out


def test_the_listed_commands_are_the_real_ones():
    from mechscope.cli.main import COMMANDS, full_command

    real = full_command().commands
    assert set(COMMANDS) == set(real)
    for name, (text, hidden) in COMMANDS.items():
        assert real[name].hidden == hidden
        if not hidden:  # the one-line help shown by `mechscope --help` is the command's own
            assert (real[name].help or "").split("\n")[0].strip() == text
        else:
            assert text == f"= {ALIASES[name]}"
