"""Tests of the registry use cases on SQLite and PostgreSQL."""

from __future__ import annotations

import shutil
from datetime import date

import pandas as pd
import pytest
from sqlalchemy import func, select

from opencohort.errors import InputError, NotFound, PermissionDenied
from opencohort.registry import (
    Applicant,
    ConsentStatus,
    ConsentType,
    EnrolmentRefused,
    EnrolmentStatus,
    FeedError,
    TransitionError,
    WithdrawalStatus,
    enrol,
    load_feed,
    participant_status,
    record_consent,
    summary,
    withdraw,
)
from opencohort.registry import models as m

LATE = date(2030, 1, 1)
SHA = "a" * 64


def _count(registry, model) -> int:
    with registry.session() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_load_feed__counts_and_idempotent(registry, feed) -> None:
    directory, people = feed
    first = load_feed(registry, directory, seed=3)
    assert first["participant"] == len(people)
    assert first["consent"] == len(pd.read_csv(directory / "consents.csv"))
    assert first["withdrawal_event"] == people["withdrawal_date"].notna().sum()
    again = load_feed(registry, directory, seed=4)
    assert set(again.values()) == {0}


def test_load_feed__ids_random_unique_and_stable(registry, feed) -> None:
    directory, people = feed
    load_feed(registry, directory, seed=3)
    with registry.session() as session:
        rows = session.execute(
            select(
                m.Participant.participant_id,
                m.Participant.research_id,
                m.Participant.date_shift_days,
            )
        ).all()
    frame = pd.DataFrame(rows, columns=["pid", "research_id", "shift"])
    assert frame["research_id"].is_unique
    assert frame["shift"].between(1, 364).all()
    assert frame["shift"].nunique() > 100
    load_feed(registry, directory, seed=99)
    with registry.session() as session:
        shifts = dict(
            session.execute(
                select(m.Participant.participant_id, m.Participant.date_shift_days)
            ).all()
        )
    assert shifts == dict(zip(frame["pid"], frame["shift"], strict=True))


def test_load_feed__bad_rows_reported_and_nothing_stored(registry, feed, tmp_path) -> None:
    directory, _ = feed
    bad = tmp_path / "registry"
    shutil.copytree(directory, bad)
    consents = pd.read_csv(bad / "consents.csv", dtype=str, keep_default_na=False)
    consents.loc[4, "authored_date"] = "2021-13-01"
    consents.loc[7, "status"] = "maybe"
    consents.loc[9, "participant_id"] = "P999"
    consents.to_csv(bad / "consents.csv", index=False)
    with pytest.raises(FeedError) as caught:
        load_feed(registry, bad)
    where = {(p["file"], p["line"], p["field"]) for p in caught.value.problems}
    assert where == {
        ("consents.csv", 6, "authored_date"),
        ("consents.csv", 9, "status"),
        ("consents.csv", 11, "participant_id"),
    }
    assert "expected YYYY-MM-DD" in str(caught.value)
    assert _count(registry, m.Participant) == 0


def test_load_feed__bad_second_load_changes_nothing(registry, feed, tmp_path) -> None:
    directory, _ = feed
    load_feed(registry, directory, seed=1)
    before = summary(registry, as_of=LATE)
    bad = tmp_path / "registry"
    shutil.copytree(directory, bad)
    people = pd.read_csv(bad / "participants.csv", dtype=str, keep_default_na=False)
    people.loc[0, "participant_id"] = "P000000001"
    people.loc[1, "birth_date"] = "yesterday"
    people.to_csv(bad / "participants.csv", index=False)
    with pytest.raises(FeedError, match="participants.csv line 3 field birth_date"):
        load_feed(registry, bad)
    assert summary(registry, as_of=LATE) == before


def test_load_feed__missing_column(registry, feed, tmp_path) -> None:
    directory, _ = feed
    bad = tmp_path / "registry"
    shutil.copytree(directory, bad)
    frame = pd.read_csv(bad / "deaths.csv", dtype=str, keep_default_na=False)
    frame.drop(columns="report_status").to_csv(bad / "deaths.csv", index=False)
    with pytest.raises(FeedError, match="deaths.csv line 1 field report_status"):
        load_feed(registry, bad)


def test_load_feed__no_participants_file(registry, tmp_path) -> None:
    with pytest.raises(InputError, match="no participants.csv"):
        load_feed(registry, tmp_path)


def test_summary__matches_synthetic_truth(registry, feed) -> None:
    directory, people = feed
    load_feed(registry, directory, seed=1)
    counts = summary(registry, as_of=LATE)
    assert counts["participants"] == len(people)
    assert sum(counts["enrolment"].values()) == len(people)
    eligible = (
        people["primary_consent_date"].notna()
        & people["gror_consent_date"].notna()
        & people["dna_received_date"].notna()
        & people["withdrawal_date"].isna()
    )
    assert counts["genomic_eligible"] == eligible.sum()
    assert counts["ubr"]["any"] == people["ubr"].sum()
    assert counts["site"] == people["site_id"].value_counts().sort_index().to_dict()
    no_use = (people["withdrawal_status"] == "no_use").sum()
    assert counts["withdrawal"]["no_use"] == no_use
    core = (
        people[
            [
                "primary_consent_date",
                "ehr_consent_date",
                "basics_date",
                "lifestyle_date",
                "overall_health_date",
                "dna_received_date",
                "pm_date",
            ]
        ]
        .notna()
        .all(axis=1)
    )
    assert counts["enrolment"]["core"] <= core.sum()
    assert counts["enrolment"]["registered"] == people["primary_consent_date"].isna().sum()


def _adult(registry, pid="P100", **kwargs) -> str:
    return enrol(
        registry,
        Applicant(birth_date=date(1980, 5, 1), **kwargs),
        participant_id=pid,
        sign_up_date=date(2021, 1, 1),
        seed=1,
    )


def test_enrol__refused_with_reasons(registry) -> None:
    with pytest.raises(EnrolmentRefused, match="incarcerated") as caught:
        enrol(
            registry,
            Applicant(birth_date=date(2010, 1, 1), incarcerated=True),
            participant_id="P1",
            sign_up_date=date(2021, 1, 1),
        )
    assert caught.value.reasons == ("age 11 is under the minimum age 13", "is incarcerated")
    assert _count(registry, m.Participant) == 0


def test_enrol__then_consents_raise_status(registry) -> None:
    pid = _adult(registry)
    with pytest.raises(InputError, match="already registered"):
        _adult(registry)
    assert participant_status(registry, pid, as_of=LATE).enrolment.value == (
        EnrolmentStatus.REGISTERED
    )
    for kind in (ConsentType.PRIMARY, ConsentType.EHR):
        record_consent(
            registry,
            pid,
            consent_type=kind,
            version="v1",
            status=ConsentStatus.SUBMITTED,
            authored=date(2021, 1, 2),
            document_sha256=SHA,
        )
    record_consent(
        registry,
        pid,
        consent_type=ConsentType.EHR,
        version="v2",
        status=ConsentStatus.NO,
        authored=date(2021, 6, 1),
        document_sha256=SHA,
    )
    status = participant_status(registry, pid, as_of=LATE)
    assert status.enrolment.value == EnrolmentStatus.PARTICIPANT_PLUS_EHR
    assert status.consents[ConsentType.EHR].value == ConsentStatus.NO
    assert _count(registry, m.Consent) == 3
    with pytest.raises(InputError, match="unset"):
        record_consent(registry, pid, consent_type=ConsentType.EHR, version="v3",
                       status=ConsentStatus.UNSET, authored=date(2021, 7, 1),
                       document_sha256=SHA)  # fmt: skip
    assert _count(registry, m.Consent) == 3


def test_withdraw__no_use_irreversible_and_blocks_writes(registry) -> None:
    pid = _adult(registry)
    state = withdraw(
        registry, pid, status=WithdrawalStatus.NO_USE, authored=date(2022, 1, 1), reason="asked"
    )
    assert state.value == WithdrawalStatus.NO_USE
    with pytest.raises(TransitionError, match="irreversible"):
        withdraw(registry, pid, status=WithdrawalStatus.NOT_WITHDRAWN, authored=date(2022, 2, 1))
    with pytest.raises(PermissionDenied, match="withdrawn"):
        record_consent(
            registry,
            pid,
            consent_type=ConsentType.PRIMARY,
            version="v1",
            status=ConsentStatus.SUBMITTED,
            authored=date(2022, 3, 1),
            document_sha256=SHA,
        )
    assert _count(registry, m.WithdrawalEvent) == 1
    with pytest.raises(NotFound):
        withdraw(registry, "P42", status=WithdrawalStatus.NO_USE, authored=date(2022, 1, 1))


def test_load_feed__refuses_reverting_no_use(registry, feed, tmp_path) -> None:
    directory, _ = feed
    load_feed(registry, directory, seed=1)
    bad = tmp_path / "registry"
    shutil.copytree(directory, bad)
    rows = pd.read_csv(bad / "withdrawals.csv", dtype=str, keep_default_na=False)
    no_use = rows[rows["withdrawal_status"] == "no_use"].head(1)
    back = no_use.assign(withdrawal_status="not_withdrawn", withdrawal_date="2029-01-01")
    pd.concat([rows, back]).to_csv(bad / "withdrawals.csv", index=False)
    with pytest.raises(FeedError, match="no_use is irreversible"):
        load_feed(registry, bad)
