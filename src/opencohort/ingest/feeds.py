"""Program feeds besides site EHR: survey answers, physical measurements and wearables.

Each feed is stored raw first (``raw/<feed>/program/<submission id>/``, the same raw store as
EHR submissions), then read and validated: required fields, types, dates, known participants
and, for surveys, known question and answer codes. Every problem names file, line and field;
a file with any problem fails and its rows are never used (curation reads the latest
submission of a feed that validates, so a bad upload changes nothing). Each submission is a
full snapshot of its feed. Reports go to ``reports/ingest/<feed>/program/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from opencohort.config import Home
from opencohort.errors import NotFound
from opencohort.ingest._csv import MalformedFile
from opencohort.ingest._fhir import read_questionnaire_responses
from opencohort.ingest.omop_files import ParsedTable, TableSpec, build_specs, parse_text
from opencohort.ingest.omop_files import parse_with_spec as _parse_csv
from opencohort.ingest.raw_store import Submission, store_submission, submissions
from opencohort.ingest.report import (
    FileResult,
    Reported,
    build_report,
    earlier_report,
    report_dir,
    write_report,
)
from opencohort.vocab import survey_answer_codes

#: The source id of the program's own feeds in the raw store.
PROGRAM = "program"
SURVEY, PHYSICAL_MEASUREMENTS, WEARABLES = "survey", "physical_measurements", "wearables"
_SPEC = {
    "survey": """
        participant_id text req
        module_concept_id int req
        module text
        question_concept_id int req
        answer_concept_id int
        value_text text
        value_number float
        authored_date date req
    """,
    "physical_measurements": """
        participant_id text req
        pm_date date req
        height_cm float
        weight_kg float
        bmi float
        waist_cm float
        hip_cm float
        systolic_bp float
        diastolic_bp float
        heart_rate float
    """,
    "steps_daily": """
        participant_id text req
        date date req
        steps int req
    """,
    "heart_rate_daily": """
        participant_id text req
        date date req
        resting_heart_rate int req
    """,
    "sleep_daily": """
        participant_id text req
        date date req
        minutes_asleep int req
        minutes_in_bed int
        minutes_deep int
        minutes_light int
        minutes_rem int
        minutes_wake int
    """,
}
#: Every feed table's spec, by table name.
FEED_TABLES: dict[str, TableSpec] = build_specs(_SPEC)
#: Feed -> the tables its files hold.
FEEDS: dict[str, tuple[str, ...]] = {
    SURVEY: ("survey",),
    PHYSICAL_MEASUREMENTS: ("physical_measurements",),
    WEARABLES: ("steps_daily", "heart_rate_daily", "sleep_daily"),
}
_FIRST_DAY = (date(1900, 1, 1) - date(1970, 1, 1)).days
_MAX_PROBLEMS = 100
_HINT = {"int": "an integer", "float": "a number", "date": "a date; expected YYYY-MM-DD"}


def _table_of(feed: str, name: str) -> str | None:
    """Table a stored file of `feed` holds (None: not a file of this feed)."""
    lower = name.lower()
    if feed == SURVEY and lower.endswith((".json", ".ndjson")):
        return "survey"
    stem = Path(lower).stem.removesuffix("s") if feed == SURVEY else Path(lower).stem
    return stem if lower.endswith(".csv") and stem in FEEDS[feed] else None


def _parse(feed: str, table: str, data: bytes, label: str) -> ParsedTable:
    if label.lower().endswith((".json", ".ndjson")):
        return parse_text(
            read_questionnaire_responses(data, file=label), FEED_TABLES[table], file=label
        )
    return _parse_csv(data, FEED_TABLES[table], file=label)


def _problems(table: ParsedTable, known: set[str], received: int) -> list[dict]:
    """Every cell problem: wrong type, missing required, implausible date, unknown code."""
    found: list[dict] = []
    frame, lines = table.frame, table.lines

    def add(mask: np.ndarray, field: str, message) -> None:
        for r in np.flatnonzero(mask)[: max(0, _MAX_PROBLEMS - len(found))]:
            found.append({"line": int(lines[r]), "field": field, "message": message(int(r))})

    for spec in table.spec.fields:
        raw = table.text.column(spec.name) if spec.name in table.text.column_names else None
        bad = table.bad_type.get(spec.name, np.zeros(len(frame), dtype=bool))
        if bad.any() and raw is not None:
            add(
                bad,
                spec.name,
                lambda r, raw=raw, k=spec.type: f"{raw[r].as_py()!r} is not {_HINT[k]}",
            )
        if spec.required:
            add(
                frame[spec.name].isna().to_numpy() & ~bad,
                spec.name,
                lambda r: "missing; this field is required",
            )
        if spec.type == "date":
            days = frame[spec.name].astype("float64").to_numpy()
            with np.errstate(invalid="ignore"):
                odd = (days < _FIRST_DAY) | (days > received)
            add(
                odd,
                spec.name,
                lambda r: "implausible date: before 1900 or after the feed was received",
            )
    pid = frame["participant_id"]
    add(
        (pid.notna() & ~pid.isin(known)).to_numpy(),
        "participant_id",
        lambda r: f"{pid.iloc[r]!r} is not a registry participant",
    )
    if table.name == "survey":
        found += _code_problems(table, limit=_MAX_PROBLEMS - len(found))
    return sorted(found, key=lambda p: (p["line"], p["field"]))[:_MAX_PROBLEMS]


def _code_problems(table: ParsedTable, *, limit: int) -> list[dict]:
    """Survey rows whose question is not in its module, or answer not an answer of it."""
    codes = survey_answer_codes()
    f = table.frame
    questions = pd.MultiIndex.from_frame(codes[["mod_concept_id", "question_concept_id"]])
    triples = pd.MultiIndex.from_frame(codes)
    asked = pd.MultiIndex.from_arrays(
        [f["module_concept_id"].astype("float64"), f["question_concept_id"].astype("float64")]
    )
    given = pd.MultiIndex.from_arrays(
        [*(asked.get_level_values(i) for i in (0, 1)), f["answer_concept_id"].astype("float64")]
    )
    present = f[["module_concept_id", "question_concept_id"]].notna().all(axis=1).to_numpy()
    bad_q = present & ~asked.isin(questions)
    bad_a = present & ~bad_q & f["answer_concept_id"].notna().to_numpy() & ~given.isin(triples)
    out = []
    for r in np.flatnonzero(bad_q | bad_a)[:limit]:
        field = "question_concept_id" if bad_q[r] else "answer_concept_id"
        what = "not a question of module" if bad_q[r] else "not an answer of question"
        owner = f["module_concept_id"].iloc[r] if bad_q[r] else f["question_concept_id"].iloc[r]
        out.append(
            {
                "line": int(table.lines[r]),
                "field": field,
                "message": f"{f[field].iloc[r]} is {what} {owner} in the codebook",
            }
        )
    return out


def _where(name: str, table: ParsedTable) -> pd.Series:
    """``<file>:<line>`` of every row (built in Arrow: feeds have millions of rows)."""
    lines = pc.cast(pa.array(table.lines), pa.string())
    where = pc.binary_join_element_wise(f"{name}:", lines, "")
    return pd.Series(where.to_numpy(zero_copy_only=False), index=table.frame.index)


def read_feed(
    submission: Submission, feed: str, known: set[str], *, rows: bool = True
) -> tuple[list[FileResult], dict[str, pd.DataFrame]]:
    """Read and validate every stored file of a feed submission.

    Parameters
    ----------
    submission
        The stored submission.
    feed
        Its feed (a key of :data:`FEEDS`).
    known
        Registry participant ids.
    rows
        Also return the typed rows (False: validate only, the tables come back empty).

    Returns
    -------
    files : list of FileResult
        One per stored file: ``failed`` with every problem's line and field, ``ok`` or
        ``ignored`` (not a file of this feed; kept in raw, not read).
    tables : dict of str to pandas.DataFrame
        Typed rows of every table whose files all passed (files of one table concatenated),
        with a ``line`` column naming each row's file and line.
    """
    received = (submission.received.date() - date(1970, 1, 1)).days
    files: list[FileResult] = []
    parts: dict[str, list[pd.DataFrame]] = {}
    failed: set[str] = set()
    for stored in submission.files:
        table = _table_of(feed, stored.name)
        if table is None:
            files.append(
                FileResult(
                    stored.name,
                    None,
                    "unknown",
                    "ignored",
                    warnings=[f"not a {feed} file; kept, not read"],
                )
            )
            continue
        label = f"{feed}/{stored.name}"
        try:
            parsed = _parse(feed, table, submission.file(stored.name).read_bytes(), label)
        except MalformedFile as exc:
            problems = [
                {"line": p.line, "field": p.field, "message": str(p).split(": ", 1)[-1]}
                for p in exc.problems
            ]
            files.append(FileResult(stored.name, table, feed, "failed", problems=problems))
            failed.add(table)
            continue
        problems = _problems(parsed, known, received)
        status = "failed" if problems else "ok"
        files.append(
            FileResult(
                stored.name, table, feed, status, len(parsed), problems, list(parsed.warnings)
            )
        )
        if problems:
            failed.add(table)
        elif rows:
            where = _where(stored.name, parsed)
            parts.setdefault(table, []).append(parsed.frame.assign(line=where))
    tables = {t: pd.concat(p, ignore_index=True) for t, p in parts.items() if t not in failed}
    return files, tables


@dataclass(frozen=True)
class FeedSource:
    """Where a feed's files are in a folder of feeds: a folder and the file names in it."""

    feed: str
    folder: Path
    names: tuple[str, ...]


def find_feeds(directory: Path) -> list[FeedSource]:
    """The survey, physical-measurement and wearable files of a folder of feeds.

    Looks for ``registry/surveys.csv``, ``surveys/`` (CSV or FHIR JSON/NDJSON files),
    ``registry/physical_measurements.csv`` and ``wearables/*_daily.csv`` (the layout of the
    synthetic program's output).
    """
    directory = Path(directory)
    found = []
    places = (SURVEY, "registry"), (SURVEY, "surveys"), (PHYSICAL_MEASUREMENTS, "registry")
    for feed, folder in (*places, (WEARABLES, "wearables")):
        path = directory / folder
        if not path.is_dir():
            continue
        names = tuple(
            sorted(p.name for p in path.iterdir() if p.is_file() and _table_of(feed, p.name))
        )
        if feed == SURVEY and folder == "registry":
            names = tuple(n for n in names if n.lower().endswith(".csv"))
        if names:
            found.append(FeedSource(feed, path, names))
    return found


@dataclass(frozen=True)
class FeedResult(Reported):
    """Outcome of ingesting one feed submission (``new`` False: stored and checked before)."""

    feed: str

    @property
    def problems(self) -> list[str]:
        """Every problem as ``file, line N, field F: message``."""
        return [
            f"{self.feed}/{f['name']}, line {p['line']}, field {p['field']}: {p['message']}"
            for f in self.report["files"]
            for p in f["problems"]
        ]


def ingest_feed(
    home: Home,
    source: FeedSource,
    *,
    participants: set[str],
    received: datetime | None = None,
) -> FeedResult:
    """Store one feed's files raw, then validate them and write the report.

    Parameters
    ----------
    home
        The program home.
    source
        The feed and its files (from :func:`find_feeds`).
    participants
        Registry participant ids.
    received
        When the files arrived (default: now, UTC); later dates are implausible.

    Returns
    -------
    FeedResult
        The stored submission and its report. Re-ingesting the same files stores nothing and
        returns the earlier report.

    Raises
    ------
    InputError
        If the folder holds none of the named files.
    """
    submission = store_submission(
        home, PROGRAM, source.folder, received=received, feed=source.feed, only=source.names
    )
    json_path = report_dir(home, PROGRAM, feed=source.feed) / f"{submission.submission_id}.json"
    if (report := earlier_report(submission, json_path)) is not None:
        return FeedResult(submission, report, json_path, json_path.with_suffix(".html"),
                          new=False, feed=source.feed)  # fmt: skip
    files, _ = read_feed(submission, source.feed, participants, rows=False)
    report = {**build_report(submission, files, [], {}, None), "feed": source.feed}
    json_path, html_path = write_report(home, report)
    return FeedResult(submission, report, json_path, html_path, new=submission.new,
                      feed=source.feed)  # fmt: skip


def latest_feed(
    home: Home, feed: str, known: set[str], *, submission_id: str | None = None
) -> tuple[Submission, dict[str, pd.DataFrame]] | None:
    """The newest stored submission of `feed` whose files all validate, and its tables.

    Returns None when the feed has never been ingested. `submission_id` picks that
    submission instead (a rebuild of an earlier release).

    Raises
    ------
    NotFound
        If submissions are stored but none validates, or `submission_id` is not stored or
        does not validate.
    """
    stored = submissions(home, PROGRAM, feed=feed)
    if submission_id is not None:
        stored = [s for s in stored if s.submission_id == submission_id]
        if not stored:
            raise NotFound(f"no stored {feed} submission {submission_id} in {home.raw}")
    for submission in reversed(stored):
        files, tables = read_feed(submission, feed, known)
        if not any(f.status == "failed" for f in files):
            return submission, tables
    if stored:
        raise NotFound(
            f"no stored {feed} submission validates; fix the files named in "
            f"{report_dir(home, PROGRAM, feed=feed)} and ingest them again"
        )
    return None
