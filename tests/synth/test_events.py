"""Tests of program events: shares and date coherence."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opencohort.synth.events import FOLLOW_UP_COLUMNS, program_events, sign_up_dates
from opencohort.synth.models import SynthConfig
from opencohort.synth.participants import participant_batch


def _assert_coherent(people: pd.DataFrame, config: SynthConfig) -> None:
    """Check every date invariant of the frame."""
    cutoff, start = pd.Timestamp(config.cutoff), pd.Timestamp(config.start)
    dates = [c for c in people.columns if c.endswith("_date")]
    for column in dates:
        present = people[column].dropna()
        assert (present <= cutoff).all(), column
        assert (present >= people.loc[present.index, "birth_date"]).all(), column
    assert people["sign_up_date"].between(start, cutoff).all()
    consent = people["primary_consent_date"]
    assert (consent.dropna() >= people.loc[consent.notna(), "sign_up_date"]).all()
    end = people[["withdrawal_date", "death_date"]].min(axis=1)
    for column in [*FOLLOW_UP_COLUMNS, "withdrawal_date", "suspension_date"]:
        rows = people[column].notna()
        assert consent[rows].notna().all(), column
        assert (people.loc[rows, column] >= consent[rows]).all(), column
    for column in [*FOLLOW_UP_COLUMNS, "suspension_date"]:
        rows = people[column].notna() & end.notna()
        assert (people.loc[rows, column] < end[rows]).all(), column
    for later, earlier in (
        ("lifestyle_date", "basics_date"),
        ("overall_health_date", "basics_date"),
    ):
        rows = people[later].notna()
        assert (people.loc[rows, later] >= people.loc[rows, earlier]).all()
    withdrawn = people["withdrawal_date"].notna()
    assert (people.loc[withdrawn, "withdrawal_status"].isin(["no_use", "early_out"])).all()
    assert (people.loc[~withdrawn, "withdrawal_status"] == "").all()
    both = withdrawn & people["death_date"].notna()
    assert (people.loc[both, "withdrawal_date"] <= people.loc[both, "death_date"]).all()
    assert people.loc[people["guardian_consent"], "gror_consent_date"].isna().all()


@given(
    seed=st.integers(min_value=0, max_value=10_000),
    n=st.integers(min_value=1, max_value=60),
    span_days=st.integers(min_value=1, max_value=4000),
)
@settings(max_examples=40, deadline=None)
def test_program_events__dates_coherent(seed: int, n: int, span_days: int) -> None:
    start = date(2018, 5, 6)
    cutoff = date.fromordinal(start.toordinal() + span_days)
    config = SynthConfig(
        participants=n, genomes=0, sites=2, seed=seed, batch_size=25, start=start, cutoff=cutoff
    )
    for index in range(config.n_batches):
        _assert_coherent(participant_batch(config, index), config)


@pytest.fixture(scope="module")
def big() -> tuple[pd.DataFrame, SynthConfig]:
    config = SynthConfig(participants=20_000, genomes=0, sites=5, seed=21)
    return participant_batch(config, 0), config


def test_program_events__dates_coherent_at_scale(big) -> None:
    people, config = big
    _assert_coherent(people, config)


def test_program_events__shares(big) -> None:
    people, _ = big
    consented = people["primary_consent_date"].notna()
    assert consented.mean() > 0.95
    shares = people.loc[consented, FOLLOW_UP_COLUMNS].notna().mean()
    assert 0.74 <= shares["ehr_consent_date"] <= 0.86
    assert 0.54 <= shares["gror_consent_date"] <= 0.66
    assert 0.11 <= shares["wearables_consent_date"] <= 0.19
    assert 0.92 <= shares["basics_date"] <= 0.98
    assert 0.85 <= shares["lifestyle_date"] <= 0.94
    assert 0.85 <= shares["overall_health_date"] <= 0.94
    assert 0.74 <= shares["pm_date"] <= 0.86
    assert 0.70 <= shares["dna_received_date"] <= 0.80
    assert 0.01 <= people["withdrawal_date"].notna().mean() <= 0.02
    assert 0.001 <= people["suspension_date"].notna().mean() <= 0.006
    assert 0.01 <= people["death_date"].notna().mean() <= 0.02
    status = people.loc[people["withdrawal_date"].notna(), "withdrawal_status"]
    assert (status == "no_use").mean() > 0.7
    assert (status == "early_out").sum() > 0


def test_program_events__deaths_rise_with_age(big) -> None:
    people, _ = big
    age = (people["sign_up_date"] - people["birth_date"]).dt.days / 365.25
    dead = people["death_date"].notna()
    assert dead[age >= 70].mean() > 4 * dead[age < 50].mean()


def test_sign_up_dates__ramp_up() -> None:
    config = SynthConfig(participants=20_000, genomes=0, seed=4)
    dates = pd.Series(sign_up_dates(config, 0, 20_000))
    midpoint = (
        pd.Timestamp(config.start) + (pd.Timestamp(config.cutoff) - pd.Timestamp(config.start)) / 2
    )
    assert (dates < midpoint).mean() < 0.45
    assert not np.array_equal(sign_up_dates(config, 0, 100), sign_up_dates(config, 1, 100))


def test_program_events__deterministic_per_batch(big) -> None:
    people, config = big
    head = people.head(500)
    first = program_events(head, config, 0)
    pd.testing.assert_frame_equal(first, program_events(head, config, 0))
    assert list(first.index) == list(head.index)
    other = program_events(head, config, 1)
    assert not first["primary_consent_date"].equals(other["primary_consent_date"])
