"""What changed between two releases, tier by tier: participants, rows and concepts."""

from __future__ import annotations

from opencohort.curate._omop import FEED_FIELDS
from opencohort.ingest import TABLES
from opencohort.release.read import Release

PERSON = "person"


def concept_columns(table: str) -> list[str]:
    """The standard-concept columns of an OMOP table (those paired with a source concept), or
    of a survey or wearable table (its ``*_concept_id`` columns)."""
    if table in FEED_FIELDS:
        return [c for c in FEED_FIELDS[table] if c.endswith("_concept_id")]
    spec = TABLES.get(table)
    return [f.name for f in spec.fields if f.source_concept] if spec else []


def _values(release: Release, tier: str, table: str, column: str) -> set[int]:
    if table not in release.manifest["row_counts"].get(tier, {}):
        return set()
    values = release.table(tier, table, columns=[column])[column].dropna()
    return set(values.astype("int64").tolist())


def _change(before: set[int], after: set[int]) -> dict:
    return {"added": len(after - before), "removed": len(before - after),
            "kept": len(before & after)}  # fmt: skip


def diff_releases(old: Release, new: Release) -> dict:
    """Compare two releases, tier by tier.

    Returns
    -------
    dict
        ``{"from", "to", "tiers": {tier: {"persons": {added, removed, kept}, "tables":
        {table: {"rows": [old, new], "concepts": {column: {"added": [...], "removed":
        [...]}}}}}}}`` for every tier both releases hold. Persons are counted by research id;
        concept lists hold concept ids, smallest first.
    """
    tiers = {}
    for tier in sorted(set(old.manifest["row_counts"]) & set(new.manifest["row_counts"])):
        rows_old, rows_new = old.manifest["row_counts"][tier], new.manifest["row_counts"][tier]
        tables = {}
        for table in sorted(set(rows_old) | set(rows_new)):
            concepts = {}
            for column in concept_columns(table):
                before = _values(old, tier, table, column)
                after = _values(new, tier, table, column)
                concepts[column] = {"added": sorted(after - before),
                                    "removed": sorted(before - after)}  # fmt: skip
            tables[table] = {"rows": [rows_old.get(table, 0), rows_new.get(table, 0)],
                             "concepts": concepts}  # fmt: skip
        persons = _change(
            _values(old, tier, PERSON, "person_id"), _values(new, tier, PERSON, "person_id")
        )
        tiers[tier] = {"persons": persons, "tables": tables}
    return {"from": old.name, "to": new.name, "tiers": tiers}
