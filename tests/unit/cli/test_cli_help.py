"""The CLI explains itself: every subcommand has a description and exit codes, every option has help with its
default, ``--version`` works; the ``--help`` texts are snapshot-tested (regenerate with SIGWARD_UPDATE_SNAPSHOTS=1)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from sigward import __version__, cli

SNAPSHOTS = Path(__file__).parent / "snapshots"
COMMANDS = ["verify", "check-policy", "review", "serve", "verdict", "reverify", "sign", "webhook-config", "package"]


@pytest.fixture(autouse=True)
def _stable_width(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    for name in ("PORT", "WORKERS", "THREADS"):  # serve's defaults come from these
        monkeypatch.delenv(name, raising=False)


def _help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert cli.run([*argv, "--help"]) == 0
    return capsys.readouterr().out


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse has no public accessor for its subparsers
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("no subcommands")


@pytest.mark.parametrize("argv", [[], *([c] for c in COMMANDS)], ids=["sigward", *COMMANDS])
def test_help_snapshot(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    text = _help(argv, capsys)
    snap = SNAPSHOTS / f"{'-'.join(['sigward', *argv])}.txt"
    if os.environ.get("SIGWARD_UPDATE_SNAPSHOTS"):
        snap.write_text(text)
    assert text == snap.read_text(), f"--help changed; regenerate {snap.name} with SIGWARD_UPDATE_SNAPSHOTS=1"


def test_every_command_is_listed_with_a_summary() -> None:
    subs = _subparsers(cli.build_parser())
    assert sorted(subs) == sorted(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_explains_itself(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    parser = _subparsers(cli.build_parser())[command]
    assert parser.description and len(parser.description) > 20
    assert parser.epilog and parser.epilog.startswith("exit codes:")
    assert "  0 " in parser.epilog
    for action in parser._actions:
        assert action.help, f"{command}: {action.dest} has no help"
        has_default = action.default not in (None, False, argparse.SUPPRESS) and action.option_strings
        if has_default:
            flag = action.option_strings[-1]
            options = _help([command], capsys).split("options:", 1)[1]
            entry = options.split(f"  {flag}", 1)[1].split("\n  -", 1)[0]
            assert "default" in entry, f"{command} {flag}: default not shown"


def test_exit_codes_in_top_level_help(capsys: pytest.CaptureFixture[str]) -> None:
    text = _help([], capsys)
    for code in ("0 ok", "1 a decided failure", "2 bad input", "3 infrastructure error"):
        assert code in text


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.run(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"sigward {__version__}"


@pytest.mark.parametrize("argv", [["nope"], ["verify"], ["serve", "--port", "x"], []])
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.run(argv) == 2
    assert "usage:" in capsys.readouterr().err
