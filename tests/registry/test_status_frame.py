"""The set-wise statuses of ``_status_frame`` equal the pure functions' for every participant."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import date, timedelta

import pytest

from opencohort.registry import _facts, _status_frame, load_feed
from opencohort.registry import models as m
from opencohort.registry._facts import ParticipantStatus
from opencohort.registry.status import (
    GENOMIC_TRANSITIONS,
    ConsentStatus,
    ConsentType,
    EnrolmentStatus,
    GenomicState,
    SampleState,
    UbrCategory,
    WithdrawalStatus,
    genomic_state,
)

AS_OF = (date(2015, 1, 1), date(2019, 6, 1), date(2020, 4, 21), date(2021, 9, 30),
         date(2100, 1, 1))  # fmt: skip
ANSWERS = {
    "race_ethnicity": ["white", "skip", "black", "asian", "hispanic"],
    "sex_at_birth": ["female", "male", "intersex", "skip"],
    "gender_identity": ["woman", "man", "nonbinary", "skip"],
    "sexual_orientation": ["straight", "gay", "bisexual", "skip"],
    "income": ["lt_10k", "25k_35k", "75k_100k", "skip"],
    "education": ["less_than_high_school", "college_graduate", "skip"],
}
MODULES = (_facts.BASICS, _facts.LIFESTYLE, _facts.OVERALL_HEALTH, "Personal Medical History")
TEST_CODES = (*m.DNA_TEST_CODES, "1SST8")


def _some_day(rng: random.Random, start: date, span: int) -> date:
    return start + timedelta(days=rng.randrange(span))


def _random_facts(rng: random.Random, n: int) -> dict[type[m.Base], list[dict]]:
    """Draw `n` participants with random facts, weighted towards the hard cases."""
    rows: dict[type[m.Base], list[dict]] = {
        m.Awardee: [{"awardee_id": "AW", "name": "Awardee"}],
        m.Organization: [{"organization_id": "ORG", "awardee_id": "AW", "name": "Org"}],
        m.Site: [{"site_id": "S1", "organization_id": "ORG", "name": "Site", "state": "MA"}],
    }
    for table in (m.Participant, m.Consent, m.SurveyCompletion, m.BiospecimenOrder, m.Sample,
                  m.PhysicalMeasurement, m.WithdrawalEvent):  # fmt: skip
        rows[table] = []
    for i in range(n):
        pid = f"P{i:06d}"
        sign_up = _some_day(rng, date(2018, 1, 1), 5 * 365)
        age_days = rng.choice([rng.randrange(10, 18), rng.randrange(18, 90)]) * 365
        rows[m.Participant].append(
            {"participant_id": pid, "research_id": 10_000_000 + i,
             "biobank_id": f"A{100_000_000 + i}", "date_shift_days": rng.randrange(1, 365),
             "site_id": rng.choice(["S1", None]), "origin": "test", "sign_up_date": sign_up,
             "birth_date": sign_up - timedelta(days=age_days + rng.randrange(365)),
             "guardian_linked": rng.random() < 0.5, "disability": rng.random() < 0.2,
             "limited_access_to_care": rng.random() < 0.2,
             "zip": rng.choice(["02139", "59001", "99901", None])}
            | {name: rng.choice(values) for name, values in ANSWERS.items()}
        )  # fmt: skip
        forms = set()
        for _ in range(rng.choice([0, 1, 3, 6, 10])):
            kind = rng.choice(list(ConsentType))
            status = rng.choice([ConsentStatus.SUBMITTED] * 3 + list(ConsentStatus)[2:])
            day = _some_day(rng, sign_up, 3)  # same-day forms and re-consents are common
            day += timedelta(days=rng.choice([0, 0, 200, 900]))
            forms.add((kind.value, rng.choice(["v1", "v2"]), status.value, day))
        rows[m.Consent] += [
            {"participant_id": pid, "consent_type": k, "version": v, "status": s,
             "authored_date": d, "document_sha256": "0" * 64}
            for k, v, s, d in sorted(forms)
        ]  # fmt: skip
        surveys = {(rng.choice(MODULES), _some_day(rng, sign_up, 1200))
                   for _ in range(rng.randrange(6))}  # fmt: skip
        rows[m.SurveyCompletion] += [
            {"participant_id": pid, "module": mod, "authored_date": d} for mod, d in surveys
        ]
        for j in range(rng.randrange(3)):
            order = f"O{i}-{j}"
            rows[m.BiospecimenOrder].append(
                {"order_id": order, "participant_id": pid, "collection_method": "site",
                 "created_date": sign_up}
            )  # fmt: skip
            rows[m.Sample].append(
                {"sample_id": f"{order}-s", "order_id": order, "participant_id": pid,
                 "test_code": rng.choice(TEST_CODES),
                 "received_date": rng.choice([None, _some_day(rng, sign_up, 1200)])}
            )  # fmt: skip
        measured = {_some_day(rng, sign_up, 1200) for _ in range(rng.randrange(3))}
        rows[m.PhysicalMeasurement] += [
            {"participant_id": pid, "measured_date": d} for d in measured
        ]
        requests = {(rng.choice(list(WithdrawalStatus)).value, _some_day(rng, sign_up, 1200))
                    for _ in range(rng.choice([0, 0, 1, 3]))}  # fmt: skip
        rows[m.WithdrawalEvent] += [
            {"participant_id": pid, "status": s, "authored_date": d, "reason": ""}
            for s, d in sorted(requests, key=lambda r: r[1])
        ]
    return rows


@pytest.fixture(params=["random", "feed"])
def filled(request, registry):
    """A registry holding random facts (hard cases) or the synthetic program feed."""
    if request.param == "feed":
        load_feed(registry, request.getfixturevalue("feed")[0], seed=3)
        return registry
    with registry.engine.begin() as connection:
        for table, rows in _random_facts(random.Random(5), 300).items():
            if rows:
                connection.execute(table.__table__.insert(), rows)
    return registry


@pytest.mark.parametrize("as_of", AS_OF)
def test_frame_equals_pure_derivation(filled, as_of):
    with filled.engine.connect() as connection:
        frame = _status_frame.status_frame(connection, as_of=as_of)
        facts = _facts.load_facts(connection)
    assert list(frame.index) == [f.row["participant_id"] for f in facts]
    for fact in facts:
        pure = _facts.derive(fact, as_of=as_of)
        got = frame.loc[fact.row["participant_id"]]
        assert got["enrolment"] == pure.enrolment.value.label
        for kind, decision in pure.consents.items():
            assert got[f"consent_{kind.value}"] == decision.value.value
        assert got["withdrawal"] == pure.withdrawal.value.value
        assert bool(got["genomic_eligible"]) == pure.genomic.eligible
        assert {c for c in UbrCategory if got[f"ubr_{c.value}"]} == pure.ubr.value
    rows = [(f.row, _facts.derive(f, as_of=as_of)) for f in facts]
    assert _status_frame.summarise(frame) == _summarise_pure(rows)


def _summarise_pure(rows: list[tuple[dict, ParticipantStatus]]) -> dict:
    """The oracle: count per-person derived statuses one by one."""
    enrolment: dict[str, int] = {status.label: 0 for status in EnrolmentStatus}
    sites: dict[str, int] = defaultdict(int)
    consents = {kind.value: {s.value: 0 for s in ConsentStatus} for kind in ConsentType}
    withdrawal = {s.value: 0 for s in WithdrawalStatus}
    ubr = {c.value: 0 for c in UbrCategory} | {"any": 0}
    genomic = 0
    for row, status in rows:
        enrolment[status.enrolment.value.label] += 1
        sites[row["site_id"] or "unpaired"] += 1
        for kind, decision in status.consents.items():
            consents[kind.value][decision.value.value] += 1
        withdrawal[status.withdrawal.value.value] += 1
        for category in status.ubr.value:
            ubr[category.value] += 1
        ubr["any"] += bool(status.ubr.value)
        genomic += status.genomic.eligible
    return {
        "participants": len(rows),
        "enrolment": enrolment,
        "site": dict(sorted(sites.items())),
        "consent": consents,
        "withdrawal": withdrawal,
        "ubr": ubr,
        "genomic_eligible": genomic,
    }


def _random_genomics(rng: random.Random, samples: list[dict]) -> dict[type[m.Base], list[dict]]:
    """Draw legal genomic workflows (same-day steps common) and spoiling events per sample."""
    steps, spoiled = [], []
    for sample in samples:
        state, day = None, _some_day(rng, date(2019, 1, 1), 1000)
        for _ in range(rng.choice([0, 1, 2, 4, 7])):
            nexts = sorted(GENOMIC_TRANSITIONS[state])
            if not nexts:
                break
            state = rng.choice(nexts)
            day += timedelta(days=rng.choice([0, 0, 30, 400]))
            steps.append({"sample_id": sample["sample_id"], "state": state.value,
                          "event_date": day, "detail": str(len(steps))})  # fmt: skip
        if rng.random() < 0.2:
            spoiled.append({"sample_id": sample["sample_id"], "event_date": day,
                            "state": rng.choice([SampleState.QUALITY_ISSUE,
                                                 SampleState.DISPOSED]).value})  # fmt: skip
    return {m.GenomicEvent: steps, m.SampleEvent: spoiled}


@pytest.mark.parametrize("as_of", AS_OF)
def test_genomic_samples__equals_pure_replay(registry, as_of):
    rng = random.Random(9)
    rows = _random_facts(rng, 200)
    rows |= _random_genomics(rng, rows[m.Sample])
    with registry.engine.begin() as connection:
        for table, table_rows in rows.items():
            if table_rows:
                connection.execute(table.__table__.insert(), table_rows)
    with registry.engine.connect() as connection:
        frame = _status_frame.genomic_samples(connection, as_of=as_of)
    history = defaultdict(list)
    for step in rows[m.GenomicEvent]:
        history[step["sample_id"]].append((GenomicState(step["state"]), step["event_date"]))
    expected = []
    for sample in rows[m.Sample]:
        decided = genomic_state(history[sample["sample_id"]], as_of=as_of)
        day = sample["received_date"]
        received = sample["test_code"] in m.DNA_TEST_CODES and day is not None and day <= as_of
        if not received and decided.value is None:
            continue
        unusable = any(e["sample_id"] == sample["sample_id"] and e["event_date"] <= as_of
                       for e in rows[m.SampleEvent])  # fmt: skip
        expected.append((sample["sample_id"], sample["participant_id"], received,
                         decided.value.value if decided.value else None, decided.since,
                         unusable))  # fmt: skip
    got = [
        (r.sample_id, r.participant_id, r.received, r.genomic_state,
         None if r.genomic_since != r.genomic_since else r.genomic_since.date(), r.unusable)
        for r in frame.itertuples(index=False)
    ]  # fmt: skip
    assert got == sorted(expected)
    if as_of == AS_OF[-1]:  # the hard cases were drawn
        assert {"qc_failed", "in_release", None} <= {row[3] for row in got}
        assert any(row[5] for row in got) and not all(row[2] for row in got)
