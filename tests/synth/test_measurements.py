"""Tests of physical measurements and the lab/vital value helpers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from opencohort.synth.measurements import (
    IMPERIAL,
    PM_FILE,
    implausible_values,
    measurement_concepts,
    person_profile,
    sample_values,
    to_imperial,
    write_physical_measurements,
)
from opencohort.synth.models import SynthConfig
from opencohort.synth.participants import participant_batch


def fake_pheno(batch: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = len(batch)
    return pd.DataFrame(
        {
            "participant_id": batch["participant_id"].to_numpy(),
            "bmi": rng.normal(29, 6, n).clip(15),
            "ldl": rng.normal(110, 33, n).clip(20),
            "hba1c": rng.normal(5.6, 0.7, n).clip(3.8),
        }
    )


@pytest.fixture(scope="module")
def setup() -> tuple[SynthConfig, list[pd.DataFrame], list[pd.DataFrame]]:
    config = SynthConfig(participants=1200, batch_size=600, genomes=0, seed=5)
    batches = [participant_batch(config, i) for i in range(config.n_batches)]
    return config, batches, [fake_pheno(b, i) for i, b in enumerate(batches)]


def test_write_physical_measurements__consistent_with_planted_bmi(setup, tmp_path) -> None:
    config, batches, phenos = setup
    written = [
        write_physical_measurements(b, p, config, tmp_path, append=i > 0)
        for i, (b, p) in enumerate(zip(batches, phenos, strict=True))
    ]
    text = (tmp_path / PM_FILE).read_text()
    assert text.count("participant_id") == 1
    pm = pd.read_csv(tmp_path / PM_FILE, parse_dates=["pm_date"])
    batch = pd.concat(batches, ignore_index=True)
    pheno = pd.concat(phenos, ignore_index=True).set_index("participant_id")
    assert sum(written) == len(pm) == batch["pm_date"].notna().sum()
    assert list(pm.columns) == [
        "participant_id", "pm_date", "height_cm", "weight_kg", "bmi", "waist_cm", "hip_cm",
        "systolic_bp", "diastolic_bp", "heart_rate",
    ]  # fmt: skip
    truth = pheno.loc[pm["participant_id"], "bmi"].to_numpy()
    assert np.abs(pm["bmi"].to_numpy() - truth).max() < 0.1
    implied = pm["weight_kg"] / (pm["height_cm"] / 100) ** 2
    assert np.abs(implied - pm["bmi"]).max() < 0.06
    dates = batch.set_index("participant_id").loc[pm["participant_id"], "pm_date"]
    assert (pm["pm_date"].to_numpy() == dates.to_numpy()).all()
    assert pm["systolic_bp"].between(70, 250).all()
    assert (pm["systolic_bp"] > pm["diastolic_bp"]).all()


def test_write_physical_measurements__deterministic(setup, tmp_path) -> None:
    config, batches, phenos = setup
    write_physical_measurements(batches[1], phenos[1], config, tmp_path / "a", append=False)
    write_physical_measurements(batches[1], phenos[1], config, tmp_path / "b", append=False)
    assert (tmp_path / "a" / PM_FILE).read_bytes() == (tmp_path / "b" / PM_FILE).read_bytes()


def test_person_profile__stable_across_batching(setup) -> None:
    config, batches, phenos = setup
    whole = pd.concat(batches, ignore_index=True)
    full = person_profile(whole, pd.concat(phenos, ignore_index=True), config)
    part = person_profile(batches[1], phenos[1], config)
    pd.testing.assert_frame_equal(full.iloc[len(batches[0]) :].reset_index(drop=True), part)
    male = whole["sex_at_birth"] == "male"
    assert 172 < full.loc[male.to_numpy(), "height"].mean() < 179


def test_sample_values__scatter_around_true_values(setup) -> None:
    config, batches, phenos = setup
    profile = person_profile(batches[0], phenos[0], config)
    rng = np.random.default_rng(1)
    rows = np.repeat(np.arange(len(profile)), 20)
    for key, tolerance in (("ldl", 1.0), ("hba1c", 0.02), ("bmi", 0.1)):
        values = sample_values(profile, rows, np.full(len(rows), key), rng)
        means = pd.Series(values).groupby(rows).mean().to_numpy()
        assert np.abs(means - profile[key].to_numpy()).mean() < 3 * tolerance, key
    keys = measurement_concepts().index.to_numpy()
    mixed = np.resize(keys, 5000)
    values = sample_values(profile, np.arange(5000) % len(profile), mixed, rng)
    spec = measurement_concepts().loc[mixed]
    assert ((values >= spec["plausible_low"]) & (values <= spec["plausible_high"])).all()


def test_implausible_values__outside_plausible_range() -> None:
    keys = np.resize(measurement_concepts().index.to_numpy(), 2000)
    values = implausible_values(keys, np.random.default_rng(2))
    spec = measurement_concepts().loc[keys]
    outside = (values < spec["plausible_low"]) | (values > spec["plausible_high"])
    assert outside.all()
    assert set(values[keys == "height"]) <= {0.0, 500.0}


def test_to_imperial__round_trip() -> None:
    keys = np.array(["weight", "height", "temperature", "ldl"])
    metric = np.array([80.0, 170.0, 37.0, 120.0])
    imperial = to_imperial(keys, metric)
    assert imperial[3] == 120.0
    for i, key in enumerate(keys[:3]):
        factor, offset, _, _ = IMPERIAL[key]
        assert abs((imperial[i] - offset) / factor - metric[i]) < 0.1
    assert abs(imperial[0] - 176.4) < 0.1 and abs(imperial[2] - 98.6) < 0.1
