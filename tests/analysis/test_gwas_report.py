"""GWAS outputs: plink2 table layout, lambda GC, clumping and the gwas command."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from scipy.special import chdtr, chdtri
from typer.testing import CliRunner

from opencohort.analysis import linear_gwas
from opencohort.analysis.cli import gwas, split_traits
from opencohort.analysis.gwas_report import clump_loci, lambda_gc, write_results

from .conftest import CAUSAL, requires_plink2, run_plink2


def test_lambda_gc__null_near_one_and_inflated_above() -> None:
    rng = np.random.default_rng([6, 2])
    p = rng.random(50_000)
    assert lambda_gc(p) == pytest.approx(1.0, abs=0.03)
    # scaling every chi-squared statistic by 1.3 gives lambda 1.3
    inflated = 1.0 - chdtr(1, 1.3 * chdtri(1, p))
    assert lambda_gc(inflated) == pytest.approx(1.3, rel=0.03)


def test_clump_loci__distance_windows() -> None:
    hits = pd.DataFrame(
        {
            "phenotype": "t",
            "CHROM": ["1", "1", "1", "1", "2"],
            "POS": [1_000_000, 1_200_000, 1_240_000, 3_000_000, 500],
            "ID": ["a", "b", "c", "d", "e"],
            "P": [1e-10, 1e-9, 1e-3, 1e-12, 1e-8],
            "BETA": [0.1, 0.2, 0.3, 0.4, 0.5],
        }
    )
    loci = clump_loci(hits)
    assert list(loci["ID"]) == ["d", "a", "e"]
    assert loci.set_index("ID").loc["a", "n_variants"] == 2
    assert loci.set_index("ID").loc["a", "end"] == 1_200_000


@requires_plink2
def test_write_results__same_layout_as_plink2(cohort: dict, tmp_path: Path) -> None:
    results = linear_gwas(cohort["prefix"], cohort["pheno"][["quant"]], covariates=cohort["covar"])
    (ours,) = write_results(results, tmp_path / "ours", model="linear")[:1]
    run_plink2(
        "--pfile", str(cohort["prefix"]), "--pheno", str(cohort["root"] / "pheno.tsv"),
        "--pheno-name", "quant", "--covar", str(cohort["root"] / "covar.tsv"),
        "--glm", "hide-covar", "--out", str(tmp_path / "plink"),
    )  # fmt: skip
    mine = pd.read_csv(ours, sep="\t", dtype=str)
    ref = pd.read_csv(tmp_path / "plink.quant.glm.linear", sep="\t", dtype=str)
    assert list(mine.columns) == list(ref.columns)
    text = ["#CHROM", "POS", "ID", "REF", "ALT", "A1", "TEST", "OBS_CT", "ERRCODE"]
    pd.testing.assert_frame_equal(mine[text], ref[text])
    assert (mine["BETA"] == "NA").equals(ref["BETA"] == "NA")
    same = (mine["SE"] == ref["SE"]).mean()
    assert same > 0.9  # 6 significant digits; the last may round differently


def test_split_traits__auto_detects_binary_codings() -> None:
    traits = pd.DataFrame(
        {"q": [0.5, 1.2, 2.0], "plink": [1.0, 2.0, 0.0], "zero_one": [0.0, 1.0, 1.0]}
    )
    quantitative, binary = split_traits(traits, "auto")
    assert list(quantitative.columns) == ["q"]
    assert binary["plink"].tolist()[:2] == [0.0, 1.0] and np.isnan(binary["plink"].iloc[2])
    assert binary["zero_one"].tolist() == [0.0, 1.0, 1.0]


def test_gwas__command_writes_tables_plots_and_summary(cohort: dict, tmp_path: Path) -> None:
    app = typer.Typer()
    app.command()(gwas)
    out = tmp_path / "res" / "scan"
    result = CliRunner().invoke(
        app,
        [
            "--pfile",
            str(cohort["prefix"]),
            "--pheno",
            str(cohort["root"] / "pheno.tsv"),
            "--pheno-name",
            "quant",
            "--pheno-name",
            "case",
            "--covar",
            str(cohort["root"] / "covar.tsv"),
            "--covar-name",
            "c1",
            "--covar-name",
            "c2",
            "--out",
            str(out),
        ],  # fmt: skip
    )
    assert result.exit_code == 0, result.output
    for suffix in (
        "quant.glm.linear", "case.glm.logistic.hybrid", "gwas.linear.parquet",
        "gwas.logistic.parquet", "quant.manhattan.png", "case.qq.png", "summary.html", "loci.tsv",
    ):  # fmt: skip
        assert Path(f"{out}.{suffix}").exists(), suffix
    loci = pd.read_csv(f"{out}.loci.tsv", sep="\t")
    assert f"v{CAUSAL}" in set(loci["ID"])
    logistic = pd.read_parquet(f"{out}.gwas.logistic.parquet")
    assert logistic["firth"].any() and logistic["converged"].sum() >= 290
