"""The program's own feeds as curation frames: survey answers, wearables, physical measurements.

Each feed's latest stored submission that validates is read (a later bad upload changes
nothing). Participant ids become site person numbers (the ``person_id`` of every curation
frame); physical measurements become OMOP ``measurement`` rows whose ``src_id`` is the
program, so the EHR rules on units, plausible values and dates apply to them too.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

import numpy as np
import pandas as pd

from opencohort.config import Home
from opencohort.curate._omop import SRC_ID, SURVEY, WEARABLE_TABLES, empty
from opencohort.ingest import FEEDS, PROGRAM, latest_feed, participant_number
from opencohort.vocab import measurements, survey_codebook

#: OMOP type concept of the program's physical measurements ("From physical examination").
PHYSICAL_EXAM_TYPE = 44818701
#: Physical-measurement feed column -> key of the curated measurement vocabulary.
PM_COLUMNS = {
    "height_cm": "height",
    "weight_kg": "weight",
    "bmi": "bmi",
    "waist_cm": "waist",
    "hip_cm": "hip",
    "systolic_bp": "systolic_bp",
    "diastolic_bp": "diastolic_bp",
    "heart_rate": "heart_rate",
}


@cache
def module_names() -> pd.Series:
    """Survey module name by module concept id."""
    book = survey_codebook().drop_duplicates("mod_concept_id")
    return book.set_index("mod_concept_id")["mod_concept_name"]


def concept_code(ids: pd.Series) -> pd.Series:
    """The PPI concept code of each concept id (the id as text; missing stays missing)."""
    return ids.astype("Int64").astype("string").astype(object).where(ids.notna(), None)


def _person(participant_id: pd.Series) -> pd.Series:
    return pd.Series(participant_number(participant_id), index=participant_id.index).astype("Int64")


def survey_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """Curation survey frame from the survey feed's typed rows."""
    out = empty(SURVEY)
    data = {
        "person_id": _person(rows["participant_id"]),
        "survey": rows["module_concept_id"].astype("float64").map(module_names()).astype(object),
        "module_concept_id": rows["module_concept_id"],
        "question_concept_id": rows["question_concept_id"],
        "question_concept_code": concept_code(rows["question_concept_id"]),
        "answer_concept_id": rows["answer_concept_id"],
        "answer_concept_code": concept_code(rows["answer_concept_id"]),
        "value_as_number": rows["value_number"],
        "value_text": rows["value_text"],
        "survey_date": rows["authored_date"],
    }
    return pd.DataFrame({c: pd.Series(data[c].to_numpy(), dtype=out[c].dtype) for c in out})


def wearable_frame(table: str, rows: pd.DataFrame) -> pd.DataFrame:
    """Curation frame of one wearable table from its feed rows."""
    out = empty(table)
    data = {
        **{c: rows[c] for c in out.columns if c in rows},
        "person_id": _person(rows["participant_id"]),
    }
    return pd.DataFrame({c: pd.Series(data[c].to_numpy(), dtype=out[c].dtype) for c in out})


def measurement_rows(rows: pd.DataFrame, *, first_id: int) -> pd.DataFrame:
    """OMOP measurement rows (``src_id`` the program) of the physical-measurement feed.

    One row per person, visit and measured value, numbered from `first_id`, in the vocabulary's
    concept and unit for each value.
    """
    vocab = measurements().set_index("key")
    template = empty("measurement", src=True)
    parts = []
    for column, key in PM_COLUMNS.items():
        present = rows[rows[column].notna()]
        parts.append(
            pd.DataFrame(
                {
                    "person_id": _person(present["participant_id"]).to_numpy(),
                    "measurement_concept_id": int(vocab.at[key, "concept_id"]),
                    "measurement_date": present["pm_date"].to_numpy(),
                    "measurement_type_concept_id": PHYSICAL_EXAM_TYPE,
                    "value_as_number": present[column].to_numpy(dtype="float64"),
                    "unit_concept_id": int(vocab.at[key, "unit_concept_id"]),
                    "measurement_source_value": column,
                    "unit_source_value": vocab.at[key, "unit_ucum"],
                }
            )
        )
    found = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    found["measurement_id"] = np.arange(first_id, first_id + len(found))
    found[SRC_ID] = PROGRAM
    return pd.DataFrame(
        {
            c: pd.Series(found[c].to_numpy() if c in found else None, dtype=template[c].dtype)
            for c in template.columns
        }  # fmt: skip
    )


def gather_feeds(
    home: Home,
    known: set[str],
    *,
    first_measurement_id: int,
    pinned: Mapping[str, str] | None = None,
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame, list[dict]]:
    """Read the program's feeds from the raw store into curation frames.

    Parameters
    ----------
    home
        The program home.
    known
        Registry participant ids (a feed validates only if all its participants are known).
    first_measurement_id
        Id of the first physical-measurement row (above every site measurement id).
    pinned
        Feed -> submission id: read only these feeds, these submissions (default: every
        feed's latest valid submission).

    Returns
    -------
    frames : dict of str to pandas.DataFrame
        ``survey`` and the wearable tables (empty when the feed was never ingested).
    measurement : pandas.DataFrame
        Physical measurements as OMOP measurement rows.
    snapshot : list of dict
        Feed, submission id and content checksum of each submission read.
    """
    frames = {t: empty(t) for t in (SURVEY, *WEARABLE_TABLES)}
    measurement = empty("measurement", src=True)
    snapshot = []
    for feed in FEEDS:
        if pinned is not None and feed not in pinned:
            continue
        found = latest_feed(
            home, feed, known, submission_id=None if pinned is None else pinned[feed]
        )
        if found is None:
            continue
        submission, tables = found
        snapshot.append({"feed": feed, "submission_id": submission.submission_id,
                         "content_sha256": submission.content_sha256})  # fmt: skip
        if "survey" in tables:
            frames[SURVEY] = survey_frame(tables["survey"])
        if "physical_measurements" in tables:
            measurement = measurement_rows(tables["physical_measurements"],
                                           first_id=first_measurement_id)  # fmt: skip
        for table in WEARABLE_TABLES:
            if table in tables:
                frames[table] = wearable_frame(table, tables[table])
    return frames, measurement, snapshot
