"""Unit tier: the CLI's confirmation before an operation (``orchestrate.commands.common.confirm_or_exit``).

Covers: ``--yes``/``--dry-run`` skip the question; without a terminal the operation is refused with exit code 2
and a hint naming ``--yes`` (nothing is started); on a terminal a "no" refuses, a "yes" goes on.
"""

from __future__ import annotations

import json
import sys

import pytest
import typer

from orchestrate.commands.common import confirm_or_exit
from orchestrate.exit_codes import ExitCode


def test_yes_or_dry_run_asks_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(typer, "confirm", lambda question: pytest.fail("asked"))
    confirm_or_exit("planned failover of pg-prod", "Planned failover of pg-prod?", skip=True, as_json=False)


def test_without_a_terminal_it_is_refused_with_a_hint(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False)
    with pytest.raises(typer.Exit) as refused:
        confirm_or_exit("planned failover of pg-prod", "Planned failover of pg-prod?", skip=False, as_json=True)
    assert refused.value.exit_code == ExitCode.BAD_INPUT
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["message"] == "planned failover of pg-prod needs confirmation"
    assert "--yes" in error["hint"]


@pytest.mark.parametrize("answer", [True, False])
def test_on_a_terminal_the_answer_decides(monkeypatch: pytest.MonkeyPatch, answer: bool) -> None:
    asked: list[str] = []
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)

    def confirm(question: str) -> bool:
        asked.append(question)
        return answer

    monkeypatch.setattr(typer, "confirm", confirm)
    if answer:
        confirm_or_exit("the site failover", "Start the site failover?", skip=False, as_json=False)
    else:
        with pytest.raises(typer.Exit) as refused:
            confirm_or_exit("the site failover", "Start the site failover?", skip=False, as_json=False)
        assert refused.value.exit_code == ExitCode.BAD_INPUT
    assert asked == ["Start the site failover?"]
