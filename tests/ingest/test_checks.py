"""Checks against the synthetic program's planted errors, and each check type on small tables."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from opencohort.ingest import SiteContext, default_checks, evaluate, parse_table, run_checks
from opencohort.ingest.checks import IsPrimaryKey, PlausibleMeasurementValue

from .conftest import RECEIVED

#: Injected error kind -> the check type that must catch it.
KIND_CHECK = {
    "duplicate_id": "isPrimaryKey",
    "event_before_birth": "plausibleAfterBirth",
    "event_after_death": "plausibleBeforeDeath",
    "date_9999": "plausibleValueHigh",
    "implausible_value": "plausibleValue",
    "unmapped_code": "conceptMapped",
}
#: Truth kinds that are not errors for ingest (curation handles them).
BENIGN = {"imperial_unit", "identifier_in_note", "no_ehr_consent", "identity_mismatch"}


def _site_tables(site_dir: Path) -> dict:
    return {
        p.stem: parse_table(p.read_bytes(), p.stem, file=p.name)
        for p in sorted(site_dir.glob("*.csv"))
    }


@pytest.fixture(scope="module")
def flagged(feed: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Failing rows of every check (site, table, check_type, row_key) and row counts."""
    parts, sizes = [], []
    for site_dir in sorted((feed / "ehr").iterdir()):
        tables = _site_tables(site_dir)
        context = SiteContext.from_tables(tables, as_of=RECEIVED.date())
        for name, table in tables.items():
            sizes.append((site_dir.name, name, len(table)))
        for result in run_checks(tables, context):
            table = tables[result.check.table]
            if not len(result.rows) or table.spec.primary_key is None:
                continue
            keys = table.frame[table.spec.primary_key].to_numpy()[result.rows]
            parts.append(
                pd.DataFrame(
                    {
                        "site_id": site_dir.name,
                        "table": result.check.table,
                        "check_type": result.check.check_type,
                        "row_key": keys.astype(np.int64),
                    }
                )
            )
    rows = pd.concat(parts, ignore_index=True).drop_duplicates()
    return rows, pd.DataFrame(sizes, columns=["site_id", "table", "rows"])


@pytest.mark.parametrize("kind", sorted(KIND_CHECK))
def test_run_checks__recall_of_injected_errors(flagged, truth, kind):
    rows, _ = flagged
    expected = truth[truth["kind"] == kind][["site_id", "table", "row_key"]].drop_duplicates()
    assert len(expected) >= (3 if kind == "event_after_death" else 10), f"too few {kind} rows"
    caught = rows[rows["check_type"] == KIND_CHECK[kind]]
    hit = expected.merge(caught, on=["site_id", "table", "row_key"], how="left")["check_type"]
    recall = hit.notna().mean()
    assert recall >= 0.95, f"{kind}: recall {recall:.3f}"


@pytest.mark.parametrize("kind", sorted(KIND_CHECK))
def test_run_checks__few_false_alarms_on_clean_rows(flagged, truth, kind):
    rows, sizes = flagged
    tables = truth.loc[truth["kind"] == kind, "table"].unique()
    errors = truth[~truth["kind"].isin(BENIGN)][["site_id", "table", "row_key"]]
    caught = rows[(rows["check_type"] == KIND_CHECK[kind]) & rows["table"].isin(tables)]
    marked = caught.merge(errors.drop_duplicates(), how="left", indicator=True)
    false_alarms = int((marked["_merge"] == "left_only").sum())
    clean = sizes.loc[sizes["table"].isin(tables), "rows"].sum() - len(errors)
    assert false_alarms <= 0.001 * clean, f"{kind}: {false_alarms} of {clean} clean rows flagged"


def test_plausible_measurement_value__imperial_units_judged_in_their_unit(feed, truth):
    imperial = truth[truth["kind"] == "imperial_unit"]
    silly = set(truth.loc[truth["kind"] == "implausible_value", "row_key"])
    assert len(imperial) > 50
    check = PlausibleMeasurementValue("measurement", "value_as_number", 1.0)
    flagged = set()
    for site_dir in sorted((feed / "ehr").iterdir()):
        tables = _site_tables(site_dir)
        table = tables["measurement"]
        context = SiteContext.from_tables(tables, as_of=RECEIVED.date())
        rows = check.failing(table, context)
        flagged |= set(table.frame["measurement_id"].to_numpy()[rows].tolist())
    wrongly = (set(imperial["row_key"]) - silly) & flagged
    assert not wrongly


PERSON = (
    "person_id,gender_concept_id,year_of_birth,month_of_birth,day_of_birth,race_concept_id,"
    "ethnicity_concept_id\n1,8507,1980,6,15,0,0\n2,8532,1990,,,0,0\n"
)
DEATH = "person_id,death_date\n1,2020-01-01\n"


def _measurements(lines: list[str]) -> bytes:
    head = (
        "measurement_id,person_id,measurement_concept_id,measurement_date,"
        "measurement_type_concept_id,value_as_number,unit_source_value,measurement_source_value\n"
    )
    return (head + "".join(line + "\n" for line in lines)).encode()


def _context(tables: dict) -> SiteContext:
    return SiteContext.from_tables(tables, as_of=date(2024, 6, 1))


def test_evaluate__each_date_rule_on_a_small_table():
    tables = {
        "person": parse_table(PERSON.encode(), "person", file="person.csv"),
        "death": parse_table(DEATH.encode(), "death", file="death.csv"),
        "measurement": parse_table(
            _measurements(
                [
                    "10,1,3036277,1979-01-01,32817,170,cm,",  # before birth (1980-06-15)
                    "11,1,3036277,2020-01-31,32817,170,cm,",  # 30 days after death: allowed
                    "12,1,3036277,2020-02-01,32817,170,cm,",  # 31 days after death
                    "13,2,3036277,9999-12-31,32817,170,cm,",  # after receipt
                    "14,2,3036277,1990-01-01,32817,170,cm,",  # birth 1990 with no month: fine
                    "15,3,3036277,1890-01-01,32817,170,cm,",  # before 1900; person 3 unknown
                ]
            ),
            "measurement",
            file="measurement.csv",
        ),
    }
    context = _context(tables)
    failing = {
        r.check.check_type: sorted(r.rows.tolist())
        for r in run_checks(tables, context)
        if r.check.table == "measurement" and r.n_failed
    }
    assert failing == {
        "plausibleAfterBirth": [0],
        "plausibleBeforeDeath": [2],
        "plausibleValueHigh": [3],
        "plausibleValueLow": [5],
        "isForeignKey": [5],
    }


def test_plausible_measurement_value__units():
    table = parse_table(
        _measurements(
            [
                "1,1,3025315,2020-01-01,32817,150,[lb_av],",  # 68 kg: plausible
                "2,1,3025315,2020-01-01,32817,1000,[lb_av],",  # 454 kg: implausible
                "3,1,3025315,2020-01-01,32817,1000,kg,",  # implausible
                "4,1,3025315,2020-01-01,32817,1000,stone,",  # unknown unit: not judged
                "5,1,0,2020-01-01,32817,0,cm,8302-2",  # found by LOINC, 0 cm: implausible
                "6,1,3036277,2020-01-01,32817,70,[in_i],",  # 178 cm
            ]
        ),
        "measurement",
        file="m.csv",
    )
    rows = PlausibleMeasurementValue("measurement", "value_as_number").failing(
        table, _context({"measurement": table})
    )
    assert rows.tolist() == [1, 2, 4]


def test_evaluate__threshold_decides_pass_or_fail():
    table = parse_table(b"person_id,email\n1,a\n1,b\n2,c\n3,d\n", "pii_email", file="e.csv")
    table2 = parse_table(b"person_id,first_name\n1,a\n1,b\n2,c\n3,d\n", "pii_name", file="n.csv")
    context = _context({"pii_name": table2})
    strict = evaluate(IsPrimaryKey("pii_name", "person_id"), table2, context)
    loose = evaluate(IsPrimaryKey("pii_name", "person_id", 60.0), table2, context)
    assert (strict.status, strict.n_failed, strict.percent_failed) == ("fail", 2, 50.0)
    assert loose.status == "pass"
    missing = evaluate(IsPrimaryKey("pii_name", "person_id"), None, context)
    assert missing.status == "not_applicable"
    assert table.spec.primary_key is None


def test_default_checks__ids_unique_and_cover_every_table():
    checks = default_checks()
    ids = [c.id for c in checks]
    assert len(ids) == len(set(ids))
    assert {c.category for c in checks} == {"conformance", "completeness", "plausibility"}
    assert {"person", "measurement", "pii_name"} <= {c.table for c in checks}
