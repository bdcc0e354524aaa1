"""Tests of the pure status functions."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opencohort.registry.status import (
    COHORT_3_START,
    GENOMIC_TRANSITIONS,
    Applicant,
    ConsentEvent,
    ConsentStatus,
    ConsentType,
    EnrolmentFacts,
    EnrolmentStatus,
    GenomicFacts,
    GenomicState,
    SampleState,
    TransitionError,
    UbrAnswers,
    UbrCategory,
    WithdrawalEvent,
    WithdrawalStatus,
    age_on,
    consent_state,
    enrolment_eligibility,
    enrolment_status,
    first_submitted,
    genomic_eligibility,
    genomic_state,
    genomic_transition,
    sample_state,
    sample_transition,
    ubr_categories,
    withdrawal_state,
    withdrawal_transition,
)

D = date(2019, 1, 1)
LATE = date(2030, 1, 1)
FACT_NAMES = [
    "primary_consent",
    "ehr_consent",
    "gror_consent",
    "basics",
    "lifestyle",
    "overall_health",
    "dna_received",
    "physical_measurements",
]
days = st.dates(min_value=date(2017, 1, 1), max_value=date(2025, 12, 31))
maybe_days = st.none() | days
facts_strategy = st.builds(
    EnrolmentFacts,
    **{name: maybe_days for name in FACT_NAMES},
    pediatric=st.booleans(),
    guardian_linked=st.booleans(),
)


def _full(day: date = D) -> EnrolmentFacts:
    return EnrolmentFacts(**{name: day for name in FACT_NAMES})


def test_enrolment_status__ladder() -> None:
    cases = [
        ({}, EnrolmentStatus.REGISTERED),
        ({"primary_consent": D}, EnrolmentStatus.PARTICIPANT),
        ({"primary_consent": D, "ehr_consent": D}, EnrolmentStatus.PARTICIPANT_PLUS_EHR),
        ({"primary_consent": D, "ehr_consent": D, "basics": D}, EnrolmentStatus.ENROLLED),
        ({"primary_consent": D, "basics": D}, EnrolmentStatus.PARTICIPANT),
    ]
    for given_facts, expected in cases:
        assert enrolment_status(EnrolmentFacts(**given_facts), as_of=LATE).value == expected
    core_minus = replace(_full(), physical_measurements=None)
    assert enrolment_status(core_minus, as_of=LATE).value == EnrolmentStatus.CORE_MINUS_PM
    assert enrolment_status(_full(), as_of=LATE).value == EnrolmentStatus.CORE


def test_enrolment_status__reason_names_missing_fact() -> None:
    facts = replace(_full(), dna_received=None, physical_measurements=None)
    decision = enrolment_status(facts, as_of=LATE)
    assert decision.value == EnrolmentStatus.ENROLLED
    assert "dna received" in decision.reason


def test_enrolment_status__since_is_latest_fact() -> None:
    facts = replace(_full(), basics=D + timedelta(days=30))
    decision = enrolment_status(facts, as_of=LATE)
    assert decision.since == D + timedelta(days=30)
    assert enrolment_status(facts, as_of=D).value == EnrolmentStatus.PARTICIPANT_PLUS_EHR


def test_enrolment_status__cohort3_adults_need_gror() -> None:
    facts = replace(_full(COHORT_3_START), gror_consent=None)
    assert enrolment_status(facts, as_of=LATE).value == EnrolmentStatus.ENROLLED
    assert enrolment_status(replace(facts, pediatric=True), as_of=LATE).value == (
        EnrolmentStatus.CORE
    )
    assert enrolment_status(replace(facts, primary_consent=D), as_of=LATE).value == (
        EnrolmentStatus.CORE
    )


def test_enrolment_status__pediatric_without_guardian() -> None:
    facts = replace(_full(), pediatric=True, guardian_linked=False)
    decision = enrolment_status(facts, as_of=LATE)
    assert decision.value == EnrolmentStatus.REGISTERED
    assert "guardian" in decision.reason


@given(facts_strategy, st.sampled_from(FACT_NAMES), days)
def test_enrolment_status__adding_a_fact_never_regresses(facts, name, day) -> None:
    before = enrolment_status(facts, as_of=LATE).value
    current = getattr(facts, name)
    earlier = day if current is None else min(day, current)
    after = enrolment_status(replace(facts, **{name: earlier}), as_of=LATE).value
    assert after >= before


@given(facts_strategy, days, days)
def test_enrolment_status__never_regresses_with_time(facts, a, b) -> None:
    early, late = sorted((a, b))
    assert enrolment_status(facts, as_of=early).value <= enrolment_status(facts, as_of=late).value


def test_age_on__birthday_boundary() -> None:
    assert age_on(date(2000, 3, 15), date(2018, 3, 14)) == 17
    assert age_on(date(2000, 3, 15), date(2018, 3, 15)) == 18
    assert age_on(date(2000, 2, 29), date(2018, 2, 28)) == 17


def test_enrolment_eligibility__adult() -> None:
    result = enrolment_eligibility(Applicant(birth_date=date(1980, 1, 1)), as_of=D)
    assert result.eligible and result.reasons == () and result.reason == "eligible"


def test_enrolment_eligibility__minor_needs_consenting_guardian() -> None:
    minor = Applicant(birth_date=date(2004, 6, 1))
    assert "no guardian is linked" in enrolment_eligibility(minor, as_of=D).reason
    linked = replace(minor, guardian_linked=True)
    assert "guardian has not consented" in enrolment_eligibility(linked, as_of=D).reason
    assert enrolment_eligibility(replace(linked, guardian_consented=True), as_of=D).eligible


def test_enrolment_eligibility__every_reason_listed() -> None:
    applicant = Applicant(
        birth_date=date(2010, 1, 1),
        lives_in_us=False,
        incarcerated=True,
        able_to_consent=False,
        guardian_linked=True,
        guardian_consented=True,
    )
    result = enrolment_eligibility(applicant, as_of=D)
    assert not result.eligible
    assert result.reasons == (
        "age 9 is under the minimum age 13",
        "does not live in the United States",
        "is incarcerated",
        "is not able to consent",
    )


def _consent(kind, status, day, version="v1") -> ConsentEvent:
    return ConsentEvent(ConsentType(kind), version, ConsentStatus(status), day)


def test_consent_state__latest_authored_wins() -> None:
    history = [
        _consent("ehr", "submitted", D),
        _consent("ehr", "no", D + timedelta(days=10), "v2"),
        _consent("primary", "submitted", D),
    ]
    assert consent_state(history, ConsentType.EHR, as_of=LATE).value == ConsentStatus.NO
    assert consent_state(history, ConsentType.EHR, as_of=D).value == ConsentStatus.SUBMITTED
    assert consent_state(history, ConsentType.GROR, as_of=LATE).value == ConsentStatus.UNSET
    assert "v2 no" in consent_state(history, ConsentType.EHR, as_of=LATE).reason
    assert first_submitted(history, ConsentType.EHR, as_of=LATE) == D


consent_events = st.builds(
    ConsentEvent,
    st.sampled_from(ConsentType),
    st.sampled_from(["v1", "v2"]),
    st.sampled_from([s for s in ConsentStatus if s != ConsentStatus.UNSET]),
    days,
)


@given(st.lists(consent_events, max_size=8), st.randoms(use_true_random=False))
def test_consent_state__independent_of_storage_order(history, rand) -> None:
    shuffled = list(history)
    rand.shuffle(shuffled)
    for kind in ConsentType:
        assert consent_state(history, kind, as_of=LATE) == consent_state(shuffled, kind, as_of=LATE)


def test_withdrawal_transition__no_use_is_irreversible() -> None:
    assert withdrawal_transition(WithdrawalStatus.EARLY_OUT, WithdrawalStatus.NOT_WITHDRAWN) == (
        WithdrawalStatus.NOT_WITHDRAWN
    )
    with pytest.raises(TransitionError, match="no_use is irreversible"):
        withdrawal_transition(WithdrawalStatus.NO_USE, WithdrawalStatus.NOT_WITHDRAWN)


withdrawal_events = st.builds(WithdrawalEvent, st.sampled_from(WithdrawalStatus), days, st.just(""))


@given(st.lists(withdrawal_events, max_size=6), days, st.lists(withdrawal_events, max_size=6))
def test_withdrawal_state__no_use_is_absorbing(before, day, after) -> None:
    later = [replace(e, authored=max(e.authored, day)) for e in after]
    events = [*before, WithdrawalEvent(WithdrawalStatus.NO_USE, day, "asked"), *later]
    assert withdrawal_state(events, as_of=LATE).value == WithdrawalStatus.NO_USE


def test_withdrawal_state__early_out_then_reinstated() -> None:
    events = [
        WithdrawalEvent(WithdrawalStatus.EARLY_OUT, D, "moved"),
        WithdrawalEvent(WithdrawalStatus.NOT_WITHDRAWN, D + timedelta(days=5)),
    ]
    assert withdrawal_state(events, as_of=D).value == WithdrawalStatus.EARLY_OUT
    assert "moved" in withdrawal_state(events, as_of=D).reason
    assert withdrawal_state(events, as_of=LATE).value == WithdrawalStatus.NOT_WITHDRAWN
    assert withdrawal_state([], as_of=LATE).value == WithdrawalStatus.NOT_WITHDRAWN


def test_genomic_eligibility__all_reasons() -> None:
    ok = GenomicFacts(
        ConsentStatus.SUBMITTED, ConsentStatus.SUBMITTED, D, WithdrawalStatus.NOT_WITHDRAWN
    )
    assert genomic_eligibility(ok, as_of=D).eligible
    bad = GenomicFacts(ConsentStatus.SUBMITTED, ConsentStatus.NO, None, WithdrawalStatus.NO_USE)
    result = genomic_eligibility(bad, as_of=D)
    assert result.reasons == (
        "genomic (gror) consent is no",
        "no DNA sample received",
        "withdrawn (no_use)",
    )
    assert not genomic_eligibility(ok, as_of=D - timedelta(days=1)).eligible


def test_genomic_transition__happy_path_and_illegal() -> None:
    state = None
    for new in ["eligible", "manifest_sent", "received", "sequenced", "qc_passed", "in_release"]:
        state = genomic_transition(state, GenomicState(new))
    assert state == GenomicState.IN_RELEASE
    with pytest.raises(TransitionError, match="from qc_failed to in_release.*final state"):
        genomic_transition(GenomicState.QC_FAILED, GenomicState.IN_RELEASE)
    with pytest.raises(TransitionError, match="allowed next: received"):
        genomic_transition(GenomicState.MANIFEST_SENT, GenomicState.SEQUENCED)


@given(st.lists(st.sampled_from(GenomicState), max_size=8))
def test_genomic_state__replay_is_legal_or_raises(states) -> None:
    events = [(s, D + timedelta(days=i)) for i, s in enumerate(states)]
    legal = all(b in GENOMIC_TRANSITIONS[a] for a, b in zip([None, *states], states, strict=False))
    if legal:
        decision = genomic_state(events, as_of=LATE)
        assert decision.value == (states[-1] if states else None)
    else:
        with pytest.raises(TransitionError):
            genomic_state(events, as_of=LATE)


def test_sample_state__same_day_steps_in_order() -> None:
    steps = [
        (SampleState.FINALIZED, D),
        (SampleState.CREATED, D),
        (SampleState.PROCESSED, D),
        (SampleState.COLLECTED, D),
        (SampleState.RECEIVED, D + timedelta(days=3)),
    ]
    assert sample_state(steps, as_of=D).value == SampleState.FINALIZED
    assert sample_state(steps, as_of=LATE).value == SampleState.RECEIVED
    with pytest.raises(TransitionError, match="from disposed to received"):
        sample_transition(SampleState.DISPOSED, SampleState.RECEIVED)


def test_ubr_categories__each_category() -> None:
    base = UbrAnswers(birth_date=date(1980, 1, 1), race_ethnicity="white", sex_at_birth="female",
                      gender_identity="woman", sexual_orientation="straight", income="gt_200k",
                      education="college")  # fmt: skip
    assert ubr_categories(base, as_of=D).value == frozenset()
    cases = {
        "race_ethnicity": (replace(base, race_ethnicity="multiple"), UbrCategory.RACE_ETHNICITY),
        "age": (replace(base, birth_date=date(1950, 1, 1)), UbrCategory.AGE),
        "orientation": (replace(base, sexual_orientation="bisexual"),
                        UbrCategory.SEXUAL_GENDER_MINORITY),
        "mismatch": (replace(base, gender_identity="man"), UbrCategory.SEXUAL_GENDER_MINORITY),
        "income": (replace(base, income="10k_25k"), UbrCategory.INCOME),
        "education": (replace(base, education="less_than_high_school"), UbrCategory.EDUCATION),
        "rural": (replace(base, rural=True), UbrCategory.RURAL),
        "disability": (replace(base, disability=True), UbrCategory.DISABILITY),
        "access": (replace(base, limited_access_to_care=True), UbrCategory.ACCESS_TO_CARE),
    }  # fmt: skip
    for name, (answers, category) in cases.items():
        assert ubr_categories(answers, as_of=D).value == {category}, name


def test_ubr_categories__skips_are_not_ubr() -> None:
    answers = UbrAnswers(birth_date=None)
    decision = ubr_categories(answers, as_of=D)
    assert decision.value == frozenset() and decision.reason == "no UBR category"
