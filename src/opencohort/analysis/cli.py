"""``opencohort gwas``: plink2-style GWAS on PLINK 2 filesets, with plots and an HTML summary."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console

from opencohort.analysis import gwas_report as report
from opencohort.analysis.gwas import linear_gwas, logistic_gwas
from opencohort.errors import ConfigError, InputError

out = Console()
MISSING_CODES = ("NA", "nan", "-9", ".")


def read_plink_table(path: Path, names: list[str] | None = None) -> pd.DataFrame:
    """Read a plink2 phenotype or covariate file into a frame indexed by IID.

    The header's first column is ``#IID`` or ``#FID`` followed by ``IID``; ``NA`` and ``-9``
    mean missing. ``names`` selects columns (all others by default, except SEX/PAT/MAT).
    """
    table = pd.read_csv(path, sep=r"\s+", dtype=str, keep_default_na=False)
    table = table.rename(columns={"#IID": "IID", "#FID": "FID"})
    if "IID" not in table.columns:
        raise InputError("no IID column; expected a header like '#IID pheno1 ...'", file=str(path))
    table = table.set_index("IID").drop(columns=["FID", "SEX", "PAT", "MAT"], errors="ignore")
    if names:
        unknown = [n for n in names if n not in table.columns]
        if unknown:
            raise InputError(
                f"columns {unknown} not found; have {list(table.columns)}", file=str(path)
            )
        table = table[names]
    table = table.mask(table.isin(MISSING_CODES))
    numeric = table.apply(pd.to_numeric, errors="coerce")
    bad = numeric.isna() & table.notna()
    if bad.any().any():
        column = bad.any().idxmax()
        value = table.loc[bad[column], column].iloc[0]
        raise InputError(f"{value!r} is not a number", file=str(path), field=column, value=value)
    return numeric


def split_traits(phenotypes: pd.DataFrame, model: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split traits into quantitative and binary (0/1-coded) frames.

    With ``model="auto"``, a trait whose values are all in {0, 1, 2} is binary: plink coding
    (1 control, 2 case, 0 missing) when a 2 occurs, else 0/1 coding. ``"linear"`` and
    ``"logistic"`` force the model for every trait.
    """
    quantitative, binary = {}, {}
    for name, values in phenotypes.items():
        seen = set(values.dropna().unique())
        is_binary = model == "logistic" or (model == "auto" and seen <= {0.0, 1.0, 2.0})
        if not is_binary:
            quantitative[name] = values
        elif 2.0 in seen:
            binary[name] = values.where(values != 0.0) - 1.0
        elif seen <= {0.0, 1.0}:
            binary[name] = values
        else:
            raise ConfigError(f"gwas: phenotype {name!r} is not 0/1 or 1/2 coded; use --linear")
    return pd.DataFrame(quantitative, index=phenotypes.index), pd.DataFrame(
        binary, index=phenotypes.index
    )


def _names(options: list[str] | None) -> list[str] | None:
    """Column names from repeated and/or comma-separated options, as plink2 accepts them."""
    return [n for option in options for n in option.split(",") if n] if options else None


def _report(results: pd.DataFrame, prefix: str, model: str) -> tuple[list[dict], dict]:
    """Write tables and plots for one model's results; return summary rows and image names."""
    report.write_results(results, prefix, model=model)
    rows, images = [], {}
    for name, part in results.groupby("phenotype", sort=False):
        base = f"{prefix}.{name}"
        report.manhattan_plot(part, f"{base}.manhattan.png", title=str(name))
        report.qq_plot(part, f"{base}.qq.png", title=str(name))
        images[str(name)] = [Path(f"{base}.manhattan.png").name, Path(f"{base}.qq.png").name]
        rows.append(
            {
                "phenotype": name,
                "model": model,
                "variants": len(part),
                "tested": int(part["P"].notna().sum()),
                "lambda_gc": report.lambda_gc(part["P"]),
                "min_p": part["P"].min(),
                "firth_rows": int(part["firth"].sum()),
                "unconverged": int(
                    (~part["converged"] & part["ERRCODE"].ne("CONST_OMITTED_ALLELE")).sum()
                ),
            }  # fmt: skip
        )
    return rows, images


def gwas(
    pfile: Annotated[
        str, typer.Option("--pfile", help="PLINK 2 fileset prefix (.pgen/.pvar/.psam).")
    ],
    pheno: Annotated[Path, typer.Option("--pheno", help="Phenotype file (#IID then traits).")],
    out_prefix: Annotated[str, typer.Option("--out", help="Output prefix.")] = "opencohort",
    pheno_name: Annotated[
        list[str] | None,
        typer.Option("--pheno-name", help="Trait to test (repeatable; default all)."),
    ] = None,
    covar: Annotated[
        Path | None, typer.Option("--covar", help="Covariate file (#IID then covariates).")
    ] = None,
    covar_name: Annotated[
        list[str] | None,
        typer.Option("--covar-name", help="Covariate to use (repeatable; default all)."),
    ] = None,
    model: Annotated[
        str,
        typer.Option("--model", help="auto (0/1/2-coded traits are binary), linear or logistic."),
    ] = "auto",
    firth: Annotated[
        str, typer.Option("--firth", help="fallback (plink2 default), always or never.")
    ] = "fallback",
    block_size: Annotated[int, typer.Option("--block-size", help="Variants per block.")] = 2048,
) -> None:
    """Run a GWAS on a PLINK 2 fileset with plink2-style options and write results, plots, HTML."""
    if model not in ("auto", "linear", "logistic"):
        raise typer.BadParameter(f"--model {model!r}; expected auto, linear or logistic")
    if firth not in ("fallback", "always", "never"):
        raise typer.BadParameter(f"--firth {firth!r}; expected fallback, always or never")
    traits = read_plink_table(pheno, _names(pheno_name))
    covariates = read_plink_table(covar, _names(covar_name)) if covar is not None else None
    quantitative, binary = split_traits(traits, model)
    Path(out_prefix).parent.mkdir(parents=True, exist_ok=True)
    summary, images, loci = [], {}, []
    for kind, frame in (("linear", quantitative), ("logistic", binary)):
        if frame.shape[1] == 0:
            continue
        if kind == "linear":
            results = linear_gwas(pfile, frame, covariates=covariates, block_size=block_size)
        else:
            results = logistic_gwas(
                pfile, frame, covariates=covariates, firth=firth, block_size=block_size
            )
        rows, pictures = _report(results, out_prefix, kind)
        summary += rows
        images |= pictures
        loci.append(report.clump_loci(results))
    found = [table for table in loci if len(table)]
    loci_table = pd.concat(found, ignore_index=True) if found else loci[0]
    loci_table.to_csv(f"{out_prefix}.loci.tsv", sep="\t", index=False)
    page = report.html_summary(
        pd.DataFrame(summary), loci_table, images, f"{out_prefix}.summary.html"
    )
    for row in summary:
        out.print(
            f"{row['phenotype']}: {row['model']}, {row['tested']} variants tested, "
            f"lambda GC {row['lambda_gc']:.3f}, min p {row['min_p']:.3g}"
        )
    out.print(f"summary: {page}")
