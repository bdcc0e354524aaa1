"""De-identification invariants: date shift, age cap, ZIP3 aggregation, tier policy as data."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from opencohort.curate import TIER_POLICY, Tier, aggregate_zip3, curate, zip3_population
from opencohort.curate.deid import ZIP3_MIN_POPULATION, DateShift
from opencohort.curate.rules import Context


@settings(max_examples=50, deadline=None)
@given(
    shift=st.integers(1, 364),
    days=st.lists(st.integers(-20000, 20000), min_size=2, max_size=20),
)
def test_date_shift__preserves_intervals(shift, days):
    people = pd.DataFrame(
        {"research_id": [7], "date_shift_days": [shift]}, index=pd.Index([1], name="person_id")
    )
    frame = pd.DataFrame(
        {
            "observation_period_id": pd.array(range(len(days)), dtype="Int64"),
            "person_id": pd.array([7] * len(days), dtype="Int64"),
            "observation_period_start_date": pd.array(days, dtype="Int64"),
            "observation_period_end_date": pd.array(days[::-1], dtype="Int64"),
            "period_type_concept_id": pd.array([0] * len(days), dtype="Int64"),
        }
    )
    out = DateShift().apply({"observation_period": frame}, Context(cutoff=0, people=people))
    got = out.frames["observation_period"]
    for column in ("observation_period_start_date", "observation_period_end_date"):
        np.testing.assert_array_equal(got[column].astype(int), frame[column].astype(int) - shift)
        np.testing.assert_array_equal(np.diff(got[column].astype(int)), np.diff(frame[column]))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from(sorted(zip3_population().index)), min_size=1, max_size=30))
def test_aggregate_zip3__covers_every_small_zip3(zips):
    out = aggregate_zip3(pd.Series(zips, dtype=object))
    population = zip3_population()
    for before, after in zip(zips, out, strict=True):
        small = population[before] < ZIP3_MIN_POPULATION
        assert after == ("000" if small else before)


def test_aggregate_zip3__unknown_zip3_aggregated():
    assert aggregate_zip3(pd.Series(["002", None], dtype=object)).tolist()[0] == "000"


def test_tier_policy__is_data():
    assert "date_shift" in TIER_POLICY[Tier.REGISTERED]
    assert "date_shift" not in TIER_POLICY[Tier.CONTROLLED]
    assert "zip3_aggregation" in TIER_POLICY[Tier.CONTROLLED]


def test_curate__tiers_invariants(sources):
    tiers, _ = curate(sources)
    people = sources.context.by_research_id
    reg, con = tiers[Tier.REGISTERED], tiers[Tier.CONTROLLED]
    cutoff = pd.Timestamp(np.datetime64(sources.context.cutoff, "D"))
    birth = pd.to_datetime(people["birth_date"].astype(float), unit="D")
    age = (cutoff - birth).dt.days / 365.2425
    old = people.index[age >= 89.01]
    assert len(old) > 0
    assert not reg["person"]["person_id"].isin(old).any()
    assert con["person"]["person_id"].isin(old).any()
    assert set(reg["person"]["person_id"]) <= set(con["person"]["person_id"])
    assert "zip3" not in reg["demographics"] and "zip3" in con["demographics"]
    # Registered dates = Controlled dates - the person's shift
    r = reg["visit_occurrence"].set_index("visit_occurrence_id")
    c = con["visit_occurrence"].set_index("visit_occurrence_id").loc[r.index]
    shift = people["date_shift_days"].reindex(c["person_id"]).to_numpy()
    np.testing.assert_array_equal(r["visit_start_date"], c["visit_start_date"] - shift)
    assert con["person"]["month_of_birth"].isna().all()
    for frames in (reg, con):
        assert len(frames["note"]) == 0 and len(frames["location"]) == 0
        assert frames["observation"]["value_as_string"].isna().all()


@settings(max_examples=20, deadline=None)
@given(st.lists(st.integers(-80_000, 80_000), min_size=1, max_size=50))
def test_year_of_day__matches_numpy_calendar(days):
    import ibis

    from opencohort.curate.deid import june_15, year_of_day

    t = ibis.memtable({"day": days, "year": [1700 + d % 500 for d in days]})
    got = t.select(y=year_of_day(t["day"]), j=june_15(t["year"])).to_pandas()
    years = np.array(days, dtype="datetime64[D]").astype("datetime64[Y]").astype(int) + 1970
    np.testing.assert_array_equal(got["y"].to_numpy(), years)
    june = [np.datetime64(f"{1700 + d % 500:04d}-06-15", "D").astype(int) for d in days]
    np.testing.assert_array_equal(got["j"].to_numpy(), june)
