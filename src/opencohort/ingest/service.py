"""Ingest use cases: store a site's submission raw, read and check it, match identities, report."""

from __future__ import annotations

import sys
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from opencohort.config import Home
from opencohort.errors import InputError
from opencohort.ingest._csv import MalformedFile
from opencohort.ingest.checks import SiteContext, run_checks
from opencohort.ingest.feeds import FeedResult, find_feeds, ingest_feed
from opencohort.ingest.identity import (
    match_identities,
    registry_identities,
    registry_participants,
    site_identities,
)
from opencohort.ingest.omop_files import PII_TABLES, TABLES, ParsedTable, parse_table
from opencohort.ingest.raw_store import Submission, store_submission
from opencohort.ingest.report import (
    FileResult,
    Reported,
    build_report,
    earlier_report,
    report_dir,
    write_report,
)

_MAX_PROBLEMS = 100
_TYPE_HINT = {
    "int": "an integer",
    "float": "a number",
    "date": "a date; expected YYYY-MM-DD",
    "datetime": "a date-time; expected YYYY-MM-DD or YYYY-MM-DD HH:MM:SS",
}


@dataclass(frozen=True)
class IngestResult(Reported):
    """Outcome of ingesting one site's submission.

    ``new`` is False when the same files were ingested before (nothing was stored or
    re-checked); ``report`` is the JSON report's content.
    """

    site_id: str

    @property
    def checks_failed(self) -> list[str]:
        """Ids of the checks that failed."""
        return [c["id"] for c in self.report["checks"] if c["status"] == "fail"]

    @property
    def dropped_person_ids(self) -> list[int]:
        """Site person ids whose rows identity matching drops."""
        identity = self.report["identity"]
        return [] if identity is None else identity["dropped_person_ids"]


def _problem(error: InputError) -> dict:
    message = str(error).split(": ", 1)[-1] if error.file else str(error)
    return {"line": error.line, "field": error.field, "message": message}


def _type_problems(table: ParsedTable) -> tuple[list[dict], int]:
    problems, total = [], 0
    for name, bad in table.bad_type.items():
        rows = np.flatnonzero(bad)
        total += len(rows)
        kind = table.spec.field(name).type
        values = table.text.column(name)
        for r in rows[: max(0, _MAX_PROBLEMS - len(problems))]:
            problems.append(
                {
                    "line": int(table.lines[r]),
                    "field": name,
                    "message": f"{values[int(r)].as_py()!r} is not {_TYPE_HINT[kind]}",
                }
            )
    problems.sort(key=lambda p: (p["line"], p["field"]))
    return problems, total


def read_submission(
    submission: Submission, *, only: Collection[str] | None = None
) -> tuple[list[FileResult], dict[str, ParsedTable]]:
    """Read every stored file of a submission; a malformed file fails alone.

    Parameters
    ----------
    submission
        The stored submission.
    only
        Read only the files of these tables (default: every file).

    Returns
    -------
    files : list of FileResult
        One per stored file read: CDM and PII tables are parsed, other files are ignored (they stay
        in the raw store). A file with bytes that are not UTF-8, a line with the wrong number
        of fields, an unclosed quote, a missing required column or a value of the wrong type
        is ``failed`` with every problem's line and field.
    tables : dict of str to ParsedTable
        The tables that could be split into rows (also those with wrong-typed values, whose
        cells are then missing), by table name.
    """
    files, tables = [], {}
    for stored in submission.files:
        name = stored.name
        table = name[:-4].lower() if name.lower().endswith(".csv") else None
        if only is not None and table not in only:
            continue
        if table not in TABLES or "/" in name:
            files.append(
                FileResult(
                    name,
                    None,
                    "unknown",
                    "ignored",
                    warnings=["not a CDM or PII file; kept, not read"],
                )
            )
            continue
        kind = "pii" if table in PII_TABLES else "cdm"
        label = f"{submission.site_id}/{name}"
        try:
            parsed = parse_table(submission.file(name).read_bytes(), table, file=label)
        except MalformedFile as exc:
            files.append(
                FileResult(
                    name, table, kind, "failed", problems=[_problem(p) for p in exc.problems]
                )
            )
            continue
        problems, n_bad = _type_problems(parsed)
        warnings = list(parsed.warnings)
        if n_bad > len(problems):
            warnings.append(f"{n_bad} values of the wrong type; the first {len(problems)} listed")
        status = "failed" if problems else "ok"
        files.append(FileResult(name, table, kind, status, len(parsed), problems, warnings))
        tables[table] = parsed
    return files, tables


def _participants(home: Home, participants: pd.DataFrame | None) -> pd.DataFrame:
    return registry_participants(home) if participants is None else participants


def _registry(home: Home, participants: pd.DataFrame | None) -> Callable[[], pd.DataFrame]:
    """Registry identities (:func:`registry_identities`), normalised once when first asked."""
    return cache(lambda: registry_identities(_participants(home, participants)))


def ingest_site(
    home: Home,
    site_id: str,
    folder: Path,
    *,
    participants: pd.DataFrame | None = None,
    received: datetime | None = None,
) -> IngestResult:
    """Store a site's submission raw, then validate it, match identities and write its report.

    Parameters
    ----------
    home
        The program home.
    site_id
        The sending site.
    folder
        The submission's files (OMOP CDM v5.4 or v5.3.1 CSVs and PII files).
    participants
        Registry participants for identity matching (columns
        ``opencohort.ingest.identity.PARTICIPANT_COLUMNS``); default: read the home's registry.
    received
        When the submission arrived (default: now, UTC). Dates after it are implausible.

    Returns
    -------
    IngestResult
        The stored submission, the report and where it was written.

    Raises
    ------
    InputError
        If `folder` holds no files. Malformed files do not raise: they fail in the report.

    Notes
    -----
    1. Store every file in the raw store (a no-op for files stored before, in which case the
       earlier report is returned).
    2. Read each stored CDM and PII file as text, then convert types (a malformed file fails
       alone).
    3. Run the checks of :func:`opencohort.ingest.checks.default_checks` on every table read.
    4. Match the site's persons against the registry.
    5. Write the report as JSON and HTML.
    """
    return _ingest(home, site_id, folder, _registry(home, participants), received)


def _ingest(
    home: Home,
    site_id: str,
    folder: Path,
    registry: Callable[[], pd.DataFrame],
    received: datetime | None,
) -> IngestResult:
    submission = store_submission(home, site_id, folder, received=received)
    json_path = report_dir(home, site_id) / f"{submission.submission_id}.json"
    if (report := earlier_report(submission, json_path)) is not None:
        return IngestResult(submission, report, json_path, json_path.with_suffix(".html"),
                            new=False, site_id=site_id)  # fmt: skip
    return _validate(home, submission, registry())


def _validate(home: Home, submission: Submission, registry: pd.DataFrame) -> IngestResult:
    files, tables = read_submission(submission)
    context = SiteContext.from_tables(tables, as_of=submission.received.date())
    results = run_checks(tables, context)
    identity = None
    if "person" in tables:
        identity = match_identities(site_identities(tables), registry)
    report = build_report(submission, files, results, tables, identity)
    json_path, html_path = write_report(home, report)
    return IngestResult(submission, report, json_path, html_path, new=submission.new,
                        site_id=submission.site_id)  # fmt: skip


def site_folders(ehr_dir: Path) -> list[Path]:
    """The site folders of a folder of submissions (like the synthetic program's ``ehr/``)."""
    ehr_dir = Path(ehr_dir)
    if not ehr_dir.is_dir():
        raise InputError("not a folder; expected one folder per site", file=str(ehr_dir))
    return sorted(p for p in ehr_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def ingest_ehr_dir(
    home: Home,
    ehr_dir: Path,
    *,
    sites: list[str] | None = None,
    participants: pd.DataFrame | None = None,
    received: datetime | None = None,
    progress: bool = False,
) -> list[IngestResult]:
    """Ingest every site folder of `ehr_dir` (each named by its site id), one after another.

    Parameters
    ----------
    home
        The program home.
    ehr_dir
        Folder holding one folder per site.
    sites
        Only these site ids (default: every site folder).
    participants, received
        As for :func:`ingest_site`; the registry is read once for all sites.
    progress
        Show a progress bar on stderr (only when stderr is a terminal).

    Returns
    -------
    list of IngestResult
        One per site, in site order; a site whose files are all malformed still has a report.
    """
    folders = site_folders(ehr_dir)
    if sites is not None:
        missing = sorted(set(sites) - {f.name for f in folders})
        if missing:
            raise InputError(f"no folder for site(s) {', '.join(missing)}", file=str(ehr_dir))
        folders = [f for f in folders if f.name in sites]
    registry = _registry(home, participants)
    results = []
    with Progress(
        TextColumn("{task.description:<24}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} sites"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not progress or not sys.stderr.isatty(),
    ) as bar:
        task = bar.add_task("ingesting EHR", total=len(folders))
        for folder in folders:
            bar.update(task, description=f"ingesting {folder.name}")
            results.append(_ingest(home, folder.name, folder, registry, received))
            bar.advance(task)
    return results


def ingest_dir(
    home: Home,
    directory: Path,
    *,
    sites: list[str] | None = None,
    participants: pd.DataFrame | None = None,
    received: datetime | None = None,
    progress: bool = False,
) -> list[IngestResult | FeedResult]:
    """Ingest every feed of a folder: site EHR (``ehr/``), surveys, measurements, wearables.

    Parameters
    ----------
    home
        The program home.
    directory
        A folder of feeds laid out like the synthetic program's output: ``ehr/`` (one folder
        per site) and the files :func:`opencohort.ingest.feeds.find_feeds` finds.
    sites
        Only these EHR sites (default: every site folder).
    participants, received, progress
        As for :func:`ingest_ehr_dir`.

    Returns
    -------
    list
        One :class:`IngestResult` per site, then one
        :class:`~opencohort.ingest.feeds.FeedResult` per feed.

    Raises
    ------
    InputError
        If `directory` holds no feed at all.
    """
    directory = Path(directory)
    feeds = find_feeds(directory) if directory.is_dir() else []
    ehr = directory / "ehr"
    if not feeds and not ehr.is_dir():
        raise InputError(
            "no feeds found; expected ehr/ (one folder per site), registry/surveys.csv, "
            "surveys/, registry/physical_measurements.csv or wearables/",
            file=str(directory),
        )
    people = cache(lambda: _participants(home, participants))
    results: list[IngestResult | FeedResult] = []
    if ehr.is_dir():
        results += ingest_ehr_dir(home, ehr, sites=sites, participants=people(),
                                  received=received, progress=progress)  # fmt: skip
    known = set(people()["participant_id"]) if feeds else set()
    for source in feeds:
        results.append(ingest_feed(home, source, participants=known, received=received))
    return results
