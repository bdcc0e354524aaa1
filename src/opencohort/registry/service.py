"""Registry use cases: open, enrol, consent, withdraw, load a feed, summarise."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, select
from sqlalchemy.orm import Session

from opencohort.errors import InputError, NotFound, OpencohortError, PermissionDenied
from opencohort.registry import _db, _facts, _feed
from opencohort.registry import models as m
from opencohort.registry.status import (
    Applicant,
    ConsentStatus,
    ConsentType,
    Decision,
    WithdrawalStatus,
    enrolment_eligibility,
    withdrawal_state,
    withdrawal_transition,
)

FeedError = _feed.FeedError
ParticipantStatus = _facts.ParticipantStatus
RESEARCH_ID_RANGE = (10_000_000, 100_000_000)
BIOBANK_ID_RANGE = (100_000_000, 1_000_000_000)


class EnrolmentRefused(OpencohortError):
    """An applicant does not meet the enrolment conditions; ``reasons`` lists each one."""

    def __init__(self, reasons: tuple[str, ...]) -> None:
        self.reasons = reasons
        super().__init__("enrolment refused: " + "; ".join(reasons))


@dataclass(frozen=True)
class Registry:
    """An open registry database."""

    engine: Engine

    def session(self) -> Session:
        """Return a new ORM session (use it as a context manager)."""
        return Session(self.engine)

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()


def open_registry(url: str, *, migrate: bool = True) -> Registry:
    """Open the registry at SQLAlchemy `url`, upgrading its schema to the newest revision.

    A SQLite file is created when missing; use ``Home.registry_url`` for the program home's.
    """
    engine = _db.make_engine(url)
    if migrate:
        _db.upgrade(engine)
    return Registry(engine)


def _draw_ids(connection: Connection, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Draw `n` research ids, biobank ids and date shifts, unique against stored ones."""
    taken_research = set(connection.execute(select(m.Participant.research_id)).scalars())
    taken_biobank = {
        int(b[1:]) for b in connection.execute(select(m.Participant.biobank_id)).scalars()
    }

    def unique(low: int, high: int, taken: set[int]) -> np.ndarray:
        values = rng.integers(low, high, n)
        while True:
            clash = pd.Series(values).duplicated().to_numpy() | np.isin(values, list(taken))
            if not clash.any():
                return values
            values[clash] = rng.integers(low, high, int(clash.sum()))

    return pd.DataFrame(
        {
            "research_id": unique(*RESEARCH_ID_RANGE, taken_research),
            "biobank_id": ["A" + str(v) for v in unique(*BIOBANK_ID_RANGE, taken_biobank)],
            "date_shift_days": rng.integers(1, 365, n),
        }
    )


def load_feed(
    target: Registry | Session, feed_dir: Path, *, seed: int | None = None
) -> dict[str, int]:
    """Load a participant feed (``registry/*.csv``) in bulk, in one transaction.

    Parameters
    ----------
    target
        The registry (or a session whose engine is used).
    feed_dir
        Directory holding participants.csv and any of sites, consents, surveys,
        physical_measurements, biospecimens, withdrawals, suspensions and deaths (.csv).
    seed
        Seed for new participants' research ids, biobank ids and date shifts (None: random).

    Returns
    -------
    dict[str, int]
        New rows stored per table; all zero when the feed was loaded before.

    Raises
    ------
    FeedError
        If any row is bad; ``problems`` names file, line, field and value of each, and nothing
        is stored.
    InputError
        If `feed_dir` holds no participants.csv.
    """
    engine = target.get_bind() if isinstance(target, Session) else target.engine
    frames, problems = _feed.read_feed(Path(feed_dir))
    tables = list(m.Base.metadata.sorted_tables)
    with engine.begin() as connection:

        def known(column: str) -> set[str]:
            model = m.Site if column == "site_id" else m.Participant
            return set(connection.execute(select(getattr(model, column))).scalars())

        _feed.check_references(frames, known, problems)
        w = m.WithdrawalEvent
        stored_no_use = pd.read_sql(
            select(w.participant_id, w.authored_date.label("withdrawal_date")).where(
                w.status == WithdrawalStatus.NO_USE
            ),
            connection,
            parse_dates=["withdrawal_date"],
        )
        _feed.check_withdrawals(frames, stored_no_use, problems)
        if problems:
            raise FeedError(problems)
        before = {t.name: _feed.count(connection, t) for t in tables}
        people = frames["participants.csv"]
        new = people[~people["participant_id"].isin(known("participant_id"))]
        new = pd.concat(
            [
                new.reset_index(drop=True),
                _draw_ids(connection, len(new), np.random.default_rng(seed)),
            ],
            axis=1,
        )
        for table, records in _feed.feed_tables(frames, new):
            _feed.insert(connection, table, records, skip_existing=table.name != "participant")
        after = {t.name: _feed.count(connection, t) for t in tables}
    return {name: after[name] - before[name] for name in before}


def enrol(
    registry: Registry,
    applicant: Applicant,
    *,
    participant_id: str,
    sign_up_date: date,
    site_id: str | None = None,
    origin: str = "site",
    answers: Mapping[str, object] | None = None,
    seed: int | None = None,
) -> str:
    """Register a new participant after checking enrolment eligibility on `sign_up_date`.

    Raises
    ------
    EnrolmentRefused
        If the applicant is not eligible; the message lists every reason.
    InputError
        If `participant_id` is taken or malformed.
    """
    verdict = enrolment_eligibility(applicant, as_of=sign_up_date)
    if not verdict.eligible:
        raise EnrolmentRefused(verdict.reasons)
    if not (participant_id.startswith("P") and participant_id[1:].isdigit()):
        raise InputError(f"'{participant_id}' is not P followed by digits", field="participant_id")
    with registry.engine.begin() as connection:
        if connection.execute(
            select(m.Participant.participant_id).where(
                m.Participant.participant_id == participant_id
            )
        ).first():
            raise InputError(f"{participant_id} is already registered", field="participant_id")
        ids = _draw_ids(connection, 1, np.random.default_rng(seed)).iloc[0]
        connection.execute(
            m.Participant.__table__.insert(),
            {
                "participant_id": participant_id,
                "research_id": int(ids["research_id"]),
                "biobank_id": ids["biobank_id"],
                "date_shift_days": int(ids["date_shift_days"]),
                "site_id": site_id,
                "origin": origin,
                "sign_up_date": sign_up_date,
                "birth_date": applicant.birth_date,
                "guardian_linked": applicant.guardian_linked,
                **dict(answers or {}),
            },
        )
    return participant_id


def _withdrawal(session: Session, participant_id: str) -> Decision[WithdrawalStatus]:
    if session.get(m.Participant, participant_id) is None:
        raise NotFound(f"no participant {participant_id} in the registry")
    facts = _facts.load_facts(session.connection(), [participant_id])[0]
    return withdrawal_state(facts.withdrawals, as_of=date.max)


def record_consent(
    registry: Registry,
    participant_id: str,
    *,
    consent_type: ConsentType,
    version: str,
    status: ConsentStatus,
    authored: date,
    document_sha256: str,
    signer: str = "participant",
) -> None:
    """Append a signed consent form to a participant's history.

    Raises
    ------
    NotFound
        If the participant is not registered.
    PermissionDenied
        If the participant has withdrawn: writes are refused.
    """
    with registry.session() as session, session.begin():
        current = _withdrawal(session, participant_id)
        if current.value != WithdrawalStatus.NOT_WITHDRAWN:
            raise PermissionDenied(f"{participant_id} has withdrawn ({current.reason}); "
                                   "consents can no longer be recorded")  # fmt: skip
        session.add(
            m.Consent(
                participant_id=participant_id,
                consent_type=ConsentType(consent_type).value,
                version=version,
                status=ConsentStatus(status).value,
                signer=signer,
                authored_date=authored,
                document_sha256=document_sha256,
            )
        )


def withdraw(
    registry: Registry,
    participant_id: str,
    *,
    status: WithdrawalStatus,
    authored: date,
    reason: str = "",
) -> Decision[WithdrawalStatus]:
    """Record a withdrawal request (or a reinstatement) and return the new withdrawal state.

    Raises
    ------
    NotFound
        If the participant is not registered.
    TransitionError
        If the participant is already no_use and `status` is anything else.
    """
    with registry.session() as session, session.begin():
        current = _withdrawal(session, participant_id)
        withdrawal_transition(current.value, WithdrawalStatus(status))
        session.add(
            m.WithdrawalEvent(
                participant_id=participant_id,
                status=WithdrawalStatus(status).value,
                authored_date=authored,
                reason=reason,
                aian_ceremony="",
            )
        )
        session.flush()
        facts = _facts.load_facts(session.connection(), [participant_id])[0]
    return withdrawal_state(facts.withdrawals, as_of=date.max)


def participant_status(
    registry: Registry, participant_id: str, *, as_of: date
) -> ParticipantStatus:
    """Return every derived status of one participant on `as_of`.

    Raises
    ------
    NotFound
        If the participant is not registered.
    """
    with registry.engine.connect() as connection:
        facts = _facts.load_facts(connection, [participant_id])
    if not facts:
        raise NotFound(f"no participant {participant_id} in the registry")
    return _facts.derive(facts[0], as_of=as_of)


def summary(registry: Registry, *, as_of: date) -> dict:
    """Count participants on `as_of` by enrolment status, site, consent, withdrawal and UBR."""
    with registry.engine.connect() as connection:
        facts = _facts.load_facts(connection)
    rows = [(f.row, _facts.derive(f, as_of=as_of)) for f in facts]
    return {"as_of": as_of.isoformat(), **_facts.summarise(rows)}
