"""Pydantic models of the registry API: ``<Thing>Create`` in, ``<Thing>Public`` out.

Field limits match the database columns, so anything the models accept can be stored.
"""

from __future__ import annotations

from datetime import date
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from opencohort.registry.status import (
    ConsentType,
    EnrolmentStatus,
    GenomicState,
    WithdrawalStatus,
)

#: A code: letters, digits and ``_.-`` (site ids, versions, test codes).
Code = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")]
ParticipantId = Annotated[str, StringConstraints(pattern=r"^P[0-9]{1,15}$")]
#: Free text without control characters.
Text = Annotated[str, StringConstraints(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")]
#: A day statuses can be derived on (pandas datetime64[ns] holds 1677 to 2262).
Day = Annotated[date, Field(ge=date(1900, 1, 1), le=date(2199, 12, 31))]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
#: Enrolment status labels, as a query parameter.
EnrolmentLabel = Enum(
    "EnrolmentLabel", {status.name: status.label for status in EnrolmentStatus}, type=str
)


def _reading(low: float, high: float):
    return Field(None, gt=low, lt=high, allow_inf_nan=False)


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class BasicsAnswers(BaseModel):
    """The Basics answers (codes as in the participant feed; "skip" when not answered)."""

    sex_at_birth: Code = "skip"
    gender_identity: Code = "skip"
    sexual_orientation: Code = "skip"
    race_ethnicity: Code = "skip"
    education: Code = "skip"
    income: Code = "skip"
    employment: Code = "skip"
    disability: bool = False
    limited_access_to_care: bool = False
    zip: Annotated[str, StringConstraints(pattern=r"^[0-9]{5}$")] | None = None
    state: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] | None = None


class ParticipantCreate(BaseModel):
    """An enrolment request: who applies, where, and the facts eligibility is checked on.

    Leave ``participant_id`` out to have the registry assign one; give it only for records
    moved over from an earlier system.
    """

    participant_id: ParticipantId | None = None
    sign_up_date: Day
    birth_date: Day
    site_id: Code | None = None
    origin: Literal["site", "self"] = "site"
    lives_in_us: bool = True
    incarcerated: bool = False
    able_to_consent: bool = True
    guardian_linked: bool = False
    guardian_consented: bool = False
    answers: BasicsAnswers = Field(default_factory=BasicsAnswers)


class ParticipantUpdate(BaseModel):
    """Changes to a participant's site pairing or The Basics answers (all optional)."""

    site_id: Code | None = None
    sex_at_birth: Code | None = None
    gender_identity: Code | None = None
    sexual_orientation: Code | None = None
    race_ethnicity: Code | None = None
    education: Code | None = None
    income: Code | None = None
    employment: Code | None = None
    disability: bool | None = None
    limited_access_to_care: bool | None = None
    zip: Annotated[str, StringConstraints(pattern=r"^[0-9]{5}$")] | None = None
    state: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] | None = None


class ParticipantPublic(_Out):
    """A participant's fields and statuses; ``limited`` (withdrawn) leaves only ids and statuses."""

    participant_id: str
    research_id: int | None
    biobank_id: str | None
    site_id: str | None
    origin: str | None
    sign_up_date: date | None
    birth_date: date | None
    guardian_linked: bool | None
    sex_at_birth: str | None
    gender_identity: str | None
    sexual_orientation: str | None
    race_ethnicity: str | None
    education: str | None
    income: str | None
    employment: str | None
    disability: bool | None
    limited_access_to_care: bool | None
    zip: str | None
    state: str | None
    version: int | None
    enrolment_status: str
    withdrawal_status: str
    withdrawal_reason: str | None
    limited: bool


class DecisionPublic(_Out):
    """A derived status, the reason that decided it and since when."""

    status: str
    reason: str
    since: date | None


class GenomicEligibilityPublic(_Out):
    """Whether the participant may be sequenced, and every reason not."""

    eligible: bool
    reasons: list[str]


class ParticipantSummaryPublic(_Out):
    """Every derived status of a participant (site, genomics and UBR hidden when withdrawn)."""

    participant_id: str
    site_id: str | None
    enrolment: DecisionPublic
    consents: dict[str, DecisionPublic]
    withdrawal: DecisionPublic
    genomic: GenomicEligibilityPublic | None
    ubr: list[str] | None
    limited: bool


class ParticipantSummaryList(_Out):
    """One page of participant summaries; ``count`` is the number of matches in all."""

    data: list[ParticipantSummaryPublic]
    count: int


class ConsentCreate(BaseModel):
    """A signed consent form."""

    consent_type: ConsentType
    version: Code
    status: Literal["submitted", "no", "not_sure", "invalid"]
    authored: Day
    document_sha256: Sha256
    signer: Code = "participant"


class ConsentPublic(_Out):
    """A stored consent form."""

    consent_id: int
    participant_id: str
    consent_type: str
    version: str
    status: str
    signer: str
    authored_date: date
    document_sha256: str


class ConsentList(_Out):
    """A participant's consent history, oldest first."""

    data: list[ConsentPublic]
    count: int


class SurveyCreate(BaseModel):
    """A completed survey module."""

    module: Annotated[Text, StringConstraints(min_length=1, max_length=100)]
    authored: Day


class SurveyPublic(_Out):
    """A stored survey completion."""

    survey_completion_id: int
    participant_id: str
    module: str
    authored_date: date


class PhysicalMeasurementCreate(BaseModel):
    """One visit's physical measurements (means of the protocol's readings)."""

    measured: Day
    height_cm: float | None = _reading(0, 300)
    weight_kg: float | None = _reading(0, 700)
    waist_cm: float | None = _reading(0, 400)
    hip_cm: float | None = _reading(0, 400)
    systolic_bp: float | None = _reading(0, 400)
    diastolic_bp: float | None = _reading(0, 300)
    heart_rate: float | None = _reading(0, 400)


class PhysicalMeasurementPublic(_Out):
    """Stored physical measurements."""

    physical_measurement_id: int
    participant_id: str
    measured_date: date
    height_cm: float | None
    weight_kg: float | None
    waist_cm: float | None
    hip_cm: float | None
    systolic_bp: float | None
    diastolic_bp: float | None
    heart_rate: float | None


class SampleCreate(BaseModel):
    """One ordered tube or kit."""

    sample_id: Code
    test_code: Code
    received_date: Day | None = None


class BiospecimenOrderCreate(BaseModel):
    """A biospecimen order, the dates of its steps so far, and its samples."""

    order_id: Code
    collection_method: Code
    created_date: Day
    collected_date: Day | None = None
    processed_date: Day | None = None
    finalized_date: Day | None = None
    samples: list[SampleCreate] = Field(min_length=1, max_length=50)


class SamplePublic(_Out):
    """A stored sample."""

    sample_id: str
    order_id: str
    participant_id: str
    test_code: str
    received_date: date | None


class BiospecimenOrderPublic(_Out):
    """A stored biospecimen order with its samples."""

    order_id: str
    participant_id: str
    collection_method: str
    created_date: date
    collected_date: date | None
    processed_date: date | None
    finalized_date: date | None
    samples: list[SamplePublic]


class WithdrawalCreate(BaseModel):
    """A withdrawal request (no_use, early_out) or a reinstatement (not_withdrawn)."""

    status: WithdrawalStatus
    authored: Day
    reason: Text = ""


class SuspensionCreate(BaseModel):
    """Suspend contact (no_contact) or lift the suspension (not_suspended)."""

    status: Literal["no_contact", "not_suspended"]
    day: Day


class SuspensionPublic(_Out):
    """A stored suspension event."""

    suspension_event_id: int
    participant_id: str
    status: str
    event_date: date


class GenomicEventCreate(BaseModel):
    """The next step of a sample's sequencing workflow."""

    state: GenomicState
    day: Day
    detail: Text = ""


class GenomicStepPublic(_Out):
    """The state a sample moved to, and from which."""

    sample_id: str
    participant_id: str
    state: str
    since: date
    previous: str | None


class GenomicHistoryItem(_Out):
    """One step of a sample's workflow."""

    state: str
    day: date


class GenomicStatePublic(_Out):
    """A sample's genomic workflow state and its steps."""

    sample_id: str
    participant_id: str
    state: str | None
    since: date | None
    reason: str
    history: list[GenomicHistoryItem]


class TargetRowPublic(_Out):
    """How one category of a targeted attribute is met (shares None where undefined)."""

    attribute: str
    category: str
    target: float | None
    at_least: bool
    count_before: int
    share_before: float | None
    count_selected: int
    share_selected: float | None
    count_after: int
    share_after: float | None
    met: bool | None


class SequencingPlanPublic(_Out):
    """Whom to sequence next, in pick order, and how the diversity targets are met."""

    as_of: date
    capacity: int
    pool: int
    without_sample: int
    participant_ids: list[str]
    deficit_before: float
    deficit_after: float
    report: list[TargetRowPublic]


class ManifestCreate(BaseModel):
    """Participants to send for sequencing (e.g. a plan's), all or nothing."""

    participant_ids: list[ParticipantId] = Field(min_length=1, max_length=50_000)
    day: Day


class ManifestRowPublic(_Out):
    """One sample sent for sequencing."""

    sample_id: str
    biobank_id: str
    test_code: str
    sex_at_birth: str
    sent_date: date
    participant_id: str


class ManifestPublic(_Out):
    """The manifest sent: one row per participant."""

    data: list[ManifestRowPublic]
    count: int


class CountsPublic(_Out):
    """Participants counted by enrolment status, site, consent, withdrawal and UBR category."""

    as_of: date
    participants: int
    enrolment: dict[str, int]
    site: dict[str, int]
    consent: dict[str, dict[str, int]]
    withdrawal: dict[str, int]
    ubr: dict[str, int]
    genomic_eligible: int


class AuditReportPublic(_Out):
    """Result of checking the audit log's hash chain."""

    rows: int
    ok: bool
    broken_id: int | None
    problem: str
    last_sha256: str


class ErrorPublic(BaseModel):
    """The body of every error: a stable code, a message, the field path and extra facts."""

    code: str
    message: str
    loc: list[str | int] | None
    detail: Any
