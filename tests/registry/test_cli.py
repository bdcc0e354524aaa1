"""Tests of the ``opencohort registry`` commands."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from opencohort.config import init_home
from opencohort.registry.cli import registry
from opencohort.registry.status import TransitionError

runner = CliRunner()


def test_registry_cli__load_then_summary(feed, tmp_path) -> None:
    directory, people = feed
    home = init_home(tmp_path / "home")
    loaded = runner.invoke(registry, ["load", str(directory), "--home", str(home.root), "--json"])
    assert loaded.exit_code == 0, loaded.output
    assert json.loads(loaded.output)["participant"] == len(people)
    shown = runner.invoke(
        registry, ["summary", "--home", str(home.root), "--as-of", "2030-01-01", "--json"]
    )
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["participants"] == len(people)
    table = runner.invoke(registry, ["summary", "--home", str(home.root)])
    assert table.exit_code == 0 and "core_minus_pm" in table.output


def test_registry_cli__bad_date(tmp_path) -> None:
    home = init_home(tmp_path / "home")
    shown = runner.invoke(registry, ["summary", "--home", str(home.root), "--as-of", "soon"])
    assert shown.exit_code == 2


def test_registry_cli__withdraw_no_use_is_final(feed, tmp_path) -> None:
    directory, people = feed
    home = init_home(tmp_path / "home")
    loaded = runner.invoke(registry, ["load", str(directory), "--home", str(home.root)])
    assert loaded.exit_code == 0, loaded.output
    staying = people[people["withdrawal_date"].isna() & people["primary_consent_date"].notna()]
    pid = str(staying["participant_id"].iloc[0])
    first = runner.invoke(
        registry,
        ["withdraw", pid, "--reason", "moved away", "--on", "2026-01-05", "--home", str(home.root),
         "--json"],
    )  # fmt: skip
    assert first.exit_code == 0, first.output
    assert json.loads(first.output)["withdrawal"] == "no_use"
    undo = runner.invoke(
        registry,
        ["withdraw", pid, "--reason", "changed mind", "--status", "not_withdrawn",
         "--home", str(home.root)],
    )  # fmt: skip
    assert undo.exit_code != 0
    assert isinstance(undo.exception, TransitionError)
    audit = runner.invoke(registry, ["audit", "verify", "--home", str(home.root), "--json"])
    assert json.loads(audit.output)["ok"] is True
