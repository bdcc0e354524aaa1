"""Statuses as pure functions of a participant's dated facts.

Each function takes facts and the as-of date and returns a status together with the reason
that decided it. Nothing here touches a database, reads the clock or logs: the registry
stores facts and calls these functions whenever it needs a status (STYLE.md §5).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from enum import IntEnum, StrEnum
from typing import Generic, TypeVar

from opencohort.errors import OpencohortError

T = TypeVar("T")

#: First primary-consent day of cohort 3; its adults need GROR consent to become core.
COHORT_3_START = date(2020, 4, 21)
ADULT_AGE = 18
MIN_AGE = 13
#: Income answers counted as low income for UBR (household income below $35,000).
LOW_INCOME = frozenset({"lt_10k", "10k_25k", "25k_35k"})
#: Education answers counted as low education for UBR.
LOW_EDUCATION = frozenset({"less_than_high_school"})
ELDERLY_AGE = 65


class TransitionError(OpencohortError):
    """A status change the state machine forbids; follow the allowed transitions it names."""


@dataclass(frozen=True)
class Decision(Generic[T]):
    """A derived status and the reason that decided it."""

    value: T
    reason: str
    since: date | None = None


@dataclass(frozen=True)
class Eligibility:
    """Whether a check passed, and every reason it did not (empty when eligible)."""

    eligible: bool
    reasons: tuple[str, ...]

    @property
    def reason(self) -> str:
        """All reasons as one sentence, or "eligible"."""
        return "; ".join(self.reasons) if self.reasons else "eligible"


def age_on(birth_date: date, day: date) -> int:
    """Return the age in whole years on `day` of someone born on `birth_date`."""
    before_birthday = (day.month, day.day) < (birth_date.month, birth_date.day)
    return day.year - birth_date.year - int(before_birthday)


def _on_or_before(day: date | None, as_of: date) -> date | None:
    return day if day is not None and day <= as_of else None


# --- enrolment -------------------------------------------------------------------------------


class EnrolmentStatus(IntEnum):
    """Enrolment levels in increasing order (the reference program's V3.2 statuses)."""

    REGISTERED = 0
    PARTICIPANT = 1
    PARTICIPANT_PLUS_EHR = 2
    ENROLLED = 3
    CORE_MINUS_PM = 4
    CORE = 5

    @property
    def label(self) -> str:
        """Lower-case name used in storage, summaries and JSON."""
        return self.name.lower()


@dataclass(frozen=True)
class EnrolmentFacts:
    """Dates on which each enrolment fact first happened (None when it has not).

    Consent dates are the first *submitted* (yes) consent of that type; later refusals do not
    undo an enrolment level, as in the reference program.
    """

    primary_consent: date | None = None
    ehr_consent: date | None = None
    gror_consent: date | None = None
    basics: date | None = None
    lifestyle: date | None = None
    overall_health: date | None = None
    dna_received: date | None = None
    physical_measurements: date | None = None
    pediatric: bool = False
    guardian_linked: bool = True


def enrolment_status(
    facts: EnrolmentFacts, *, as_of: date, gror_required_from: date | None = COHORT_3_START
) -> Decision[EnrolmentStatus]:
    """Return the enrolment status on `as_of` and the fact that decided it.

    Parameters
    ----------
    facts
        First dates of each consent, survey, sample and measurement.
    as_of
        Only facts dated on or before this day count.
    gror_required_from
        Adults whose primary consent is on or after this day (cohort 3) need GROR consent to
        reach core minus PM; None never requires it.

    Returns
    -------
    Decision[EnrolmentStatus]
        The highest level reached, the reason (the missing fact that stops the next level, or
        the last fact that completed this one) and the day the level was reached.

    Notes
    -----
    Levels are nested, each the latest of its facts' dates:

    1. participant: primary consent;
    2. participant + EHR: and EHR consent;
    3. enrolled: and The Basics;
    4. core minus PM: and Overall Health, Lifestyle, a DNA sample received by the biobank,
       and GROR consent for cohort-3 adults;
    5. core: and physical measurements.

    Pediatric participants without a linked guardian get no status beyond registered.
    Differs from the reference program in skipping PMB_ELIGIBLE (a mail-kit gate, not an
    enrolment level) and in counting pediatric Lifestyle only (no environmental exposures).
    """
    if facts.pediatric and not facts.guardian_linked:
        return Decision(EnrolmentStatus.REGISTERED, "pediatric participant without a guardian")
    seen = {
        name: _on_or_before(getattr(facts, name), as_of)
        for name in (
            "primary_consent",
            "ehr_consent",
            "gror_consent",
            "basics",
            "lifestyle",
            "overall_health",
            "dna_received",
            "physical_measurements",
        )
    }
    core_needs = ["overall_health", "lifestyle", "dna_received"]
    primary = seen["primary_consent"]
    if (
        gror_required_from is not None
        and not facts.pediatric
        and primary is not None
        and primary >= gror_required_from
    ):
        core_needs.append("gror_consent")
    ladder = [
        (EnrolmentStatus.PARTICIPANT, ["primary_consent"]),
        (EnrolmentStatus.PARTICIPANT_PLUS_EHR, ["ehr_consent"]),
        (EnrolmentStatus.ENROLLED, ["basics"]),
        (EnrolmentStatus.CORE_MINUS_PM, core_needs),
        (EnrolmentStatus.CORE, ["physical_measurements"]),
    ]
    status, since, reason = EnrolmentStatus.REGISTERED, None, "no primary consent"
    for level, needs in ladder:
        missing = [name for name in needs if seen[name] is None]
        if missing:
            reason = f"{status.label}: missing {', '.join(n.replace('_', ' ') for n in missing)}"
            return Decision(status, reason, since)
        last = max(needs, key=lambda name: seen[name])
        since = max(since, seen[last]) if since else seen[last]
        status = level
    return Decision(
        status, f"core: physical measurements on {seen['physical_measurements']}", since
    )


# --- eligibility -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Applicant:
    """What the registry knows about someone asking to enrol."""

    birth_date: date
    lives_in_us: bool = True
    incarcerated: bool = False
    able_to_consent: bool = True
    guardian_linked: bool = False
    guardian_consented: bool = False


def enrolment_eligibility(
    applicant: Applicant, *, as_of: date, adult_age: int = ADULT_AGE, min_age: int = MIN_AGE
) -> Eligibility:
    """Return whether `applicant` may enrol on `as_of`, with every reason they may not.

    Parameters
    ----------
    applicant
        Birth date, residence and the other conditions of enrolment.
    as_of
        The enrolment day (age is counted on it).
    adult_age
        Age from which no guardian is needed.
    min_age
        Youngest age allowed with a linked, consenting guardian.

    Returns
    -------
    Eligibility
        Eligible, or not with each failed condition spelled out.
    """
    reasons = []
    age = age_on(applicant.birth_date, as_of)
    if age < min_age:
        reasons.append(f"age {age} is under the minimum age {min_age}")
    elif age < adult_age:
        if not applicant.guardian_linked:
            reasons.append(f"age {age} is under {adult_age} and no guardian is linked")
        elif not applicant.guardian_consented:
            reasons.append(f"age {age} is under {adult_age} and the guardian has not consented")
    if not applicant.lives_in_us:
        reasons.append("does not live in the United States")
    if applicant.incarcerated:
        reasons.append("is incarcerated")
    if not applicant.able_to_consent:
        reasons.append("is not able to consent")
    return Eligibility(not reasons, tuple(reasons))


# --- consent ---------------------------------------------------------------------------------


class ConsentType(StrEnum):
    """Kinds of consent a participant gives (re-consents reuse the type with a new version)."""

    PRIMARY = "primary"
    EHR = "ehr"
    GROR = "gror"
    WEARABLES = "wearables"


class ConsentStatus(StrEnum):
    """Answer recorded on a consent form; UNSET when there is none."""

    UNSET = "unset"
    SUBMITTED = "submitted"
    NO = "no"
    NOT_SURE = "not_sure"
    INVALID = "invalid"


@dataclass(frozen=True)
class ConsentEvent:
    """One signed consent form, as stored in the never-overwritten consent history."""

    consent_type: ConsentType
    version: str
    status: ConsentStatus
    authored: date


def consent_state(
    history: Iterable[ConsentEvent], consent_type: ConsentType, *, as_of: date
) -> Decision[ConsentStatus]:
    """Return the current answer to one consent type: the latest authored form wins.

    Parameters
    ----------
    history
        Consent forms of one participant, in any order.
    consent_type
        The consent asked about.
    as_of
        Forms authored after this day are ignored.

    Returns
    -------
    Decision[ConsentStatus]
        The status of the latest form (UNSET if none), naming its version and date. Among forms
        authored the same day, a refusal or invalid form beats a submission, so that the
        answer never depends on storage order.
    """
    forms = [e for e in history if e.consent_type == consent_type and e.authored <= as_of]
    if not forms:
        return Decision(ConsentStatus.UNSET, f"no {consent_type.value} consent form")
    rank = {ConsentStatus.SUBMITTED: 0, ConsentStatus.NOT_SURE: 1, ConsentStatus.NO: 2}
    latest = max(forms, key=lambda e: (e.authored, rank.get(e.status, 3), e.version))
    return Decision(
        latest.status,
        f"{consent_type.value} consent {latest.version} {latest.status.value} on {latest.authored}",
        latest.authored,
    )


def first_submitted(
    history: Iterable[ConsentEvent], consent_type: ConsentType, *, as_of: date
) -> date | None:
    """Return the first day a form of `consent_type` was submitted (yes), or None."""
    days = [
        e.authored
        for e in history
        if e.consent_type == consent_type
        and e.status == ConsentStatus.SUBMITTED
        and e.authored <= as_of
    ]
    return min(days, default=None)


# --- withdrawal ------------------------------------------------------------------------------


class WithdrawalStatus(StrEnum):
    """Withdrawal state; NO_USE (data leave every later release) is irreversible."""

    NOT_WITHDRAWN = "not_withdrawn"
    NO_USE = "no_use"
    EARLY_OUT = "early_out"


@dataclass(frozen=True)
class WithdrawalEvent:
    """A request changing a participant's withdrawal status."""

    status: WithdrawalStatus
    authored: date
    reason: str = ""


def withdrawal_transition(current: WithdrawalStatus, new: WithdrawalStatus) -> WithdrawalStatus:
    """Return the status after asking to move from `current` to `new`.

    Raises
    ------
    TransitionError
        If `current` is NO_USE and `new` is anything else: no-use cannot be reverted.
    """
    if current == WithdrawalStatus.NO_USE and new != WithdrawalStatus.NO_USE:
        raise TransitionError(
            f"withdrawal status no_use is irreversible; cannot change it to {new.value}"
        )
    return new


def withdrawal_state(
    events: Iterable[WithdrawalEvent], *, as_of: date
) -> Decision[WithdrawalStatus]:
    """Return the withdrawal status on `as_of`, replaying events by authored date.

    A NO_USE event is absorbing: later events never revert it (they are ignored here; the
    registry refuses to store them).
    """
    status, decided = WithdrawalStatus.NOT_WITHDRAWN, None
    ordered = sorted(
        (e for e in events if e.authored <= as_of),
        key=lambda e: (e.authored, e.status == WithdrawalStatus.NO_USE),
    )
    for event in ordered:
        if status == WithdrawalStatus.NO_USE:
            break
        status, decided = event.status, event
    if decided is None:
        return Decision(WithdrawalStatus.NOT_WITHDRAWN, "no withdrawal request")
    why = f" ({decided.reason})" if decided.reason else ""
    return Decision(
        status, f"{status.value} requested on {decided.authored}{why}", decided.authored
    )


# --- genomics --------------------------------------------------------------------------------


class GenomicState(StrEnum):
    """Where a sample is in the sequencing workflow."""

    ELIGIBLE = "eligible"
    MANIFEST_SENT = "manifest_sent"
    RECEIVED = "received"
    SEQUENCED = "sequenced"
    QC_PASSED = "qc_passed"
    QC_FAILED = "qc_failed"
    IN_RELEASE = "in_release"


#: Allowed next states; None is the start. A sample can enter several releases.
GENOMIC_TRANSITIONS: Mapping[GenomicState | None, frozenset[GenomicState]] = {
    None: frozenset({GenomicState.ELIGIBLE}),
    GenomicState.ELIGIBLE: frozenset({GenomicState.MANIFEST_SENT}),
    GenomicState.MANIFEST_SENT: frozenset({GenomicState.RECEIVED}),
    GenomicState.RECEIVED: frozenset({GenomicState.SEQUENCED}),
    GenomicState.SEQUENCED: frozenset({GenomicState.QC_PASSED, GenomicState.QC_FAILED}),
    GenomicState.QC_PASSED: frozenset({GenomicState.IN_RELEASE}),
    GenomicState.QC_FAILED: frozenset(),
    GenomicState.IN_RELEASE: frozenset({GenomicState.IN_RELEASE}),
}


@dataclass(frozen=True)
class GenomicFacts:
    """Facts deciding whether a participant's DNA may be sequenced."""

    primary_consent: ConsentStatus
    gror_consent: ConsentStatus
    dna_received: date | None
    withdrawal: WithdrawalStatus


def genomic_eligibility(facts: GenomicFacts, *, as_of: date) -> Eligibility:
    """Return whether a participant may be sequenced on `as_of`, with every reason not.

    Eligible needs primary consent and GROR consent currently submitted, a DNA-bearing sample
    received by the biobank on or before `as_of`, and no withdrawal.
    """
    reasons = []
    if facts.primary_consent != ConsentStatus.SUBMITTED:
        reasons.append(f"primary consent is {facts.primary_consent.value}")
    if facts.gror_consent != ConsentStatus.SUBMITTED:
        reasons.append(f"genomic (gror) consent is {facts.gror_consent.value}")
    if _on_or_before(facts.dna_received, as_of) is None:
        reasons.append("no DNA sample received")
    if facts.withdrawal != WithdrawalStatus.NOT_WITHDRAWN:
        reasons.append(f"withdrawn ({facts.withdrawal.value})")
    return Eligibility(not reasons, tuple(reasons))


def _step(table: Mapping, current: StrEnum | None, new: StrEnum, what: str):
    """Return `new` if `table` lets `what` move from `current` to it, else raise TransitionError."""
    if new in table[current]:
        return new
    names = sorted(s.value for s in table[current])
    start = current.value if current else "(no state)"
    raise TransitionError(
        f"{what} cannot go from {start} to {new.value}; "
        f"allowed next: {', '.join(names) if names else 'nothing (final state)'}"
    )


def genomic_transition(current: GenomicState | None, new: GenomicState) -> GenomicState:
    """Return `new` if a sample in `current` may move to it.

    Raises
    ------
    TransitionError
        If the workflow does not allow the move; the message lists the allowed next states.
    """
    return _step(GENOMIC_TRANSITIONS, current, new, "genomic workflow")


def genomic_state(
    events: Iterable[tuple[GenomicState, date]], *, as_of: date
) -> Decision[GenomicState | None]:
    """Replay a sample's workflow events (in date order, stable) up to `as_of`.

    Raises
    ------
    TransitionError
        If the events contain an illegal move.
    """
    state: GenomicState | None = None
    since = None
    for new, day in sorted((e for e in events if e[1] <= as_of), key=lambda e: e[1]):
        state, since = genomic_transition(state, new), day
    if state is None:
        return Decision(None, "no genomic workflow events")
    return Decision(state, f"{state.value} on {since}", since)


# --- biospecimens ----------------------------------------------------------------------------


class SampleState(StrEnum):
    """Life of an ordered biospecimen: order steps, then the biobank's sample statuses."""

    CREATED = "created"
    COLLECTED = "collected"
    PROCESSED = "processed"
    FINALIZED = "finalized"
    RECEIVED = "received"
    QUALITY_ISSUE = "quality_issue"
    DISPOSED = "disposed"


SAMPLE_TRANSITIONS: Mapping[SampleState | None, frozenset[SampleState]] = {
    None: frozenset({SampleState.CREATED}),
    SampleState.CREATED: frozenset({SampleState.COLLECTED}),
    SampleState.COLLECTED: frozenset({SampleState.PROCESSED}),
    SampleState.PROCESSED: frozenset({SampleState.FINALIZED}),
    SampleState.FINALIZED: frozenset({SampleState.RECEIVED}),
    SampleState.RECEIVED: frozenset({SampleState.QUALITY_ISSUE, SampleState.DISPOSED}),
    SampleState.QUALITY_ISSUE: frozenset({SampleState.DISPOSED}),
    SampleState.DISPOSED: frozenset(),
}


def sample_transition(current: SampleState | None, new: SampleState) -> SampleState:
    """Return `new` if a sample in `current` may move to it.

    Raises
    ------
    TransitionError
        If the move is not allowed; the message lists the allowed next states.
    """
    return _step(SAMPLE_TRANSITIONS, current, new, "sample")


def sample_state(
    events: Iterable[tuple[SampleState, date]], *, as_of: date
) -> Decision[SampleState | None]:
    """Replay a sample's dated steps up to `as_of`; same-day steps apply in workflow order.

    Raises
    ------
    TransitionError
        If the steps contain an illegal move.
    """
    order = {state: i for i, state in enumerate(SampleState)}
    state: SampleState | None = None
    since = None
    steps = sorted((e for e in events if e[1] <= as_of), key=lambda e: (e[1], order[e[0]]))
    for new, day in steps:
        state, since = sample_transition(state, new), day
    if state is None:
        return Decision(None, "no sample events")
    return Decision(state, f"{state.value} on {since}", since)


# --- diversity -------------------------------------------------------------------------------


class UbrCategory(StrEnum):
    """Underrepresented-in-biomedical-research categories."""

    RACE_ETHNICITY = "race_ethnicity"
    AGE = "age"
    SEXUAL_GENDER_MINORITY = "sexual_gender_minority"
    INCOME = "income"
    EDUCATION = "education"
    RURAL = "rural"
    DISABILITY = "disability"
    ACCESS_TO_CARE = "access_to_care"


@dataclass(frozen=True)
class UbrAnswers:
    """The Basics answers and derived facts used for UBR (answer codes as in the feed)."""

    birth_date: date | None
    race_ethnicity: str = "skip"
    sex_at_birth: str = "skip"
    gender_identity: str = "skip"
    sexual_orientation: str = "skip"
    income: str = "skip"
    education: str = "skip"
    rural: bool = False
    disability: bool = False
    limited_access_to_care: bool = False


_CISGENDER = {("female", "woman"), ("male", "man")}


def ubr_categories(answers: UbrAnswers, *, as_of: date) -> Decision[frozenset[UbrCategory]]:
    """Return the UBR categories a participant belongs to, with the answers that decided them.

    Parameters
    ----------
    answers
        Survey answers; "skip" never makes anyone UBR.
    as_of
        Day on which age is counted (the registry uses the sign-up day).

    Notes
    -----
    1. race/ethnicity: any answer other than white alone (skip excluded);
    2. age: 65 or older;
    3. sexual and gender minority: orientation other than straight, gender identity other than
       woman/man, a gender not matching sex at birth, or intersex;
    4. income: household income under $35,000; 5. education: less than high school;
    6. rural ZIP; 7. disability; 8. limited access to care.
    """
    found: dict[UbrCategory, str] = {}
    a = answers
    if a.race_ethnicity not in ("white", "skip"):
        found[UbrCategory.RACE_ETHNICITY] = f"race/ethnicity {a.race_ethnicity}"
    if a.birth_date is not None and (age := age_on(a.birth_date, as_of)) >= ELDERLY_AGE:
        found[UbrCategory.AGE] = f"age {age}"
    sgm = []
    if a.sexual_orientation not in ("straight", "skip"):
        sgm.append(f"orientation {a.sexual_orientation}")
    if a.gender_identity not in ("woman", "man", "skip"):
        sgm.append(f"gender {a.gender_identity}")
    elif (
        a.gender_identity != "skip"
        and a.sex_at_birth in ("female", "male")
        and (a.sex_at_birth, a.gender_identity) not in _CISGENDER
    ):
        sgm.append(f"gender {a.gender_identity} with sex at birth {a.sex_at_birth}")
    if a.sex_at_birth == "intersex":
        sgm.append("intersex")
    if sgm:
        found[UbrCategory.SEXUAL_GENDER_MINORITY] = ", ".join(sgm)
    if a.income in LOW_INCOME:
        found[UbrCategory.INCOME] = f"income {a.income}"
    if a.education in LOW_EDUCATION:
        found[UbrCategory.EDUCATION] = f"education {a.education}"
    if a.rural:
        found[UbrCategory.RURAL] = "rural ZIP"
    if a.disability:
        found[UbrCategory.DISABILITY] = "disability"
    if a.limited_access_to_care:
        found[UbrCategory.ACCESS_TO_CARE] = "limited access to care"
    reason = "; ".join(found.values()) if found else "no UBR category"
    return Decision(frozenset(found), reason)
