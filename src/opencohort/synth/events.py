"""Program events of synthetic participants: sign-up, consents, surveys, samples, exits.

Rates follow the reference program's public figures (All of Us Research Program data
browser and "The All of Us Research Program", N Engl J Med 2019;381:668-676): most
participants share EHRs, most complete the first three surveys, about three quarters give a
DNA-bearing sample, and a small share withdraw or are found deceased.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from opencohort.synth._random import batch_rng, day_numbers, to_dates
from opencohort.synth.models import SynthConfig

_STREAM_SIGN_UP = 11
_STREAM_EVENTS = 12

#: Sign-up density grows over the program like t ** (1 / SIGN_UP_RAMP - 1) (ramp-up).
SIGN_UP_RAMP = 1.5
#: Share of account holders who sign the primary consent.
PRIMARY_CONSENT = 0.98
#: Shares among primary consenters (EHR and GROR slightly above target: some fall after cutoff).
EHR_CONSENT = 0.82
GROR_CONSENT = 0.64
WEARABLES_CONSENT = 0.17
#: Wearables (Fitbit) sharing opened this many days after the program started.
WEARABLES_LAUNCH_DAYS = 240
#: Survey completion: The Basics among consenters, the next two among Basics completers.
BASICS = 0.95
LIFESTYLE_GIVEN_BASICS = 0.95
OVERALL_HEALTH_GIVEN_BASICS = 0.95
#: Physical measurements and DNA sample shares by origin (site-enrolled, self-enrolled).
PHYSICAL_MEASUREMENTS = {"site": 0.88, "self": 0.55}
DNA_RECEIVED = {"site": 0.84, "self": 0.55}
#: Exits among consenters.
WITHDRAWAL = 0.015
WITHDRAWAL_NO_USE = 0.85
SUSPENSION = 0.003
#: Gompertz annual mortality exp(a + b * age), giving ~1-2% deaths over the program.
MORTALITY_A = -10.9
MORTALITY_B = 0.085

#: Date columns that end at withdrawal or death (nothing of them happens afterwards).
FOLLOW_UP_COLUMNS = [
    "ehr_consent_date",
    "gror_consent_date",
    "wearables_consent_date",
    "basics_date",
    "lifestyle_date",
    "overall_health_date",
    "pm_date",
    "dna_received_date",
]


@dataclass(frozen=True)
class _Days:
    """Program start and cutoff as day numbers."""

    start: float
    cutoff: float


def _program_days(config: SynthConfig) -> _Days:
    bounds = day_numbers(np.array([config.start, config.cutoff], dtype="datetime64[D]"))
    return _Days(float(bounds[0]), float(bounds[1]))


def sign_up_dates(config: SynthConfig, index: int, n: int) -> np.ndarray:
    """Return account-creation dates of batch `index`, ramping up from config.start.

    Parameters
    ----------
    config
        Program options (seed, start, cutoff).
    index
        Batch index, part of the random stream.
    n
        Number of people in the batch.

    Returns
    -------
    numpy.ndarray
        datetime64[ns] dates in [config.start, config.cutoff].
    """
    days = _program_days(config)
    rng = batch_rng(config, _STREAM_SIGN_UP, index)
    span = days.cutoff - days.start + 1
    offset = np.floor(span * rng.random(n) ** (1 / SIGN_UP_RAMP))
    return to_dates(days.start + np.minimum(offset, span - 1))


def _after(
    rng: np.random.Generator, base: np.ndarray, same_day: float, mean_delay: float
) -> np.ndarray:
    """Return base plus 0 days (probability same_day) or an exponential delay."""
    n = len(base)
    delay = np.floor(rng.exponential(mean_delay, n)) + 1
    return base + np.where(rng.random(n) < same_day, 0.0, delay)


def _keep(rng: np.random.Generator, dates: np.ndarray, share: float | np.ndarray) -> np.ndarray:
    """Return dates where a Bernoulli(share) draw succeeds, NaN elsewhere."""
    return np.where(rng.random(len(dates)) < share, dates, np.nan)


def program_events(people: pd.DataFrame, config: SynthConfig, index: int) -> pd.DataFrame:
    """Return the dated program events of a batch of people.

    Parameters
    ----------
    people
        Rows with sign_up_date, birth_date, guardian_consent and origin.
    config
        Program options (seed, cutoff).
    index
        Batch index, part of the random stream.

    Returns
    -------
    pandas.DataFrame
        primary_consent_date, ehr_consent_date, gror_consent_date, wearables_consent_date,
        basics_date, lifestyle_date, overall_health_date, pm_date, dna_received_date,
        withdrawal_date, withdrawal_status ("", "no_use", "early_out"), suspension_date and
        death_date (datetime64[ns], NaT when absent), aligned with `people`.

    Notes
    -----
    1. Primary consent follows sign-up (mostly the same day); every other consent, survey,
       measurement and sample follows primary consent.
    2. Withdrawal, suspension and death are drawn last; no event happens after withdrawal or
       death, and nothing happens after config.cutoff.
    3. Minors (guardian consent) are not offered genomic return of results.
    """
    days = _program_days(config)
    rng = batch_rng(config, _STREAM_EVENTS, index)
    n = len(people)
    sign_up = day_numbers(people["sign_up_date"].to_numpy())
    birth = day_numbers(people["birth_date"].to_numpy())
    site = (people["origin"] == "site").to_numpy()
    minor = people["guardian_consent"].to_numpy(dtype=bool)

    primary = _keep(rng, _after(rng, sign_up, 0.85, 10), PRIMARY_CONSENT)
    ehr = _keep(rng, _after(rng, primary, 0.7, 150), EHR_CONSENT)
    gror = _keep(rng, _after(rng, primary, 0.5, 200), np.where(minor, 0.0, GROR_CONSENT))
    wear_base = np.maximum(primary, days.start + WEARABLES_LAUNCH_DAYS)
    wearables = _keep(rng, _after(rng, wear_base, 0.1, 180), WEARABLES_CONSENT)
    basics = _keep(rng, _after(rng, primary, 0.8, 20), BASICS)
    lifestyle = _keep(rng, _after(rng, basics, 0.7, 40), LIFESTYLE_GIVEN_BASICS)
    overall = _keep(rng, _after(rng, basics, 0.7, 40), OVERALL_HEALTH_GIVEN_BASICS)
    pm_share = np.where(site, PHYSICAL_MEASUREMENTS["site"], PHYSICAL_MEASUREMENTS["self"])
    pm = _keep(rng, _after(rng, primary, 0.4, np.where(site, 20, 120)), pm_share)
    dna_share = np.where(site, DNA_RECEIVED["site"], DNA_RECEIVED["self"])
    transit = np.where(site, rng.integers(1, 6, n), rng.integers(4, 15, n))
    collected = np.where(site & ~np.isnan(pm), pm, _after(rng, primary, 0.0, 60))
    dna = _keep(rng, collected + transit, dna_share)

    years = (days.cutoff - sign_up) / 365.25
    mid_age = (sign_up - birth) / 365.25 + years / 2
    hazard = np.exp(MORTALITY_A + MORTALITY_B * mid_age)
    dies = rng.random(n) < -np.expm1(-hazard * years)
    death = np.where(dies, sign_up + np.floor(rng.random(n) * (days.cutoff - sign_up + 1)), np.nan)
    primary[(primary > days.cutoff) | (primary > np.nan_to_num(death, nan=np.inf))] = np.nan

    consented = ~np.isnan(primary)
    open_days = np.where(consented, days.cutoff - primary, 0.0)
    withdrawn = consented & (rng.random(n) < WITHDRAWAL)
    withdrawal = np.where(withdrawn, primary + np.floor(rng.random(n) * (open_days + 1)), np.nan)
    status = np.where(rng.random(n) < WITHDRAWAL_NO_USE, "no_use", "early_out")
    suspended = consented & (rng.random(n) < SUSPENSION)
    suspension = np.where(suspended, primary + np.floor(rng.random(n) * (open_days + 1)), np.nan)

    withdrawal[withdrawal > np.nan_to_num(death, nan=np.inf)] = np.nan
    end = np.fmin(withdrawal, death)
    end = np.where(np.isnan(end), days.cutoff + 1, end)
    suspension[suspension >= end] = np.nan

    events = {
        "ehr_consent_date": ehr,
        "gror_consent_date": gror,
        "wearables_consent_date": wearables,
        "basics_date": basics,
        "lifestyle_date": lifestyle,
        "overall_health_date": overall,
        "pm_date": pm,
        "dna_received_date": dna,
    }
    out = {"primary_consent_date": to_dates(primary)}
    for name in FOLLOW_UP_COLUMNS:
        values = events[name]
        values[~(values < end) | np.isnan(primary)] = np.nan
        out[name] = to_dates(values)
    out["withdrawal_date"] = to_dates(withdrawal)
    out["withdrawal_status"] = np.where(np.isnan(withdrawal), "", status).astype(object)
    out["suspension_date"] = to_dates(suspension)
    out["death_date"] = to_dates(death)
    return pd.DataFrame(out, index=people.index)
