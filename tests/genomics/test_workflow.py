"""Deliveries against the registry: refused samples are reported and left out; steps recorded."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from opencohort.config import Home
from opencohort.genomics import ingest_delivery, run_qc
from opencohort.genomics._store import read_samples
from opencohort.registry import (
    ConsentStatus,
    ConsentType,
    WithdrawalStatus,
    audit_trail,
    genomic_sample_state,
    open_registry,
    record_consent,
    withdraw,
)

from .conftest import registry_home

DAY = date(2026, 1, 10)


@pytest.fixture(scope="module")
def refusals(feed: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Home, dict, object]:
    """One batch delivered after planting an unknown sample, a sample named for another
    participant, a participant who revoked genomic consent and one who withdrew."""
    base = tmp_path_factory.mktemp("workflow")
    home = registry_home(base / "home", feed)
    delivery = base / "d1"
    delivery.mkdir()
    manifest = pd.read_csv(feed / "genomes" / "manifest.csv", dtype=str, keep_default_na=False)
    manifest = manifest[manifest["batch"] == "batch_001"].reset_index(drop=True)
    shutil.copytree(feed / "genomes" / "batch_001", delivery / "batch_001")
    planted = {
        "unknown": manifest.loc[0, "sample_id"],
        "other": manifest.loc[1, "sample_id"],
        "revoked": manifest.loc[2, "sample_id"],
        "withdrawn": manifest.loc[3, "sample_id"],
    }
    manifest.loc[0, "sample_id"] = "SM99999999999"
    manifest.loc[1, "participant_id"] = manifest.loc[5, "participant_id"]
    registry = open_registry(home.registry_url)
    try:
        record_consent(registry, manifest.loc[2, "participant_id"], consent_type=ConsentType.GROR,
                       version="v2", status=ConsentStatus.NO, authored=date(2026, 1, 2),
                       document_sha256="1" * 64)  # fmt: skip
        withdraw(registry, manifest.loc[3, "participant_id"], status=WithdrawalStatus.NO_USE,
                 authored=date(2026, 1, 3))  # fmt: skip
    finally:
        registry.close()
    manifest.to_csv(delivery / "manifest.csv", index=False)
    result = ingest_delivery(delivery, home, day=DAY)
    return home, planted, result


def test_ingest_delivery__refused_samples_reported_and_left_out(refusals):
    home, planted, result = refusals
    by_line = {p.line: p for p in result.problems if p.file == "d1/manifest.csv" and p.line}
    assert sorted(by_line) == [2, 3, 4, 5]
    assert by_line[2].field == "sample_id" and "not in the registry" in by_line[2].message
    assert by_line[3].field == "participant_id" and "another participant" in by_line[3].message
    assert (
        "genomic (gror) consent" in by_line[4].message and planted["revoked"] in by_line[4].message
    )
    assert "withdrawn" in by_line[5].message and planted["withdrawn"] in by_line[5].message
    stored = set(read_samples(home.root / "genomics" / "store")["sample_id"])
    assert not stored & {
        "SM99999999999",
        planted["other"],
        planted["revoked"],
        planted["withdrawn"],
    }
    manifest = pd.read_csv(home.raw / "genomes" / "d1" / "manifest.csv", dtype=str)
    assert result.samples == len(stored) == len(manifest) - 4 > 50
    # the renamed VCF column is not in the manifest; refused samples are reported once only
    dropped = {
        p.message.split("'")[1] for p in result.problems if "not in the manifest" in p.message
    }
    assert dropped == {planted["unknown"]}


def test_ingest_delivery__stored_samples_received_and_sequenced(refusals):
    home, planted, _ = refusals
    stored = read_samples(home.root / "genomics" / "store")["sample_id"].tolist()
    registry = open_registry(home.registry_url)
    try:
        state = genomic_sample_state(registry, stored[0], as_of=DAY)
        trail = audit_trail(registry, entity_id=state["participant_id"], limit=10)
        refused = genomic_sample_state(registry, planted["revoked"], as_of=DAY)
    finally:
        registry.close()
    assert [h["state"] for h in state["history"]] == [
        "eligible", "manifest_sent", "received", "sequenced",
    ]  # fmt: skip
    assert state["state"] == "sequenced" and state["since"] == DAY
    assert {e["actor"] for e in trail if e["action"] == "advance_genomic"} >= {"genomics"}
    assert refused["state"] == "manifest_sent"


def test_run_qc__records_passed_and_failed(refusals):
    home, _, _ = refusals
    result = run_qc(home, day=DAY)
    registry = open_registry(home.registry_url)
    try:
        states = {s: genomic_sample_state(registry, s, as_of=DAY)["state"]
                  for s in result.samples["sample_id"]}  # fmt: skip
    finally:
        registry.close()
    passed = result.samples.set_index("sample_id")["sample_qc_pass"]
    sent = {s for s, state in states.items() if state is not None}
    assert sent and all(states[s] == ("qc_passed" if passed[s] else "qc_failed") for s in sent)
    assert len(result.registry_notes) == len(states) - len(sent)
    again = run_qc(home, day=DAY)
    assert again.registry_notes == result.registry_notes
