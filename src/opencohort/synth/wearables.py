"""Fitbit-like daily wearable summaries for participants who consented to share them.

Each consenting participant syncs over one bounded window after consent, wearing the device
on most but not all days; steps, resting heart rate and sleep depend on age and sex at birth.
Daily-summary shapes follow the reference program's Fitbit tables (activity summary,
heart-rate summary, sleep daily summary).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from opencohort.synth._csv import write_csv
from opencohort.synth._random import batch_index, batch_rng, day_numbers, to_dates
from opencohort.synth.models import SynthConfig

_STREAM_WEARABLES = 51

WEARABLES_DIR = "wearables"
#: Sync window length in days: lognormal (median ~WINDOW_MEDIAN) clipped to WINDOW_RANGE.
WINDOW_MEDIAN = 90
WINDOW_RANGE = (30, 365)
#: Days from consent to first sync (up to this many).
FIRST_SYNC_MAX = 14
#: Per-person wear rate is Beta(a, b); heart rate needs the device worn, sleep worn at night.
WEAR_BETA = (5.0, 1.8)
HEART_RATE_GIVEN_WORN = 0.95
SLEEP_GIVEN_WORN = 0.7


def wearable_windows(batch: pd.DataFrame, config: SynthConfig) -> pd.DataFrame:
    """Return each wearables-consented person's sync window.

    Parameters
    ----------
    batch
        A participant batch frame.
    config
        Program options (seed, cutoff, batch size).

    Returns
    -------
    pandas.DataFrame
        participant_id, first_day and last_day (datetime64[ns], inclusive); the window starts
        0-14 days after wearables consent and ends before withdrawal or death and by cutoff.
        Only people with a non-empty window are listed.
    """
    rows, first, last, _ = _windows(batch, config)
    return pd.DataFrame(
        {
            "participant_id": batch["participant_id"].to_numpy()[rows],
            "first_day": to_dates(first),
            "last_day": to_dates(last),
        }
    )


def _windows(
    batch: pd.DataFrame, config: SynthConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.random.Generator]:
    rng = batch_rng(
        config, _STREAM_WEARABLES, batch_index(batch["person_index"].to_numpy(), config)
    )
    consent = day_numbers(batch["wearables_consent_date"].to_numpy())
    cutoff = day_numbers(np.array([config.cutoff], dtype="datetime64[D]"))[0]
    stop = np.fmin(
        day_numbers(batch["withdrawal_date"].to_numpy()),
        day_numbers(batch["death_date"].to_numpy()),
    )
    stop = np.where(np.isnan(stop), cutoff, stop - 1)
    rows = np.flatnonzero(~np.isnan(consent))
    first = consent[rows] + rng.integers(0, FIRST_SYNC_MAX + 1, len(rows))
    length = np.clip(np.round(rng.lognormal(np.log(WINDOW_MEDIAN), 0.6, len(rows))), *WINDOW_RANGE)
    last = np.minimum(first + length - 1, stop[rows])
    keep = last >= first
    return rows[keep], first[keep], last[keep], rng


def write_wearables(
    batch: pd.DataFrame, config: SynthConfig, out: Path, *, append: bool
) -> dict[str, int]:
    """Write (or append) daily wearable files for a batch under ``out/wearables/``.

    Parameters
    ----------
    batch
        A participant batch frame.
    config
        Program options.
    out
        Output directory of the synthetic program.
    append
        Append rows without a header; otherwise create each file with a header.

    Returns
    -------
    dict[str, int]
        Rows written to steps_daily.csv (participant_id, date, steps), heart_rate_daily.csv
        (participant_id, date, resting_heart_rate) and sleep_daily.csv (participant_id,
        date, minutes_asleep, minutes_in_bed, minutes_deep, minutes_light, minutes_rem,
        minutes_wake).

    Notes
    -----
    1. Window per person from ``wearable_windows``; each day is worn with the person's
       Beta-distributed wear rate, so the series has gaps.
    2. Steps: a person mean (lognormal, lower with age, higher for men) times daily lognormal
       noise, fewer on weekends. Resting heart rate: a person baseline (higher for women,
       slightly lower with fitness) plus daily noise. Sleep: time in bed ~7.4 h, efficiency
       ~0.9, asleep split into deep, light and REM minutes; wake = in bed - asleep.
    """
    rows, first, last, rng = _windows(batch, config)
    birth = day_numbers(batch["birth_date"].to_numpy())[rows]
    male = (batch["sex_at_birth"] == "male").to_numpy()[rows]
    length = (last - first + 1).astype(np.int64)
    person = np.repeat(np.arange(len(rows)), length)
    starts = np.cumsum(length) - length
    day = first[person] + (np.arange(len(person)) - starts[person])
    wear_rate = rng.beta(*WEAR_BETA, len(rows))
    worn = rng.random(len(person)) < wear_rate[person]
    person, day = person[worn], day[worn]

    age = (first - birth) / 365.25
    step_mean = np.exp(rng.normal(np.log(8200), 0.35, len(rows)) - 0.012 * (age - 45) + 0.08 * male)
    weekday = ((day.astype(np.int64) + 3) % 7) < 5  # 1970-01-01 was a Thursday
    steps = step_mean[person] * rng.lognormal(-0.08, 0.4, len(person))
    steps = np.round(steps * np.where(weekday, 1.0, 0.85)).astype(np.int64)
    ids = batch["participant_id"].to_numpy()[rows]
    files = {
        "steps_daily.csv": pd.DataFrame(
            {"participant_id": ids[person], "date": to_dates(day), "steps": steps}
        )
    }

    has_hr = rng.random(len(person)) < HEART_RATE_GIVEN_WORN
    fitness = np.log(step_mean / 8200)
    baseline = rng.normal(66, 6.5, len(rows)) + 3 * ~male - 4 * fitness + 0.04 * (age - 45)
    heart = np.round(baseline[person] + rng.normal(0, 2.0, len(person)))[has_hr]
    files["heart_rate_daily.csv"] = pd.DataFrame(
        {
            "participant_id": ids[person[has_hr]],
            "date": to_dates(day[has_hr]),
            "resting_heart_rate": np.clip(heart, 38, 120).astype(np.int64),
        }
    )

    slept = rng.random(len(person)) < SLEEP_GIVEN_WORN
    who, nights = person[slept], day[slept]
    m = len(who)
    in_bed_mean = rng.normal(445, 35, len(rows)) - 0.4 * (age - 45)
    in_bed = np.clip(np.round(in_bed_mean[who] + rng.normal(0, 50, m)), 180, 780)
    efficiency = np.clip(rng.normal(0.9 - 0.0015 * (age[who] - 45), 0.04, m), 0.6, 0.99)
    asleep = np.round(in_bed * efficiency)
    deep = np.round(
        asleep * np.clip(rng.normal(0.16 - 0.001 * (age[who] - 45), 0.03, m), 0.03, 0.3)
    )
    rem = np.round(asleep * np.clip(rng.normal(0.22, 0.04, m), 0.08, 0.35))
    files["sleep_daily.csv"] = pd.DataFrame(
        {
            "participant_id": ids[who],
            "date": to_dates(nights),
            "minutes_asleep": asleep.astype(np.int64),
            "minutes_in_bed": in_bed.astype(np.int64),
            "minutes_deep": deep.astype(np.int64),
            "minutes_light": (asleep - deep - rem).astype(np.int64),
            "minutes_rem": rem.astype(np.int64),
            "minutes_wake": (in_bed - asleep).astype(np.int64),
        }
    )
    directory = Path(out) / WEARABLES_DIR
    for name, frame in files.items():
        write_csv(frame, directory / name, append=append)
    return {name: len(frame) for name, frame in files.items()}
