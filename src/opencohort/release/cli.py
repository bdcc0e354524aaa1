"""``opencohort release`` (list, show, check, diff), ``curate run`` and ``retract``."""

from __future__ import annotations

import json
import sys
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from opencohort.config import HOME_ENV, find_home
from opencohort.curate import ENGINES
from opencohort.curate.cli import curate
from opencohort.release.build import build_release
from opencohort.release.check import check_release
from opencohort.release.diff import diff_releases
from opencohort.release.read import list_releases, read_release
from opencohort.release.retract import retract as retract_release

release = typer.Typer(help="Releases: list, show, check and diff.", no_args_is_help=True)
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
    for column in ("name", "created", "registered persons", "controlled persons", "retraction"):
        table.add_column(column)
    for r in rows:
        p = r["persons"]
        note = " ".join(
            filter(None, [r["retracts"] and f"rebuilds {r['retracts']}",
                          r["superseded_by"] and f"superseded by {r['superseded_by']}"])
        )  # fmt: skip
        table.add_row(r["name"], r["created"], str(p.get("registered")),
                      str(p.get("controlled")), note)  # fmt: skip
    console.print(table)


@release.command("show")
def show(name: str, home: HomeOption = None, as_json: JsonOutput = False) -> None:
    """Show a release's manifest summary: rows per table and tier, and what each rule did."""
    manifest = read_release(find_home(home), name).manifest
    summary = {k: manifest[k] for k in ("name", "created", "cutoff", "source", "row_counts")}
    summary["genomics"] = manifest.get("genomics")
    summary["rules"] = [
        {"tier": e["tier"], "id": e["id"], "removed": e["removed"], "changed": e["changed"]}
        for e in manifest["rule_log"]
    ]
    if as_json:
        Console().print_json(json.dumps(summary))
        return
    counts = summary["row_counts"]
    tiers = sorted(counts)
    rows = Table(
        title=f"release {name} (created {summary['created']}, cut-off {summary['cutoff']})"
    )
    rows.add_column("table")
    for tier in tiers:
        rows.add_column(tier, justify="right")
    for table in sorted({t for tier in tiers for t in counts[tier]}):
        rows.add_row(table, *(f"{counts[tier].get(table, 0):,}" for tier in tiers))
    rules = Table(title="rules that removed or changed rows")
    for column in ("tier", "rule", "removed", "changed"):
        rules.add_column(column, justify="right" if column in ("removed", "changed") else "left")
    for rule in summary["rules"]:
        removed, changed = sum(rule["removed"].values()), sum(rule["changed"].values())
        if removed or changed:
            rules.add_row(rule["tier"], rule["id"], f"{removed:,}", f"{changed:,}")
    Console().print(rows, rules)
    if summary["genomics"]:
        Console().print(_genomics_line(summary["genomics"]), highlight=False)


def _genomics_line(record: dict) -> str:
    """One line on a release's genomic part: samples, variants, left out, annotation counts."""
    left = ", ".join(f"{k} {v}" for k, v in record["left_out"].items() if v)
    notes = record.get("annotation", {})
    counts = ", ".join(f"{k} {v:,}" for k, v in notes.items() if v is not None and k != "variants")
    return (f"controlled/genomics: {record['samples']:,} samples, {record['variants']:,} "
            f"variants on {len(record['contigs'])} contigs (left out: {left or 'none'}; "
            f"{counts})")  # fmt: skip


@release.command("check")
def check(name: str, home: HomeOption = None) -> None:
    """Check checksums, cross-tier invariants and the privacy scan (exit 1 on any problem)."""
    problems = check_release(find_home(home), name)
    console = Console()
    for problem in problems:
        console.print(f"[red]problem:[/red] {problem}", highlight=False, soft_wrap=True)
    if problems:
        raise typer.Exit(1)
    console.print(f"release {name}: checksums, cross-tier invariants, privacy scan and genomic "
                  "checks pass")  # fmt: skip


@release.command("diff")
def diff(old: str, new: str, home: HomeOption = None, as_json: JsonOutput = False) -> None:
    """Show participants, rows and concepts added or removed from release OLD to NEW."""
    found = find_home(home)
    change = diff_releases(read_release(found, old), read_release(found, new))
    console = Console()
    if as_json:
        console.print_json(json.dumps(change))
        return
    for tier, part in change["tiers"].items():
        p = part["persons"]
        console.print(f"[bold]{tier}[/bold]: persons +{p['added']} -{p['removed']} "
                      f"({p['kept']} in both)")  # fmt: skip
        table = Table(title=f"{old} -> {new}, {tier}")
        for column in ("table", old, new, "rows +/-", "concepts added", "concepts removed"):
            table.add_column(column)
        for name, entry in part["tables"].items():
            before, after = entry["rows"]
            added = sum(len(c["added"]) for c in entry["concepts"].values())
            removed = sum(len(c["removed"]) for c in entry["concepts"].values())
            table.add_row(name, str(before), str(after), f"{after - before:+d}",
                          str(added), str(removed))  # fmt: skip
        console.print(table)


def _progress(no_progress: bool) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=no_progress or not sys.stderr.isatty(),
    )


def _published(manifest: dict, as_json: bool) -> None:
    console = Console()
    summary = {"name": manifest["name"], "row_counts": manifest["row_counts"]}
    if as_json:
        console.print_json(json.dumps(summary))
        return
    for tier, counts in manifest["row_counts"].items():
        console.print(f"{tier}: {counts.get('person', 0)} persons, {sum(counts.values())} rows")
    if manifest.get("genomics"):
        console.print(_genomics_line(manifest["genomics"]), highlight=False)
    console.print(f"published release {manifest['name']}")


NoProgress = Annotated[bool, typer.Option("--no-progress", help="Hide progress.")]
Engine = StrEnum("Engine", {name: name for name in ENGINES})


def retract(
    participant_ids: Annotated[list[str], typer.Argument(help="Participant ids (P...).")],
    reason: Annotated[str, typer.Option("--reason", help="Why they are retracted (recorded).")],
    name: Annotated[
        str | None, typer.Option("--release", help="New release name (default: LATEST.k).")
    ] = None,
    home: HomeOption = None,
    no_progress: NoProgress = False,
    as_json: JsonOutput = False,
) -> None:
    """Rebuild the latest release without the named participants, as a new release."""
    with _progress(no_progress) as bar:
        task = bar.add_task("gathering", total=None)
        manifest = retract_release(
            find_home(home), participant_ids, reason=reason, name=name,
            on_rule=lambda stage, rule: bar.update(task, description=f"{stage}: {rule.id}"),
        )  # fmt: skip
    _published(manifest, as_json)


@curate.command("run")
def run(
    release: Annotated[str, typer.Option("--release", help="Name of the new release.")],
    cutoff: Annotated[
        str | None, typer.Option(help="Submission cut-off YYYY-MM-DD (default: today).")
    ] = None,
    engine: Annotated[
        Engine, typer.Option("--engine", help="Where curation runs: DuckDB or Spark (local).")
    ] = Engine.duckdb,
    home: HomeOption = None,
    no_progress: NoProgress = False,
    as_json: JsonOutput = False,
) -> None:
    """Build release NAME from the latest submissions and the registry."""
    when = date.fromisoformat(cutoff) if cutoff else None
    with _progress(no_progress) as bar:
        task = bar.add_task("gathering", total=None)
        manifest = build_release(
            find_home(home),
            release,
            cutoff=when,
            on_rule=lambda stage, rule: bar.update(task, description=f"{stage}: {rule.id}"),
            engine=engine.value,
        )
    _published(manifest, as_json)
