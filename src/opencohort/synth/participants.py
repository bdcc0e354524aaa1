"""Synthetic participants: sites, demographics, homes, ancestry, identifiers and events.

Demographic targets follow the reference program's published diversity: All of Us
Research Program data browser, "Participant demographics" (databrowser.researchallofus.org,
2024) and "The All of Us Research Program", N Engl J Med 2019;381:668-676 (about half of
participants from racial and ethnic minorities, about 80% underrepresented in biomedical
research). Shares not published there (education, income, sexual and gender minority) are
set near the program's reported UBR mix and US survey figures and tuned so that the UBR
share lands near 0.75.
"""

from __future__ import annotations

import math
from functools import cache, lru_cache

import numpy as np
import pandas as pd

from opencohort.errors import ConfigError
from opencohort.synth._geography import WEIGHT_VARIANTS, sample_zips, state_populations, zip_table
from opencohort.synth._random import batch_rng, categorical, day_numbers, hash_uniform, to_dates
from opencohort.synth.events import program_events, sign_up_dates
from opencohort.synth.identifiers import direct_identifiers, participant_ids
from opencohort.synth.models import SynthConfig

_STREAM_SITES = 1
_STREAM_DEMOGRAPHICS = 2
_STREAM_GEOGRAPHY = 3
_STREAM_ANCESTRY = 4
_STREAM_IDENTIFIERS = 5
_STREAM_RACE_PAIR = 6

#: Self-reported race/ethnicity shares (All of Us data browser: ~46% White, ~20% Black,
#: ~17% Hispanic or Latino, ~4% Asian, ~1% AIAN, ~0.2% NHPI, ~1% MENA, ~4% more than one;
#: the rest none of these or skipped).
RACE_SHARES = {
    "white": 0.46,
    "black": 0.20,
    "hispanic": 0.17,
    "asian": 0.04,
    "aian": 0.01,
    "nhpi": 0.002,
    "mena": 0.01,
    "multiple": 0.04,
    "none_of_these": 0.02,
    "skip": 0.048,
}
#: The two races reported by "multiple" participants, with relative frequencies.
MULTIPLE_RACE_PAIRS = {
    ("white", "hispanic"): 0.25,
    ("white", "black"): 0.22,
    ("white", "aian"): 0.15,
    ("black", "hispanic"): 0.12,
    ("white", "asian"): 0.10,
    ("black", "aian"): 0.05,
    ("white", "mena"): 0.04,
    ("asian", "nhpi"): 0.04,
    ("hispanic", "aian"): 0.03,
}
#: Age at sign-up: (lowest age, highest age, share); data browser age groups, 89+ ~0.6%.
AGE_BANDS = [
    (18, 29, 0.15),
    (30, 39, 0.165),
    (40, 49, 0.16),
    (50, 59, 0.19),
    (60, 69, 0.175),
    (70, 79, 0.115),
    (80, 88, 0.039),
    (89, 99, 0.006),
]
#: Share of 13-17-year-olds enrolled with a guardian's permission.
MINOR_SHARE = 0.005
SEX_AT_BIRTH_SHARES = {
    "female": 0.605,
    "male": 0.383,
    "intersex": 0.001,
    "none_of_these": 0.003,
    "skip": 0.008,
}
_GENDERS = ["woman", "man", "non_binary", "transgender", "additional", "skip"]
#: Gender identity given sex at birth (female, male, other answers).
GENDER_GIVEN_SEX = {
    "female": [0.977, 0.002, 0.007, 0.003, 0.003, 0.008],
    "male": [0.002, 0.978, 0.005, 0.004, 0.003, 0.008],
    "other": [0.30, 0.30, 0.15, 0.10, 0.05, 0.10],
}
_ORIENTATIONS = ["straight", "gay", "lesbian", "bisexual", "none_of_these", "skip"]
#: Sexual orientation given gender identity (woman, man, other answers).
ORIENTATION_GIVEN_GENDER = {
    "woman": [0.91, 0.005, 0.02, 0.035, 0.010, 0.020],
    "man": [0.92, 0.032, 0.0, 0.018, 0.008, 0.022],
    "other": [0.25, 0.10, 0.10, 0.30, 0.20, 0.05],
}
_EDUCATION = ["less_than_high_school", "high_school", "some_college", "college", "advanced"]
#: Education shares among answerers, and the share who skip.
EDUCATION_SHARES = [0.055, 0.19, 0.28, 0.255, 0.22]
EDUCATION_SKIP = 0.025
_INCOME = [
    "lt_10k",
    "10k_25k",
    "25k_35k",
    "35k_50k",
    "50k_75k",
    "75k_100k",
    "100k_150k",
    "150k_200k",
    "gt_200k",
]
#: Annual household income shares among answerers, and the share who skip.
INCOME_SHARES = [0.07, 0.10, 0.07, 0.11, 0.16, 0.13, 0.16, 0.10, 0.10]
INCOME_SKIP = 0.10
_EMPLOYMENT = [
    "employed",
    "self_employed",
    "unemployed",
    "student",
    "homemaker",
    "retired",
    "unable_to_work",
]
#: Employment by age group (under 25, 25-54, 55-64, 65+), before skips.
EMPLOYMENT_BY_AGE = {
    "under_25": [0.42, 0.03, 0.12, 0.38, 0.02, 0.0, 0.03],
    "25_54": [0.64, 0.08, 0.09, 0.03, 0.07, 0.01, 0.08],
    "55_64": [0.52, 0.08, 0.07, 0.0, 0.06, 0.15, 0.12],
    "65_plus": [0.13, 0.06, 0.02, 0.0, 0.03, 0.70, 0.06],
}
EMPLOYMENT_SKIP = 0.02
#: Race shifts of a latent socioeconomic score (education and income follow it).
SES_SHIFT = {
    "white": 0.25,
    "black": -0.40,
    "hispanic": -0.45,
    "asian": 0.45,
    "aian": -0.50,
    "nhpi": -0.35,
    "mena": 0.10,
    "multiple": -0.10,
    "none_of_these": -0.20,
    "skip": 0.0,
}
#: Share of participants living in the site's state (site-enrolled, self-enrolled).
IN_STATE = {"site": 0.93, "self": 0.75}
SELF_ENROLLED = 0.25

_ANCESTRIES = ["afr", "eur", "eas", "sas", "mid", "nat"]
#: Mean ancestry proportions (afr, eur, eas, sas, mid, nat) and Dirichlet concentration by
#: ancestry group; self-report maps to a group (Asian splits into East and South Asian).
ANCESTRY_MEANS = {
    "white": ([0.010, 0.935, 0.005, 0.005, 0.035, 0.010], 60.0),
    "black": ([0.800, 0.170, 0.003, 0.003, 0.004, 0.020], 30.0),
    "hispanic": ([0.100, 0.520, 0.005, 0.005, 0.020, 0.350], 12.0),
    "east_asian": ([0.003, 0.020, 0.950, 0.020, 0.004, 0.003], 80.0),
    "south_asian": ([0.005, 0.030, 0.030, 0.900, 0.030, 0.005], 60.0),
    "aian": ([0.040, 0.330, 0.010, 0.005, 0.005, 0.610], 10.0),
    "nhpi": ([0.020, 0.150, 0.750, 0.010, 0.005, 0.065], 12.0),
    "mena": ([0.040, 0.100, 0.005, 0.030, 0.820, 0.005], 40.0),
}
SOUTH_ASIAN_SHARE = 0.35

_SITE_SUFFIXES = [
    "Medical Center",
    "Health System",
    "University Hospital",
    "Community Health Center",
    "Regional Medical Center",
    "Health Partners",
]
_SITE_COLUMNS = ["site_id", "site_name", "organization_id", "awardee_id", "state", "imperial_units"]
COLUMNS = [
    "person_index",
    "participant_id",
    "site_id",
    "origin",
    "sign_up_date",
    "primary_consent_date",
    "birth_date",
    "guardian_consent",
    "sex_at_birth",
    "gender_identity",
    "sexual_orientation",
    "race_ethnicity",
    "education",
    "income",
    "employment",
    "disability",
    "limited_access_to_care",
    "zip",
    "state",
    "rural",
    "first_name",
    "middle_name",
    "last_name",
    "street_address",
    "city",
    "phone",
    "email",
    "ssn",
    "mrn",
    *(f"anc_{name}" for name in _ANCESTRIES),
    "ehr_consent_date",
    "gror_consent_date",
    "wearables_consent_date",
    "basics_date",
    "lifestyle_date",
    "overall_health_date",
    "pm_date",
    "dna_received_date",
    "withdrawal_date",
    "withdrawal_status",
    "suspension_date",
    "death_date",
    "ubr",
]


def site_table(config: SynthConfig) -> pd.DataFrame:
    """Return the program's sites in an awardee -> organization -> site hierarchy.

    Parameters
    ----------
    config
        Program options; uses seed, sites and messiness.imperial_site_share.

    Returns
    -------
    pandas.DataFrame
        site_id ("site_001" ...), site_name, organization_id, awardee_id, state (2 letters,
        drawn by population) and imperial_units (True for round(share * sites) sites).
    """
    return _site_frame(config.seed, config.sites, config.messiness.imperial_site_share).copy()


@lru_cache(maxsize=16)
def _site_frame(seed: int, sites: int, imperial_share: float) -> pd.DataFrame:
    rng = np.random.default_rng([seed, _STREAM_SITES])
    states, population = state_populations()
    state = states[rng.choice(len(states), size=sites, p=population / population.sum())]
    table = zip_table()
    city = np.empty(sites, dtype=object)
    for number, code in enumerate(table.state_codes(state)):
        rows = slice(table.state_first[code], table.state_last[code] + 1)
        weights = table.population[rows]
        city[number] = table.city[rows][rng.choice(len(weights), p=weights / weights.sum())]
    name = city + " " + np.array(_SITE_SUFFIXES, dtype=object)[rng.integers(0, 6, sites)]
    seen: set[str] = set()
    for number, value in enumerate(name):
        if value in seen:
            name[number] = f"{value} {number + 1}"
        seen.add(name[number])
    n_orgs = max(1, round(sites / 1.5))
    n_awardees = max(1, round(sites / 4))
    org_of_site = rng.permutation(np.arange(sites) % n_orgs)
    awardee_of_org = np.arange(n_orgs) % n_awardees
    imperial = np.zeros(sites, dtype=bool)
    imperial[rng.permutation(sites)[: round(imperial_share * sites)]] = True
    awardee = [f"AWD{a + 1:02d}" for a in awardee_of_org[org_of_site]]
    frame = pd.DataFrame(
        {
            "site_id": [f"site_{k + 1:03d}" for k in range(sites)],
            "site_name": name,
            "organization_id": [
                f"{a}_ORG{o + 1:03d}" for a, o in zip(awardee, org_of_site, strict=True)
            ],
            "awardee_id": awardee,
            "state": state,
            "imperial_units": imperial,
        }
    )
    return frame[_SITE_COLUMNS]


@lru_cache(maxsize=16)
def _site_weights(seed: int, sites: int) -> np.ndarray:
    """Return relative site sizes (lognormal), fixed for a seed."""
    rng = np.random.default_rng([seed, _STREAM_SITES, 1])
    weights = rng.lognormal(0.0, 0.6, sites)
    return weights / weights.sum()


def multiple_race_pairs(seed: int, person_index: np.ndarray) -> np.ndarray:
    """Return the two races each person would report if their race_ethnicity is "multiple".

    Parameters
    ----------
    seed
        Program seed.
    person_index
        Global person indexes.

    Returns
    -------
    numpy.ndarray
        (n, 2) object array of race categories, fixed per (seed, person_index).
    """
    pairs = np.array(list(MULTIPLE_RACE_PAIRS), dtype=object)
    weights = np.array(list(MULTIPLE_RACE_PAIRS.values()))
    code = categorical(hash_uniform(seed, _STREAM_RACE_PAIR, person_index), weights)
    return pairs[code]


def _normal_mixture_cuts(
    means: np.ndarray, weights: np.ndarray, sd: float, cum_probs: np.ndarray
) -> np.ndarray:
    """Return points where a normal mixture's CDF reaches each cumulative probability."""
    weights = weights / weights.sum()

    def cdf(x: float) -> float:
        z = (x - means) / (sd * math.sqrt(2))
        return float(np.sum(weights * 0.5 * (1 + np.vectorize(math.erf)(z))))

    cuts = []
    for target in cum_probs:
        lo, hi = -10.0, 10.0
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if cdf(mid) < target else (lo, mid)
        cuts.append((lo + hi) / 2)
    return np.array(cuts)


_EDU_NOISE = 0.8
_INCOME_NOISE = 0.7


@cache
def _ses_cuts() -> tuple[np.ndarray, np.ndarray]:
    """Return cut points of the education and income latent scores matching the targets."""
    races = list(RACE_SHARES)
    means = np.array([SES_SHIFT[r] for r in races])
    weights = np.array([RACE_SHARES[r] for r in races])
    edu_cum = np.cumsum(EDUCATION_SHARES)[:-1]
    edu = _normal_mixture_cuts(means, weights, math.sqrt(1 + _EDU_NOISE**2), edu_cum)
    income_sd = math.sqrt(0.36 + 0.25 * _EDU_NOISE**2 + _INCOME_NOISE**2)
    income = _normal_mixture_cuts(
        0.6 * means, weights, income_sd, np.cumsum(INCOME_SHARES)[:-1] / sum(INCOME_SHARES)
    )
    return edu, income


def _lookup(mapping: dict, keys: np.ndarray) -> np.ndarray:
    """Return mapping[key] for each key, vectorised (rows of a table for list values)."""
    values = np.array(list(mapping.values()))
    return values[pd.Index(list(mapping)).get_indexer(keys)]


def _choice(rng: np.random.Generator, labels: list[str], probs: np.ndarray) -> np.ndarray:
    """Return one label per row of an (n, k) probability matrix."""
    return np.array(labels, dtype=object)[categorical(rng.random(probs.shape[0]), probs)]


def _demographics(rng: np.random.Generator, sign_up: np.ndarray, n: int) -> pd.DataFrame:
    """Return birth date, guardian flag and self-reported demographics of n people."""
    minor = rng.random(n) < MINOR_SHARE
    band = categorical(rng.random(n), np.array([b[2] for b in AGE_BANDS]))
    low = np.array([b[0] for b in AGE_BANDS])[band]
    high = np.array([b[1] for b in AGE_BANDS])[band]
    age_years = np.where(minor, rng.integers(13, 18, n), rng.integers(low, high + 1))
    age_days = np.ceil(age_years * 365.25) + np.floor(rng.random(n) * 364)
    birth = day_numbers(sign_up) - age_days
    age = age_days / 365.25

    sex = np.array(list(SEX_AT_BIRTH_SHARES), dtype=object)[
        categorical(rng.random(n), np.array(list(SEX_AT_BIRTH_SHARES.values())))
    ]
    sex_group = np.where(np.isin(sex, ["female", "male"]), sex, "other")
    gender = _choice(rng, _GENDERS, _lookup(GENDER_GIVEN_SEX, sex_group))
    gender_group = np.where(np.isin(gender, ["woman", "man"]), gender, "other")
    orientation = _choice(rng, _ORIENTATIONS, _lookup(ORIENTATION_GIVEN_GENDER, gender_group))

    race = np.array(list(RACE_SHARES), dtype=object)[
        categorical(rng.random(n), np.array(list(RACE_SHARES.values())))
    ]
    ses = _lookup(SES_SHIFT, race) + rng.normal(0, 1, n)
    edu_noise = rng.normal(0, _EDU_NOISE, n)
    edu_cuts, income_cuts = _ses_cuts()
    education = np.array(_EDUCATION, dtype=object)[np.searchsorted(edu_cuts, ses + edu_noise)]
    education[minor] = "less_than_high_school"
    education[rng.random(n) < EDUCATION_SKIP] = "skip"
    income_score = 0.6 * ses + 0.5 * edu_noise + rng.normal(0, _INCOME_NOISE, n)
    income = np.array(_INCOME, dtype=object)[np.searchsorted(income_cuts, income_score)]
    income[rng.random(n) < INCOME_SKIP] = "skip"

    age_group = np.select([age < 25, age < 55, age < 65], ["under_25", "25_54", "55_64"], "65_plus")
    employment = _choice(rng, _EMPLOYMENT, _lookup(EMPLOYMENT_BY_AGE, age_group))
    employment[minor] = "student"
    employment[rng.random(n) < EMPLOYMENT_SKIP] = "skip"

    low_income = np.isin(income, _INCOME[:3])
    disabled_p = (
        0.02 + 0.05 * (age >= 65) + 0.04 * low_income + 0.25 * (employment == "unable_to_work")
    )
    disability = rng.random(n) < disabled_p
    limited_p = 0.025 + 0.08 * low_income + 0.03 * np.isin(race, ["hispanic", "aian"])
    limited_access = rng.random(n) < limited_p
    return pd.DataFrame(
        {
            "birth_date": to_dates(birth),
            "guardian_consent": minor,
            "sex_at_birth": sex,
            "gender_identity": gender,
            "sexual_orientation": orientation,
            "race_ethnicity": race,
            "education": education,
            "income": income,
            "employment": employment,
            "disability": disability,
            "limited_access_to_care": limited_access,
        }
    )


def _ancestry(rng: np.random.Generator, race: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Return (n, 6) true ancestry proportions consistent with self-reported race."""
    n = len(race)
    groups = list(ANCESTRY_MEANS)
    means = np.array([ANCESTRY_MEANS[g][0] for g in groups])
    alphas = means * np.array([ANCESTRY_MEANS[g][1] for g in groups])[:, None]
    single = ["white", "black", "hispanic", "asian", "aian", "nhpi", "mena"]
    single_shares = np.array([RACE_SHARES[r] for r in single])
    random_race = np.array(single, dtype=object)[categorical(rng.random(n), single_shares)]
    first = np.where(np.isin(race, ["none_of_these", "skip"]), random_race, race)
    first = np.where(race == "multiple", pairs[:, 0], first)
    second = np.where(race == "multiple", pairs[:, 1], first)
    south = rng.random(n) < SOUTH_ASIAN_SHARE

    def group_codes(labels: np.ndarray) -> np.ndarray:
        named = np.where(labels == "asian", np.where(south, "south_asian", "east_asian"), labels)
        return pd.Index(groups).get_indexer(named)

    draw_a = rng.gamma(alphas[group_codes(first)])
    draw_b = rng.gamma(alphas[group_codes(second)])
    draw_a /= draw_a.sum(axis=1, keepdims=True)
    draw_b /= draw_b.sum(axis=1, keepdims=True)
    weight = np.where(race == "multiple", rng.uniform(0.3, 0.7, n), 1.0)[:, None]
    mixed = weight * draw_a + (1 - weight) * draw_b
    return mixed / mixed.sum(axis=1, keepdims=True)


def _ubr(frame: pd.DataFrame) -> np.ndarray:
    """Return True for people underrepresented in biomedical research by any category."""
    age = (frame["sign_up_date"] - frame["birth_date"]).dt.days / 365.25
    sgm = (
        frame["sexual_orientation"].isin(["gay", "lesbian", "bisexual", "none_of_these"])
        | frame["gender_identity"].isin(["non_binary", "transgender", "additional"])
        | (frame["sex_at_birth"] == "intersex")
        | ((frame["gender_identity"] == "woman") & (frame["sex_at_birth"] == "male"))
        | ((frame["gender_identity"] == "man") & (frame["sex_at_birth"] == "female"))
    )
    return (
        ~frame["race_ethnicity"].isin(["white", "skip"])
        | (age >= 65)
        | sgm
        | frame["income"].isin(_INCOME[:3])
        | (frame["education"] == "less_than_high_school")
        | frame["rural"]
        | frame["disability"]
        | frame["limited_access_to_care"]
    ).to_numpy()


def participant_batch(config: SynthConfig, index: int) -> pd.DataFrame:
    """Return the participants of batch `index`, one row each, deterministic for the seed.

    Parameters
    ----------
    config
        Program options.
    index
        Batch number in 0..config.n_batches - 1; the batch holds the global person indexes
        config.batch_range(index).

    Returns
    -------
    pandas.DataFrame
        The participant batch frame, columns in the order of ``COLUMNS`` (see
        docs of the shared frame interface): ids, site and origin, dates of every program
        event, demographics, home ZIP, fake direct identifiers, true ancestry proportions
        and the UBR flag.

    Raises
    ------
    ConfigError
        If `index` is not a batch of this program.

    Notes
    -----
    1. Sites are drawn by lognormal size; a quarter of people self-enrolled online.
    2. Demographics: race by published shares; a latent socioeconomic score, shifted by race,
       sets education and income; employment follows age; sex at birth, gender identity and
       sexual orientation are drawn conditionally, giving ~9% sexual or gender minority.
    3. Homes: most people live in their site's state; ZIPs are drawn by population (for Black,
       Hispanic, Asian and AIAN people by that group's local population).
    4. Ancestry: a Dirichlet draw around the self-reported group's mean; "multiple" blends two
       groups, "none of these"/"skip" draw a random group.
    """
    if not 0 <= index < config.n_batches:
        raise ConfigError(
            f"participant_batch: index={index!r} must be in 0..{config.n_batches - 1}"
        )
    start, stop = config.batch_range(index)
    n = stop - start
    person_index = np.arange(start, stop, dtype=np.int64)
    rng = batch_rng(config, _STREAM_DEMOGRAPHICS, index)

    sites = site_table(config)
    site_number = categorical(rng.random(n), _site_weights(config.seed, config.sites))
    origin = np.where(rng.random(n) < SELF_ENROLLED, "self", "site").astype(object)
    sign_up = sign_up_dates(config, index, n)
    frame = _demographics(rng, sign_up, n)
    frame.insert(0, "person_index", person_index)
    frame.insert(1, "participant_id", participant_ids(person_index, seed=config.seed))
    frame.insert(2, "site_id", sites["site_id"].to_numpy(dtype=object)[site_number])
    frame.insert(3, "origin", origin)
    frame.insert(4, "sign_up_date", sign_up)

    geo = batch_rng(config, _STREAM_GEOGRAPHY, index)
    table = zip_table()
    site_state = table.state_codes(sites["state"].to_numpy(dtype=object))[site_number]
    in_state = geo.random(n) < np.where(origin == "site", IN_STATE["site"], IN_STATE["self"])
    variant = pd.Index(WEIGHT_VARIANTS).get_indexer(frame["race_ethnicity"])
    home = sample_zips(geo.random(n), np.where(in_state, site_state, -1), np.maximum(variant, 0))
    frame["zip"] = table.zip[home]
    frame["state"] = table.state[home]
    frame["rural"] = table.rural[home]

    ids = direct_identifiers(
        batch_rng(config, _STREAM_IDENTIFIERS, index),
        sex_at_birth=frame["sex_at_birth"].to_numpy(),
        race_ethnicity=frame["race_ethnicity"].to_numpy(),
        city=table.city[home],
        site_number=site_number,
        person_index=person_index,
        seed=config.seed,
    )
    frame = pd.concat([frame, ids], axis=1)
    pairs = multiple_race_pairs(config.seed, person_index)
    ancestry = _ancestry(
        batch_rng(config, _STREAM_ANCESTRY, index), frame["race_ethnicity"].to_numpy(), pairs
    )
    for column, name in enumerate(_ANCESTRIES):
        frame[f"anc_{name}"] = ancestry[:, column]
    frame = pd.concat([frame, program_events(frame, config, index)], axis=1)
    frame["ubr"] = _ubr(frame)
    return frame[COLUMNS]
