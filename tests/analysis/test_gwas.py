"""GWAS scans against plink2 --glm and statsmodels on small filesets the tests make."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from opencohort.analysis import PFile, iter_dosage_blocks, lambda_gc, linear_gwas, logistic_gwas

from .conftest import (
    CAUSAL,
    N_SAMPLES,
    read_plink_glm,
    requires_plink2,
    run_plink2,
    simulate_genotypes,
    write_pfile,
)


@pytest.fixture(scope="module")
def plink_results(cohort: dict) -> dict[str, pd.DataFrame]:
    """plink2 --glm hide-covar on the cohort, keyed by phenotype."""
    if __import__("shutil").which("plink2") is None:
        pytest.skip("plink2 binary not installed")
    out = cohort["root"] / "plink"
    run_plink2(
        "--pfile", str(cohort["prefix"]), "--pheno", str(cohort["root"] / "pheno.tsv"),
        "--covar", str(cohort["root"] / "covar.tsv"), "--glm", "hide-covar", "--out", str(out),
    )  # fmt: skip
    return {
        "quant": read_plink_glm(Path(f"{out}.quant.glm.linear")),
        "null": read_plink_glm(Path(f"{out}.null.glm.linear")),
        "case": read_plink_glm(Path(f"{out}.case.glm.logistic.hybrid")),
    }


def _neglog10(p: pd.Series) -> np.ndarray:
    return -np.log10(p.to_numpy(dtype=float))


@requires_plink2
def test_linear_gwas__matches_plink2(cohort: dict, plink_results: dict) -> None:
    ours = linear_gwas(
        cohort["prefix"], cohort["pheno"][["quant", "null"]], covariates=cohort["covar"]
    )
    for name in ("quant", "null"):
        mine = ours[ours["phenotype"] == name].reset_index(drop=True)
        ref = plink_results[name]
        assert (mine["A1"] == ref["A1"]).all()
        assert (mine["OBS_CT"] == ref["OBS_CT"]).all()
        assert (mine["ERRCODE"] == ref["ERRCODE"]).all()
        ok = ref["ERRCODE"] == "."
        np.testing.assert_allclose(mine.loc[ok, "BETA"], ref.loc[ok, "BETA"], rtol=1e-4)
        np.testing.assert_allclose(mine.loc[ok, "SE"], ref.loc[ok, "SE"], rtol=1e-4)
        np.testing.assert_allclose(mine.loc[ok, "STAT"], ref.loc[ok, "T_STAT"], rtol=1e-4)
        np.testing.assert_allclose(
            _neglog10(mine.loc[ok, "P"]), _neglog10(ref.loc[ok, "P"]), atol=1e-3
        )
        assert mine.loc[~ok, "BETA"].isna().all()


@requires_plink2
def test_logistic_gwas__matches_plink2(cohort: dict, plink_results: dict) -> None:
    ours = logistic_gwas(cohort["prefix"], cohort["pheno"][["case"]], covariates=cohort["covar"])
    ref = plink_results["case"]
    assert (ours["A1"] == ref["A1"]).all()
    assert (ours["OBS_CT"] == ref["OBS_CT"]).all()
    assert (ours["ERRCODE"] == ref["ERRCODE"]).all()
    assert (ours["firth"] == (ref["FIRTH?"] == "Y")).all()
    assert ours.loc[1, "firth"] and ours.loc[1, "converged"]
    ok = ref["ERRCODE"] == "."
    # plink2 2.00a3.5 fits logistic models in single precision, so it agrees with an exact
    # double-precision fit (and statsmodels) to about 1e-3 relative, not 1e-4.
    np.testing.assert_allclose(np.exp(ours.loc[ok, "BETA"]), ref.loc[ok, "OR"], rtol=2e-3)
    np.testing.assert_allclose(ours.loc[ok, "SE"], ref.loc[ok, "LOG(OR)_SE"], rtol=2e-3)
    np.testing.assert_allclose(_neglog10(ours.loc[ok, "P"]), _neglog10(ref.loc[ok, "P"]), atol=2e-3)


def _design(cohort: dict, variant: int, trait: str) -> tuple[np.ndarray, np.ndarray]:
    g = cohort["genotypes"][variant].astype(float)
    y = cohort["pheno"][trait].to_numpy()
    keep = (g >= 0) & ~np.isnan(y)
    x = np.column_stack([np.ones(keep.sum()), cohort["covar"].to_numpy()[keep], g[keep]])
    return x, y[keep]


def test_linear_gwas__matches_statsmodels_ols(cohort: dict) -> None:
    ours = linear_gwas(cohort["prefix"], cohort["pheno"][["null"]], covariates=cohort["covar"])
    for variant in (3, CAUSAL, 200):
        x, y = _design(cohort, variant, "null")
        fit = sm.OLS(y, x).fit()
        row = ours.iloc[variant]
        sign = -1.0 if row["A1"] == "A" else 1.0
        assert row["OBS_CT"] == len(y)
        assert row["BETA"] == pytest.approx(sign * fit.params[-1], rel=1e-9)
        assert row["SE"] == pytest.approx(fit.bse[-1], rel=1e-9)
        assert row["P"] == pytest.approx(fit.pvalues[-1], rel=1e-7)


def test_logistic_gwas__matches_statsmodels_logit(cohort: dict) -> None:
    ours = logistic_gwas(cohort["prefix"], cohort["pheno"][["case"]], covariates=cohort["covar"])
    for variant in (3, CAUSAL, 200):
        x, y = _design(cohort, variant, "case")
        fit = sm.Logit(y, x).fit(disp=0, tol=1e-12)
        row = ours.iloc[variant]
        sign = -1.0 if row["A1"] == "A" else 1.0
        assert row["converged"] and not row["firth"]
        assert 2 <= row["n_iterations"] <= 10
        assert row["BETA"] == pytest.approx(sign * fit.params[-1], rel=1e-6)
        assert row["SE"] == pytest.approx(fit.bse[-1], rel=1e-6)
        assert row["P"] == pytest.approx(fit.pvalues[-1], rel=1e-5)


def test_logistic_gwas__no_firth_reports_unconverged(cohort: dict) -> None:
    ours = logistic_gwas(
        cohort["prefix"], cohort["pheno"][["case"]], covariates=cohort["covar"], firth="never"
    )
    row = ours.iloc[1]
    assert not row["converged"] and not row["firth"]
    assert np.isnan(row["BETA"]) and row["ERRCODE"] == "UNFINISHED"
    assert row["n_iterations"] >= 1
    assert ours.iloc[0]["ERRCODE"] == "CONST_OMITTED_ALLELE"


def test_linear_gwas__planted_effect_found_and_null_not(cohort: dict) -> None:
    ours = linear_gwas(
        cohort["prefix"], cohort["pheno"][["quant", "null"]], covariates=cohort["covar"]
    )
    quant = ours[ours["phenotype"] == "quant"].set_index("ID")
    assert quant.loc[f"v{CAUSAL}", "P"] < 5e-8
    assert (quant.drop(index=f"v{CAUSAL}")["P"].dropna() > 1e-5).all()
    assert (ours.loc[ours["phenotype"] == "null", "P"].dropna() > 1e-5).all()


def test_linear_gwas__many_phenotypes_equal_one_at_a_time(cohort: dict) -> None:
    traits = cohort["pheno"][["quant", "null"]]
    together = linear_gwas(cohort["prefix"], traits, covariates=cohort["covar"], block_size=64)
    for name in traits.columns:
        alone = linear_gwas(cohort["prefix"], traits[[name]], covariates=cohort["covar"])
        part = together[together["phenotype"] == name].reset_index(drop=True)
        pd.testing.assert_frame_equal(part, alone, rtol=1e-10)


def test_iter_dosage_blocks__subset_and_missing(cohort: dict) -> None:
    pfile = PFile.open(cohort["prefix"])
    rows = np.arange(0, N_SAMPLES, 3)
    blocks = list(iter_dosage_blocks(pfile, sample_index=rows, block_size=128))
    assert [first for first, _ in blocks] == [0, 128, 256]
    dosage = np.vstack([block for _, block in blocks])
    expected = cohort["genotypes"][:, rows].astype(np.float32)
    expected[expected < 0] = np.nan
    np.testing.assert_array_equal(dosage, expected)


def test_linear_gwas__null_traits_are_calibrated(tmp_path: Path) -> None:
    rng = np.random.default_rng([6, 3])
    n_samples = 500
    write_pfile(tmp_path / "null", simulate_genotypes(rng, 3000, n_samples, missing_rate=0.01))
    iid = [f"s{i}" for i in range(n_samples)]
    traits = pd.DataFrame(rng.normal(size=(n_samples, 10)), index=iid).add_prefix("t")
    covar = pd.DataFrame(rng.normal(size=(n_samples, 2)), index=iid, columns=["a", "b"])
    results = linear_gwas(tmp_path / "null", traits, covariates=covar)
    assert 0.95 <= lambda_gc(results["P"]) <= 1.05
