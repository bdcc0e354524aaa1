"""PheWAS: statsmodels parity, Firth under separation, case thresholds, sex-specific designs,
the planted variant of the synthetic program and the command line."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy.special import expit

from opencohort.analysis import PHEWAS_COLUMNS, build_phenotypes, phewas, read_exposure
from opencohort.errors import ConfigError, InputError
from opencohort.synth.traits import diseases

from ._releases import variant_pfile
from .conftest import BCFTOOLS, PLINK2

CODES = ["250.2", "411.4", "495", "244.4", "008", "174.11", "185"]
COVARIATES = ["age", "sex_male", "pc1"]


@pytest.fixture(scope="module")
def made() -> pd.DataFrame:
    """3,000 people, an additive exposure, three covariates and seven phecodes."""
    rng = np.random.default_rng([6, 7])
    n = 3000
    table = pd.DataFrame(
        {"g": rng.binomial(2, 0.3, n).astype(float), "age": rng.normal(50, 10, n),
         "sex_male": rng.integers(0, 2, n).astype(float), "pc1": rng.normal(size=n)}
    )  # fmt: skip
    for i, code in enumerate(CODES):
        eta = -2 + 0.25 * (i % 3) * table["g"] + 0.02 * (table["age"] - 50) + 0.3 * table["pc1"]
        y = (rng.random(n) < expit(eta)).astype(float)
        y[rng.random(n) < 0.1] = np.nan  # excluded from controls
        table[f"phe_{code}"] = y
    table.loc[table["sex_male"] == 1, "phe_174.11"] = np.nan
    table.loc[table["sex_male"] == 0, "phe_185"] = np.nan
    return table


def _statsmodels(table: pd.DataFrame, code: str, covariates: list[str]):
    rows = table.dropna(subset=[f"phe_{code}"])
    design = sm.add_constant(rows[[*covariates, "g"]])
    return sm.Logit(rows[f"phe_{code}"], design).fit(disp=0, tol=1e-12, maxiter=100)


def test_phewas__matches_statsmodels_logit(made) -> None:
    results = phewas(made, exposure="g", covariates=COVARIATES).set_index("phecode")
    assert list(results.reset_index().columns) == PHEWAS_COLUMNS
    assert set(results.index) == set(CODES)
    for code in CODES:
        sex_specific = code in ("174.11", "185")
        fit = _statsmodels(made, code, ["age", "pc1"] if sex_specific else COVARIATES)
        row = results.loc[code]
        assert row["beta"] == pytest.approx(fit.params["g"], rel=1e-6)
        assert row["standard_error"] == pytest.approx(fit.bse["g"], rel=1e-6)
        assert row["p_value"] == pytest.approx(fit.pvalues["g"], rel=1e-6)
        low, high = fit.conf_int().loc["g"]
        assert (row["conf_int_1"], row["conf_int_2"]) == pytest.approx((low, high), rel=1e-6)
        assert row["odds_ratio"] == pytest.approx(np.exp(fit.params["g"]), rel=1e-6)
        assert row["cases"] == int(made[f"phe_{code}"].eq(1).sum())
        assert row["controls"] == int(made[f"phe_{code}"].eq(0).sum())
        assert row["converged"] and not row["firth"]


def test_phewas__min_cases(made) -> None:
    few = made.assign(**{"phe_008": made["phe_008"].where(made.index >= 2700, 0.0)})
    cases = int(few["phe_008"].eq(1).sum())
    tested = phewas(few, exposure="g", covariates=COVARIATES, min_cases=cases + 1)
    assert "008" not in set(tested["phecode"])
    tested = phewas(few, exposure="g", covariates=COVARIATES, min_cases=cases)
    assert "008" in set(tested["phecode"])


def test_phewas__separation_falls_back_to_firth(made) -> None:
    cases = np.flatnonzero(made["phe_008"].eq(1).to_numpy())[:12]
    rare = made.assign(r=0.0)
    rare.loc[cases, "r"] = 1.0  # carried by cases of 008 only: quasi-separation
    results = phewas(rare, exposure="r", covariates=COVARIATES).set_index("phecode")
    row = results.loc["008"]
    assert row["firth"] and np.isfinite(row["beta"]) and row["beta"] > 1
    keep = rare["phe_008"].notna().to_numpy()
    x = np.column_stack([np.ones(len(rare)), rare[COVARIATES], rare["r"]])[keep]
    beta = _firth_reference(x, rare["phe_008"].to_numpy()[keep])
    assert row["beta"] == pytest.approx(beta[-1], rel=1e-5)
    never = phewas(rare, exposure="r", covariates=COVARIATES, firth="never")
    assert not never.set_index("phecode").loc["008", "converged"]


def _firth_reference(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Firth's logistic fit by plain damped Newton on the penalised score (a loop, for tests)."""
    beta = np.zeros(x.shape[1])
    for _ in range(500):
        p = expit(x @ beta)
        w = p * (1 - p)
        info = x.T @ (x * w[:, None])
        inv = np.linalg.inv(info)
        h = w * np.einsum("ij,jk,ik->i", x, inv, x)
        step = inv @ (x.T @ (y - p + h * (0.5 - p)))
        beta = beta + step * min(1.0, 2.0 / max(np.abs(step).max(), 1e-12))
        if np.abs(step).max() < 1e-10:
            break
    return beta


def test_phewas__bad_options(made) -> None:
    with pytest.raises(ConfigError, match="firth"):
        phewas(made, exposure="g", covariates=COVARIATES, firth="sometimes")
    with pytest.raises(InputError, match="nope"):
        phewas(made, exposure="nope", covariates=COVARIATES)
    with pytest.raises(InputError, match="phecode columns"):
        phewas(made[["g", *COVARIATES]], exposure="g", covariates=COVARIATES)


def test_read_exposure__bad_value_names_line(tmp_path) -> None:
    path = tmp_path / "score.tsv"
    path.write_text("research_id\tscore\n1\t0.5\n2\tabc\n")
    with pytest.raises(InputError, match=r"score.tsv, line 3, field score"):
        read_exposure(path, "score")
    path.write_text("research_id\tscore\n1\t0.5\n2\tNA\n")
    assert read_exposure(path, "score").isna().tolist() == [False, True]


@pytest.mark.skipif(PLINK2 is None or BCFTOOLS is None, reason="needs plink2 and bcftools")
def test_phewas__planted_variant_found(synthetic, tmp_path) -> None:
    """The strong planted asthma variant, read from a pgen, hits asthma's phecode first."""
    from opencohort.analysis import variant_dosage

    asthma = next(d for d in diseases() if d.name == "asthma")
    effects = pd.read_csv(synthetic["program"] / "truth" / "effects.csv")
    variant = effects.loc[effects["trait"] == asthma.name, "variant_id"].iloc[0]
    prefix = variant_pfile(synthetic["program"], variant, synthetic["ids"], tmp_path)
    table, _ = build_phenotypes(synthetic["release"], tier="controlled")
    dosage = variant_dosage(prefix, variant)
    table["dosage"] = table["research_id"].astype(str).map(dosage).to_numpy()
    covariates = ["age_at_last_event", "sex_male", "ehr_length"]
    results = phewas(table, exposure="dosage", covariates=covariates, min_cases=20)
    top = results.iloc[0]
    assert top["phecode"] == asthma.phecode and top["p_value"] < 1e-5
    effect = effects.loc[effects["variant_id"] == variant, "effect"].iloc[0]
    assert np.sign(top["beta"]) == np.sign(effect)
    # the command line gives the same row
    home, out = synthetic["home"], tmp_path / "cli"
    done = subprocess.run(
        [sys.executable, "-c", "from opencohort.cli import main; main()", "phewas",
         "--home", str(home.root), "--release", "R1", "--pfile", str(prefix), "--variant",
         variant, "--covar", "age_at_last_event", "--covar", "sex_male", "--covar",
         "ehr_length", "--min-cases", "20", "--out", str(out), "--no-progress"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    cli = pd.read_csv(out / "phewas.tsv", sep="\t", dtype={"phecode": str})
    assert cli.iloc[0]["phecode"] == asthma.phecode
    assert cli.iloc[0]["beta"] == pytest.approx(top["beta"], rel=1e-9)
    assert (out / "phewas.manhattan.png").stat().st_size > 0
    assert "Asthma" in (out / "summary.html").read_text()
