"""Tests of the hash-chained audit log on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date

from sqlalchemy import text
from typer.testing import CliRunner

from opencohort.config import init_home
from opencohort.registry import (
    Applicant,
    ConsentStatus,
    ConsentType,
    WithdrawalStatus,
    audit_trail,
    enrol,
    load_feed,
    open_registry,
    record_consent,
    verify_audit_chain,
    withdraw,
)
from opencohort.registry.cli import registry as registry_cli

SHA = "b" * 64


def _changes(registry) -> None:
    for pid in ("P1", "P2"):
        enrol(
            registry,
            Applicant(birth_date=date(1970, 1, 1)),
            participant_id=pid,
            sign_up_date=date(2021, 1, 1),
            seed=2,
            actor="alice",
        )
    record_consent(
        registry,
        "P1",
        consent_type=ConsentType.PRIMARY,
        version="v1",
        status=ConsentStatus.SUBMITTED,
        authored=date(2021, 1, 2),
        document_sha256=SHA,
        actor="bob",
    )
    withdraw(
        registry,
        "P2",
        status=WithdrawalStatus.EARLY_OUT,
        authored=date(2021, 3, 1),
        reason="moved",
        actor="carol",
    )


def test_audit_trail__every_change_with_actor_and_before_after(registry) -> None:
    _changes(registry)
    trail = audit_trail(registry)
    assert [(e["action"], e["entity_id"], e["actor"]) for e in reversed(trail)] == [
        ("enrol", "P1", "alice"),
        ("enrol", "P2", "alice"),
        ("record_consent", "P1", "bob"),
        ("withdraw", "P2", "carol"),
    ]
    assert trail[0]["after"]["reason"] == "moved"
    assert trail[1]["after"]["consent_type"] == "primary" and trail[1]["before"] is None
    report = verify_audit_chain(registry)
    assert report.ok and report.rows == 4 and report.last_sha256 == trail[0]["row_sha256"]


def test_verify_audit_chain__edited_row_named(registry) -> None:
    _changes(registry)
    with registry.engine.begin() as connection:
        connection.execute(text("UPDATE audit_entry SET actor = 'mallory' WHERE audit_id = 3"))
    report = verify_audit_chain(registry)
    assert not report.ok and report.broken_id == 3
    assert "edited" in report.problem


def test_verify_audit_chain__deleted_row_named(registry) -> None:
    _changes(registry)
    with registry.engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_entry WHERE audit_id = 2"))
    report = verify_audit_chain(registry)
    assert report.broken_id == 3 and "deleted" in report.problem


def test_verify_audit_chain__reordered_rows_named(registry) -> None:
    _changes(registry)
    with registry.engine.begin() as connection:
        for old, new in ((2, 100), (3, 2), (100, 3)):
            connection.execute(
                text("UPDATE audit_entry SET audit_id = :new WHERE audit_id = :old"),
                {"new": new, "old": old},
            )
    report = verify_audit_chain(registry)
    assert report.broken_id == 2 and "reordered" in report.problem


def test_load_feed__one_audit_entry_per_load_that_changes(registry, feed) -> None:
    directory, _ = feed
    load_feed(registry, directory, seed=1, actor="loader")
    load_feed(registry, directory, seed=1, actor="loader")
    trail = audit_trail(registry)
    assert len(trail) == 1 and trail[0]["action"] == "load_feed"
    assert trail[0]["after"]["new_rows"]["participant"] > 0
    assert len(trail[0]["after"]["files"]["participants.csv"]) == 64


def test_audit_verify_cli__exit_1_naming_row(tmp_path) -> None:
    home = init_home(tmp_path / "home")
    opened = open_registry(home.registry_url)
    _changes(opened)
    runner = CliRunner()
    ok = runner.invoke(registry_cli, ["audit", "verify", "--home", str(home.root)])
    assert ok.exit_code == 0 and "4 rows, chain intact" in ok.output
    with opened.engine.begin() as connection:
        connection.execute(text("UPDATE audit_entry SET after = '{}' WHERE audit_id = 4"))
    opened.close()
    broken = runner.invoke(registry_cli, ["audit", "verify", "--home", str(home.root), "--json"])
    assert broken.exit_code == 1 and '"broken_id": 4' in broken.output
