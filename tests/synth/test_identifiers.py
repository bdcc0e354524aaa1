"""Tests of program identifiers and fake direct identifiers."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opencohort.synth.identifiers import direct_identifiers, participant_ids, scramble


@given(
    key=st.integers(min_value=0, max_value=2**40),
    values=st.lists(st.integers(min_value=0, max_value=10**9 - 1), min_size=1, max_size=200),
)
@settings(max_examples=60, deadline=None)
def test_scramble__is_injective_into_the_id_space(key: int, values: list[int]) -> None:
    unique = np.unique(np.array(values, dtype=np.int64))
    image = scramble(unique, key=key)
    assert len(np.unique(image)) == len(unique)
    assert image.min() >= 0
    assert image.max() < 10**9


def test_scramble__is_a_permutation_of_a_dense_range() -> None:
    values = np.arange(200_000)
    image = scramble(values, key=17)
    assert len(np.unique(image)) == len(values)
    # a scramble, not the identity nor a shift: consecutive inputs land far apart
    assert np.median(np.abs(np.diff(image))) > 10**6


def test_scramble__depends_on_key() -> None:
    values = np.arange(1000)
    assert not np.array_equal(scramble(values, key=1), scramble(values, key=2))


def test_scramble__rejects_values_outside_the_space() -> None:
    with pytest.raises(ValueError, match="below"):
        scramble(np.array([10**9]), key=0)


def test_participant_ids__format_and_uniqueness() -> None:
    ids = participant_ids(np.arange(50_000), seed=3)
    assert all(re.fullmatch(r"P\d{9}", value) for value in ids[:1000])
    assert len(set(ids)) == len(ids)
    assert not np.array_equal(ids, participant_ids(np.arange(50_000), seed=4))


@pytest.fixture(scope="module")
def identifiers():
    n = 5000
    rng = np.random.default_rng(0)
    sex = np.array(["female", "male", "intersex", "skip"], dtype=object)[
        rng.choice(4, n, p=[0.5, 0.45, 0.02, 0.03])
    ]
    race = np.array(["white", "hispanic", "black"], dtype=object)[rng.integers(0, 3, n)]
    frame = direct_identifiers(
        np.random.default_rng(1),
        sex_at_birth=sex,
        race_ethnicity=race,
        city=np.full(n, "Springfield", dtype=object),
        site_number=rng.integers(0, 3, n),
        person_index=np.arange(n),
        seed=5,
    )
    return frame, sex, race


def test_direct_identifiers__ssn_area_never_issued(identifiers) -> None:
    frame, _, _ = identifiers
    assert frame["ssn"].str.fullmatch(r"\d{3}-\d{2}-\d{4}").all()
    area = frame["ssn"].str[:3].astype(int)
    assert area.between(900, 999).all()
    assert (frame["ssn"].str[4:6] != "00").all()
    assert (frame["ssn"].str[7:] != "0000").all()


def test_direct_identifiers__formats(identifiers) -> None:
    frame, _, _ = identifiers
    assert frame["phone"].str.fullmatch(r"\(\d{3}\) \d{3}-\d{4}").all()
    assert frame["email"].str.fullmatch(r"[a-z]+[._]?[a-z]+\d*@[a-z.]+").all()
    assert frame["street_address"].str.match(r"\d+ \S").all()
    assert (frame["first_name"].str.len() > 0).all()
    assert (frame["last_name"].str.len() > 0).all()
    # emails are derived from the names
    local = frame["email"].str.split("@").str[0]
    assert (local.str[:2] == frame["first_name"].str.lower().str[:2]).mean() > 0.95


def test_direct_identifiers__first_names_follow_sex(identifiers) -> None:
    from faker.providers.person.en_US import Provider

    frame, sex, _ = identifiers
    female = frame["first_name"][sex == "female"]
    assert female.isin(list(Provider.first_names_female)).all()
    male = frame["first_name"][sex == "male"]
    assert male.isin(list(Provider.first_names_male)).all()


def test_direct_identifiers__hispanic_surnames(identifiers) -> None:
    from faker.providers.person.es_MX import Provider

    frame, _, race = identifiers
    spanish = frame["last_name"].isin(list(Provider.last_names))
    assert spanish[race == "hispanic"].mean() > 0.5
    assert spanish[race == "black"].mean() < 0.2


def test_direct_identifiers__mrn_unique_and_site_specific(identifiers) -> None:
    frame, _, _ = identifiers
    assert frame["mrn"].is_unique
    assert frame["mrn"].str.fullmatch(r"[A-Z]{3}\d{9}").all()
    assert frame["mrn"].str[:3].nunique() == 3
