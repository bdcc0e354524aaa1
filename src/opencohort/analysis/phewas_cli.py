"""``opencohort phenotype`` and ``opencohort phewas``: phenotypes from a release, then PheWAS."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console

from opencohort.analysis import phenotypes as ph
from opencohort.analysis.phewas import phewas as run_phewas
from opencohort.analysis.phewas import read_exposure, variant_dosage
from opencohort.analysis.phewas_report import write_phewas
from opencohort.config import HOME_ENV, find_home
from opencohort.errors import ConfigError, InputError
from opencohort.progress import progress_steps
from opencohort.release import read_release

out = Console()
HomeOption = Annotated[
    Path | None,
    typer.Option("--home", envvar=HOME_ENV, help="Program home (default: nearest above cwd)."),
]
Tier = Annotated[str, typer.Option("--tier", help="registered or controlled.")]
Version = Annotated[str, typer.Option("--phecode-version", help="Phecode version: 1.2 or X.")]
NoProgress = Annotated[bool, typer.Option("--no-progress", help="Hide progress bars.")]


def phenotype(
    release: Annotated[str, typer.Option("--release", help="Release name.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder.")],
    tier: Tier = "registered",
    version: Version = "1.2",
    min_dates: Annotated[
        int, typer.Option("--min-dates", help="Distinct code dates that make a case.")
    ] = 2,
    no_exclusion: Annotated[
        bool, typer.Option("--no-exclusion", help="Keep exclusion-range phecodes as controls.")
    ] = False,
    home: HomeOption = None,
) -> None:
    """Build phecode, measurement and covariate phenotypes of a release (Parquet + plink2 TSV)."""
    options = ph.PhenotypeOptions(
        version=version, min_dates=min_dates, use_exclusion=not no_exclusion
    )
    opened = read_release(find_home(home), release)
    table, summary = ph.build_phenotypes(opened, tier=tier, options=options)
    paths = ph.write_phenotypes(table, summary, out_dir)
    out.print(
        f"{summary['persons']} persons, {summary['phecodes_with_cases']} phecodes with cases, "
        f"ancestry covariates: {'yes' if summary['ancestry'] else 'no'}"
    )
    for name, path in paths.items():
        out.print(f"{name}: {path}")


def _exposure(
    table: pd.DataFrame, exposure: str | None, pfile: str | None, variant: str | None,
    score: Path | None,
) -> tuple[pd.DataFrame, str]:  # fmt: skip
    """Add the exposure to the table; return it and the exposure's column name."""
    given = sum(x is not None for x in (pfile, score)) + (exposure is not None and score is None)
    if given != 1:
        raise ConfigError(
            "phewas: give one exposure: --exposure COLUMN, --pfile PREFIX --variant ID, or "
            "--score FILE --exposure COLUMN"
        )
    if pfile is not None:
        if variant is None:
            raise ConfigError("phewas: --pfile needs --variant ID")
        values = variant_dosage(pfile, variant)
    elif score is not None:
        values = read_exposure(score, exposure or "SCORE1_AVG")
    else:
        return table, str(exposure)
    name = f"exposure_{values.name}"
    ids = table[ph.RESEARCH_ID].astype(str)
    return table.assign(**{name: ids.map(values).to_numpy()}), name


def phewas(
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder.")],
    phenotypes: Annotated[
        Path | None, typer.Option("--phenotypes", help="phenotypes.parquet of 'phenotype'.")
    ] = None,
    release: Annotated[
        str | None, typer.Option("--release", help="Build phenotypes from this release.")
    ] = None,
    tier: Tier = "controlled",
    exposure: Annotated[
        str | None, typer.Option("--exposure", help="Exposure column (table or score file).")
    ] = None,
    pfile: Annotated[str | None, typer.Option("--pfile", help="PLINK 2 fileset prefix.")] = None,
    variant: Annotated[str | None, typer.Option("--variant", help="Variant ID in --pfile.")] = None,
    score: Annotated[
        Path | None, typer.Option("--score", help="Score file (research_id or #IID column).")
    ] = None,
    covar: Annotated[
        list[str] | None, typer.Option("--covar", help="Covariate (repeatable; default all).")
    ] = None,
    min_cases: Annotated[int, typer.Option("--min-cases", help="Minimum cases.")] = 50,
    firth: Annotated[str, typer.Option("--firth", help="fallback, always or never.")] = "fallback",
    version: Version = "1.2",
    home: HomeOption = None,
    no_progress: NoProgress = False,
) -> None:
    """Test one exposure against every phecode with enough cases; tables, plot and HTML."""
    if (phenotypes is None) == (release is None):
        raise ConfigError("phewas: give exactly one of --phenotypes and --release")
    if phenotypes is not None:
        if not phenotypes.is_file():
            raise InputError("no such phenotype table", file=str(phenotypes))
        table = pd.read_parquet(phenotypes)
    else:
        opened = read_release(find_home(home), str(release))
        options = ph.PhenotypeOptions(version=version)
        table, _ = ph.build_phenotypes(opened, tier=tier, options=options)
    table, column = _exposure(table, exposure, pfile, variant, score)
    covariates = covar or ph.covariate_columns(table)
    with progress_steps(no_progress) as step:
        results = run_phewas(
            table, exposure=column, covariates=covariates, version=version,
            min_cases=min_cases, firth=firth, step=step,
        )  # fmt: skip
    paths = write_phewas(results, out_dir, title=f"PheWAS of {column}")
    out.print(f"{len(results)} phecodes tested with {column}")
    for row in results.head(5).itertuples():
        out.print(f"  {row.phecode} {row.phecode_string}: beta {row.beta:.3f}, p {row.p_value:.3g}")
    out.print(f"summary: {paths['html']}")
