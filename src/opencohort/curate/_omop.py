"""Shapes of the tables curation works on: OMOP CDM tables, the person table and demographics.

Inside curation every frame follows the ingest conventions (int fields nullable Int64, float
fields float64, date and datetime fields Int64 day numbers since 1970-01-01, text as object).
EHR tables carry one extra column, :data:`SRC_ID`, naming the sending site; it never leaves
curation. The person table and ``demographics`` come from the registry, not from the sites.
"""

from __future__ import annotations

import pandas as pd

from opencohort.ingest import TABLES
from opencohort.ingest.omop_files import PII_TABLES

#: Column naming the site that sent a row (dropped before a tier is written).
SRC_ID = "src_id"
PERSON = "person"
DEMOGRAPHICS = "demographics"
#: Clinical tables taken from site submissions (the site's person table is used only by ingest).
EHR_TABLES: tuple[str, ...] = tuple(t for t in TABLES if t not in PII_TABLES and t != PERSON)
#: Tables emptied in both tiers (schema kept).
IDENTIFIER_TABLES = ("note", "location", "provider", "care_site")
#: Columns of ``demographics``: self-reported answers from the registry, ZIP cut to 3 digits.
DEMOGRAPHIC_COLUMNS = (
    "person_id",
    "sex_at_birth",
    "gender_identity",
    "sexual_orientation",
    "race_ethnicity",
    "education",
    "employment",
    "state",
    "zip3",
)
SURVEY = "survey"
#: Wearable daily summaries (one row per person and day).
WEARABLE_TABLES = ("steps_daily", "heart_rate_daily", "sleep_daily")
#: Columns and types of the program's own feeds, as curated and released (person_id holds
#: the site person number inside curation and the research id in a release).
FEED_FIELDS: dict[str, dict[str, str]] = {
    SURVEY: {
        "person_id": "int",
        "survey": "text",
        "module_concept_id": "int",
        "question_concept_id": "int",
        "question_concept_code": "text",
        "answer_concept_id": "int",
        "answer_concept_code": "text",
        "value_as_number": "float",
        "value_text": "text",
        "survey_date": "date",
    },
    "steps_daily": {"person_id": "int", "date": "date", "steps": "int"},
    "heart_rate_daily": {"person_id": "int", "date": "date", "resting_heart_rate": "int"},
    "sleep_daily": {
        "person_id": "int",
        "date": "date",
        **dict.fromkeys(
            (
                "minutes_asleep",
                "minutes_in_bed",
                "minutes_deep",
                "minutes_light",
                "minutes_rem",
                "minutes_wake",
            ),
            "int",
        ),
    },
}
#: Survey and wearable tables (keyed by person, no primary key).
FEED_TABLES = tuple(FEED_FIELDS)
#: Where each table is written inside a tier folder.
FOLDER = {DEMOGRAPHICS: "survey", SURVEY: "survey", **dict.fromkeys(WEARABLE_TABLES, "wearables")}


def folder(table: str) -> str:
    """Sub-folder of a tier holding `table` (``omop`` unless listed in :data:`FOLDER`)."""
    return FOLDER.get(table, "omop")


def field_types(table: str) -> dict[str, str]:
    """Column name -> ``int``/``float``/``date``/``datetime``/``text`` of a curated table."""
    if table == DEMOGRAPHICS:
        return {c: ("int" if c == "person_id" else "text") for c in DEMOGRAPHIC_COLUMNS}
    if table in FEED_FIELDS:
        return dict(FEED_FIELDS[table])
    return {f.name: f.type for f in TABLES[table].fields}


def date_columns(table: str) -> list[str]:
    """Every date and datetime column of `table`."""
    return [c for c, t in field_types(table).items() if t in ("date", "datetime")]


def event_columns(table: str) -> list[str]:
    """Clinical event date columns of `table` (checked against birth, death and the cutoff)."""
    if table not in TABLES or table == PERSON:
        return []
    return [f.name for f in TABLES[table].fields if f.event]


def end_pairs(table: str) -> list[tuple[str, str, bool]]:
    """(end column, start column, end required) pairs of `table`."""
    if table not in TABLES:
        return []
    return [(f.name, f.after, f.required) for f in TABLES[table].fields if f.after]


def text_columns(table: str) -> list[str]:
    """Text columns of an OMOP table (none for ``demographics``, whose values are codes)."""
    if table == DEMOGRAPHICS:
        return []
    return [c for c, t in field_types(table).items() if t == "text"]


def primary_key(table: str) -> str | None:
    """Primary key column of an OMOP table (None for demographics)."""
    return TABLES[table].primary_key if table in TABLES else None


def empty(table: str, *, src: bool = False) -> pd.DataFrame:
    """An empty frame of `table` with the curation dtypes (plus :data:`SRC_ID` if `src`)."""
    dtypes = {"int": "Int64", "float": "float64", "date": "Int64", "datetime": "Int64"}
    columns = {
        name: pd.Series([], dtype=dtypes.get(kind, "object"))
        for name, kind in field_types(table).items()
    }
    if src:
        columns[SRC_ID] = pd.Series([], dtype="object")
    return pd.DataFrame(columns)


def empty_cohort() -> dict[str, pd.DataFrame]:
    """Every curated table, empty: the empty cohort of the rule contract test."""
    frames = {t: empty(t, src=True) for t in EHR_TABLES}
    frames[PERSON] = empty(PERSON)
    frames[DEMOGRAPHICS] = empty(DEMOGRAPHICS)
    frames.update({t: empty(t) for t in FEED_TABLES})
    return frames


def concat_rows(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """``pd.concat`` of frames of one table, column by column when their columns agree.

    A frame-wide concat tests every cell of an all-missing object column (to choose its fill);
    joining each column's arrays gives the same frame without that test.
    """
    first = parts[0]
    same = all(
        list(p.columns) == list(first.columns) and (p.dtypes == first.dtypes).all() for p in parts
    )
    if len(parts) == 1 or not same:
        return pd.concat(parts, ignore_index=True)
    columns = {c: pd.concat([p[c] for p in parts], ignore_index=True) for c in first.columns}
    return pd.DataFrame(columns, columns=first.columns)
