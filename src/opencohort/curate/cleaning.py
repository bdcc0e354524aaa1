"""Cleaning rules run before the tiers: dates, duplicates, consent, identity, withdrawal, units.

Every rule here is an :class:`~opencohort.curate.rules.IbisRule`: Ibis expressions that run on
DuckDB or Spark alike. Registry facts are joined in by person (:func:`_with_facts`).

Each rule follows the reference program's rule of the same purpose (``clean_cdr.py``; see
docs and ``reference/all-of-us-reference.md`` section 2.2); the stages they run in are data,
:data:`CLEANING_STAGES` (which also names ``domain_alignment``, kept in ``alignment.py``).
"""

from __future__ import annotations

import functools
import operator
from datetime import date
from typing import ClassVar

import ibis
import numpy as np
import pandas as pd

from opencohort.curate._omop import (
    DEMOGRAPHICS,
    EHR_TABLES,
    FEED_TABLES,
    PERSON,
    SRC_ID,
    date_columns,
    end_pairs,
    event_columns,
    field_types,
    primary_key,
)
from opencohort.curate.engine import ORDER, Engine
from opencohort.curate.facts import to_day
from opencohort.curate.rules import REMOVE, Context, IbisRule, Plan, marking, register
from opencohort.ingest import PROGRAM
from opencohort.vocab import local_concept_id, measurements

#: EHR tables with a person_id column.
EHR_PERSON_TABLES = tuple(t for t in EHR_TABLES if "person_id" in field_types(t))
#: Every table keyed by person (EHR, registry, surveys and wearables).
PERSON_TABLES = (*EHR_PERSON_TABLES, PERSON, DEMOGRAPHICS, *FEED_TABLES)
EVENT_TABLES = tuple(t for t in EHR_TABLES if event_columns(t))
FIRST_DAY, LAST_DAY = to_day(date(1900, 1, 1)), to_day(date(2100, 1, 1))
MIN_BIRTH_YEAR = 1900
MIN_AGE = 13
DAYS_AFTER_DEATH = 30
#: Tables whose rows are dropped when both their concept and source concept are unmapped.
UNMAPPED_TABLES = ("condition_occurrence", "drug_exposure", "measurement")
_UNIT_IDS = measurements().drop_duplicates("unit_ucum").set_index("unit_ucum")["unit_concept_id"]
#: Imperial unit -> (factor, offset, metric UCUM unit): metric = (value - offset) * factor.
UNIT_CONVERSIONS = {
    "[lb_av]": (0.45359237, 0.0, "kg"),
    "[in_i]": (2.54, 0.0, "cm"),
    "[degF]": (5 / 9, 32.0, "Cel"),
}


def _any(table: ibis.Table, columns: list[str], test, *args) -> ibis.BooleanValue:
    """Rows where ``test(column, *args)`` holds for any of `columns` (missing never matches)."""
    tests = [test(table[c], *args).fill_null(False) for c in columns]
    return functools.reduce(operator.or_, tests, ibis.literal(False))


def _with_facts(table: ibis.Table, ctx: Context, db: Engine, *names: str) -> ibis.Table:
    """`table` plus its persons' registry facts as ``_f_<name>`` (missing for unknown persons)."""
    people = db.lookup("people", ctx.person_facts)
    facts = people.select(_f_person=people["person_id"], **{f"_f_{n}": people[n] for n in names})
    joined = table.left_join(facts, table["person_id"] == facts["_f_person"])
    return joined.select(*table.columns, *(f"_f_{n}" for n in names))


def _mark(table: ibis.Table, joined: ibis.Table, remove: ibis.BooleanValue) -> ibis.Table:
    """`joined`'s rows with `table`'s columns, marked for removal where `remove`."""
    return joined.select(*table.columns, **{REMOVE: remove})


def _persons(table: ibis.Table, persons: ibis.Table) -> ibis.Table:
    """`table` marked for removal where its person is in `persons` (column ``_gone``)."""
    gone = persons.select(_gone=persons["_gone"]).distinct()
    joined = table.left_join(gone, table["person_id"] == gone["_gone"])
    return _mark(table, joined, joined["_gone"].notnull())


def _key_columns(table: ibis.Table, name: str) -> list[str]:
    """A row id: the primary key at its site (sites number their rows alone)."""
    key = primary_key(name)
    return [key] if key == "person_id" or SRC_ID not in table.columns else [SRC_ID, key]


def _kept(table: ibis.Table, where: ibis.BooleanValue) -> ibis.Table:
    """Rows of `table` where `where` holds (missing counts as not)."""
    return table.filter(where.fill_null(False))


def _count(db: Engine, table: ibis.Table, where: ibis.BooleanValue) -> int:
    return db.count(_kept(table, where))


def _repeats(t: ibis.Table, name: str) -> ibis.Table:
    """The row ids of `t` that more than one row has."""
    counts = t.group_by(_key_columns(t, name)).agg(_n=t.count())
    return counts.filter(counts["_n"] > 1)


@register
class DuplicateIds(IbisRule):
    """Keep the first row of each primary key per site; later rows with that key are removed."""

    id = "duplicate_ids"
    purpose = "Remove rows whose primary key repeats an earlier row's from the same site."
    reads = writes = tuple(t for t in EHR_TABLES if primary_key(t))
    implements = "issue 4; AoU DeduplicateIdColumn"

    def plan(self, tables, ctx, db):
        repeated = db.counts({name: _repeats(t, name) for name, t in tables.items()})
        remove = {}
        for name, t in tables.items():
            if repeated[name]:  # the window (a sort) runs only where a key repeats
                first = ibis.window(group_by=_key_columns(t, name), order_by=ORDER)
                remove[name] = marking(t, ibis.row_number().over(first) > 0)
        return Plan(remove=remove)

    def problems(self, tables, ctx, db):
        repeated = db.counts({name: _repeats(tables[name], name) for name in self.writes})
        return [f"{name} has duplicate keys" for name, n in repeated.items() if n]


@register
class ImpossibleDates(IbisRule):
    """Remove rows with a date before 1900 or from 2100 on (e.g. year 9999)."""

    id = "impossible_dates"
    purpose = "Remove rows with a date before 1900-01-01 or after 2099-12-31."
    reads = writes = EHR_PERSON_TABLES
    implements = "issue 4; AoU RemoveRecordsWithWrongDate"

    def plan(self, tables, ctx, db):
        def wrong(v):
            return (v < FIRST_DAY) | (v >= LAST_DAY)

        return Plan(remove={name: marking(t, _any(t, date_columns(name), wrong))
                            for name, t in tables.items()})  # fmt: skip


@register
class SubmissionCutoff(IbisRule):
    """Remove EHR rows with an event dated after the submission cut-off."""

    id = "submission_cutoff"
    purpose = "Remove rows with a clinical event dated after the cut-off date."
    reads = writes = EVENT_TABLES
    depends_on = ("impossible_dates",)
    implements = "issue 4; AoU EhrSubmissionDataCutoff (DC-1445)"

    def plan(self, tables, ctx, db):
        return Plan(remove={
            name: marking(t, _any(t, event_columns(name), operator.gt, ctx.cutoff))
            for name, t in tables.items()
        })  # fmt: skip


@register
class EndBeforeStart(IbisRule):
    """An end date before its start date is set to the start (required) or cleared."""

    id = "end_before_start"
    purpose = "Make end dates not earlier than start dates."
    reads = writes = tuple(t for t in EHR_TABLES if end_pairs(t))
    depends_on = ("impossible_dates",)
    implements = "issue 4; AoU TemporalConsistency"

    def plan(self, tables, ctx, db):
        rewrite = {}
        for name, t in tables.items():
            rewrite[name] = {
                end: (t[end] < t[start])
                .fill_null(False)
                .ifelse(t[start] if required else ibis.null(t[end].type()), t[end])
                for end, start, required in end_pairs(name)
            }
        return Plan(rewrite=rewrite)

    def problems(self, tables, ctx, db):
        return [
            f"{name}.{end} before {start}"
            for name in self.writes
            for end, start, _ in end_pairs(name)
            if _count(db, tables[name], tables[name][end] < tables[name][start])
        ]


@register
class UnmappedConcepts(IbisRule):
    """Remove rows whose concept and source concept are both unmapped (0 or missing)."""

    id = "unmapped_concepts"
    purpose = "Remove condition, drug and measurement rows coded with no known concept."
    reads = writes = UNMAPPED_TABLES
    implements = "issue 4; AoU MissingConceptRecordSuppression"

    def plan(self, tables, ctx, db):
        remove = {}
        for name, t in tables.items():
            stem = name.split("_")[0]
            concept = t[f"{stem}_concept_id"].fill_null(0)
            source = t[f"{stem}_source_concept_id"].fill_null(0)
            remove[name] = marking(t, (concept == 0) & (source == 0))
        return Plan(remove=remove)


def _round2(value: ibis.FloatingValue) -> ibis.FloatingValue:
    """`value` rounded to 2 decimals, half to even, as ``numpy.round`` does (on any engine)."""
    scaled = value * 100.0
    up = (scaled + 0.5).floor()
    tie = (up - scaled) == 0.5
    even = (tie & (up % 2 != 0)).ifelse(up - 1, up)
    return even.cast("float64") / 100.0


@register
class UnitNormalisation(IbisRule):
    """Convert pounds to kilograms, inches to centimetres and Fahrenheit to Celsius."""

    id = "unit_normalisation"
    purpose = "Convert lb, in and degF measurements to kg, cm and Cel, updating the unit."
    reads = writes = ("measurement",)
    implements = "issue 4; AoU UnitNormalization, CleanHeightAndWeight"

    def plan(self, tables, ctx, db):
        m = tables["measurement"]
        unit = m["unit_concept_id"]
        value, concept, source_value = m["value_as_number"], unit, m["unit_source_value"]
        source_concept = m["unit_source_concept_id"]
        for ucum, (factor, offset, metric) in UNIT_CONVERSIONS.items():
            at = (unit == local_concept_id("UCUM", ucum)).fill_null(False)
            metric_id = int(_UNIT_IDS[metric])
            value = at.ifelse(_round2((m["value_as_number"] - offset) * factor), value)
            concept = at.ifelse(metric_id, concept)
            source_concept = at.ifelse(metric_id, source_concept)
            source_value = at.ifelse(metric, source_value)
        return Plan(rewrite={"measurement": {
            "value_as_number": value, "unit_concept_id": concept,
            "unit_source_concept_id": source_concept, "unit_source_value": source_value,
        }})  # fmt: skip

    def problems(self, tables, ctx, db):
        imperial = [local_concept_id("UCUM", u) for u in UNIT_CONVERSIONS]
        m = tables["measurement"]
        left = _count(db, m, m["unit_concept_id"].isin(imperial))
        return [f"{left} measurements still in imperial units"] if left else []


@functools.cache
def _plausible_ranges() -> pd.DataFrame:
    ranges = measurements().drop_duplicates("concept_id")
    return pd.DataFrame({
        "_r_concept": ranges["concept_id"].astype("int64").to_numpy(),
        "_r_low": ranges["plausible_low"].astype("float64").to_numpy(),
        "_r_high": ranges["plausible_high"].astype("float64").to_numpy(),
    })  # fmt: skip


@register
class ExtremeMeasurements(IbisRule):
    """Remove measurements outside the plausible range of their concept."""

    id = "extreme_measurements"
    purpose = "Remove measurement values no human can have (vocab plausible ranges)."
    reads = writes = ("measurement",)
    depends_on = ("unit_normalisation",)
    implements = "issue 4; AoU DropExtremeMeasurements"

    def plan(self, tables, ctx, db):
        m = tables["measurement"]
        ranges = db.lookup("plausible_ranges", _plausible_ranges())
        joined = m.left_join(ranges, m["measurement_concept_id"] == ranges["_r_concept"])
        value, low, high = joined["value_as_number"], joined["_r_low"], joined["_r_high"]
        bad = value.notnull() & low.notnull() & ((value < low) | (value > high)).fill_null(False)
        return Plan(remove={"measurement": _mark(m, joined, bad)})


@register
class FreeTextNotes(IbisRule):
    """Drop note text and titles (free text never reaches a release)."""

    id = "free_text_notes"
    purpose = "Replace note_text and note_title with nothing."
    reads = writes = ("note",)
    implements = "issue 4; AoU ReplaceFreeTextNotes"

    def plan(self, tables, ctx, db):
        return Plan(rewrite={"note": {c: ibis.null("string") for c in ("note_text", "note_title")}})

    def problems(self, tables, ctx, db):
        note = tables["note"]
        left = _count(db, note, note["note_text"].notnull() | note["note_title"].notnull())
        return ["note text left"] if left else []


def _drop_pairs(ctx: Context) -> pd.DataFrame:
    drops = ctx.identity_drops
    pairs = pd.DataFrame({
        "_d_src": drops["src_id"].astype(str).to_numpy(),
        "_d_person": drops["person_id"].astype("float64").to_numpy(),
    }).dropna().drop_duplicates()  # fmt: skip
    return pairs.assign(_d_person=pairs["_d_person"].astype("int64"), _d_hit=True)


@register
class NonMatchingParticipants(IbisRule):
    """Remove a site's rows for persons its PII does not match (or the registry lacks)."""

    id = "non_matching_participants"
    purpose = "Remove EHR rows of persons failing identity matching at their site."
    reads = writes = EHR_PERSON_TABLES
    implements = "issue 4; AoU RemoveNonMatchingParticipant"

    def plan(self, tables, ctx, db):
        pairs = db.lookup("identity_drops", _drop_pairs(ctx), key=ctx.identity_drops)
        people = db.lookup("people", ctx.person_facts)
        known = people.select(_k_person=people["person_id"], _k_hit=ibis.literal(True))
        remove = {}
        for name, t in tables.items():
            joined = t.left_join(
                pairs, [t[SRC_ID] == pairs["_d_src"], t["person_id"] == pairs["_d_person"]]
            ).left_join(known, t["person_id"] == known["_k_person"])
            remove[name] = _mark(t, joined, joined["_d_hit"].notnull() | joined["_k_hit"].isnull())
        return Plan(remove=remove)


class _ExcludedPeople(IbisRule):
    """Base of rules that remove every row, in `writes`, of people a registry fact excludes."""

    fact: ClassVar[str]
    """Boolean column of the context's people table."""
    excluded_if: ClassVar[bool]
    """The value of `fact` that excludes a person."""

    def _excluded(self, t: ibis.Table, ctx: Context, db: Engine):
        """`t` joined with the fact, and the rows it excludes."""
        joined = _with_facts(t, ctx, db, self.fact)
        return joined, joined[f"_f_{self.fact}"] == self.excluded_if

    def plan(self, tables, ctx, db):
        return Plan(remove={name: _mark(t, *self._excluded(t, ctx, db))
                            for name, t in tables.items() if name in self.writes})  # fmt: skip

    def problems(self, tables, ctx, db):
        left = db.counts({name: _kept(*self._excluded(tables[name], ctx, db))
                          for name in self.writes if name in tables})  # fmt: skip
        return [
            f"{self.id}: an excluded person is still in {name}" for name, n in left.items() if n
        ]


@register
class EhrConsent(_ExcludedPeople):
    """Remove sites' EHR rows of participants without a current EHR consent.

    The program's own physical measurements need no EHR consent, so they stay.
    """

    id = "ehr_consent"
    purpose = "Remove EHR rows of persons whose latest EHR consent is not a yes."
    reads = writes = EHR_PERSON_TABLES
    depends_on = ("non_matching_participants",)
    implements = "issue 4; AoU RemoveEhrDataWithoutConsent"
    fact, excluded_if = "ehr_consent", False

    def _excluded(self, t, ctx, db):
        joined, excluded = super()._excluded(t, ctx, db)
        return joined, excluded & (joined[SRC_ID] != PROGRAM)


@register
class WithdrawnParticipants(_ExcludedPeople):
    """Remove every row of participants withdrawn with no use of their data."""

    id = "withdrawn_participants"
    purpose = "Remove all data of no-use withdrawn participants from every table."
    reads = writes = PERSON_TABLES
    implements = "issue 4; AoU SandboxAndRemoveWithdrawnPids (DC-3442)"
    fact, excluded_if = "no_use", True


@register
class RetractedParticipants(_ExcludedPeople):
    """Remove every row of participants named in a retraction of a published release."""

    id = "retracted_participants"
    purpose = "Remove all data of persons a release retraction names."
    reads = writes = PERSON_TABLES
    implements = "issue 4; opencohort retract"
    fact, excluded_if = "retracted", True


@register
class PrimaryConsent(_ExcludedPeople):
    """Remove every row of people without a current primary consent."""

    id = "primary_consent"
    purpose = "Remove all data of persons whose latest primary consent is not a yes."
    reads = writes = PERSON_TABLES
    implements = "issue 4; a participant's data are used only under primary consent"
    fact, excluded_if = "primary_consent", False


@register
class BirthYearSanity(IbisRule):
    """Remove persons born before 1900 or less than 13 years before the cut-off year."""

    id = "birth_year_sanity"
    purpose = "Remove all data of persons with an implausible year of birth."
    reads = writes = PERSON_TABLES
    implements = "issue 4; AoU CleanByBirthYear"

    def plan(self, tables, ctx, db):
        person = tables[PERSON]
        year = person["year_of_birth"]
        latest = (np.datetime64(ctx.cutoff, "D").astype(object).year) - MIN_AGE
        bad = ((year < MIN_BIRTH_YEAR) | (year > latest)).fill_null(True)
        gone = person.filter(bad).select(_gone=person["person_id"])
        return Plan(remove={name: _persons(t, gone) for name, t in tables.items()})


@register
class EventsBeforeBirth(IbisRule):
    """Remove EHR rows with a clinical event dated before the person's birth."""

    id = "events_before_birth"
    purpose = "Remove rows with an event before the registry birth date."
    reads = writes = EVENT_TABLES
    depends_on = ("impossible_dates",)
    implements = "issue 4; AoU NegativeAges"

    def plan(self, tables, ctx, db):
        remove = {}
        for name, t in tables.items():
            joined = _with_facts(t, ctx, db, "birth_date")
            before = _any(joined, event_columns(name), operator.lt, joined["_f_birth_date"])
            remove[name] = _mark(t, joined, before)
        return Plan(remove=remove)


@register
class NoDataAfterDeath(IbisRule):
    """Remove EHR rows dated more than 30 days after the person's death.

    The death date is the earliest of the registry's and the sites' ``death`` rows.
    """

    id = "no_data_after_death"
    purpose = "Remove rows with an event more than 30 days after death."
    reads = (*EVENT_TABLES, "death")
    writes = EVENT_TABLES
    depends_on = ("impossible_dates",)
    implements = "issue 4; AoU NoDataAfterDeath"

    def plan(self, tables, ctx, db):
        people = db.lookup("people", ctx.person_facts)
        deaths = people.select(_l_person=people["person_id"], _l_day=people["death_date"])
        if "death" in tables:
            d = tables["death"]
            deaths = deaths.union(
                d.select(_l_person=d["person_id"], _l_day=d["death_date"].cast("float64"))
            )
        limits = (
            deaths.filter(ibis._["_l_day"].notnull())
            .group_by("_l_person")
            .agg(_l_limit=ibis._["_l_day"].min() + DAYS_AFTER_DEATH)
        )
        remove = {}
        for name in self.writes:
            if name in tables:
                t = tables[name]
                joined = t.left_join(limits, t["person_id"] == limits["_l_person"])
                after = _any(joined, event_columns(name), operator.gt, joined["_l_limit"])
                remove[name] = _mark(t, joined, after)
        return Plan(remove=remove)


@register
class DataAfterDeactivation(IbisRule):
    """Remove EHR rows dated after the participant's deactivation (suspension of contact).

    A row goes when any of its event dates (the death date for ``death``) is later than the
    registry's ``deactivated_date``; rows up to and on that day stay, and so does the person.
    """

    id = "data_after_deactivation"
    purpose = "Remove rows with an event dated after the participant's deactivation."
    reads = writes = (*EVENT_TABLES, "death")
    depends_on = ("impossible_dates",)
    implements = "issue 4; AoU RemoveParticipantDataPastDeactivationDate"

    def _after(self, name: str, t: ibis.Table, ctx: Context, db: Engine):
        joined = _with_facts(t, ctx, db, "deactivated_date")
        limit = joined["_f_deactivated_date"]
        return joined, _any(joined, event_columns(name) or ["death_date"], operator.gt, limit)

    def plan(self, tables, ctx, db):
        return Plan(remove={name: _mark(t, *self._after(name, t, ctx, db))
                            for name, t in tables.items()})  # fmt: skip

    def problems(self, tables, ctx, db):
        left = db.counts({name: _kept(*self._after(name, tables[name], ctx, db))
                          for name in self.writes if name in tables})  # fmt: skip
        return [f"{name} has {n} rows after deactivation" for name, n in left.items() if n]


#: Cleaning stages, in order, and their rules (dependencies order rules within a stage).
CLEANING_STAGES: dict[str, tuple[str, ...]] = {
    "ehr": (
        "duplicate_ids",
        "impossible_dates",
        "submission_cutoff",
        "end_before_start",
        "unmapped_concepts",
        "domain_alignment",
        "unit_normalisation",
        "extreme_measurements",
        "free_text_notes",
    ),
    "combined": (
        "non_matching_participants",
        "ehr_consent",
        "withdrawn_participants",
        "retracted_participants",
        "primary_consent",
        "birth_year_sanity",
        "events_before_birth",
        "no_data_after_death",
        "data_after_deactivation",
    ),
}
