"""``opencohort registry``: load the participant feed and summarise the registry."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from opencohort.config import HOME_ENV, find_home
from opencohort.registry.service import load_feed, open_registry, summary

registry = typer.Typer(
    help="The participant registry: load feeds, summarise.", no_args_is_help=True
)
HomeOption = Annotated[
    Path | None,
    typer.Option("--home", envvar=HOME_ENV, help="Program home (default: nearest above cwd)."),
]
JsonOutput = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _open(home: Path | None):
    return open_registry(find_home(home).registry_url)


def _table(title: str, counts: dict) -> Table:
    table = Table(title=title)
    table.add_column("value")
    table.add_column("participants", justify="right")
    for name, value in counts.items():
        table.add_row(str(name), str(value))
    return table


@registry.command("load")
def load(
    directory: Annotated[Path, typer.Argument(help="Feed directory (the synthetic registry/).")],
    home: HomeOption = None,
    as_json: JsonOutput = False,
) -> None:
    """Load a participant feed into the registry (all or nothing; re-loading is a no-op)."""
    opened = _open(home)
    try:
        added = load_feed(opened, directory)
    finally:
        opened.close()
    console = Console()
    if as_json:
        console.print_json(json.dumps(added))
    else:
        console.print(_table("new rows per table", added))


@registry.command("summary")
def summary_command(
    home: HomeOption = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Day to count on, YYYY-MM-DD (default: today).")
    ] = None,
    as_json: JsonOutput = False,
) -> None:
    """Count participants by enrolment status, site, consent, withdrawal and UBR category."""
    try:
        day = date.fromisoformat(as_of) if as_of else date.today()
    except ValueError as exc:
        raise typer.BadParameter(f"'{as_of}' is not a date; expected YYYY-MM-DD") from exc
    opened = _open(home)
    try:
        counts = summary(opened, as_of=day)
    finally:
        opened.close()
    console = Console()
    if as_json:
        console.print_json(json.dumps(counts))
        return
    console.print(f"{counts['participants']} participants on {counts['as_of']}; "
                  f"{counts['genomic_eligible']} eligible for sequencing")  # fmt: skip
    for key in ("enrolment", "site", "withdrawal", "ubr"):
        console.print(_table(key, counts[key]))
    for kind, statuses in counts["consent"].items():
        console.print(_table(f"consent: {kind}", statuses))
