"""``opencohort synth``: write a synthetic program's feeds and its planted truth."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from opencohort.config import HOME_ENV, find_home
from opencohort.progress import progress_steps
from opencohort.synth.models import SynthConfig


def synth(
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Directory for the feeds (default: <home>/synthetic)."),
    ] = None,
    home: Annotated[
        Path | None,
        typer.Option("--home", envvar=HOME_ENV, help="Program home, used when --out is not given."),
    ] = None,
    participants: Annotated[int, typer.Option(help="Number of participants.")] = 5000,
    genomes: Annotated[int, typer.Option(help="Number of sequenced participants.")] = 2000,
    sites: Annotated[int, typer.Option(help="Number of EHR sites.")] = 5,
    seed: Annotated[
        int, typer.Option(help="Random seed; the same seed gives the same files.")
    ] = 42,
    batch_size: Annotated[
        int, typer.Option(help="Participants per batch (bounds memory).")
    ] = 20_000,
    region_megabases: Annotated[float, typer.Option(help="Length of each genome region.")] = 1.0,
    force: Annotated[bool, typer.Option("--force", help="Replace a non-empty --out.")] = False,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="Hide progress bars.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Generate a synthetic program deterministically for a seed."""
    from opencohort.synth.program import generate_program

    if out is None:
        out = find_home(home).root / "synthetic"
    config = SynthConfig(
        participants=participants,
        genomes=genomes,
        sites=sites,
        seed=seed,
        batch_size=batch_size,
        region_megabases=region_megabases,
    )
    with progress_steps(no_progress) as step:
        summary = generate_program(config, out, force=force, step=step)
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        _render(summary, out)


def _render(summary: dict, out: Path) -> None:
    console = Console()
    n = summary["participants"]
    console.print(
        f"[bold]synthetic program[/bold] in {out}: {n:,} participants, "
        f"{summary['genomes']:,} genomes, {summary['injected_errors']:,} injected EHR errors"
    )
    for name, counts in summary["categories"].items():
        table = Table(title=name.replace("_", " "), title_justify="left")
        table.add_column("value")
        table.add_column("participants", justify="right")
        table.add_column("share", justify="right")
        for value, count in sorted(counts.items(), key=lambda kv: -kv[1]):
            table.add_row(value or "(none)", f"{count:,}", f"{count / n:.1%}")
        console.print(table)
    files = Table(title="files written", title_justify="left")
    files.add_column("file")
    files.add_column("rows", justify="right")
    n_sites = len(summary["categories"]["site_id"])
    totals: dict[str, int] = {}
    for name, rows in summary["rows"].items():
        key = re.sub(r"^ehr/[^/]+/", f"ehr/<{n_sites} sites>/", name)
        totals[key] = totals.get(key, 0) + rows
    for name, rows in totals.items():
        files.add_row(name, f"{rows:,}")
    console.print(files)
