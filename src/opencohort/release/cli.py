"""``opencohort release`` (list, show, verify) and ``opencohort curate run`` (build a release)."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from opencohort.config import HOME_ENV, find_home
from opencohort.curate.cli import curate
from opencohort.release.build import build_release
from opencohort.release.read import list_releases, read_release

release = typer.Typer(help="Releases: list, show and verify.", no_args_is_help=True)
HomeOption = Annotated[
    Path | None,
    typer.Option("--home", envvar=HOME_ENV, help="Program home (default: nearest above cwd)."),
]
JsonOutput = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


@release.command("list")
def list_(home: HomeOption = None, as_json: JsonOutput = False) -> None:
    """List published releases."""
    rows = list_releases(find_home(home))
    console = Console()
    if as_json:
        console.print_json(json.dumps(rows))
        return
    table = Table(title="releases")
    for column in ("name", "created", "registered persons", "controlled persons"):
        table.add_column(column)
    for r in rows:
        p = r["persons"]
        table.add_row(r["name"], r["created"], str(p.get("registered")), str(p.get("controlled")))
    console.print(table)


@release.command("show")
def show(name: str, home: HomeOption = None, as_json: JsonOutput = False) -> None:
    """Show a release's manifest summary (source, row counts, rule deltas)."""
    manifest = read_release(find_home(home), name).manifest
    summary = {k: manifest[k] for k in ("name", "created", "cutoff", "source", "row_counts")}
    summary["rules"] = [
        {"tier": e["tier"], "id": e["id"], "removed": e["removed"], "changed": e["changed"]}
        for e in manifest["rule_log"]
    ]
    Console().print_json(json.dumps(summary)) if as_json else Console().print(summary)


@release.command("verify")
def verify(name: str, home: HomeOption = None) -> None:
    """Verify every file of a release against its manifest's sha256 (exit 1 if not intact)."""
    found = read_release(find_home(home), name)
    Console().print(f"release {found.name}: {len(found.manifest['files'])} files verified")


@curate.command("run")
def run(
    release: Annotated[str, typer.Option("--release", help="Name of the new release.")],
    cutoff: Annotated[
        str | None, typer.Option(help="Submission cut-off YYYY-MM-DD (default: today).")
    ] = None,
    home: HomeOption = None,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="Hide progress.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Build release NAME from the latest submissions and the registry."""
    when = date.fromisoformat(cutoff) if cutoff else None
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=no_progress or not sys.stderr.isatty(),
    ) as bar:
        task = bar.add_task("gathering", total=None)
        manifest = build_release(
            find_home(home),
            release,
            cutoff=when,
            on_rule=lambda stage, rule: bar.update(task, description=f"{stage}: {rule.id}"),
        )
    console = Console()
    summary = {"name": manifest["name"], "row_counts": manifest["row_counts"]}
    if as_json:
        console.print_json(json.dumps(summary))
        return
    for tier, counts in manifest["row_counts"].items():
        console.print(f"{tier}: {counts.get('person', 0)} persons, {sum(counts.values())} rows")
    console.print(f"published release {manifest['name']}")
