"""Tests of the daily wearable files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from opencohort.synth.models import SynthConfig
from opencohort.synth.participants import participant_batch
from opencohort.synth.wearables import wearable_windows, write_wearables

FILES = ["steps_daily.csv", "heart_rate_daily.csv", "sleep_daily.csv"]


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    config = SynthConfig(participants=4000, genomes=0, sites=3, seed=23, batch_size=2000)
    out = tmp_path_factory.mktemp("wear")
    frames, written = [], {}
    for index in range(config.n_batches):
        batch = participant_batch(config, index)
        frames.append(batch)
        for name, rows in write_wearables(batch, config, out, append=index > 0).items():
            written[name] = written.get(name, 0) + rows
    people = pd.concat(frames, ignore_index=True)
    files = {name: pd.read_csv(out / "wearables" / name, parse_dates=["date"]) for name in FILES}
    return config, people, files, written


def test_write_wearables__row_counts(program) -> None:
    _, _, files, written = program
    for name in FILES:
        assert len(files[name]) == written[name]
    assert written["heart_rate_daily.csv"] < written["steps_daily.csv"]


def test_write_wearables__only_consented_within_windows(program) -> None:
    config, people, files, _ = program
    by_id = people.set_index("participant_id")
    consented = set(by_id.index[by_id["wearables_consent_date"].notna()])
    for name, frame in files.items():
        assert set(frame["participant_id"]) <= consented, name
        person = by_id.loc[frame["participant_id"]]
        day = frame["date"].to_numpy()
        assert (day >= person["wearables_consent_date"].to_numpy()).all(), name
        assert (day <= np.datetime64(config.cutoff)).all(), name
        stop = person[["withdrawal_date", "death_date"]].min(axis=1).to_numpy()
        ended = ~np.isnat(stop)
        assert (day[ended] < stop[ended]).all(), name
        assert not frame.duplicated(["participant_id", "date"]).any(), name


def test_write_wearables__windows_bounded_with_gaps(program) -> None:
    config, people, files, _ = program
    steps = files["steps_daily.csv"]
    span = steps.groupby("participant_id")["date"].agg(["min", "max", "size"])
    assert ((span["max"] - span["min"]).dt.days < 365 + 14).all()
    assert (span["size"] <= 365).all()
    # wear gaps: fewer rows than window days for most people
    batches = people.groupby(people["person_index"] // config.batch_size)
    windows = pd.concat([wearable_windows(batch, config) for _, batch in batches])
    windows = windows.set_index("participant_id")
    length = (windows["last_day"] - windows["first_day"]).dt.days + 1
    assert (span["size"] <= length[span.index]).all()
    assert (span["size"] < length[span.index]).mean() > 0.8
    assert len(set(windows.index)) >= 0.8 * people["wearables_consent_date"].notna().sum()


def test_write_wearables__values_plausible(program) -> None:
    _, people, files, _ = program
    steps = files["steps_daily.csv"]
    assert steps["steps"].between(0, 80_000).all()
    assert 4000 < steps["steps"].median() < 12_000
    heart = files["heart_rate_daily.csv"]["resting_heart_rate"]
    assert heart.between(38, 120).all()
    assert 55 < heart.mean() < 80
    sleep = files["sleep_daily.csv"]
    parts = sleep[["minutes_deep", "minutes_light", "minutes_rem"]].sum(axis=1)
    assert (parts == sleep["minutes_asleep"]).all()
    assert (sleep["minutes_asleep"] + sleep["minutes_wake"] == sleep["minutes_in_bed"]).all()
    assert (
        (sleep[["minutes_deep", "minutes_light", "minutes_rem", "minutes_wake"]] >= 0).all().all()
    )


def test_write_wearables__steps_fall_with_age(program) -> None:
    _, people, files, _ = program
    steps = files["steps_daily.csv"]
    by_id = people.set_index("participant_id")
    age = (by_id["sign_up_date"] - by_id["birth_date"]).dt.days / 365.25
    mean = steps.groupby("participant_id")["steps"].mean()
    older = age[mean.index] >= 65
    assert mean[older.to_numpy()].mean() < mean[~older.to_numpy()].mean()


def test_write_wearables__no_consent_no_files_rows(tmp_path: Path) -> None:
    config = SynthConfig(participants=50, genomes=0, sites=2, seed=1)
    batch = participant_batch(config, 0).assign(wearables_consent_date=pd.NaT)
    written = write_wearables(batch, config, tmp_path, append=False)
    assert written == dict.fromkeys(FILES, 0)
    frame = pd.read_csv(tmp_path / "wearables" / "steps_daily.csv")
    assert list(frame.columns) == ["participant_id", "date", "steps"]
