"""``opencohort ingest DIR``: store every feed of a folder raw, check it, show the reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from opencohort.config import HOME_ENV, find_home
from opencohort.ingest.feeds import FeedResult
from opencohort.ingest.service import IngestResult, ingest_dir

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", envvar=HOME_ENV, help="Program home (default: nearest above cwd)."),
]


def _row(result: IngestResult | FeedResult) -> dict:
    if isinstance(result, FeedResult):
        return {
            "feed": result.feed,
            "source": "program",
            "submission_id": result.submission.submission_id,
            "new": result.new,
            "files_failed": len(result.files_failed),
            "checks_failed": 0,
            "persons_dropped": 0,
            "report": str(result.html_path),
        }
    return {
        "feed": "ehr",
        "source": result.site_id,
        "submission_id": result.submission.submission_id,
        "new": result.new,
        "files_failed": len(result.files_failed),
        "checks_failed": len(result.checks_failed),
        "persons_dropped": len(result.dropped_person_ids),
        "report": str(result.html_path),
    }


def ingest(
    directory: Annotated[
        Path,
        typer.Argument(
            help="Folder of feeds: ehr/ (a folder per site), registry/, "
            "surveys/, wearables/ (like the synthetic program's output)."
        ),
    ],
    site: Annotated[
        list[str] | None, typer.Option("--site", help="Only this EHR site id (repeatable).")
    ] = None,
    home: HomeOption = None,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="Hide progress bars.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Store each feed raw (EHR, surveys, measurements, wearables), validate it, write its report.

    Exits 1 when a feed file failed validation (its problems are printed; nothing stored
    before is changed and curation keeps using the feed's last valid submission).
    """
    results = ingest_dir(find_home(home), directory, sites=site or None, progress=not no_progress)
    console, errors = Console(), Console(stderr=True)
    rows = [_row(r) for r in results]
    if as_json:
        console.print_json(json.dumps(rows))
    for row in [] if as_json else rows:
        state = "new" if row["new"] else "seen before"
        console.print(
            f"{row['feed']} {row['source']} {row['submission_id'][:12]} ({state}): "
            f"{row['files_failed']} files failed, {row['checks_failed']} checks failed; "
            f"report {row['report']}",
            highlight=False,
            soft_wrap=True,
        )
    problems = [p for r in results if isinstance(r, FeedResult) for p in r.problems]
    for problem in problems:
        errors.print(f"[red]error:[/red] {problem}", highlight=False, soft_wrap=True)
    if problems:
        raise typer.Exit(1)
