"""Physical measurements and lab values: the program's own visit and EHR value generation.

Every person has stable physiological baselines (height, HDL, blood pressure ...), drawn from a
hash of their person index so that the program's physical-measurement visit and every site's EHR
agree. The planted traits (BMI, LDL, HbA1c) come from :func:`opencohort.synth.traits.phenotypes`;
repeated measurements scatter around these true values with realistic within-person noise.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from opencohort.synth._ehr_csv import append_table, as_dates
from opencohort.synth._random import batch_index, hash_uniform
from opencohort.synth.models import SynthConfig
from opencohort.vocab import local_concept_id, measurements

PM_FILE = "registry/physical_measurements.csv"
_STREAM_PM = 7103
_STREAM_PROFILE = 7110  # 7110..7121: one hash stream per baseline
#: Imperial units some sites report in: key -> (factor, offset, UCUM unit, unit concept id).
IMPERIAL = {
    key: (factor, offset, unit, local_concept_id("UCUM", unit))
    for key, factor, offset, unit in (
        ("weight", 2.2046226218, 0.0, "[lb_av]"),
        ("height", 1 / 2.54, 0.0, "[in_i]"),
        ("temperature", 1.8, 32.0, "[degF]"),
    )
}
#: Within-person visit-to-visit noise: key -> (kind, size); 'abs' adds N(0, size), 'rel'
#: multiplies by exp(N(0, size)).
_NOISE = {
    "height": ("abs", 0.8),
    "bmi": ("rel", 0.02),
    "waist": ("abs", 2.5),
    "hip": ("abs", 2.0),
    "systolic_bp": ("abs", 9.0),
    "diastolic_bp": ("abs", 6.0),
    "heart_rate": ("abs", 7.0),
    "hba1c": ("abs", 0.15),
    "ldl": ("abs", 9.0),
    "hdl": ("abs", 4.0),
    "triglycerides": ("rel", 0.2),
    "creatinine": ("rel", 0.07),
    "hemoglobin": ("abs", 0.5),
    "temperature": ("abs", 0.3),
}
_DECIMALS = {"creatinine": 2, "hba1c": 1, "temperature": 1, "bmi": 1, "weight": 1, "height": 1}


@cache
def measurement_concepts() -> pd.DataFrame:
    """The curated measurements, indexed by key."""
    return measurements().set_index("key")


def _hash_normal(config: SynthConfig, stream: int, keys: np.ndarray) -> np.ndarray:
    u1 = hash_uniform(config.seed, stream, keys)
    u2 = hash_uniform(config.seed, stream + 100, keys)
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)


def person_profile(batch: pd.DataFrame, pheno: pd.DataFrame, config: SynthConfig) -> pd.DataFrame:
    """Stable per-person baselines that measurements scatter around.

    Parameters
    ----------
    batch
        Participant batch (person_index, birth_date, sex_at_birth).
    pheno
        Output of ``phenotypes`` for the same batch (bmi, ldl, hba1c), row-aligned.
    config
        The synthetic program's options (seed, cutoff).

    Returns
    -------
    pd.DataFrame
        Row-aligned with `batch`: age (years at cutoff), female (bool), height (cm) and one
        column per measurement key other than weight, glucose, egfr and total_cholesterol,
        which are derived per visit.

    Notes
    -----
    Baselines other than the planted traits come from hash-based normal draws keyed by the
    person index, so they do not depend on batching. Height follows US adult means by sex
    (175.4 cm, SD 7.5 for men; 161.7 cm, SD 7.0 otherwise).
    """
    keys = batch["person_index"].to_numpy(dtype=np.int64)
    z = {k: _hash_normal(config, _STREAM_PROFILE + i, keys) for i, k in enumerate(_NOISE)}
    female = batch["sex_at_birth"].astype(str).to_numpy() != "male"
    cutoff = np.datetime64(config.cutoff, "D")
    birth = batch["birth_date"].to_numpy(dtype="datetime64[D]")
    age = (cutoff - birth).astype(float) / 365.25
    bmi = pheno["bmi"].to_numpy(dtype=float)
    ldl = pheno["ldl"].to_numpy(dtype=float)
    hba1c = pheno["hba1c"].to_numpy(dtype=float)
    height = np.where(female, 161.7 + 7.0 * z["height"], 175.4 + 7.5 * z["height"])
    hdl = np.where(female, 58.0, 46.0) - 0.6 * (bmi - 29.0) + 11.0 * z["hdl"]
    return pd.DataFrame(
        {
            "age": age,
            "female": female,
            "height": np.clip(height, 130.0, 215.0),
            "bmi": bmi,
            "waist": 2.3 * bmi + np.where(female, 20.0, 27.0) + 5.0 * z["waist"],
            "hip": 1.8 * bmi + np.where(female, 57.0, 52.0) + 4.0 * z["hip"],
            "systolic_bp": 105.0 + 0.45 * age + 0.5 * (bmi - 29.0) + 11.0 * z["systolic_bp"],
            "diastolic_bp": 72.0 + 0.1 * age + 0.3 * (bmi - 29.0) + 7.0 * z["diastolic_bp"],
            "heart_rate": 72.0 + 0.3 * (bmi - 29.0) + 9.0 * z["heart_rate"],
            "hba1c": hba1c,
            "ldl": ldl,
            "hdl": np.clip(hdl, 20.0, 110.0),
            "triglycerides": 110.0 * np.exp(0.02 * (bmi - 29.0) + 0.4 * z["triglycerides"]),
            "creatinine": np.where(female, 0.75, 0.95) * np.exp(0.15 * z["creatinine"]),
            "hemoglobin": np.where(female, 13.5, 15.2) + 1.1 * z["hemoglobin"],
            "temperature": 36.8 + 0.2 * z["temperature"],
        }
    )


def _ckd_epi_2021(creatinine: np.ndarray, age: np.ndarray, female: np.ndarray) -> np.ndarray:
    kappa = np.where(female, 0.7, 0.9)
    alpha = np.where(female, -0.241, -0.302)
    ratio = creatinine / kappa
    egfr = 142.0 * np.minimum(ratio, 1.0) ** alpha * np.maximum(ratio, 1.0) ** -1.2
    return egfr * 0.9938 ** np.maximum(age, 18.0) * np.where(female, 1.012, 1.0)


def sample_values(
    profile: pd.DataFrame, rows: np.ndarray, keys: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Draw one measured value per (person row, measurement key) pair, in the key's UCUM unit.

    Parameters
    ----------
    profile
        Output of :func:`person_profile`.
    rows
        Row positions into `profile`, one per value.
    keys
        Measurement keys (see :func:`measurement_concepts`), one per value.
    rng
        Random generator for the visit-to-visit noise.

    Returns
    -------
    numpy.ndarray
        float64 values, rounded as a lab would report them.

    Notes
    -----
    Weight is the visit's BMI times the squared height; glucose follows the ADAG relation
    (28.7 * HbA1c - 46.7) plus noise; total cholesterol is LDL + HDL + TG / 5 (Friedewald);
    eGFR uses the CKD-EPI 2021 creatinine equation.
    """
    rows = np.asarray(rows, dtype=np.int64)
    code, names = pd.factorize(np.asarray(keys, dtype=object))
    out = np.full(len(rows), np.nan)
    for k, key in enumerate(names):
        at = np.flatnonzero(code == k)
        value = _values_for(str(key), profile, rows[at], rng)
        out[at] = np.round(value, _DECIMALS.get(str(key), 0))
    return out


def _noisy(key: str, base: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    kind, size = _NOISE[key]
    if kind == "rel":
        return base * np.exp(rng.normal(0.0, size, len(base)))
    return base + rng.normal(0.0, size, len(base))


def _values_for(
    key: str, profile: pd.DataFrame, r: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    col = {name: profile[name].to_numpy() for name in ("height", "bmi", "age", "female")}
    if key == "weight":
        bmi = _noisy("bmi", col["bmi"][r], rng)
        return bmi * (col["height"][r] / 100.0) ** 2
    if key == "glucose":
        hba1c = _noisy("hba1c", profile["hba1c"].to_numpy()[r], rng)
        return np.maximum(28.7 * hba1c - 46.7 + rng.normal(0.0, 12.0, len(r)), 40.0)
    if key == "total_cholesterol":
        parts = [_noisy(k, profile[k].to_numpy()[r], rng) for k in ("ldl", "hdl", "triglycerides")]
        return parts[0] + parts[1] + parts[2] / 5.0
    if key == "egfr":
        creat = _noisy("creatinine", profile["creatinine"].to_numpy()[r], rng)
        return _ckd_epi_2021(creat, col["age"][r], col["female"][r])
    value = _noisy(key, profile[key].to_numpy()[r], rng)
    low = measurement_concepts().loc[key, "plausible_low"]
    return np.maximum(value, low)


def implausible_values(keys: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Values no human can have for each measurement key (0, or 1.5-3x the plausible maximum).

    Height gets 500 cm or 0 and weight 0 or 1,000 kg, the classic data-entry errors; other keys
    get 0 or a multiple of their plausible maximum.
    """
    keys = np.asarray(keys).astype(str)
    concepts = measurement_concepts()
    high = concepts.loc[keys, "plausible_high"].to_numpy(dtype=float)
    big = np.round(high * rng.uniform(1.5, 3.0, len(keys)), 0)
    big = np.where(keys == "height", 500.0, np.where(keys == "weight", 1000.0, big))
    return np.where(rng.random(len(keys)) < 0.3, 0.0, big)


def to_imperial(keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Convert metric values of weight, height and temperature to lb, in and degF."""
    keys = np.asarray(keys).astype(str)
    out = np.asarray(values, dtype=float).copy()
    for key, (factor, offset, _, _) in IMPERIAL.items():
        at = keys == key
        out[at] = np.round(out[at] * factor + offset, 1)
    return out


def write_physical_measurements(
    batch: pd.DataFrame, pheno: pd.DataFrame, config: SynthConfig, out: Path, *, append: bool
) -> int:
    """Write the program's own physical measurements of one batch and return the row count.

    Parameters
    ----------
    batch
        Participant batch; people with a pm_date are measured on that date.
    pheno
        Output of ``phenotypes`` for the batch, row-aligned.
    config
        The synthetic program's options (seed).
    out
        Program output directory; rows go to ``registry/physical_measurements.csv``.
    append
        Append to the file (no header) instead of starting it.

    Returns
    -------
    int
        Number of rows written.

    Notes
    -----
    Columns: participant_id, pm_date, height_cm, weight_kg, bmi, waist_cm, hip_cm,
    systolic_bp and diastolic_bp (mean of three readings, as the protocol asks), heart_rate.
    Weight is the planted BMI times the squared measured height (rounded to 0.1 kg) and bmi is
    recomputed from the rounded weight, so it stays within 0.1 of the planted value.
    """
    rng = np.random.default_rng(
        [config.seed, _STREAM_PM, batch_index(batch["person_index"].to_numpy(), config)]
    )
    profile = person_profile(batch, pheno, config)
    rows = np.flatnonzero(batch["pm_date"].notna().to_numpy())
    n = len(rows)
    height = np.round(profile["height"].to_numpy()[rows] + rng.normal(0, 0.4, n), 1)
    weight = np.round(profile["bmi"].to_numpy()[rows] * (height / 100.0) ** 2, 1)

    def mean_of_three(key: str) -> np.ndarray:
        base = profile[key].to_numpy()[rows][:, None]
        return np.round((base + rng.normal(0, _NOISE[key][1], (n, 3))).mean(axis=1), 0)

    columns = {
        "participant_id": batch["participant_id"].to_numpy()[rows].astype(object),
        "pm_date": as_dates(batch["pm_date"].to_numpy(dtype="datetime64[D]")[rows].astype(int)),
        "height_cm": height,
        "weight_kg": weight,
        "bmi": np.round(weight / (height / 100.0) ** 2, 1),
        "waist_cm": np.round(profile["waist"].to_numpy()[rows] + rng.normal(0, 1.0, n), 1),
        "hip_cm": np.round(profile["hip"].to_numpy()[rows] + rng.normal(0, 1.0, n), 1),
        "systolic_bp": mean_of_three("systolic_bp"),
        "diastolic_bp": mean_of_three("diastolic_bp"),
        "heart_rate": mean_of_three("heart_rate"),
    }
    return append_table(columns, Path(out) / PM_FILE, fresh=not append)
