"""The ``vocab`` command group: build the OMOP vocabulary tables from packaged reference data."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from opencohort.config import HOME_ENV, find_home
from opencohort.vocab.build import build_vocabulary, write_vocabulary

vocab = typer.Typer(
    name="vocab",
    help="Concept tables: ICD-10-CM, ICD-9-CM, phecodes, PPI survey codes, LOINC, RxNorm.",
    no_args_is_help=True,
)
_out = Console()


@vocab.callback()
def _group() -> None:
    """Concept tables built from reference data shipped in registry packages."""


@vocab.command("build")
def build(
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Directory for the Parquet tables (default: <home>/vocab)."),
    ] = None,
    home: Annotated[
        Path | None,
        typer.Option("--home", envvar=HOME_ENV, help="Program home, used when --out is not given."),
    ] = None,
) -> None:
    """Build concept, concept_relationship and concept_ancestor and write them as Parquet."""
    if out is None:
        out = find_home(home).root / "vocab"
    start = time.perf_counter()
    tables = build_vocabulary()
    paths = write_vocabulary(tables, out)
    seconds = time.perf_counter() - start
    summary = Table(title=f"vocabulary written to {out} in {seconds:.1f} s")
    summary.add_column("table")
    summary.add_column("rows", justify="right")
    summary.add_column("file")
    for name, path in paths.items():
        summary.add_row(name, f"{len(getattr(tables, name)):,}", path.name)
    _out.print(summary)
    by_vocab = Table(title="concepts by vocabulary")
    by_vocab.add_column("vocabulary_id")
    by_vocab.add_column("concepts", justify="right")
    for vocabulary_id, count in tables.concept["vocabulary_id"].value_counts().items():
        by_vocab.add_row(str(vocabulary_id), f"{count:,}")
    _out.print(by_vocab)
