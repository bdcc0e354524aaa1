"""Tests of the registry's export for curation."""

from __future__ import annotations

import hashlib
import json
from datetime import date

import pandas as pd
import pytest
from typer.testing import CliRunner

from opencohort.config import init_home
from opencohort.errors import InputError
from opencohort.registry import (
    WithdrawalStatus,
    curation_export,
    load_feed,
    open_registry,
    suspend,
    withdraw,
    write_export,
)
from opencohort.registry.cli import registry as registry_cli


def _stays(people: pd.DataFrame, n: int) -> list[str]:
    staying = people[people["withdrawal_date"].isna() & people["primary_consent_date"].notna()]
    return [str(p) for p in staying["participant_id"].iloc[:n]]


def test_curation_export__matches_the_feed(registry, feed) -> None:
    directory, people = feed
    load_feed(registry, directory, seed=3)
    export = curation_export(registry)
    stored = export["participants"]
    assert sorted(stored["participant_id"]) == sorted(people["participant_id"])
    assert stored["research_id"].is_unique and stored["biobank_id"].is_unique
    assert stored["date_shift_days"].between(1, 364).all()
    assert not {"first_name", "last_name", "ssn", "email", "phone"} & set(stored.columns)
    consents = pd.read_csv(directory / "consents.csv")
    assert len(export["consents"]) == len(consents)
    withdrawals = pd.read_csv(directory / "withdrawals.csv")
    assert len(export["withdrawals"]) == len(withdrawals)
    assert all(isinstance(d, date) for d in export["consents"]["authored_date"])


def test_curation_export__shifts_stable_and_events_follow_changes(registry, feed) -> None:
    directory, people = feed
    load_feed(registry, directory, seed=3)
    before = curation_export(registry)["participants"].set_index("participant_id")
    leaving, pausing, back = _stays(people, 3)
    withdraw(registry, leaving, status=WithdrawalStatus.NO_USE, authored=date(2026, 2, 1),
             reason="moved")  # fmt: skip
    suspend(registry, pausing, status="no_contact", day=date(2026, 3, 1))
    suspend(registry, back, status="no_contact", day=date(2026, 3, 1))
    suspend(registry, back, status="not_suspended", day=date(2026, 4, 1))
    after = curation_export(registry)
    shifts = after["participants"].set_index("participant_id")
    pd.testing.assert_series_equal(before["date_shift_days"], shifts["date_shift_days"])
    pd.testing.assert_series_equal(before["research_id"], shifts["research_id"])
    no_use = after["withdrawals"].query("status == 'no_use'")
    assert leaving in set(no_use["participant_id"])
    deactivated = dict(zip(*after["deactivations"].to_dict("list").values(), strict=True))
    assert deactivated.get(pausing) == date(2026, 3, 1)
    assert back not in deactivated


def test_write_export__manifest_checksums_and_refuses_overwrite(tmp_path, feed) -> None:
    directory, people = feed
    opened = open_registry(f"sqlite:///{tmp_path / 'r.db'}")
    load_feed(opened, directory, seed=3)
    manifest = write_export(curation_export(opened), tmp_path / "export")
    for name, entry in manifest["tables"].items():
        path = tmp_path / "export" / entry["file"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
        assert len(pd.read_parquet(path)) == entry["rows"], name
    assert manifest["tables"]["participants"]["rows"] == len(people)
    with pytest.raises(InputError, match="not empty"):
        write_export(curation_export(opened), tmp_path / "export")
    opened.close()


def test_export_cli__writes_files(tmp_path, feed) -> None:
    directory, people = feed
    home = init_home(tmp_path / "home")
    runner = CliRunner()
    loaded = runner.invoke(registry_cli, ["load", str(directory), "--home", str(home.root)])
    assert loaded.exit_code == 0, loaded.output
    out = tmp_path / "export"
    done = runner.invoke(registry_cli, ["export", str(out), "--home", str(home.root), "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["tables"]["participants"]["rows"] == len(people)
    assert (out / "manifest.json").exists()
