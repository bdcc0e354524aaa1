"""Cleaning rules run before the tiers: dates, duplicates, consent, identity, withdrawal, units.

Each rule follows the reference program's rule of the same purpose (``clean_cdr.py``; see
docs and ``reference/all-of-us-reference.md`` section 2.2); the stages they run in are data,
:data:`CLEANING_STAGES` (which also names ``domain_alignment``, kept in ``alignment.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import ClassVar

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
from opencohort.curate.facts import to_day
from opencohort.curate.rules import Context, Result, Rule, changing, dropping, register
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


def _rows(frame: pd.DataFrame, column: str) -> np.ndarray:
    return frame[column].astype("float64").to_numpy()


def _any_date(frame: pd.DataFrame, columns: list[str], test) -> np.ndarray:
    """Rows where `test` is True for any of `columns` (missing dates never match)."""
    mask = np.zeros(len(frame), dtype=bool)
    for column in columns:
        values = _rows(frame, column)
        with np.errstate(invalid="ignore"):
            mask |= np.nan_to_num(test(values, frame), nan=0).astype(bool) & ~np.isnan(values)
    return mask


def _person_values(frame: pd.DataFrame, series: pd.Series) -> np.ndarray:
    """Per-row value of a per-person series (NaN for unknown persons)."""
    return series.astype("float64").reindex(frame["person_id"].astype("float64")).to_numpy()


def _drop_persons(
    frames: Mapping[str, pd.DataFrame], tables: tuple[str, ...], ids: pd.Index
) -> Result:
    ids = pd.Index(ids).astype("float64")
    return dropping(
        frames,
        {
            t: frames[t]["person_id"].astype("float64").isin(ids).to_numpy()
            for t in tables
            if t in frames
        },
    )


def _duplicate_keys(frame: pd.DataFrame, table: str) -> np.ndarray:
    """Rows repeating an earlier row's key (a row id: at the same site, as sites number alone)."""
    key = primary_key(table)
    columns = [key] if key == "person_id" or SRC_ID not in frame.columns else [SRC_ID, key]
    return frame.duplicated(subset=columns).to_numpy()


@register
class DuplicateIds(Rule):
    """Keep the first row of each primary key per site; later rows with that key are removed."""

    id = "duplicate_ids"
    purpose = "Remove rows whose primary key repeats an earlier row's from the same site."
    reads = writes = tuple(t for t in EHR_TABLES if primary_key(t))
    implements = "issue 4; AoU DeduplicateIdColumn"

    def apply(self, frames, ctx):
        return dropping(frames, {t: _duplicate_keys(f, t) for t, f in frames.items()})

    def check(self, frames, ctx):
        return [f"{t} has duplicate keys" for t in self.writes
                if _duplicate_keys(frames[t], t).any()]  # fmt: skip


@register
class ImpossibleDates(Rule):
    """Remove rows with a date before 1900 or from 2100 on (e.g. year 9999)."""

    id = "impossible_dates"
    purpose = "Remove rows with a date before 1900-01-01 or after 2099-12-31."
    reads = writes = EHR_PERSON_TABLES
    implements = "issue 4; AoU RemoveRecordsWithWrongDate"

    def apply(self, frames, ctx):
        return dropping(
            frames,
            {
                t: _any_date(f, date_columns(t), lambda v, _: (v < FIRST_DAY) | (v >= LAST_DAY))
                for t, f in frames.items()
            },
        )


@register
class SubmissionCutoff(Rule):
    """Remove EHR rows with an event dated after the submission cut-off."""

    id = "submission_cutoff"
    purpose = "Remove rows with a clinical event dated after the cut-off date."
    reads = writes = EVENT_TABLES
    depends_on = ("impossible_dates",)
    implements = "issue 4; AoU EhrSubmissionDataCutoff (DC-1445)"

    def apply(self, frames, ctx):
        return dropping(
            frames,
            {t: _any_date(f, event_columns(t), lambda v, _: v > ctx.cutoff)
             for t, f in frames.items()},
        )  # fmt: skip


@register
class EndBeforeStart(Rule):
    """An end date before its start date is set to the start (required) or cleared."""

    id = "end_before_start"
    purpose = "Make end dates not earlier than start dates."
    reads = writes = tuple(t for t in EHR_TABLES if end_pairs(t))
    depends_on = ("impossible_dates",)
    implements = "issue 4; AoU TemporalConsistency"

    def apply(self, frames, ctx):
        new = {}
        for t, frame in frames.items():
            out = frame.copy()
            for end, start, required in end_pairs(t):
                bad = (out[end] < out[start]).fillna(False).to_numpy(dtype=bool)
                out.loc[bad, end] = out.loc[bad, start] if required else pd.NA
            new[t] = out
        return changing(frames, new)

    def check(self, frames, ctx):
        return [
            f"{t}.{end} before {start}"
            for t in self.writes
            for end, start, _ in end_pairs(t)
            if (frames[t][end] < frames[t][start]).fillna(False).any()
        ]


@register
class UnmappedConcepts(Rule):
    """Remove rows whose concept and source concept are both unmapped (0 or missing)."""

    id = "unmapped_concepts"
    purpose = "Remove condition, drug and measurement rows coded with no known concept."
    reads = writes = UNMAPPED_TABLES
    implements = "issue 4; AoU MissingConceptRecordSuppression"

    def apply(self, frames, ctx):
        masks = {}
        for t, frame in frames.items():
            stem = t.split("_")[0]
            concept = frame[f"{stem}_concept_id"].fillna(0)
            source = frame[f"{stem}_source_concept_id"].fillna(0)
            masks[t] = ((concept == 0) & (source == 0)).to_numpy(dtype=bool)
        return dropping(frames, masks)


@register
class UnitNormalisation(Rule):
    """Convert pounds to kilograms, inches to centimetres and Fahrenheit to Celsius."""

    id = "unit_normalisation"
    purpose = "Convert lb, in and degF measurements to kg, cm and Cel, updating the unit."
    reads = writes = ("measurement",)
    implements = "issue 4; AoU UnitNormalization, CleanHeightAndWeight"

    def apply(self, frames, ctx):
        out = frames["measurement"].copy()
        unit = out["unit_concept_id"]
        for ucum, (factor, offset, metric) in UNIT_CONVERSIONS.items():
            at = (unit == local_concept_id("UCUM", ucum)).fillna(False).to_numpy(dtype=bool)
            if not at.any():
                continue
            value = out.loc[at, "value_as_number"]
            out.loc[at, "value_as_number"] = np.round((value - offset) * factor, 2)
            out.loc[at, "unit_concept_id"] = int(_UNIT_IDS[metric])
            out.loc[at, "unit_source_concept_id"] = int(_UNIT_IDS[metric])
            out.loc[at, "unit_source_value"] = metric
        return changing(frames, {"measurement": out})

    def check(self, frames, ctx):
        imperial = [local_concept_id("UCUM", u) for u in UNIT_CONVERSIONS]
        left = frames["measurement"]["unit_concept_id"].isin(imperial).sum()
        return [f"{left} measurements still in imperial units"] if left else []


@register
class ExtremeMeasurements(Rule):
    """Remove measurements outside the plausible range of their concept."""

    id = "extreme_measurements"
    purpose = "Remove measurement values no human can have (vocab plausible ranges)."
    reads = writes = ("measurement",)
    depends_on = ("unit_normalisation",)
    implements = "issue 4; AoU DropExtremeMeasurements"

    def apply(self, frames, ctx):
        m = frames["measurement"]
        ranges = measurements().drop_duplicates("concept_id").set_index("concept_id")
        concept = m["measurement_concept_id"].astype("float64")
        low = ranges["plausible_low"].reindex(concept).to_numpy()
        high = ranges["plausible_high"].reindex(concept).to_numpy()
        value = m["value_as_number"].astype("float64").to_numpy()
        with np.errstate(invalid="ignore"):
            bad = ~np.isnan(value) & ~np.isnan(low) & ((value < low) | (value > high))
        return dropping(frames, {"measurement": bad})


@register
class FreeTextNotes(Rule):
    """Drop note text and titles (free text never reaches a release)."""

    id = "free_text_notes"
    purpose = "Replace note_text and note_title with nothing."
    reads = writes = ("note",)
    implements = "issue 4; AoU ReplaceFreeTextNotes"

    def apply(self, frames, ctx):
        out = frames["note"].copy()
        out["note_text"] = None
        out["note_title"] = None
        return changing(frames, {"note": out})

    def check(self, frames, ctx):
        note = frames["note"]
        return ["note text left"] if note[["note_text", "note_title"]].notna().any().any() else []


@register
class NonMatchingParticipants(Rule):
    """Remove a site's rows for persons its PII does not match (or the registry lacks)."""

    id = "non_matching_participants"
    purpose = "Remove EHR rows of persons failing identity matching at their site."
    reads = writes = EHR_PERSON_TABLES
    implements = "issue 4; AoU RemoveNonMatchingParticipant"

    def apply(self, frames, ctx):
        drops = ctx.identity_drops
        pairs = pd.MultiIndex.from_arrays(
            [drops["src_id"].astype(str), drops["person_id"].astype("float64")]
        )
        known = ctx.people.index.astype("float64")
        masks = {}
        for t, frame in frames.items():
            person = frame["person_id"].astype("float64")
            rows = pd.MultiIndex.from_arrays([frame[SRC_ID].astype(str), person])
            masks[t] = rows.isin(pairs) | ~person.isin(known).to_numpy()
        return dropping(frames, masks)


class _ExcludedPeople(Rule):
    """Base of rules that remove every row, in `writes`, of people a registry fact excludes."""

    fact: ClassVar[str]
    """Boolean column of the context's people table."""
    excluded_if: ClassVar[bool]
    """The value of `fact` that excludes a person."""

    def _excluded(self, ctx: Context) -> pd.Index:
        return ctx.people.index[ctx.people[self.fact] == self.excluded_if]

    def apply(self, frames, ctx):
        return _drop_persons(frames, self.writes, self._excluded(ctx))

    def check(self, frames, ctx):
        gone = self._excluded(ctx).astype("float64")
        return [f"{self.id}: an excluded person is still in {t}" for t in self.writes
                if frames[t]["person_id"].astype("float64").isin(gone).any()]  # fmt: skip


@register
class EhrConsent(_ExcludedPeople):
    """Remove EHR rows of participants without a current EHR consent."""

    id = "ehr_consent"
    purpose = "Remove EHR rows of persons whose latest EHR consent is not a yes."
    reads = writes = EHR_PERSON_TABLES
    depends_on = ("non_matching_participants",)
    implements = "issue 4; AoU RemoveEhrDataWithoutConsent"
    fact, excluded_if = "ehr_consent", False

    def apply(self, frames, ctx):
        """Sites' rows only: the program's own physical measurements need no EHR consent."""
        gone = self._excluded(ctx).astype("float64")
        return dropping(frames, {t: (f[SRC_ID] != PROGRAM).to_numpy(dtype=bool)
                                 & f["person_id"].astype("float64").isin(gone).to_numpy()
                                 for t, f in frames.items()})  # fmt: skip

    def check(self, frames, ctx):
        gone = self._excluded(ctx).astype("float64")
        return [f"{self.id}: an excluded person is still in {t}" for t in self.writes
                if (frames[t]["person_id"].astype("float64").isin(gone)
                    & (frames[t][SRC_ID] != PROGRAM)).any()]  # fmt: skip


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
class BirthYearSanity(Rule):
    """Remove persons born before 1900 or less than 13 years before the cut-off year."""

    id = "birth_year_sanity"
    purpose = "Remove all data of persons with an implausible year of birth."
    reads = writes = PERSON_TABLES
    implements = "issue 4; AoU CleanByBirthYear"

    def apply(self, frames, ctx):
        year = frames[PERSON]["year_of_birth"]
        latest = (np.datetime64(ctx.cutoff, "D").astype(object).year) - MIN_AGE
        bad = ((year < MIN_BIRTH_YEAR) | (year > latest)).fillna(True).to_numpy(dtype=bool)
        return _drop_persons(frames, self.writes, pd.Index(frames[PERSON]["person_id"][bad]))


@register
class EventsBeforeBirth(Rule):
    """Remove EHR rows with a clinical event dated before the person's birth."""

    id = "events_before_birth"
    purpose = "Remove rows with an event before the registry birth date."
    reads = writes = EVENT_TABLES
    depends_on = ("impossible_dates",)
    implements = "issue 4; AoU NegativeAges"

    def apply(self, frames, ctx):
        birth = ctx.people["birth_date"]
        return dropping(
            frames,
            {
                t: _any_date(f, event_columns(t), lambda v, f: v < _person_values(f, birth))
                for t, f in frames.items()
            },
        )


@register
class NoDataAfterDeath(Rule):
    """Remove EHR rows dated more than 30 days after the person's death."""

    id = "no_data_after_death"
    purpose = "Remove rows with an event more than 30 days after death."
    reads = (*EVENT_TABLES, "death")
    writes = EVENT_TABLES
    depends_on = ("impossible_dates",)
    implements = "issue 4; AoU NoDataAfterDeath"

    def apply(self, frames, ctx):
        death = ctx.people["death_date"].astype("float64")
        if "death" in frames and len(frames["death"]):
            ehr = frames["death"].groupby("person_id")["death_date"].min().astype("float64")
            death = pd.concat([death, ehr]).groupby(level=0).min()
        limit = death + DAYS_AFTER_DEATH
        return dropping(
            frames,
            {
                t: _any_date(f, event_columns(t), lambda v, f: v > _person_values(f, limit))
                for t, f in frames.items()
                if t != "death"
            },
        )


@register
class DataAfterDeactivation(Rule):
    """Remove EHR rows dated after the participant's deactivation (suspension of contact).

    A row goes when any of its event dates (the death date for ``death``) is later than the
    registry's ``deactivated_date``; rows up to and on that day stay, and so does the person.
    """

    id = "data_after_deactivation"
    purpose = "Remove rows with an event dated after the participant's deactivation."
    reads = writes = (*EVENT_TABLES, "death")
    depends_on = ("impossible_dates",)
    implements = "issue 4; AoU RemoveParticipantDataPastDeactivationDate"

    def _after(self, frames, ctx) -> dict[str, np.ndarray]:
        limit = ctx.people["deactivated_date"]
        return {
            t: _any_date(f, event_columns(t) or ["death_date"],
                         lambda v, f: v > _person_values(f, limit))
            for t, f in frames.items()
        }  # fmt: skip

    def apply(self, frames, ctx):
        return dropping(frames, self._after(frames, ctx))

    def check(self, frames, ctx):
        after = self._after({t: frames[t] for t in self.writes}, ctx)
        return [f"{t} has {m.sum()} rows after deactivation" for t, m in after.items() if m.any()]


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
