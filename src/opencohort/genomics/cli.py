"""``opencohort genomics``: ingest deliveries, QC, ancestry and kinship."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from opencohort.config import HOME_ENV, find_home
from opencohort.progress import progress_steps

genomics = typer.Typer(
    name="genomics",
    help="Genome-centre deliveries to a QC'd cohort genotype store.",
    no_args_is_help=True,
)
HomeOption = Annotated[
    Path | None,
    typer.Option("--home", envvar=HOME_ENV, help="Program home (default: nearest above cwd)."),
]
NoProgress = Annotated[bool, typer.Option("--no-progress", help="Hide progress bars.")]
DaskWorkers = Annotated[
    int,
    typer.Option(
        "--dask-workers",
        help="Run the block kernels on a Dask LocalCluster of N worker processes (0: here).",
    ),
]
out = Console()


@genomics.command()
def ingest(
    directory: Annotated[Path, typer.Argument(help="A delivery, or a folder of deliveries.")],
    home: HomeOption = None,
    no_progress: NoProgress = False,
) -> None:
    """Validate deliveries, keep them in raw/, and merge them into the genotype store."""
    from opencohort.genomics.delivery import ingest as run_ingest

    found = find_home(home)
    with progress_steps(no_progress) as step:
        results = run_ingest(directory, found, progress=step)
    for r in results:
        out.print(
            f"{r.delivery}: {r.samples} samples, {r.variants} variants in store, "
            f"{r.records} records ({r.multiallelic_records} multi-allelic), "
            f"{r.filtered_genotypes} genotypes filtered, {len(r.problems)} problems, "
            f"{r.genotypes_per_second:,.0f} genotypes/s"
        )
        for p in r.problems[:20]:
            where = f"{p.file}, line {p.line}" if p.line is not None else p.file
            out.print(f"  {where}, field {p.field}: {p.message}", highlight=False)


@genomics.command()
def qc(
    home: HomeOption = None, no_progress: NoProgress = False, dask_workers: DaskWorkers = 0
) -> None:
    """Run sample and variant QC on the store and write the QC report."""
    from opencohort.genomics.executor import executor_for
    from opencohort.genomics.service import run_qc

    found = find_home(home)
    with progress_steps(no_progress) as step, executor_for(dask_workers) as executor:
        result = run_qc(found, progress=step, executor=executor)
    s, v = result.samples, result.variants
    out.print(
        f"samples: {int(s['sample_qc_pass'].sum())} of {len(s)} pass; "
        f"variants: {int(v['variant_qc_pass'].sum())} of {len(v)} pass"
    )
    out.print(f"report: {result.report}")
    if result.registry_notes:
        out.print(f"{len(result.registry_notes)} samples without a registry QC step:")
        for note in result.registry_notes[:20]:
            out.print(f"  {note}", highlight=False)


@genomics.command()
def ancestry(
    panel: Annotated[
        Path, typer.Option("--panel", help="Reference panel: chr*.vcf.gz and labels.csv.")
    ],
    home: HomeOption = None,
    no_progress: NoProgress = False,
    dask_workers: DaskWorkers = 0,
) -> None:
    """Infer genetic ancestry on a labelled reference panel, then per-ancestry frequencies."""
    from opencohort.genomics.ancestry import SAMPLE_ANCESTRY, run_ancestry
    from opencohort.genomics.executor import executor_for

    found = find_home(home)
    with progress_steps(no_progress) as step, executor_for(dask_workers) as executor:
        run = run_ancestry(found, panel, progress=step, executor=executor)
    counts = run.result.samples[SAMPLE_ANCESTRY].value_counts().sort_index()
    out.print(
        f"{len(run.result.samples)} samples on {len(run.result.model.sites)} sites: "
        + ", ".join(f"{k} {v}" for k, v in counts.items())
    )
    for path in (run.ancestry, run.frequencies, run.plot):
        out.print(f"wrote {path}")


@genomics.command()
def kinship(
    home: HomeOption = None, no_progress: NoProgress = False, dask_workers: DaskWorkers = 0
) -> None:
    """KING-robust kinship of all sample pairs and a maximal unrelated set."""
    from opencohort.genomics.executor import executor_for
    from opencohort.genomics.kinship import DEGREE, run_kinship

    found = find_home(home)
    with progress_steps(no_progress) as step, executor_for(dask_workers) as executor:
        pairs, unrelated = run_kinship(found, progress=step, executor=executor)
    degrees = pairs[DEGREE].value_counts().sort_index()
    out.print(
        f"{len(pairs)} pairs with kinship > 0.1 ("
        + ", ".join(f"{k} {v}" for k, v in degrees.items())
        + f"); {int(unrelated['sample_unrelated'].sum())} of {len(unrelated)} samples unrelated"
    )


@genomics.command()
def export(
    fmt: Annotated[str, typer.Option("--format", help="vcf (bgzipped, indexed) or bed (PLINK 1).")],
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Folder (default: <home>/genomics/exports/FMT).")
    ] = None,
    home: HomeOption = None,
    no_progress: NoProgress = False,
) -> None:
    """Export the genotype store, one file set per contig, for other tools."""
    from opencohort.genomics.export import FORMATS, export_store

    if fmt not in FORMATS:
        raise typer.BadParameter(f"choose one of {', '.join(FORMATS)}", param_hint="--format")
    found = find_home(home)
    with progress_steps(no_progress) as step:
        written = export_store(found, fmt, out=out_dir, progress=step)
    out.print(f"wrote {len(written)} {fmt} file sets in {written[0].parent if written else '-'}")
