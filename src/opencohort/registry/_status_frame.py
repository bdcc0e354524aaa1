"""Every participant's statuses on one day, derived set-wise (one frame, no per-person objects).

Values equal those of ``_facts.derive`` (the pure functions in ``status`` stay the source of
truth; the tests compare both on random facts). Reasons are not derived here: callers that
show them derive the few participants they return with the pure path.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Select, String, case, cast, func, select

from opencohort.registry import models as m
from opencohort.registry._facts import BASICS, LIFESTYLE, OVERALL_HEALTH, rural_zips
from opencohort.registry.status import (
    ADULT_AGE,
    COHORT_3_START,
    ELDERLY_AGE,
    LOW_EDUCATION,
    LOW_INCOME,
    ConsentStatus,
    ConsentType,
    EnrolmentStatus,
    SampleState,
    UbrCategory,
    WithdrawalStatus,
)

#: Same-day tie order of ``status.consent_state`` (a refusal or invalid form beats a yes), as
#: one character that sorts after the authored day.
_CONSENT_CODE = {ConsentStatus.SUBMITTED.value: "0", ConsentStatus.NOT_SURE.value: "1",
                 ConsentStatus.NO.value: "2", ConsentStatus.INVALID.value: "3"}  # fmt: skip
_SURVEYS = (("basics", BASICS), ("lifestyle", LIFESTYLE), ("overall_health", OVERALL_HEALTH))
_UBR_ANSWERS = ("race_ethnicity", "sex_at_birth", "gender_identity", "sexual_orientation",
                "income", "education", "disability", "limited_access_to_care", "zip")  # fmt: skip


def _day(column, name: str | None = None):
    """Select a date column as ISO text (parsed in bulk by `_frame`, not row by row)."""
    return cast(column, String(10)).label(name or column.key)


def _frame(connection: Connection, statement: Select, days: tuple[str, ...] = ()) -> pd.DataFrame:
    """Return the rows of `statement`, with the `days` columns parsed to datetime64."""
    result = connection.execute(statement)
    frame = pd.DataFrame(result.all(), columns=list(result.keys()))
    for name in days:
        frame[name] = pd.to_datetime(frame[name], format="%Y-%m-%d")
    return frame


def _first_days(connection: Connection, statement: Select, ids: pd.Index) -> pd.Series:
    """Return a (participant_id, day) query's days as datetime64, NaT where a row is absent."""
    found = _frame(connection, statement, ("day",))
    return found.set_index("participant_id")["day"].reindex(ids)


def _age(birth: pd.Series, day: pd.Series) -> np.ndarray:
    """Vectorised ``status.age_on``: whole years from `birth` to `day`."""
    before = (day.dt.month * 100 + day.dt.day) < (birth.dt.month * 100 + birth.dt.day)
    return (day.dt.year - birth.dt.year - before.astype(int)).to_numpy()


def _consents(connection: Connection, ids: pd.Index, as_of: date) -> pd.DataFrame:
    """Return each consent type's current status and first submitted day, per participant.

    The latest form per type is the SQL maximum of "authored day, rank": the rank orders the
    same-day statuses as ``status.consent_state`` does (stored forms are never unset, so no
    two statuses share a rank and the version never decides).
    """
    c = m.Consent
    rank = case(_CONSENT_CODE, value=c.status, else_=_CONSENT_CODE[ConsentStatus.INVALID.value])
    key = cast(c.authored_date, String(10)) + rank
    yes = c.status == ConsentStatus.SUBMITTED.value
    columns = []
    for kind in ConsentType:
        of_kind = c.consent_type == kind.value
        columns.append(func.max(case((of_kind, key))).label(f"consent_{kind.value}"))
        first = func.min(case((of_kind & yes, c.authored_date)))
        columns.append(_day(first, f"first_{kind.value}"))
    found = _frame(
        connection,
        select(c.participant_id, *columns)
        .where(c.authored_date <= as_of)
        .group_by(c.participant_id),
        tuple(f"first_{kind.value}" for kind in ConsentType),
    )
    out = found.set_index("participant_id").reindex(ids)
    status_of = {code: status for status, code in _CONSENT_CODE.items()}
    for kind in ConsentType:
        latest = out[f"consent_{kind.value}"].str[-1].map(status_of)
        out[f"consent_{kind.value}"] = latest.fillna(ConsentStatus.UNSET.value)
    return out


def _withdrawal(connection: Connection, ids: pd.Index, as_of: date) -> pd.Series:
    """Return each participant's withdrawal status (``status.withdrawal_state`` values)."""
    w = m.WithdrawalEvent
    events = _frame(
        connection,
        select(w.participant_id, w.status, _day(w.authored_date), w.withdrawal_event_id).where(
            w.authored_date <= as_of
        ),
    )
    no_use = WithdrawalStatus.NO_USE.value
    latest = events.sort_values(
        ["participant_id", "authored_date", "withdrawal_event_id"]
    ).drop_duplicates("participant_id", keep="last")
    status = latest.set_index("participant_id")["status"].reindex(ids)
    status[ids.isin(events.loc[events["status"] == no_use, "participant_id"])] = no_use
    return status.fillna(WithdrawalStatus.NOT_WITHDRAWN.value)


def _enrolment(people: pd.DataFrame, first: dict[str, pd.Series]) -> pd.Series:
    """Return the enrolment label of each participant (``status.enrolment_status`` values)."""
    has = {name: day.notna().to_numpy() for name, day in first.items()}
    pediatric = people["pediatric"].to_numpy()
    gror_needed = ~pediatric & (first["primary"] >= pd.Timestamp(COHORT_3_START)).to_numpy()
    steps = [
        has["primary"],
        has["ehr"],
        has["basics"],
        has["overall_health"] & has["lifestyle"] & has["dna"] & (has["gror"] | ~gror_needed),
        has["pm"],
    ]
    level = np.cumprod(np.vstack(steps), axis=0).sum(axis=0)
    level[pediatric & ~people["guardian_linked"].to_numpy()] = EnrolmentStatus.REGISTERED
    labels = np.array([status.label for status in EnrolmentStatus], dtype=object)
    return pd.Series(labels[level], index=people.index)


def _ubr(people: pd.DataFrame) -> pd.DataFrame:
    """Return one boolean column per UBR category (``status.ubr_categories`` on sign-up day)."""
    sex, gender = people["sex_at_birth"], people["gender_identity"]
    orientation = people["sexual_orientation"]
    binary_gender = gender.isin(["woman", "man"])
    cisgender = ((sex == "female") & (gender == "woman")) | ((sex == "male") & (gender == "man"))
    sgm = (
        ~orientation.isin(["straight", "skip"])
        | ~(binary_gender | (gender == "skip"))
        | (binary_gender & sex.isin(["female", "male"]) & ~cisgender)
        | (sex == "intersex")
    )
    age = _age(people["birth_date"], people["sign_up_date"])
    columns = {
        UbrCategory.RACE_ETHNICITY: ~people["race_ethnicity"].isin(["white", "skip"]),
        UbrCategory.AGE: people["birth_date"].notna() & (age >= ELDERLY_AGE),
        UbrCategory.SEXUAL_GENDER_MINORITY: sgm,
        UbrCategory.INCOME: people["income"].isin(LOW_INCOME),
        UbrCategory.EDUCATION: people["education"].isin(LOW_EDUCATION),
        UbrCategory.RURAL: people["zip"].isin(rural_zips()),
        UbrCategory.DISABILITY: people["disability"].fillna(False).astype(bool),
        UbrCategory.ACCESS_TO_CARE: people["limited_access_to_care"].fillna(False).astype(bool),
    }
    return pd.DataFrame({f"ubr_{k.value}": v for k, v in columns.items()}, index=people.index)


def status_frame(connection: Connection, *, as_of: date) -> pd.DataFrame:
    """Return every participant's statuses on `as_of`, one row each, in id order.

    Parameters
    ----------
    connection
        An open registry connection.
    as_of
        Only facts dated on or before this day count.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``participant_id``: ``site_id``, ``enrolment`` (label), ``consent_<type>``
        and ``withdrawal`` (status values), ``genomic_eligible`` and ``ubr_<category>``
        (booleans).
    """
    p = m.Participant
    columns = [p.participant_id, p.site_id, _day(p.sign_up_date), _day(p.birth_date)]
    answers = [p.guardian_linked, *(getattr(p, name) for name in _UBR_ANSWERS)]
    people = (
        _frame(
            connection,
            select(*columns, *answers),
            ("sign_up_date", "birth_date"),
        )
        .set_index("participant_id")
        .sort_index()
    )
    people["guardian_linked"] = people["guardian_linked"].fillna(False).astype(bool)
    people["pediatric"] = _age(people["birth_date"], people["sign_up_date"]) < ADULT_AGE
    ids = people.index
    consents = _consents(connection, ids, as_of)
    s, sample, pm = m.SurveyCompletion, m.Sample, m.PhysicalMeasurement
    surveys = _frame(
        connection,
        select(
            s.participant_id,
            *(_day(func.min(case((s.module == module, s.authored_date))), name)
              for name, module in _SURVEYS),
        )
        .where(s.authored_date <= as_of)
        .group_by(s.participant_id),
        tuple(name for name, _ in _SURVEYS),
    ).set_index("participant_id").reindex(ids)  # fmt: skip
    dna = _first_days(
        connection,
        select(sample.participant_id, _day(func.min(sample.received_date), "day"))
        .where(sample.test_code.in_(m.DNA_TEST_CODES), sample.received_date <= as_of)
        .group_by(sample.participant_id),
        ids,
    )
    measured = _first_days(
        connection,
        select(pm.participant_id, _day(func.min(pm.measured_date), "day"))
        .where(pm.measured_date <= as_of)
        .group_by(pm.participant_id),
        ids,
    )
    first = {kind.value: consents[f"first_{kind.value}"] for kind in ConsentType}
    first |= {name: surveys[name] for name, _ in _SURVEYS} | {"dna": dna, "pm": measured}
    out = pd.DataFrame({"site_id": people["site_id"], "enrolment": _enrolment(people, first)})
    for kind in ConsentType:
        out[f"consent_{kind.value}"] = consents[f"consent_{kind.value}"]
    out["withdrawal"] = _withdrawal(connection, ids, as_of)
    submitted = ConsentStatus.SUBMITTED.value
    out["genomic_eligible"] = (
        (out["consent_primary"] == submitted)
        & (out["consent_gror"] == submitted)
        & dna.notna()
        & (out["withdrawal"] == WithdrawalStatus.NOT_WITHDRAWN.value)
    )
    return out.join(_ubr(people))


def genomic_samples(connection: Connection, *, as_of: date) -> pd.DataFrame:
    """Return every sample that carries DNA or has genomic steps, with its state on `as_of`.

    Parameters
    ----------
    connection
        An open registry connection.
    as_of
        Only facts dated on or before this day count.

    Returns
    -------
    pandas.DataFrame
        One row per sample, in sample id order: ``sample_id``, ``participant_id``,
        ``received`` (a DNA-bearing test received by the biobank by `as_of`),
        ``genomic_state`` (``status.genomic_state`` value, None before any step),
        ``genomic_since`` (its day, NaT before any step) and ``unusable`` (a quality issue
        or disposal recorded by `as_of`). Samples that are neither received DNA nor have a
        step by `as_of` are left out.

    Notes
    -----
    The state is that of the sample's last step by (day, storage order), the order in which
    ``status.genomic_state`` replays stored steps; stored steps are legal (every writer checks
    ``status.genomic_transition``), so no replay is needed.
    """
    sample, g, e = m.Sample, m.GenomicEvent, m.SampleEvent
    dna = sample.test_code.in_(m.DNA_TEST_CODES) & (sample.received_date <= as_of)
    samples = _frame(
        connection,
        select(sample.sample_id, sample.participant_id, dna.label("received")).where(
            dna | sample.sample_id.in_(select(g.sample_id).where(g.event_date <= as_of))
        ),
    )
    steps = _frame(
        connection,
        select(g.sample_id, g.state, _day(g.event_date), g.genomic_event_id).where(
            g.event_date <= as_of
        ),
        ("event_date",),
    )
    last = steps.sort_values(["sample_id", "event_date", "genomic_event_id"]).drop_duplicates(
        "sample_id", keep="last"
    )
    last = last.set_index("sample_id")
    spoiled = select(e.sample_id).where(
        e.state.in_([SampleState.QUALITY_ISSUE.value, SampleState.DISPOSED.value]),
        e.event_date <= as_of,
    )
    unusable = set(connection.execute(spoiled).scalars())
    out = samples.sort_values("sample_id").reset_index(drop=True)
    out["received"] = out["received"].map(bool).astype(bool)  # NULL (not received): False
    out["genomic_state"] = out["sample_id"].map(last["state"]).astype(object)
    out["genomic_state"] = out["genomic_state"].where(out["genomic_state"].notna(), None)
    out["genomic_since"] = out["sample_id"].map(last["event_date"])
    out["unusable"] = out["sample_id"].isin(unusable)
    return out


def summarise(frame: pd.DataFrame) -> dict:
    """Count a `status_frame` as ``_facts.summarise`` counts derived statuses (same dict)."""

    def counts(column: str, values: list[str]) -> dict[str, int]:
        found = frame[column].value_counts()
        return {value: int(found.get(value, 0)) for value in values}

    sites = frame["site_id"].fillna("").replace("", "unpaired").value_counts()
    ubr = {c.value: int(frame[f"ubr_{c.value}"].sum()) for c in UbrCategory}
    any_ubr = frame[[f"ubr_{c.value}" for c in UbrCategory]].any(axis=1)
    return {
        "participants": len(frame),
        "enrolment": counts("enrolment", [s.label for s in EnrolmentStatus]),
        "site": {site: int(n) for site, n in sorted(sites.items())},
        "consent": {
            kind.value: counts(f"consent_{kind.value}", [s.value for s in ConsentStatus])
            for kind in ConsentType
        },
        "withdrawal": counts("withdrawal", [s.value for s in WithdrawalStatus]),
        "ubr": ubr | {"any": int(any_ubr.sum())},
        "genomic_eligible": int(frame["genomic_eligible"].sum()),
    }
