"""Data-quality checks of site submissions, modelled on the OHDSI Data Quality Dashboard.

Each check type is a small declarative class: its id, Kahn category (conformance,
completeness, plausibility), the table and field it looks at, a threshold in percent of rows
allowed to fail, and one pure method that takes a parsed table (and what it needs from the rest
of the submission) and returns the positions of failing rows. Checks are expanded over the table
spec (:data:`opencohort.ingest.omop_files.TABLES`) by :func:`default_checks`, as DQD expands its
check types over the CDM field CSV. A check fails when its failing share exceeds its threshold
(any failing row when the threshold is 0).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import date
from functools import cache
from typing import ClassVar

import numpy as np
import pandas as pd

from opencohort.ingest.omop_files import TABLES, ParsedTable, TableSpec
from opencohort.vocab import local_concept_id, measurements

_EPOCH = date(1970, 1, 1)
_DEATH_GRACE_DAYS = 30
_EARLIEST = (date(1900, 1, 1) - _EPOCH).days
#: Non-metric units a site may report, as (metric UCUM unit, factor, offset): metric = v * f + o.
TO_METRIC: dict[str, tuple[str, float, float]] = {
    "[lb_av]": ("kg", 0.45359237, 0.0),
    "lb": ("kg", 0.45359237, 0.0),
    "lbs": ("kg", 0.45359237, 0.0),
    "[in_i]": ("cm", 2.54, 0.0),
    "in": ("cm", 2.54, 0.0),
    "[degf]": ("cel", 5 / 9, -32 * 5 / 9),
    "degf": ("cel", 5 / 9, -32 * 5 / 9),
    "g": ("kg", 0.001, 0.0),
    "m": ("cm", 100.0, 0.0),
}


def _days(day: date) -> int:
    return (day - _EPOCH).days


@dataclass(frozen=True)
class SiteContext:
    """What row checks need from the rest of one site's submission.

    ``birth`` maps person_id to the earliest day the person can have been born (missing month
    or day taken as the first), ``death`` to the death day; ``keys`` holds the primary keys of
    each table that parsed; ``as_of`` is the day the submission was received (day numbers
    count from 1970-01-01).
    """

    birth: pd.Series
    death: pd.Series
    keys: Mapping[str, pd.Index]
    as_of: int

    @classmethod
    def from_tables(cls, tables: Mapping[str, ParsedTable], *, as_of: date) -> SiteContext:
        """Build the context from a site's parsed tables."""
        keys = {
            name: pd.Index(t.frame[t.spec.primary_key].dropna().unique())
            for name, t in tables.items()
            if t.spec.primary_key is not None
        }
        empty = pd.Series(dtype="Int64")
        birth, death = empty, empty
        if "person" in tables:
            person = tables["person"].frame
            days = _birth_days(person)
            birth = days.groupby(person["person_id"]).min()
        if "death" in tables:
            frame = tables["death"].frame
            death = frame["death_date"].groupby(frame["person_id"]).max()
        return cls(birth=birth, death=death, keys=keys, as_of=_days(as_of))


def _birth_days(person: pd.DataFrame) -> pd.Series:
    """Earliest possible birth day of each person row (NA without a year of birth)."""
    year = person["year_of_birth"].astype("float64").to_numpy()
    month = person["month_of_birth"].astype("float64").fillna(1).to_numpy()
    day = person["day_of_birth"].astype("float64").fillna(1).to_numpy()
    ok = ~np.isnan(year) & (year > 0) & (year < 10_000)
    month = np.where((month >= 1) & (month <= 12), month, 1)
    day = np.where((day >= 1) & (day <= 28), day, 1)
    y = np.where(ok, year, 1970).astype(np.int64) - 1970
    first = y.astype("datetime64[Y]").astype("datetime64[M]") + (month.astype(np.int64) - 1)
    days = first.astype("datetime64[D]").astype(np.int64) + day.astype(np.int64) - 1
    out = pd.Series(np.where(ok, days, 0), dtype="Int64", index=person.index)
    out[~ok] = pd.NA
    at_birth = person["birth_datetime"]
    return out.where(at_birth.isna() | (at_birth >= out).fillna(False), at_birth)


@dataclass(frozen=True)
class Check:
    """One data-quality check on one field of one table."""

    table: str
    field: str
    threshold: float = 0.0
    check_type: ClassVar[str] = ""
    category: ClassVar[str] = ""
    subcategory: ClassVar[str] = ""
    description: ClassVar[str] = ""

    @property
    def id(self) -> str:
        """Stable identifier, ``<check_type>.<table>.<field>``."""
        return f"{self.check_type}.{self.table}.{self.field}"

    def describe(self) -> str:
        """One sentence saying what a failing row is."""
        return self.description.format(table=self.table, field=self.field)

    def applicable(self, context: SiteContext) -> bool:
        """Whether the rest of the submission has what this check needs."""
        return True

    def failing(self, table: ParsedTable, context: SiteContext) -> np.ndarray:
        """Return the positions of the rows of `table` that fail."""
        raise NotImplementedError

    def as_dict(self) -> dict:
        """Plain-data record of the check (for reports and manifests)."""
        return {
            "id": self.id,
            "check_type": self.check_type,
            "category": self.category,
            "subcategory": self.subcategory,
            "description": self.describe(),
            **asdict(self),
        }


def _rows(mask: pd.Series | np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.asarray(pd.Series(mask).fillna(False), dtype=bool))


def _bad(table: ParsedTable, field: str) -> np.ndarray:
    return table.bad_type.get(field, np.zeros(len(table), dtype=bool))


def _num(values: pd.Series) -> np.ndarray:
    """Float array of a nullable column, NaN where missing."""
    return values.astype("Float64").to_numpy(dtype=float, na_value=np.nan)


@dataclass(frozen=True)
class IsRequired(Check):
    """A required (NOT NULL) field is empty."""

    check_type: ClassVar[str] = "isRequired"
    category: ClassVar[str] = "conformance"
    subcategory: ClassVar[str] = "relational"
    description: ClassVar[str] = "{table}.{field} is required but empty"

    def failing(self, table: ParsedTable, context: SiteContext) -> np.ndarray:
        empty = table.frame[self.field].isna().to_numpy()
        return _rows(empty & ~_bad(table, self.field))


@dataclass(frozen=True)
class CdmDatatype(Check):
    """A value is not of the field's type (integer, number, YYYY-MM-DD date, datetime)."""

    check_type: ClassVar[str] = "cdmDatatype"
    category: ClassVar[str] = "conformance"
    subcategory: ClassVar[str] = "value"
    description: ClassVar[str] = "{table}.{field} holds a value that is not of its CDM type"

    def failing(self, table: ParsedTable, context: SiteContext) -> np.ndarray:
        return _rows(_bad(table, self.field))


@dataclass(frozen=True)
class IsPrimaryKey(Check):
    """A primary-key value appears on more than one row (every such row fails)."""

    check_type: ClassVar[str] = "isPrimaryKey"
    category: ClassVar[str] = "conformance"
    subcategory: ClassVar[str] = "relational"
    description: ClassVar[str] = "{table}.{field} repeats a primary-key value"

    def failing(self, table: ParsedTable, context: SiteContext) -> np.ndarray:
        key = table.frame[self.field]
        return _rows(key.notna() & key.duplicated(keep=False))


@dataclass(frozen=True)
class IsForeignKey(Check):
    """A reference to another table's key names no row of that table."""

    references: str = ""
    check_type: ClassVar[str] = "isForeignKey"
    category: ClassVar[str] = "conformance"
    subcategory: ClassVar[str] = "relational"
    description: ClassVar[str] = "{table}.{field} refers to a row missing from {references}"

    def describe(self) -> str:
        return self.description.format(
            table=self.table, field=self.field, references=self.references
        )

    def applicable(self, context: SiteContext) -> bool:
        return self.references.split(".")[0] in context.keys

    def failing(self, table: ParsedTable, context: SiteContext) -> np.ndarray:
        values = table.frame[self.field]
        known = context.keys[self.references.split(".")[0]]
        return _rows(values.notna() & ~values.isin(known))


@dataclass(frozen=True)
class ConceptMapped(Check):
    """A row carries no concept: its concept id and its source concept id are both 0 or empty."""

    source_field: str | None = None
    check_type: ClassVar[str] = "conceptMapped"
    category: ClassVar[str] = "completeness"
    subcategory: ClassVar[str] = "value"
    description: ClassVar[str] = "{table}.{field} and its source concept id are both 0 or empty"

    def failing(self, table: ParsedTable, context: SiteContext) -> np.ndarray:
        frame = table.frame
        unmapped = frame[self.field].fillna(0) == 0
        source = self.source_field
        if source is not None and table.spec.field(source).type == "int":
            unmapped &= frame[source].fillna(0) == 0
        return _rows(unmapped)


@dataclass(frozen=True)
class PlausibleDateHigh(Check):
    """A date lies after the day the submission was received (such as 9999-12-31)."""

    check_type: ClassVar[str] = "plausibleValueHigh"
    category: ClassVar[str] = "plausibility"
    subcategory: ClassVar[str] = "atemporal"
    description: ClassVar[str] = "{table}.{field} is after the submission was received"

    def failing(self, table: ParsedTable, context: SiteContext) -> np.ndarray:
        return _rows(table.frame[self.field] > context.as_of + 1)


@dataclass(frozen=True)
class PlausibleDateLow(Check):
    """A date lies before 1900-01-01."""

    check_type: ClassVar[str] = "plausibleValueLow"
    category: ClassVar[str] = "plausibility"
    subcategory: ClassVar[str] = "atemporal"
    description: ClassVar[str] = "{table}.{field} is before 1900-01-01"

    def failing(self, table: ParsedTable, context: SiteContext) -> np.ndarray:
        return _rows(table.frame[self.field] < _EARLIEST)


@dataclass(frozen=True)
class PlausibleAfterBirth(Check):
    """An event date lies before the person's birth."""

    check_type: ClassVar[str] = "plausibleAfterBirth"
    category: ClassVar[str] = "plausibility"
    subcategory: ClassVar[str] = "temporal"
    description: ClassVar[str] = "{table}.{field} is before the person's birth"

    def applicable(self, context: SiteContext) -> bool:
        return "person" in context.keys

    def failing(self, table: ParsedTable, context: SiteContext) -> np.ndarray:
        frame = table.frame
        birth = _num(context.birth.reindex(frame["person_id"]))
        return np.flatnonzero(_num(frame[self.field]) < birth)


@dataclass(frozen=True)
class PlausibleBeforeDeath(Check):
    """An event date lies more than 30 days after the person's death."""

    check_type: ClassVar[str] = "plausibleBeforeDeath"
    category: ClassVar[str] = "plausibility"
    subcategory: ClassVar[str] = "temporal"
    description: ClassVar[str] = "{table}.{field} is more than 30 days after the person's death"

    def applicable(self, context: SiteContext) -> bool:
        return "death" in context.keys

    def failing(self, table: ParsedTable, context: SiteContext) -> np.ndarray:
        frame = table.frame
        death = _num(context.death.reindex(frame["person_id"]))
        return np.flatnonzero(_num(frame[self.field]) > death + _DEATH_GRACE_DAYS)


@dataclass(frozen=True)
class PlausibleStartBeforeEnd(Check):
    """An end date lies before its start date."""

    start_field: str = ""
    check_type: ClassVar[str] = "plausibleStartBeforeEnd"
    category: ClassVar[str] = "plausibility"
    subcategory: ClassVar[str] = "temporal"
    description: ClassVar[str] = "{table}.{field} is before its start date"

    def failing(self, table: ParsedTable, context: SiteContext) -> np.ndarray:
        frame = table.frame
        return _rows(frame[self.field] < frame[self.start_field])


@cache
def _measurement_ranges() -> tuple[pd.DataFrame, dict[int, str]]:
    """Plausible ranges by concept id and LOINC code, and UCUM codes by local unit id."""
    meas = measurements()
    ranges = meas[["concept_id", "loinc", "unit_ucum", "plausible_low", "plausible_high"]].copy()
    ranges["unit_ucum"] = ranges["unit_ucum"].str.lower()
    units = {*meas["unit_ucum"], *TO_METRIC}
    by_id = {int(cid): u for u, cid in zip(meas["unit_ucum"], meas["unit_concept_id"], strict=True)}
    by_id.update({local_concept_id("UCUM", u): u for u in units})
    return ranges, by_id


@dataclass(frozen=True)
class PlausibleMeasurementValue(Check):
    """A measurement value lies outside what a human can have, judged in its own unit.

    Values in lb, in or degF are converted to kg, cm or Cel before comparing with the
    plausible range of ``opencohort.vocab.measurements()``; values in a unit that is neither
    the expected one nor convertible to it are not judged.
    """

    check_type: ClassVar[str] = "plausibleValue"
    category: ClassVar[str] = "plausibility"
    subcategory: ClassVar[str] = "atemporal"
    description: ClassVar[str] = "{table}.{field} is outside the plausible range for its concept"

    def failing(self, table: ParsedTable, context: SiteContext) -> np.ndarray:
        frame = table.frame
        ranges, unit_by_id = _measurement_ranges()
        at = pd.Index(ranges["concept_id"]).get_indexer(frame["measurement_concept_id"].fillna(-1))
        by_loinc = pd.Index(ranges["loinc"]).get_indexer(frame["measurement_source_value"])
        at = np.where(at >= 0, at, by_loinc)
        known = at >= 0
        pick = np.where(known, at, 0)
        unit, names = _unit_codes(frame, unit_by_id)
        # verdicts per (unit, range row): the row's unit is the expected one, or converts to it
        target = ranges["unit_ucum"].to_numpy(dtype=object)
        metric = [TO_METRIC.get(n, (None, 1.0, 0.0)) for n in names] + [(None, 1.0, 0.0)]
        same = np.array([[n in ("", t) for t in target] for n in names] + [[True] * len(target)])
        converts = np.array([[m[0] == t for t in target] for m in metric])
        factor, offset = np.array([m[1] for m in metric]), np.array([m[2] for m in metric])
        same, converts = same[unit, pick], converts[unit, pick]
        value = frame[self.field].to_numpy(dtype=float, na_value=np.nan)
        value = np.where(converts, value * factor[unit] + offset[unit], value)
        low = ranges["plausible_low"].to_numpy(float)[pick]
        high = ranges["plausible_high"].to_numpy(float)[pick]
        judged = known & (same | converts) & ~np.isnan(value)
        return np.flatnonzero(judged & ((value < low) | (value > high)))


def _unit_codes(frame: pd.DataFrame, unit_by_id: dict[int, str]) -> tuple[np.ndarray, list[str]]:
    """Each row's unit as an index into the returned names (lower-case; ``len(names)``: none).

    The unit is the stripped source value when present, else the unit concept's UCUM code.
    """
    text_codes, text = pd.factorize(frame["unit_source_value"])
    text = [str(t).strip().lower() for t in text]
    id_codes, ids = pd.factorize(frame["unit_concept_id"])
    by_id = [unit_by_id.get(int(i)) for i in ids]
    by_id = [None if u is None else u.lower() for u in by_id]
    names = sorted(set(text) | {u for u in by_id if u is not None})
    index = {n: k for k, n in enumerate(names)}
    none = len(names)
    # code -1 (missing) takes the last entry, ``none``
    from_text = np.array([index[t] for t in text] + [none])[text_codes]
    from_id = np.array([none if u is None else index[u] for u in by_id] + [none])[id_codes]
    return np.where(from_text != none, from_text, from_id), names


def checks_for(spec: TableSpec) -> list[Check]:
    """Expand the check types over one table's spec, with DQD-like default thresholds."""
    names = set(spec.names)
    out: list[Check] = []
    for f in spec.fields:
        if f.required and not f.primary_key:
            out.append(IsRequired(spec.name, f.name))
        if f.type != "text":
            out.append(CdmDatatype(spec.name, f.name))
        if f.primary_key:
            out.append(IsRequired(spec.name, f.name))
            out.append(IsPrimaryKey(spec.name, f.name))
        if f.foreign_key is not None:
            out.append(IsForeignKey(spec.name, f.name, references=".".join(f.foreign_key)))
        if f.concept:
            out.append(ConceptMapped(spec.name, f.name, 5.0, source_field=f.source_concept))
        if f.type in ("date", "datetime") and f.name.endswith("_date"):
            out.append(PlausibleDateHigh(spec.name, f.name, 1.0))
            out.append(PlausibleDateLow(spec.name, f.name, 1.0))
            if "person_id" in names and spec.name not in ("observation_period",):
                out.append(PlausibleAfterBirth(spec.name, f.name, 1.0))
        if f.event:
            out.append(PlausibleBeforeDeath(spec.name, f.name, 1.0))
        if f.after is not None:
            out.append(PlausibleStartBeforeEnd(spec.name, f.name, 1.0, start_field=f.after))
    if spec.name == "measurement":
        out.append(PlausibleMeasurementValue("measurement", "value_as_number", 1.0))
    return out


def default_checks(tables: Iterable[str] | None = None) -> list[Check]:
    """Every check of every table in `tables` (default: all tables of the spec)."""
    return [c for name in (TABLES if tables is None else tables) for c in checks_for(TABLES[name])]


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one check on one site's table.

    ``status`` is ``pass``, ``fail`` or ``not_applicable`` (the table or what the check needs
    is missing); ``rows`` holds the positions of failing rows.
    """

    check: Check
    n_rows: int
    n_failed: int
    status: str
    rows: np.ndarray

    @property
    def percent_failed(self) -> float:
        """Failing share of rows, in percent."""
        return 100.0 * self.n_failed / self.n_rows if self.n_rows else 0.0


def evaluate(check: Check, table: ParsedTable | None, context: SiteContext) -> CheckResult:
    """Run one check and decide pass or fail against its threshold.

    Notes
    -----
    As DQD's ``evaluateThresholds``: with a threshold of 0 any failing row fails the check;
    otherwise it fails when the failing percentage exceeds the threshold.
    """
    none = np.empty(0, dtype=np.int64)
    if table is None or not check.applicable(context):
        return CheckResult(check, 0 if table is None else len(table), 0, "not_applicable", none)
    rows = np.asarray(check.failing(table, context), dtype=np.int64)
    n = len(table)
    pct = 100.0 * len(rows) / n if n else 0.0
    failed = len(rows) > 0 if check.threshold == 0 else pct > check.threshold
    return CheckResult(check, n, len(rows), "fail" if failed else "pass", rows)


def run_checks(
    tables: Mapping[str, ParsedTable], context: SiteContext, checks: Iterable[Check] | None = None
) -> list[CheckResult]:
    """Run `checks` (default: those of every table present) over a site's parsed tables."""
    chosen = default_checks(tables.keys()) if checks is None else checks
    return [evaluate(c, tables.get(c.table), context) for c in chosen]
