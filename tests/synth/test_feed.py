"""Tests of the registry feed files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from opencohort.synth.feed import PARTICIPANT_COLUMNS, write_feed, write_sites
from opencohort.synth.models import SynthConfig
from opencohort.synth.participants import participant_batch, site_table

FILES = [
    "participants.csv",
    "consents.csv",
    "surveys.csv",
    "biospecimens.csv",
    "withdrawals.csv",
    "suspensions.csv",
    "deaths.csv",
]


@pytest.fixture(scope="module")
def program(tmp_path_factory) -> tuple[Path, SynthConfig, pd.DataFrame, dict[str, int]]:
    config = SynthConfig(participants=3000, genomes=0, sites=4, seed=19, batch_size=1500)
    out = tmp_path_factory.mktemp("feed")
    written: dict[str, int] = {}
    frames = []
    for index in range(config.n_batches):
        batch = participant_batch(config, index)
        frames.append(batch)
        for name, rows in write_feed(batch, config, out, append=index > 0).items():
            written[name] = written.get(name, 0) + rows
    return out, config, pd.concat(frames, ignore_index=True), written


def _read(out: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(out / "registry" / name, dtype={"zip": str}, keep_default_na=False)


def test_write_feed__row_counts_round_trip(program) -> None:
    out, _, people, written = program
    assert set(written) == set(FILES)
    for name in FILES:
        frame = _read(out, name)
        assert len(frame) == written[name], name
    assert written["participants.csv"] == len(people)
    assert written["withdrawals.csv"] == people["withdrawal_date"].notna().sum()
    assert written["deaths.csv"] == people["death_date"].notna().sum()
    assert written["suspensions.csv"] == people["suspension_date"].notna().sum()


def test_write_feed__append_writes_one_header(program) -> None:
    out, _, _, _ = program
    lines = (out / "registry" / "participants.csv").read_text().splitlines()
    assert lines[0].replace('"', "").split(",") == PARTICIPANT_COLUMNS
    assert sum(line.startswith('"participant_id"') for line in lines) == 1


def test_write_feed__participants_match_frame(program) -> None:
    out, _, people, _ = program
    frame = _read(out, "participants.csv")
    assert list(frame["participant_id"]) == list(people["participant_id"])
    assert list(frame["zip"]) == list(people["zip"])
    assert list(frame["ssn"]) == list(people["ssn"])
    assert list(frame["birth_date"]) == list(people["birth_date"].dt.strftime("%Y-%m-%d"))


def test_write_feed__consents(program) -> None:
    out, config, people, _ = program
    consents = _read(out, "consents.csv")
    consents["authored_date"] = pd.to_datetime(consents["authored_date"])
    assert set(consents["consent_type"]) == {"primary", "ehr", "gror", "wearables"}
    assert set(consents["status"]) == {"submitted", "no", "not_sure"}
    assert consents["document_sha256"].str.fullmatch(r"[0-9a-f]{64}").all()
    assert consents["document_sha256"].is_unique
    assert consents["version"].str.fullmatch(r"v\d").all()
    by_id = people.set_index("participant_id")
    primary = by_id.loc[consents["participant_id"], "primary_consent_date"].to_numpy()
    assert (consents["authored_date"].to_numpy() >= primary).all()
    assert (consents["authored_date"] <= pd.Timestamp(config.cutoff)).all()
    first = consents[consents["status"] == "submitted"].groupby(["participant_id", "consent_type"])
    earliest = first["authored_date"].min().unstack()
    for kind, column in (("ehr", "ehr_consent_date"), ("gror", "gror_consent_date")):
        signed = earliest[kind].dropna()
        assert (signed.to_numpy() == by_id.loc[signed.index, column].to_numpy()).all()
        assert by_id[column].notna().sum() == len(signed)
    reconsent = first.size()
    assert (reconsent == 2).any()
    again = consents[consents.duplicated(["participant_id", "consent_type"], keep=False)]
    versions = again.sort_values("authored_date").groupby(["participant_id", "consent_type"])[
        "version"
    ]
    assert (versions.first() < versions.last()).all()


def test_write_feed__biospecimen_dates_ordered(program) -> None:
    out, _, people, _ = program
    samples = _read(out, "biospecimens.csv")
    columns = [
        "created_date",
        "collected_date",
        "processed_date",
        "finalized_date",
        "received_date",
    ]
    for column in [*columns, "status_date"]:
        samples[column] = pd.to_datetime(samples[column].replace("", None))
    done = samples[samples["order_status"] == "finalized"]
    for earlier, later in zip(columns, columns[1:], strict=False):
        assert (done[earlier] <= done[later]).all(), (earlier, later)
    dna = done[done["test_code"].isin(["1ED10", "2ED10", "1ED04", "1SAL2"])]
    received = dna.groupby("participant_id")["received_date"].min()
    expected = people.set_index("participant_id")["dna_received_date"].dropna()
    assert set(received.index) == set(expected.index)
    assert (received[expected.index].to_numpy() == expected.to_numpy()).all()
    assert set(samples["sample_status"]) >= {"received", "disposed", "quality_issue"}
    assert samples["sample_id"].is_unique
    open_orders = samples[samples["order_status"] == "created"]
    assert open_orders["received_date"].isna().all()
    consent = people.set_index("participant_id")["primary_consent_date"]
    assert (
        samples["created_date"].to_numpy() >= consent[samples["participant_id"]].to_numpy()
    ).all()


def test_write_feed__withdrawals_and_deaths(program) -> None:
    out, _, people, _ = program
    withdrawals = _read(out, "withdrawals.csv")
    frame = people[people["withdrawal_date"].notna()]
    assert list(withdrawals["participant_id"]) == list(frame["participant_id"])
    assert list(withdrawals["withdrawal_status"]) == list(frame["withdrawal_status"])
    deaths = _read(out, "deaths.csv")
    assert (deaths["reported_date"] >= deaths["death_date"]).all()


def test_write_feed__surveys_file_parses(program) -> None:
    out, _, people, _ = program
    surveys = _read(out, "surveys.csv")
    assert {"question_concept_id", "answer_concept_id", "module", "authored_date"} <= set(
        surveys.columns
    )
    took = people["basics_date"].notna().sum()
    basics = surveys[surveys["module"] == "The Basics"]["participant_id"].nunique()
    assert basics == took


def test_write_sites__writes_the_site_table(tmp_path: Path) -> None:
    config = SynthConfig(participants=10, genomes=0, sites=7, seed=3)
    assert write_sites(config, tmp_path) == 7
    sites = pd.read_csv(tmp_path / "registry" / "sites.csv")
    expected = site_table(config)
    assert list(sites["site_id"]) == list(expected["site_id"])
    assert list(sites["imperial_units"]) == list(expected["imperial_units"])
