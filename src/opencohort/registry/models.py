"""The registry's tables (SQLAlchemy 2 ORM): facts only, statuses are derived in ``status``.

Every event table is append-only: a consent, withdrawal or workflow step is a new row, never
an update. Natural-key unique constraints make re-loading a feed a no-op.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: Constraint names Alembic and both databases agree on.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
#: Biobank test codes whose samples carry DNA (whole blood EDTA tubes and saliva kits).
DNA_TEST_CODES = ("1ED10", "2ED10", "1ED04", "1SAL2")
PID = String(16)
CODE = String(32)


class Base(DeclarativeBase):
    """Declarative base of every registry table."""

    metadata = MetaData(naming_convention=NAMING)


def _participant_fk() -> Mapped[str]:
    return mapped_column(PID, ForeignKey("participant.participant_id"), index=True)


class Awardee(Base):
    """A funded partner that runs organisations (the top of the site hierarchy)."""

    __tablename__ = "awardee"
    awardee_id: Mapped[str] = mapped_column(CODE, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))


class Organization(Base):
    """An organisation (health system) under an awardee."""

    __tablename__ = "organization"
    organization_id: Mapped[str] = mapped_column(CODE, primary_key=True)
    awardee_id: Mapped[str] = mapped_column(CODE, ForeignKey("awardee.awardee_id"), index=True)
    name: Mapped[str] = mapped_column(String(200))


class Site(Base):
    """A site where participants enrol and are measured."""

    __tablename__ = "site"
    site_id: Mapped[str] = mapped_column(CODE, primary_key=True)
    organization_id: Mapped[str] = mapped_column(
        CODE, ForeignKey("organization.organization_id"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    state: Mapped[str | None] = mapped_column(String(2))
    imperial_units: Mapped[bool] = mapped_column(Boolean, default=False)


class Participant(Base):
    """A person who created an account, with The Basics demographics they reported.

    The research id, biobank id and date shift are drawn once at creation and never changed.
    """

    __tablename__ = "participant"
    __table_args__ = (CheckConstraint("date_shift_days BETWEEN 1 AND 364", name="date_shift"),)
    participant_id: Mapped[str] = mapped_column(PID, primary_key=True)
    research_id: Mapped[int] = mapped_column(Integer, unique=True)
    biobank_id: Mapped[str] = mapped_column(String(16), unique=True)
    date_shift_days: Mapped[int] = mapped_column(SmallInteger)
    site_id: Mapped[str | None] = mapped_column(CODE, ForeignKey("site.site_id"), index=True)
    origin: Mapped[str] = mapped_column(CODE)
    sign_up_date: Mapped[date] = mapped_column(Date)
    birth_date: Mapped[date] = mapped_column(Date)
    guardian_linked: Mapped[bool] = mapped_column(Boolean, default=False)
    sex_at_birth: Mapped[str] = mapped_column(CODE, default="skip")
    gender_identity: Mapped[str] = mapped_column(CODE, default="skip")
    sexual_orientation: Mapped[str] = mapped_column(CODE, default="skip")
    race_ethnicity: Mapped[str] = mapped_column(CODE, default="skip")
    education: Mapped[str] = mapped_column(CODE, default="skip")
    income: Mapped[str] = mapped_column(CODE, default="skip")
    employment: Mapped[str] = mapped_column(CODE, default="skip")
    disability: Mapped[bool] = mapped_column(Boolean, default=False)
    limited_access_to_care: Mapped[bool] = mapped_column(Boolean, default=False)
    zip: Mapped[str | None] = mapped_column(String(5))
    state: Mapped[str | None] = mapped_column(String(2))
    #: Bumped by every change to the participant or its facts (the API's ETag).
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")


class ParticipantIdentity(Base):
    """Direct identifiers of a participant (never leave the registry)."""

    __tablename__ = "participant_identity"
    participant_id: Mapped[str] = mapped_column(
        PID, ForeignKey("participant.participant_id"), primary_key=True
    )
    first_name: Mapped[str] = mapped_column(String(100))
    middle_name: Mapped[str | None] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100))
    street_address: Mapped[str | None] = mapped_column(String(200))
    city: Mapped[str | None] = mapped_column(String(100))
    phone: Mapped[str | None] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(200))
    ssn: Mapped[str | None] = mapped_column(String(11))
    mrn: Mapped[str | None] = mapped_column(String(32))


class Consent(Base):
    """One signed consent form; the history is kept, never overwritten."""

    __tablename__ = "consent"
    __table_args__ = (
        UniqueConstraint("participant_id", "consent_type", "version", "status", "authored_date"),
    )
    consent_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    participant_id: Mapped[str] = _participant_fk()
    consent_type: Mapped[str] = mapped_column(CODE)
    version: Mapped[str] = mapped_column(CODE)
    status: Mapped[str] = mapped_column(CODE)
    signer: Mapped[str] = mapped_column(CODE, default="participant")
    authored_date: Mapped[date] = mapped_column(Date)
    document_sha256: Mapped[str] = mapped_column(String(64))


class SurveyCompletion(Base):
    """A survey module completed by a participant."""

    __tablename__ = "survey_completion"
    __table_args__ = (UniqueConstraint("participant_id", "module", "authored_date"),)
    survey_completion_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    participant_id: Mapped[str] = _participant_fk()
    module: Mapped[str] = mapped_column(String(100))
    authored_date: Mapped[date] = mapped_column(Date)


class PhysicalMeasurement(Base):
    """Physical measurements taken at a site (means of the protocol's readings)."""

    __tablename__ = "physical_measurement"
    __table_args__ = (UniqueConstraint("participant_id", "measured_date"),)
    physical_measurement_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    participant_id: Mapped[str] = _participant_fk()
    measured_date: Mapped[date] = mapped_column(Date)
    height_cm: Mapped[float | None] = mapped_column(Float)
    weight_kg: Mapped[float | None] = mapped_column(Float)
    waist_cm: Mapped[float | None] = mapped_column(Float)
    hip_cm: Mapped[float | None] = mapped_column(Float)
    systolic_bp: Mapped[float | None] = mapped_column(Float)
    diastolic_bp: Mapped[float | None] = mapped_column(Float)
    heart_rate: Mapped[float | None] = mapped_column(Float)


class BiospecimenOrder(Base):
    """A biospecimen order and the dates of its steps (created, collected, ...)."""

    __tablename__ = "biospecimen_order"
    order_id: Mapped[str] = mapped_column(CODE, primary_key=True)
    participant_id: Mapped[str] = _participant_fk()
    collection_method: Mapped[str] = mapped_column(CODE)
    created_date: Mapped[date] = mapped_column(Date)
    collected_date: Mapped[date | None] = mapped_column(Date)
    processed_date: Mapped[date | None] = mapped_column(Date)
    finalized_date: Mapped[date | None] = mapped_column(Date)


class Sample(Base):
    """One ordered tube or kit, and the day the biobank received it."""

    __tablename__ = "sample"
    sample_id: Mapped[str] = mapped_column(CODE, primary_key=True)
    order_id: Mapped[str] = mapped_column(
        CODE, ForeignKey("biospecimen_order.order_id"), index=True
    )
    participant_id: Mapped[str] = _participant_fk()
    test_code: Mapped[str] = mapped_column(CODE)
    received_date: Mapped[date | None] = mapped_column(Date)


class SampleEvent(Base):
    """A biobank status change after receipt (quality issue, disposal)."""

    __tablename__ = "sample_event"
    __table_args__ = (UniqueConstraint("sample_id", "state", "event_date"),)
    sample_event_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sample_id: Mapped[str] = mapped_column(CODE, ForeignKey("sample.sample_id"), index=True)
    state: Mapped[str] = mapped_column(CODE)
    event_date: Mapped[date] = mapped_column(Date)


class WithdrawalEvent(Base):
    """A withdrawal request (no use, early out) or a reinstatement."""

    __tablename__ = "withdrawal_event"
    __table_args__ = (UniqueConstraint("participant_id", "status", "authored_date"),)
    withdrawal_event_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    participant_id: Mapped[str] = _participant_fk()
    status: Mapped[str] = mapped_column(CODE)
    authored_date: Mapped[date] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(String(200), default="")
    aian_ceremony: Mapped[str] = mapped_column(CODE, default="")


class SuspensionEvent(Base):
    """A suspension of contact (no_contact) or its lifting (not_suspended)."""

    __tablename__ = "suspension_event"
    __table_args__ = (UniqueConstraint("participant_id", "status", "event_date"),)
    suspension_event_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    participant_id: Mapped[str] = _participant_fk()
    status: Mapped[str] = mapped_column(CODE)
    event_date: Mapped[date] = mapped_column(Date)


class DeceasedReport(Base):
    """A report that a participant died, with its source and review status."""

    __tablename__ = "deceased_report"
    __table_args__ = (UniqueConstraint("participant_id", "reported_date"),)
    deceased_report_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    participant_id: Mapped[str] = _participant_fk()
    death_date: Mapped[date | None] = mapped_column(Date)
    reported_date: Mapped[date] = mapped_column(Date)
    source: Mapped[str] = mapped_column(CODE)
    review_status: Mapped[str] = mapped_column(CODE)


class GenomicEvent(Base):
    """A step of a sample's sequencing workflow (see ``status.GENOMIC_TRANSITIONS``)."""

    __tablename__ = "genomic_event"
    __table_args__ = (UniqueConstraint("sample_id", "state", "event_date", "detail"),)
    genomic_event_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sample_id: Mapped[str] = mapped_column(CODE, ForeignKey("sample.sample_id"), index=True)
    state: Mapped[str] = mapped_column(CODE)
    event_date: Mapped[date] = mapped_column(Date)
    detail: Mapped[str] = mapped_column(String(200), default="")


# --- service tables: who changed what, API tokens, idempotent requests ---------------------


class AuditEntry(Base):
    """One change made through the service layer; rows are append-only and hash-chained.

    ``row_sha256`` is the sha256 of the row's canonical content including ``prev_sha256``, the
    previous row's hash (64 zeros for the first row), so an edited, deleted or reordered row
    breaks the chain (see ``audit.verify_audit_chain``).
    """

    __tablename__ = "audit_entry"
    audit_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    recorded_at: Mapped[datetime] = mapped_column(DateTime)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(CODE)
    entity: Mapped[str] = mapped_column(CODE)
    entity_id: Mapped[str] = mapped_column(String(100), index=True)
    before: Mapped[str | None] = mapped_column(Text)
    after: Mapped[str | None] = mapped_column(Text)
    prev_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    row_sha256: Mapped[str] = mapped_column(String(64), unique=True)


class ApiToken(Base):
    """An API token: only its keyed hash is stored; the token itself is shown once."""

    __tablename__ = "api_token"
    token_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(CODE)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)


class IdempotencyRecord(Base):
    """The first response to a creating API call, replayed when the same key is sent again."""

    __tablename__ = "idempotency_record"
    token_name: Mapped[str] = mapped_column(String(100), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_sha256: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    response: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime)


#: Tables of the service layer itself, not participant facts (feed loads leave them alone).
SERVICE_TABLES = frozenset({"audit_entry", "api_token", "idempotency_record"})
