"""``opencohort ingest``: store site submissions raw, check them, say where the reports are."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from opencohort.config import HOME_ENV, find_home
from opencohort.ingest.service import ingest_ehr_dir

ingest = typer.Typer(
    help="Ingest feeds: site EHR submissions (stored raw, validated, reported).",
    no_args_is_help=True,
)
HomeOption = Annotated[
    Path | None,
    typer.Option("--home", envvar=HOME_ENV, help="Program home (default: nearest above cwd)."),
]


@ingest.command("ehr")
def ehr(
    directory: Annotated[Path, typer.Argument(help="Folder with one folder per site.")],
    site: Annotated[
        list[str] | None, typer.Option("--site", help="Only this site id (repeatable).")
    ] = None,
    home: HomeOption = None,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="Hide progress bars.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Store each site's submission in raw/, validate it and write its report."""
    results = ingest_ehr_dir(
        find_home(home), directory, sites=site or None, progress=not no_progress
    )
    console = Console()
    rows = [
        {
            "site_id": r.site_id,
            "submission_id": r.submission.submission_id,
            "new": r.new,
            "files_failed": len(r.files_failed),
            "checks_failed": len(r.checks_failed),
            "persons_dropped": len(r.dropped_person_ids),
            "report": str(r.html_path),
        }
        for r in results
    ]
    if as_json:
        console.print_json(json.dumps(rows))
        return
    table = Table(title="ingested EHR submissions")
    for column in rows[0] if rows else ["site_id"]:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    console.print(table)
