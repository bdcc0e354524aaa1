"""Registry use cases: open, enrol, consent, withdraw, load a feed, summarise."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, Insert, Select, Table, bindparam, select, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session

from opencohort.errors import InputError, NotFound, OpencohortError, PermissionDenied
from opencohort.registry import _db, _facts, _feed, _status_cache, audit
from opencohort.registry import models as m
from opencohort.registry._status_cache import StatusCache
from opencohort.registry.status import (
    Applicant,
    ConsentStatus,
    ConsentType,
    Decision,
    EnrolmentStatus,
    GenomicState,
    TransitionError,
    WithdrawalEvent,
    WithdrawalStatus,
    enrolment_eligibility,
    genomic_state,
    genomic_transition,
    withdrawal_state,
    withdrawal_transition,
)

FeedError = _feed.FeedError
ParticipantStatus = _facts.ParticipantStatus
RESEARCH_ID_RANGE = (10_000_000, 100_000_000)
BIOBANK_ID_RANGE = (100_000_000, 1_000_000_000)
#: Digits of the participant ids the registry assigns ("P" + 9 digits, as the synthetic feed).
PARTICIPANT_ID_RANGE = (100_000_000, 1_000_000_000)
#: Actor recorded in the audit log when the caller names none (the command line, scripts).
SYSTEM_ACTOR = "system"
#: Fields of a withdrawn participant that reads may still return (the reference program's
#: WITHDRAWN_PARTICIPANT_FIELDS: ids, birth date, consents and statuses).
WITHDRAWN_FIELDS = frozenset({"participant_id", "research_id", "biobank_id", "birth_date",
                              "sign_up_date", "version", "enrolment_status", "withdrawal_status",
                              "withdrawal_reason", "limited"})  # fmt: skip
#: The Basics answers and site pairing an update may change; ids and dates never change.
UPDATABLE_FIELDS = ("site_id", "sex_at_birth", "gender_identity", "sexual_orientation",
                    "race_ethnicity", "education", "income", "employment", "disability",
                    "limited_access_to_care", "zip", "state")  # fmt: skip
SUSPENSION_STATUSES = ("no_contact", "not_suspended")
MEASUREMENTS = ("height_cm", "weight_kg", "waist_cm", "hip_cm", "systolic_bp", "diastolic_bp",
                "heart_rate")  # fmt: skip


class EnrolmentRefused(OpencohortError):
    """An applicant does not meet the enrolment conditions; ``reasons`` lists each one."""

    def __init__(self, reasons: tuple[str, ...]) -> None:
        self.reasons = reasons
        super().__init__("enrolment refused: " + "; ".join(reasons))


class ParticipantWithdrawn(PermissionDenied):
    """The participant has withdrawn: the registry refuses writes about them; reads are limited."""


class AlreadyExists(InputError):
    """An object with this id is already stored; use another id or read the stored one."""


class StaleVersion(OpencohortError):
    """The participant changed since it was read; read it again (new ETag) and retry."""


class IdempotencyConflict(OpencohortError):
    """An idempotency key was reused for a different request; use a new key for a new request."""


@dataclass(frozen=True)
class Registry:
    """An open registry database, with this process's cache of every participant's statuses
    (``_status_cache``: current to the newest committed change on every read)."""

    engine: Engine
    statuses: StatusCache = field(default_factory=StatusCache, compare=False, repr=False)
    #: One-row lookups made on every request, by name (``_db.OneRowReader``).
    readers: dict[str, _db.OneRowReader] = field(default_factory=dict, compare=False, repr=False)

    def session(self) -> Session:
        """Return a new ORM session (use it as a context manager)."""
        return Session(self.engine)

    def reader(self, name: str, statement: Select) -> _db.OneRowReader:
        """Return the reader of `statement` kept under `name` (made on first use)."""
        if name not in self.readers:
            self.readers[name] = _db.OneRowReader(self.engine, statement)
        return self.readers[name]

    def close(self) -> None:
        """Release the database connections."""
        for reader in self.readers.values():
            reader.close()
        self.engine.dispose()


def open_registry(url: str, *, migrate: bool = True, pool_size: int = _db.POOL_SIZE) -> Registry:
    """Open the registry at SQLAlchemy `url`, upgrading its schema to the newest revision
    (unless `migrate` is False), with up to `pool_size` database connections kept open.

    A SQLite file is created when missing; use ``Home.registry_url`` for the program home's.
    """
    engine = _db.make_engine(url, pool_size=pool_size)
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
    target: Registry | Session,
    feed_dir: Path,
    *,
    seed: int | None = None,
    actor: str = SYSTEM_ACTOR,
    block_bytes: int = _feed.BLOCK_BYTES,
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
    actor
        Who loads the feed, for the audit log (one entry per load that stores anything,
        naming the feed files' sha256 and the new rows per table).
    block_bytes
        CSV bytes read, checked and inserted at a time; memory stays bounded by it.

    Returns
    -------
    dict[str, int]
        New rows stored per fact table; all zero when the feed was loaded before.

    Raises
    ------
    FeedError
        If any row is bad; ``problems`` names file, line, field and value of each, and nothing
        is stored.
    InputError
        If `feed_dir` holds no participants.csv.
    """
    engine = target.get_bind() if isinstance(target, Session) else target.engine
    rng = np.random.default_rng(seed)
    with engine.begin() as connection:
        added = _feed.load(
            connection,
            Path(feed_dir),
            draw_ids=lambda n: _draw_ids(connection, n, rng),
            block_bytes=block_bytes,
        )
        if any(added.values()):
            files = _file_digests(Path(feed_dir))
            audit.record(
                connection,
                actor=actor,
                action="load_feed",
                entity="feed",
                entity_id=Path(feed_dir).name,
                after={"new_rows": added, "files": files},
            )
    return added


def _file_digests(feed_dir: Path) -> dict[str, str]:
    digests = {}
    for path in sorted(feed_dir.glob("*.csv")):
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digests[path.name] = digest.hexdigest()
    return digests


def _is_registered(connection: Connection, participant_id: str) -> bool:
    query = select(m.Participant.participant_id).where(
        m.Participant.participant_id == participant_id
    )
    return connection.execute(query).first() is not None


def _free_participant_id(connection: Connection, rng: np.random.Generator) -> str:
    """Draw random participant ids until one is not registered."""
    while True:
        drawn = f"P{rng.integers(*PARTICIPANT_ID_RANGE)}"
        if not _is_registered(connection, drawn):
            return drawn


def enrol(
    registry: Registry,
    applicant: Applicant,
    *,
    sign_up_date: date,
    participant_id: str | None = None,
    site_id: str | None = None,
    origin: str = "site",
    answers: Mapping[str, object] | None = None,
    seed: int | None = None,
    actor: str = SYSTEM_ACTOR,
) -> str:
    """Register a new participant after checking enrolment eligibility on `sign_up_date`.

    The registry assigns a free random participant id unless `participant_id` names one
    (records moved over from an earlier system keep theirs). Returns the participant id.

    Raises
    ------
    EnrolmentRefused
        If the applicant is not eligible; the message lists every reason.
    AlreadyExists
        If `participant_id` is taken.
    InputError
        If `participant_id` is malformed, `site_id` unknown or an answer is not a Basics field.
    """
    verdict = enrolment_eligibility(applicant, as_of=sign_up_date)
    if not verdict.eligible:
        raise EnrolmentRefused(verdict.reasons)
    if participant_id is not None and not (
        participant_id.startswith("P") and participant_id[1:].isdigit()
    ):
        raise InputError(f"'{participant_id}' is not P followed by digits", field="participant_id")
    rng = np.random.default_rng(seed)
    with registry.engine.begin() as connection:
        if participant_id is None:
            participant_id = _free_participant_id(connection, rng)
        elif _is_registered(connection, participant_id):
            raise AlreadyExists(f"{participant_id} is already registered", field="participant_id")
        site = select(m.Site.site_id).where(m.Site.site_id == site_id)
        if site_id is not None and not connection.execute(site).first():
            raise InputError(f"no site '{site_id}' in the registry", field="site_id")
        unknown = sorted(set(answers or {}) - set(UPDATABLE_FIELDS) - {"site_id"})
        if unknown:
            raise InputError(f"not Basics answers: {', '.join(unknown)}", field="answers")
        ids = _draw_ids(connection, 1, rng).iloc[0]
        row = {
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
        }
        connection.execute(m.Participant.__table__.insert(), row)
        stored = (
            connection.execute(
                select(m.Participant).where(m.Participant.participant_id == participant_id)
            )
            .mappings()
            .one()
        )
        audit.record(connection, actor=actor, action="enrol", entity="participant",
                     entity_id=participant_id, after=stored)  # fmt: skip
        remember_response(connection, lambda: _record(*_derived(connection, participant_id)))
    return participant_id


def _row(obj: m.Base) -> dict:
    return {column.key: getattr(obj, column.key) for column in obj.__table__.columns}


def _withdrawal(session: Session, participant_id: str) -> Decision[WithdrawalStatus]:
    if session.get(m.Participant, participant_id) is None:
        raise NotFound(f"no participant {participant_id} in the registry")
    return _withdrawal_of(session, participant_id)


#: Statements of every participant change, built once (building one costs about as much as
#: running it): a participant's withdrawal events; its version bump, with or without a check
#: of the version it had.
_W = m.WithdrawalEvent
_WITHDRAWALS = (
    select(_W.status, _W.authored_date, _W.reason)
    .where(_W.participant_id == bindparam("pid"))
    .order_by(_W.withdrawal_event_id)
)
_P = m.Participant.__table__
_BUMP = update(_P).where(_P.c.participant_id == bindparam("pid")).values(version=_P.c.version + 1)
_BUMP_FROM = _BUMP.where(_P.c.version == bindparam("expected"))


def _withdrawal_of(session: Session, participant_id: str) -> Decision[WithdrawalStatus]:
    """The withdrawal state of a participant known to exist."""
    rows = session.connection().execute(_WITHDRAWALS, {"pid": participant_id})
    events = [WithdrawalEvent(WithdrawalStatus(status), day, why) for status, day, why in rows]
    return withdrawal_state(events, as_of=date.max)


@contextmanager
def _change(
    registry: Registry,
    participant_id: str,
    *,
    expected_version: int | None = None,
    refuse_withdrawn: bool = True,
) -> Iterator[Session]:
    """Open a transaction that changes one participant: bump its version, check it may change.

    The version bump locks the participant's row, so concurrent changes to one participant
    run one after the other and none is lost; with `expected_version` it is a compare-and-set.
    """
    with registry.session() as session, session.begin():
        if expected_version is None:
            bumped = session.connection().execute(_BUMP, {"pid": participant_id})
        else:
            bumped = session.connection().execute(
                _BUMP_FROM, {"pid": participant_id, "expected": expected_version}
            )
        if bumped.rowcount == 0:
            stored = session.get(m.Participant, participant_id)
            if stored is None:
                raise NotFound(f"no participant {participant_id} in the registry")
            raise StaleVersion(f"{participant_id} is at version {stored.version}, not "
                               f"{expected_version}; read it again and retry")  # fmt: skip
        if refuse_withdrawn:
            current = _withdrawal_of(session, participant_id)
            if current.value != WithdrawalStatus.NOT_WITHDRAWN:
                raise ParticipantWithdrawn(
                    f"{participant_id} has withdrawn ({current.reason}); "
                    "the registry no longer records changes about them"
                )
        yield session
        session.flush()


@cache
def _insert_returning(table: Table) -> Insert:
    return table.insert().returning(*table.c)


def _add(session: Session, obj: m.Base, *, actor: str, action: str, participant_id: str) -> dict:
    """Store `obj`, audit it under the participant's id and return it as a dict.

    The row goes in by one Core ``INSERT ... RETURNING`` of the attributes the caller set
    (column defaults fill the rest, as a flush would), without the ORM's unit of work.
    """
    table = obj.__table__
    given = sa_inspect(obj).dict
    values = {c.key: given[c.key] for c in table.columns if c.key in given}
    connection = session.connection()
    row = dict(connection.execute(_insert_returning(table), values).mappings().one())
    audit.record(connection, actor=actor, action=action, entity=obj.__tablename__,
                 entity_id=participant_id, after=row)  # fmt: skip
    return row


def _remembered(session: Session, row: dict) -> dict:
    """Store `row` as the response to the running ``IdempotentCall`` (if any); return it."""
    remember_response(session.connection(), lambda: row)
    return row


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
    actor: str = SYSTEM_ACTOR,
) -> dict:
    """Append a signed consent form to a participant's history and return it.

    Raises
    ------
    NotFound
        If the participant is not registered.
    ParticipantWithdrawn
        If the participant has withdrawn: writes are refused.
    InputError
        If the status is ``unset`` (that is the absence of a form, not an answer).
    """
    if ConsentStatus(status) == ConsentStatus.UNSET:
        raise InputError("a consent form's status cannot be 'unset'", field="status")
    with _change(registry, participant_id) as session:
        consent = m.Consent(
            participant_id=participant_id,
            consent_type=ConsentType(consent_type).value,
            version=version,
            status=ConsentStatus(status).value,
            signer=signer,
            authored_date=authored,
            document_sha256=document_sha256,
        )
        row = _add(session, consent, actor=actor, action="record_consent",
                   participant_id=participant_id)  # fmt: skip
        return _remembered(session, row)


def withdraw(
    registry: Registry,
    participant_id: str,
    *,
    status: WithdrawalStatus,
    authored: date,
    reason: str = "",
    expected_version: int | None = None,
    actor: str = SYSTEM_ACTOR,
) -> Decision[WithdrawalStatus]:
    """Record a withdrawal request (or a reinstatement) and return the new withdrawal state.

    Raises
    ------
    NotFound
        If the participant is not registered.
    StaleVersion
        If `expected_version` is given and the participant has changed since.
    TransitionError
        If the participant is already no_use and `status` is anything else.
    """
    with _change(
        registry, participant_id, expected_version=expected_version, refuse_withdrawn=False
    ) as session:
        current = _withdrawal(session, participant_id)
        withdrawal_transition(current.value, WithdrawalStatus(status))
        event = m.WithdrawalEvent(
            participant_id=participant_id,
            status=WithdrawalStatus(status).value,
            authored_date=authored,
            reason=reason,
            aian_ceremony="",
        )
        _add(session, event, actor=actor, action="withdraw", participant_id=participant_id)
        facts = _facts.load_facts(session.connection(), [participant_id])[0]
    return withdrawal_state(facts.withdrawals, as_of=date.max)


def suspend(
    registry: Registry,
    participant_id: str,
    *,
    status: str,
    day: date,
    expected_version: int | None = None,
    actor: str = SYSTEM_ACTOR,
) -> dict:
    """Suspend contact with a participant (``no_contact``) or lift it (``not_suspended``).

    Raises
    ------
    InputError
        If `status` is not one of ``SUSPENSION_STATUSES``.
    NotFound, StaleVersion, ParticipantWithdrawn
        As for every participant change.
    """
    if status not in SUSPENSION_STATUSES:
        raise InputError(f"'{status}' is not one of {', '.join(SUSPENSION_STATUSES)}",
                         field="status", value=status)  # fmt: skip
    with _change(registry, participant_id, expected_version=expected_version) as session:
        event = m.SuspensionEvent(participant_id=participant_id, status=status, event_date=day)
        return _add(session, event, actor=actor, action="suspend", participant_id=participant_id)


def update_participant(
    registry: Registry,
    participant_id: str,
    changes: Mapping[str, object],
    *,
    expected_version: int | None = None,
    actor: str = SYSTEM_ACTOR,
) -> None:
    """Change a participant's site pairing or The Basics answers (``UPDATABLE_FIELDS``).

    Raises
    ------
    InputError
        If a field may not be changed or the site is unknown.
    NotFound, StaleVersion, ParticipantWithdrawn
        As for every participant change.
    """
    unknown = sorted(set(changes) - set(UPDATABLE_FIELDS))
    if unknown:
        raise InputError(f"cannot change {', '.join(unknown)}; changeable: "
                         f"{', '.join(UPDATABLE_FIELDS)}", field=unknown[0])  # fmt: skip
    with _change(registry, participant_id, expected_version=expected_version) as session:
        site = changes.get("site_id")
        if site is not None and session.get(m.Site, site) is None:
            raise InputError(f"no site '{site}' in the registry", field="site_id", value=site)
        person = session.get(m.Participant, participant_id)
        before = {name: getattr(person, name) for name in changes}
        for name, value in changes.items():
            setattr(person, name, value)
        session.flush()
        audit.record(session.connection(), actor=actor, action="update_participant",
                     entity="participant", entity_id=participant_id, before=before,
                     after=dict(changes))  # fmt: skip


def record_survey(
    registry: Registry, participant_id: str, *, module: str, authored: date,
    actor: str = SYSTEM_ACTOR,
) -> dict:  # fmt: skip
    """Record that a participant completed a survey module; return the stored row."""
    with _change(registry, participant_id) as session:
        survey = m.SurveyCompletion(
            participant_id=participant_id, module=module, authored_date=authored
        )
        row = _add(session, survey, actor=actor, action="record_survey",
                   participant_id=participant_id)  # fmt: skip
        return _remembered(session, row)


def record_physical_measurement(
    registry: Registry,
    participant_id: str,
    *,
    measured: date,
    values: Mapping[str, float | None],
    actor: str = SYSTEM_ACTOR,
) -> dict:
    """Record one visit's physical measurements (names in ``MEASUREMENTS``); return the row."""
    unknown = sorted(set(values) - set(MEASUREMENTS))
    if unknown:
        raise InputError(f"unknown measurements {', '.join(unknown)}", field=unknown[0])
    with _change(registry, participant_id) as session:
        row = m.PhysicalMeasurement(
            participant_id=participant_id, measured_date=measured, **dict(values)
        )
        stored = _add(session, row, actor=actor, action="record_physical_measurement",
                      participant_id=participant_id)  # fmt: skip
        return _remembered(session, stored)


def create_biospecimen_order(
    registry: Registry,
    participant_id: str,
    *,
    order: Mapping[str, object],
    samples: list[Mapping[str, object]],
    actor: str = SYSTEM_ACTOR,
) -> dict:
    """Store a biospecimen order and its samples; return the order with its samples.

    `order` holds order_id, collection_method and the created (and any later) step dates;
    each sample holds sample_id, test_code and optionally received_date.

    Raises
    ------
    AlreadyExists
        If the order id or a sample id is already stored.
    """
    with _change(registry, participant_id) as session:
        taken = session.get(m.BiospecimenOrder, order["order_id"]) is not None or any(
            session.get(m.Sample, s["sample_id"]) is not None for s in samples
        )
        if taken:
            raise AlreadyExists(f"order {order['order_id']} or one of its samples is already "
                                "stored", field="order_id")  # fmt: skip
        stored = _add(session, m.BiospecimenOrder(participant_id=participant_id, **order),
                      actor=actor, action="create_biospecimen_order",
                      participant_id=participant_id)  # fmt: skip
        stored["samples"] = [
            _add(session, m.Sample(participant_id=participant_id, order_id=order["order_id"], **s),
                 actor=actor, action="create_sample", participant_id=participant_id)
            for s in samples
        ]  # fmt: skip
        remember_response(session.connection(), lambda: stored)
    return stored


def _sample_owner(registry: Registry, sample_id: str) -> str:
    with registry.session() as session:
        sample = session.get(m.Sample, sample_id)
    if sample is None:
        raise NotFound(f"no sample {sample_id} in the registry")
    return sample.participant_id


def _genomic_history(session: Session, sample_id: str) -> list[tuple[GenomicState, date]]:
    g = m.GenomicEvent
    rows = session.execute(
        select(g.state, g.event_date).where(g.sample_id == sample_id).order_by(g.genomic_event_id)
    )
    return [(GenomicState(state), day) for state, day in rows]


def advance_genomic(
    registry: Registry,
    sample_id: str,
    *,
    state: GenomicState,
    day: date,
    detail: str = "",
    actor: str = SYSTEM_ACTOR,
) -> dict:
    """Move a sample one step along the genomic workflow and return its new state.

    Raises
    ------
    NotFound
        If the sample is not stored.
    TransitionError
        If the workflow forbids the step, `day` precedes the last step, or (for ``eligible``)
        the participant is not eligible for sequencing on `day` (the reasons are named).
    ParticipantWithdrawn
        If the sample's participant has withdrawn.
    """
    participant_id = _sample_owner(registry, sample_id)
    new = GenomicState(state)
    with _change(registry, participant_id) as session:
        history = _genomic_history(session, sample_id)
        current = genomic_state(history, as_of=date.max)
        genomic_transition(current.value, new)
        if current.since is not None and day < current.since:
            raise TransitionError(f"sample {sample_id}: {new.value} on {day} would precede "
                                  f"its last step ({current.reason})")  # fmt: skip
        if new == GenomicState.ELIGIBLE:
            facts = _facts.load_facts(session.connection(), [participant_id])[0]
            verdict = _facts.derive(facts, as_of=day).genomic
            if not verdict.eligible:
                raise TransitionError(f"sample {sample_id} cannot become eligible on {day}: "
                                      f"{verdict.reason}")  # fmt: skip
        event = m.GenomicEvent(sample_id=sample_id, state=new.value, event_date=day, detail=detail)
        _add(session, event, actor=actor, action="advance_genomic", participant_id=participant_id)
        previous = current.value.value if current.value else None
        step = {"sample_id": sample_id, "participant_id": participant_id, "state": new.value,
                "since": day, "previous": previous}  # fmt: skip
        remember_response(session.connection(), lambda: step)
    return step


def genomic_sample_state(registry: Registry, sample_id: str, *, as_of: date) -> dict:
    """Return a sample's genomic workflow state on `as_of` and its dated steps."""
    participant_id = _sample_owner(registry, sample_id)
    with registry.session() as session:
        history = _genomic_history(session, sample_id)
    decided = genomic_state(history, as_of=as_of)
    return {
        "sample_id": sample_id,
        "participant_id": participant_id,
        "state": decided.value.value if decided.value else None,
        "since": decided.since,
        "reason": decided.reason,
        "history": [{"state": s.value, "day": d} for s, d in history],
    }


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


def _audit_head(registry: Registry) -> int:
    """The newest audit id: the registry's change counter (``_status_cache``)."""
    row = registry.reader("audit_head", _status_cache.HEAD).one()
    return (row[0] if row else None) or 0


def summary(registry: Registry, *, as_of: date) -> dict:
    """Count participants on `as_of` by enrolment status, site, consent, withdrawal and UBR."""
    counts = registry.statuses.counts(registry.engine, head=_audit_head(registry), as_of=as_of)
    return {"as_of": as_of.isoformat(), **counts}


def _withdrawn(status: ParticipantStatus) -> bool:
    return status.withdrawal.value != WithdrawalStatus.NOT_WITHDRAWN


def _decision(decision: Decision) -> dict:
    value = decision.value
    return {"status": getattr(value, "label", getattr(value, "value", value)),
            "reason": decision.reason, "since": decision.since}  # fmt: skip


def _record(facts: _facts.ParticipantFacts, status: ParticipantStatus) -> dict:
    row = {k: v for k, v in facts.row.items() if k != "date_shift_days"}
    row |= {
        "enrolment_status": status.enrolment.value.label,
        "withdrawal_status": status.withdrawal.value.value,
        "withdrawal_reason": status.withdrawal.reason,
        "limited": _withdrawn(status),
    }
    if row["limited"]:
        row = {k: v if k in WITHDRAWN_FIELDS else None for k, v in row.items()}
    return row


def _summary(facts: _facts.ParticipantFacts, status: ParticipantStatus) -> dict:
    limited = _withdrawn(status)
    return {
        "participant_id": facts.row["participant_id"],
        "site_id": None if limited else facts.row["site_id"],
        "enrolment": _decision(status.enrolment),
        "consents": {kind.value: _decision(d) for kind, d in status.consents.items()},
        "withdrawal": _decision(status.withdrawal),
        "genomic": None if limited else {"eligible": status.genomic.eligible,
                                         "reasons": list(status.genomic.reasons)},
        "ubr": None if limited else sorted(c.value for c in status.ubr.value),
        "limited": limited,
    }  # fmt: skip


def _one(registry: Registry, participant_id: str, as_of: date):
    with registry.engine.connect() as connection:
        return _derived(connection, participant_id, as_of)


def _derived(connection: Connection, participant_id: str, as_of: date | None = None):
    """Return a participant's facts and statuses on `as_of` (default today)."""
    facts = _facts.load_facts(connection, [participant_id])
    if not facts:
        raise NotFound(f"no participant {participant_id} in the registry")
    return facts[0], _facts.derive(facts[0], as_of=as_of or date.today())


def participant_record(registry: Registry, participant_id: str, *, as_of: date) -> dict:
    """Return a participant's stored fields and statuses (limited to ``WITHDRAWN_FIELDS``
    when withdrawn; never the date shift).

    Raises
    ------
    NotFound
        If the participant is not registered.
    """
    return _record(*_one(registry, participant_id, as_of))


def participant_summary(registry: Registry, participant_id: str, *, as_of: date) -> dict:
    """Return a participant's derived statuses with their reasons (limited when withdrawn).

    Raises
    ------
    NotFound
        If the participant is not registered.
    """
    return _summary(*_one(registry, participant_id, as_of))


def search_participants(
    registry: Registry,
    *,
    as_of: date,
    site_id: str | None = None,
    enrolment_status: EnrolmentStatus | None = None,
    withdrawn: bool | None = None,
    offset: int = 0,
    limit: int = 100,
) -> tuple[list[dict], int]:
    """Return one page of participant summaries (in id order) matching the filters, and
    the number of matches in all.

    Notes
    -----
    Filters use every participant's statuses derived set-wise (``_status_frame``, kept
    current by ``_status_cache``); only the returned page is derived, with reasons, by the
    pure functions.
    """

    where = {}
    if site_id is not None:
        where["site_id"] = frozenset({site_id})
    if enrolment_status is not None:
        where["enrolment"] = frozenset({enrolment_status.label})
    if withdrawn is not None:
        stays = WithdrawalStatus.NOT_WITHDRAWN.value
        left = frozenset(s.value for s in WithdrawalStatus) - {stays}
        where["withdrawal"] = left if withdrawn else frozenset({stays})
    page, count = registry.statuses.select(registry.engine, head=_audit_head(registry),
                                           as_of=as_of, where=where, offset=offset,
                                           limit=limit)  # fmt: skip
    with registry.engine.connect() as connection:
        facts = _facts.load_facts(connection, page) if page else []
    return [_summary(fact, _facts.derive(fact, as_of=as_of)) for fact in facts], count


def list_consents(registry: Registry, participant_id: str) -> list[dict]:
    """Return a participant's whole consent history, oldest first.

    Raises
    ------
    NotFound
        If the participant is not registered.
    """
    c = m.Consent
    with registry.session() as session:
        if session.get(m.Participant, participant_id) is None:
            raise NotFound(f"no participant {participant_id} in the registry")
        rows = session.scalars(
            select(c).where(c.participant_id == participant_id).order_by(c.consent_id)
        )
        return [_row(row) for row in rows]


# --- idempotency keys of creating API calls ---------------------------------------------------


@dataclass
class IdempotentCall:
    """A creating API call made under an idempotency key.

    While it runs (``idempotent``), the change it makes stores its response, ``render`` of
    the change's result, in the change's own transaction (``remember_response``): the key is
    recorded if and only if the change is committed, so a retry after a crash at any point
    either replays the stored response or runs the change for the first time.
    """

    caller: str
    key: str
    request_sha256: str
    render: Callable[[object], str]
    #: The stored response body, once the change has stored it.
    body: str | None = None


_CALL: ContextVar[IdempotentCall | None] = ContextVar("idempotent_call", default=None)


@contextmanager
def idempotent(call: IdempotentCall) -> Iterator[IdempotentCall]:
    """Run the block as `call`: the one change it makes stores `call`'s response (and fails
    with ``IntegrityError``, storing nothing, when the key is stored already)."""
    token = _CALL.set(call)
    try:
        yield call
    finally:
        _CALL.reset(token)


def remember_response(connection: Connection, result: Callable[[], object]) -> None:
    """Store the response to the running ``IdempotentCall``, if any, made of `result()`, on
    `connection` (inside the change's transaction, just before it commits)."""
    call = _CALL.get()
    if call is None:
        return
    call.body = call.render(result())
    record = {"token_name": call.caller, "key": call.key, "request_sha256": call.request_sha256,
              "status_code": 201, "response": call.body,
              "created_at": datetime.now(UTC).replace(tzinfo=None)}  # fmt: skip
    connection.execute(m.IdempotencyRecord.__table__.insert(), record)


def idempotent_response(
    registry: Registry, *, caller: str, key: str, request_sha256: str
) -> tuple[int, str] | None:
    """Return the stored ``(status, body)`` of the first request `caller` sent with `key`, or
    None when there is none.

    Raises
    ------
    IdempotencyConflict
        If `key` was used by this caller for a request with different content.
    """
    with registry.session() as session:
        found = session.get(m.IdempotencyRecord, (caller, key))
    if found is None:
        return None
    if found.request_sha256 != request_sha256:
        raise IdempotencyConflict(f"idempotency key '{key}' was used for a different request; "
                                  "send a new key with a new request")  # fmt: skip
    return found.status_code, found.response
