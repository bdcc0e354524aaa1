"""Releases: immutability, atomicity, checksums, withdrawals and the identifier scan."""

from __future__ import annotations

import shutil
from datetime import date

import pandas as pd
import pytest

from opencohort.curate import RULES, TIER_POLICY, Policy, Rule, Tier, read_identifiers
from opencohort.errors import ReleaseError, RuleError
from opencohort.ingest import ingest_site
from opencohort.registry import WithdrawalStatus, open_registry, withdraw
from opencohort.release import (
    build_release,
    list_releases,
    read_release,
    sandbox_dir,
    scan_frames,
)
from opencohort.release.manifest import verify

CUTOFF = date(2025, 12, 31)


def test_build_release__layout_and_manifest(home, r1):
    release = read_release(home, "R1")
    assert (release.path / "registered" / "omop" / "person.parquet").is_file()
    assert (release.path / "controlled" / "survey" / "demographics.parquet").is_file()
    assert set(r1["files"]) == {
        p.relative_to(release.path).as_posix() for p in release.path.rglob("*.parquet")
    }
    assert r1["source"]["submissions"] and r1["source"]["registry_snapshot"]
    assert any(e["id"] == "withdrawn_participants" for e in r1["rule_log"])
    assert r1["row_counts"]["registered"]["person"] == len(release.table("registered", "person"))
    assert (sandbox_dir(home, "R1") / "duplicate_ids").is_dir()
    assert not (release.path / "sandbox").exists()
    assert [r["name"] for r in list_releases(home)] == ["R1"]


def test_build_release__existing_name_refused(home, r1):
    with pytest.raises(ReleaseError, match="immutable"):
        build_release(home, "R1", cutoff=CUTOFF)


def test_read_release__tampered_file_raises(home, r1, tmp_path):
    release = read_release(home, "R1")
    path = release.path / "controlled" / "omop" / "death.parquet"
    saved = tmp_path / "death.parquet"
    shutil.copy(path, saved)
    path.chmod(0o644)
    path.write_bytes(path.read_bytes() + b"x")
    try:
        with pytest.raises(ReleaseError, match="death.parquet"):
            read_release(home, "R1")
    finally:
        shutil.copy(saved, path)
    assert verify(release.path, release.manifest) == []


class _Boom(Rule):
    id = "boom"
    purpose = "Fail on purpose."
    reads = writes = ("person",)
    tiers = frozenset({Tier.CONTROLLED})
    implements = "test"

    def apply(self, frames, ctx):
        raise RuntimeError("injected failure")


def test_build_release__failing_rule_leaves_earlier_releases(home, r1):
    before = {p: p.read_bytes() for p in (home.releases / "R1").rglob("*") if p.is_file()}
    policy = Policy(
        tiers={**TIER_POLICY, Tier.CONTROLLED: (*TIER_POLICY[Tier.CONTROLLED], "boom")},
        rules={**RULES, "boom": _Boom},
    )
    with pytest.raises(RuntimeError, match="injected"):
        build_release(home, "R-crash", cutoff=CUTOFF, policy=policy)
    assert not (home.releases / "R-crash").exists()
    assert [p.name for p in home.releases.iterdir()] == ["R1"]
    assert not sandbox_dir(home, "R-crash").exists()
    assert before == {p: p.read_bytes() for p in (home.releases / "R1").rglob("*") if p.is_file()}


def test_build_release__bad_policy_fails_before_running(home):
    policy = Policy(tiers={**TIER_POLICY, Tier.CONTROLLED: ("date_shift",)})
    with pytest.raises(RuleError):
        build_release(home, "R-bad", cutoff=CUTOFF, policy=policy)
    assert not sandbox_dir(home, "R-bad").exists()


def test_build_release__withdrawn_after_release_absent_later(home, r1):
    first = read_release(home, "R1")
    person = first.table("controlled", "person")
    registry = open_registry(home.registry_url)
    try:
        from sqlalchemy import select

        from opencohort.registry import Base

        participant = Base.metadata.tables["participant"]
        with registry.engine.connect() as con:
            ids = pd.read_sql(select(participant.c.participant_id, participant.c.research_id), con)
        ids = ids[ids["research_id"].isin(person["person_id"])]
        chosen = ids.iloc[0]
        withdraw(registry, chosen["participant_id"], status=WithdrawalStatus.NO_USE,
                 authored=date(2026, 1, 5))  # fmt: skip
    finally:
        registry.close()
    build_release(home, "R2", cutoff=CUTOFF)
    second = read_release(home, "R2")
    rid = int(chosen["research_id"])
    for tier in ("registered", "controlled"):
        for table in second.tables(tier):
            frame = second.table(tier, table)
            if "person_id" in frame:
                assert rid not in set(frame["person_id"]), (tier, table)
    assert rid in set(read_release(home, "R1").table("controlled", "person")["person_id"])


def test_build_release__planted_ssn_never_published(home, r1, release_program, tmp_path):
    identity = read_identifiers(home)
    ssn = identity["ssn"].dropna().iloc[0]
    name = f"{identity['first_name'].iloc[0]} {identity['last_name'].iloc[0]}"
    site = sorted(p.name for p in (release_program / "ehr").iterdir())[0]
    folder = tmp_path / site
    shutil.copytree(release_program / "ehr" / site, folder)
    note = pd.read_csv(folder / "note.csv", dtype=str, keep_default_na=False)
    note.loc[0, "note_text"] = f"Patient {name} SSN {ssn} called."
    note.to_csv(folder / "note.csv", index=False)
    obs = pd.read_csv(folder / "observation.csv", dtype=str, keep_default_na=False)
    obs.loc[:, "value_as_string"] = f"ssn {ssn}"
    obs.loc[:, "observation_source_value"] = ssn
    obs.to_csv(folder / "observation.csv", index=False)
    ingest_site(home, site, folder)
    manifest = build_release(home, "R3", cutoff=CUTOFF)
    assert site in {s["site_id"] for s in manifest["source"]["submissions"]}
    release = read_release(home, "R3")
    frames = {f"{t}/{n}": release.table(t, n) for t in ("registered", "controlled")
              for n in release.tables(t)}  # fmt: skip
    assert scan_frames(frames, identity) == []
    digits = ssn.replace("-", "")
    for frame in frames.values():
        for column in frame.columns:
            text = frame[column].astype(str)
            assert not text.str.contains(ssn, regex=False).any()
            assert not text.str.replace("-", "").str.contains(digits, regex=False).any()
    # without string nulling and table suppression the scan must stop the release
    protective = ("string_fields", "identifier_tables", "identifier_concepts")
    weak = tuple(r for r in TIER_POLICY[Tier.CONTROLLED] if r not in protective)
    with pytest.raises(ReleaseError, match="direct identifiers"):
        build_release(home, "R4", cutoff=CUTOFF,
                      policy=Policy(tiers={**TIER_POLICY, Tier.CONTROLLED: weak}))  # fmt: skip
    assert not (home.releases / "R4").exists()


def test_scan_frames__finds_identifiers():
    ids = pd.DataFrame(
        {"first_name": ["Ada"], "middle_name": [""], "last_name": ["Lovelace"],
         "street_address": ["12 Main St"], "phone": ["(205) 423-7813"],
         "email": ["ada@example.org"], "ssn": ["959-25-3185"], "mrn": ["AAA1"]}
    )  # fmt: skip
    frame = pd.DataFrame(
        {"a": ["fine", "call 205.423.7813 now", "SSN 959253185", "Ada Lovelace, seen", None],
         "b": ["x", "x", "x", "x", "ada@example.org"],
         "value_as_number": [1.5, 959253185.0, 2054237813.0, 95925318.0, None],
         "person_id": [959253186, 1, 2, 3, 4]}
    )  # fmt: skip
    hits = {h["column"]: h["values"] for h in scan_frames({"t": frame}, ids)}
    assert hits == {"a": 3, "b": 1, "value_as_number": 2}
    assert scan_frames({"t": pd.DataFrame({"a": ["Adams Lovelace Avenue"]})}, ids) == []
