"""Each cleaning rule against the synthetic program's planted errors (truth/errors.csv)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from opencohort.curate import PRE_TIER_STAGES, RULES, build_pipeline, run_stage
from opencohort.curate._omop import SRC_ID, empty
from opencohort.curate.cleaning import UNIT_CONVERSIONS
from opencohort.vocab import local_concept_id, measurements

RECALL = 0.95


@pytest.fixture(scope="module")
def cleaned(sources, tmp_path_factory):
    sandbox = tmp_path_factory.mktemp("sandbox")
    frames, log = sources.frames, []
    for stage in build_pipeline(PRE_TIER_STAGES).stages:
        if stage.name == "ids":
            continue
        frames, entries = run_stage(stage, frames, sources.context, sandbox=sandbox)
        log += entries
    return frames, sandbox, {e["id"]: e for e in log}


@pytest.fixture(scope="module")
def truth(program) -> pd.DataFrame:
    return pd.read_csv(program / "truth" / "errors.csv", dtype={"row_key": "int64"})


def _removed(sandbox, rule: str, table: str) -> pd.DataFrame:
    path = sandbox / rule / f"{table}.parquet"
    return pd.read_parquet(path) if path.exists() else pd.DataFrame()


@pytest.mark.parametrize(
    ("kind", "rule"),
    [
        ("duplicate_id", "duplicate_ids"),
        ("date_9999", "impossible_dates"),
        ("event_before_birth", "events_before_birth"),
        ("event_after_death", "no_data_after_death"),
        ("implausible_value", "extreme_measurements"),
        ("unmapped_code", "unmapped_concepts"),
    ],
)
def test_cleaning_rule__recall_against_truth(kind, rule, truth, cleaned):
    frames, sandbox, _ = cleaned
    planted = truth[truth["kind"] == kind]
    assert len(planted) > 0
    found = 0
    for table, rows in planted.groupby("table"):
        key = f"{table}_id" if table != "procedure_occurrence" else "procedure_occurrence_id"
        removed = _removed(sandbox, rule, table)
        # a planted row may already have left with an earlier rule (e.g. a withdrawn person)
        left = set(frames[table][key].dropna().astype("int64"))
        gone = set(removed[key].astype("int64")) if len(removed) else set()
        found += sum((k in gone) or (k not in left) for k in rows["row_key"])
        assert gone, f"{rule} removed nothing from {table}"
    assert found / len(planted) >= RECALL


def test_unit_normalisation__imperial_rows_converted(truth, cleaned, sources):
    frames, _, log = cleaned
    planted = truth[truth["kind"] == "imperial_unit"]
    raw = sources.frames["measurement"].drop_duplicates("measurement_id")
    raw = raw.set_index("measurement_id")
    out = frames["measurement"].drop_duplicates("measurement_id").set_index("measurement_id")
    keys = planted["row_key"][planted["row_key"].isin(out.index)]
    assert len(keys) > 0.9 * len(planted)
    metric = measurements().drop_duplicates("unit_ucum").set_index("unit_ucum")["unit_concept_id"]
    for ucum, (factor, offset, target) in UNIT_CONVERSIONS.items():
        was = raw.loc[keys]
        at = keys[(was["unit_concept_id"] == local_concept_id("UCUM", ucum)).to_numpy()]
        if not len(at):
            continue
        expect = (raw.loc[at, "value_as_number"] - offset) * factor
        np.testing.assert_allclose(out.loc[at, "value_as_number"], expect, atol=0.01)
        assert (out.loc[at, "unit_concept_id"] == metric[target]).all()
    assert log["unit_normalisation"]["changed"]["measurement"] >= len(keys)


def test_withdrawn_participants__absent(cleaned, sources):
    frames, _, _ = cleaned
    gone = sources.context.people.index[sources.context.people["no_use"]]
    assert len(gone) > 0
    for table, frame in frames.items():
        if "person_id" in frame:
            assert not frame["person_id"].isin(gone).any(), table


def test_primary_consent__people_without_it_absent(cleaned, sources):
    frames, _, _ = cleaned
    people = sources.context.people
    without = people.index[~people["primary_consent"]]
    assert len(without) > 0
    for table, frame in frames.items():
        if "person_id" in frame:
            assert not frame["person_id"].isin(without).any(), table


def test_ehr_consent__no_rows_without_consent(cleaned, sources):
    frames, _, _ = cleaned
    people = sources.context.people
    without = people.index[~people["ehr_consent"]]
    assert not frames["condition_occurrence"]["person_id"].isin(without).any()
    assert frames["person"]["person_id"].isin(without).any()  # still participants


def test_non_matching_participants__site_rows_dropped(cleaned, sources):
    frames, _, _ = cleaned
    drops = sources.context.identity_drops
    assert len(drops) > 0
    pairs = set(zip(drops["src_id"], drops["person_id"].astype(int), strict=True))
    visits = frames["visit_occurrence"]
    left = set(zip(visits["src_id"], visits["person_id"].astype(int), strict=True))
    assert not pairs & left


def test_submission_cutoff__nothing_after(cleaned, sources):
    frames, _, _ = cleaned
    assert (frames["condition_occurrence"]["condition_start_date"] <= sources.context.cutoff).all()


def _deactivate(sources, n: int = 3):
    """Context deactivating `n` persons with many conditions on their median condition day."""
    conditions = sources.frames["condition_occurrence"]
    persons = conditions["person_id"].value_counts().index[:n]
    days = conditions[conditions["person_id"].isin(persons)].groupby("person_id")[
        "condition_start_date"
    ]
    on = days.median().round().astype("int64")
    people = sources.context.people.copy()
    people.loc[on.index, "deactivated_date"] = on.to_numpy()
    return sources.context.with_(people=people), on


def test_data_after_deactivation__planted_dates(sources):
    rule = RULES["data_after_deactivation"]()
    ctx, on = _deactivate(sources)
    deactivated = ctx.people.index[ctx.people["deactivated_date"].notna()]
    assert set(on.index) < set(deactivated)  # the program suspends some people itself
    frames = {t: sources.frames[t] for t in rule.reads}
    result = rule.apply(frames, ctx)
    rule.validate({**sources.frames, **result.frames}, ctx)
    c = frames["condition_occurrence"]
    limit = c["person_id"].map(ctx.people["deactivated_date"])
    late = (c["condition_start_date"] > limit) | (c["condition_end_date"] > limit)
    late = late.fillna(False).to_numpy(dtype=bool)
    assert c.loc[late, "person_id"].isin(on.index).sum() > 0
    removed = result.removed["condition_occurrence"]
    expected = c.loc[late, "condition_occurrence_id"]
    assert sorted(removed["condition_occurrence_id"]) == sorted(expected)
    kept = result.frames["condition_occurrence"]
    assert len(kept) == len(c) - late.sum()
    assert kept["person_id"].isin(on.index).sum() > 0  # rows up to the day stay
    for table, rows in result.removed.items():
        assert rows["person_id"].isin(deactivated).all(), table
    assert sources.frames["person"]["person_id"].isin(on.index).sum() == len(on)


def test_data_after_deactivation__same_day_kept(sources):
    rule = RULES["data_after_deactivation"]()
    ctx, on = _deactivate(sources, n=1)
    person, day = on.index[0], on.iloc[0]
    c = sources.frames["condition_occurrence"]
    same = c[(c["person_id"] == person) & (c["condition_start_date"] == day)]
    same = same[same["condition_end_date"].fillna(day) <= day]
    assert len(same) > 0
    kept = rule.apply({t: sources.frames[t] for t in rule.reads}, ctx).frames
    ids = kept["condition_occurrence"]["condition_occurrence_id"]
    assert same["condition_occurrence_id"].isin(ids).all()


def test_duplicate_ids__per_site():
    frame = empty("condition_occurrence", src=True)
    frame = pd.DataFrame(
        {c: pd.Series([1, 1, 1, 2], dtype=frame[c].dtype) if c == "condition_occurrence_id"
         else pd.Series(["a", "b", "a", "a"]) if c == SRC_ID
         else pd.Series([pd.NA] * 4, dtype=frame[c].dtype) for c in frame.columns}
    )  # fmt: skip
    result = RULES["duplicate_ids"]().apply({"condition_occurrence": frame}, None)
    kept = result.frames["condition_occurrence"]
    assert list(zip(kept[SRC_ID], kept["condition_occurrence_id"], strict=True)) == [
        ("a", 1), ("b", 1), ("a", 2)
    ]  # fmt: skip


def test_round2__matches_numpy_round_on_duckdb(tmp_path):
    from opencohort.curate import open_engine
    from opencohort.curate.cleaning import _round2

    rng = np.random.default_rng(5)
    ties = np.arange(-4000, 4000) / 8  # x * 100 is k * 12.5: a tie for every odd k
    values = np.concatenate([ties, rng.normal(0, 300, 20_000), [np.nan]])
    frame = pd.DataFrame({"value_as_number": values})
    with open_engine("duckdb", tmp_path / "e") as db:
        t = db.register("measurement", frame)
        out = db.fetch("measurement", t.mutate(value_as_number=_round2(t["value_as_number"])))
    expected = np.round(values, 2)
    assert np.sum(expected != np.round(values + 1e-9, 2)) > 100  # the ties do matter
    np.testing.assert_array_equal(out["value_as_number"].to_numpy(), expected)
