"""PheWAS: one exposure against every phecode with enough cases, in PheTK's output layout."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import norm
from threadpoolctl import threadpool_limits

from opencohort.analysis._gwas_kernels import firth_logistic
from opencohort.analysis._pgen import PFile, iter_dosage_blocks
from opencohort.analysis._phewas_kernels import batched_logistic
from opencohort.analysis.phenotypes import PHECODE_PREFIX
from opencohort.errors import ConfigError, InputError
from opencohort.vocab import phecode_definitions

PHEWAS_COLUMNS = [
    "phecode", "phecode_string", "phecode_category", "phecode_sex_restriction", "cases",
    "controls", "p_value", "neg_log_p_value", "beta", "standard_error", "conf_int_1",
    "conf_int_2", "odds_ratio", "odds_ratio_low", "odds_ratio_high", "log10_odds_ratio",
    "converged", "firth", "n_iterations",
]  # fmt: skip
"""Result columns: PheTK's (``conf_int_*`` bound beta) plus the odds ratio's 95% CI and fit
diagnostics (``firth``: the Firth-penalised fit was used; ``n_iterations``)."""
FIRTH_MODES = ("fallback", "always", "never")
_Z975 = norm.ppf(0.975)


def _parse(
    table: pd.DataFrame, exposure: str, covariates: list[str], sex_covariate: str | None,
    min_cases: int, firth: str,
) -> tuple[pd.DataFrame, np.ndarray, list[str]]:  # fmt: skip
    """Check options and columns; return the complete rows' numeric columns, their phecode
    outcomes (float32: 1, 0 or NaN) and the phecode column names."""
    if firth not in FIRTH_MODES:
        raise ConfigError(f"phewas: firth={firth!r}; expected one of {', '.join(FIRTH_MODES)}")
    if min_cases < 1:
        raise ConfigError(f"phewas: min_cases={min_cases}; expected at least 1")
    needed = [exposure, *covariates]
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise InputError(f"phewas: columns {missing} not in the phenotype table")
    if sex_covariate is not None and sex_covariate not in covariates:
        raise ConfigError(f"phewas: sex covariate {sex_covariate!r} is not among the covariates")
    numeric = table[needed].apply(pd.to_numeric, errors="coerce")
    bad = numeric.isna() & table[needed].notna()
    if bad.any().any():
        column = bad.any().idxmax()
        raise InputError("phewas: values are not numbers", field=column)
    phecodes = [c for c in table.columns if c.startswith(PHECODE_PREFIX)]
    if not phecodes:
        raise InputError(f"phewas: no {PHECODE_PREFIX}* phecode columns in the phenotype table")
    complete = numeric.notna().all(axis=1).to_numpy()
    outcomes = table[phecodes].to_numpy(dtype=np.float32)
    return numeric[complete], (outcomes if complete.all() else outcomes[complete]), phecodes


def phewas(
    table: pd.DataFrame,
    *,
    exposure: str,
    covariates: list[str],
    version: str = "1.2",
    min_cases: int = 50,
    sex_covariate: str | None = "sex_male",
    firth: str = "fallback",
    batch_size: int = 32,
    workers: int | None = None,
    step: Callable[[str, float], None] | None = None,
) -> pd.DataFrame:
    """Logistic regression of every phecode with enough cases on one exposure plus covariates.

    Parameters
    ----------
    table
        A phenotype table (:func:`~opencohort.analysis.build_phenotypes`): ``phe_*`` columns
        (1 case, 0 control, missing excluded), the exposure and the covariates.
    exposure
        Column tested (a genotype dosage, a score, any number).
    covariates
        Covariate columns; rows missing the exposure or a covariate are dropped.
    version
        Phecode version of the ``phe_*`` columns (titles, categories, sex restrictions).
    min_cases
        A phecode is tested with at least this many cases and more controls than this.
    sex_covariate
        Covariate left out for sex-specific phecodes (constant among their rows).
    firth
        ``fallback`` (Firth when the ordinary fit separates or does not converge),
        ``always`` or ``never``.
    batch_size
        Phecodes fitted together.
    workers
        Threads fitting batches at once (default: the usable CPUs); BLAS runs one thread
        per batch, which holds up better than threaded BLAS on a busy machine.
    step
        Progress callback ``step(stage, fraction_done)``.

    Returns
    -------
    pandas.DataFrame
        :data:`PHEWAS_COLUMNS`, one row per tested phecode, sorted by p-value.

    Raises
    ------
    ConfigError
        For a bad option.
    InputError
        If the table lacks a named column, has non-numeric values or no phecode columns.

    Notes
    -----
    1. Phecodes are grouped by design: sex-specific phecodes drop `sex_covariate`.
    2. Each group is fitted in batches by :func:`batched_logistic`: one Newton iteration
       updates every phecode of the batch with a few matrix products.
    3. Wald SE from the inverse information; p from the normal distribution; CI
       beta +/- 1.96 SE, as statsmodels ``Logit`` (PheTK's back-end) reports them.
    4. With ``fallback``, a fit that diverges (separation) or does not converge is redone
       with Firth's penalised likelihood (the GWAS kernel's; Wald SE).

    Differs from PheTK because PheTK drops a phecode whose fit raises a singular-matrix or
    perfect-separation error; here the row is kept, with ``converged`` False.
    """
    data, outcomes, phecodes = _parse(table, exposure, covariates, sex_covariate, min_cases, firth)
    defs = phecode_definitions(version).set_index("phecode")
    cases = np.nansum(outcomes == 1, axis=0)
    controls = np.nansum(outcomes == 0, axis=0)
    tested = np.flatnonzero((cases >= min_cases) & (controls > min_cases))
    codes = np.array([c.removeprefix(PHECODE_PREFIX) for c in phecodes], dtype=object)
    unknown = sorted(set(codes[tested]) - set(defs.index))
    if unknown:
        raise InputError(f"phewas: phecodes {unknown[:5]} are not phecode {version} codes")
    sex = defs.loc[codes[tested], "sex"].to_numpy() if len(tested) else np.array([])
    tasks = []
    for restricted in (False, True):
        group = tested[(sex != "Both") == restricted]
        names = [c for c in covariates if not (restricted and c == sex_covariate)]
        x = np.column_stack([np.ones(len(data)), data[names].to_numpy(), data[exposure]])
        tasks += [(x, group[i : i + batch_size]) for i in range(0, group.size, batch_size)]
    rows, done = [], 0
    workers = workers or len(os.sched_getaffinity(0))
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(_fit_batch, x, outcomes, part, firth) for x, part in tasks]
        for future in as_completed(futures):
            rows.append(future.result())
            done += len(rows[-1])
            if step:
                step("phewas", done / len(tested))
    return _results(rows, codes, cases, controls, defs)


def _fit_batch(x: np.ndarray, outcomes: np.ndarray, part: np.ndarray, firth: str) -> pd.DataFrame:
    """Fit one batch of phecode columns on design x; redo with Firth as `firth` says."""
    y = outcomes[:, part]
    fit = batched_logistic(x, y, ~np.isnan(y))
    frame = pd.DataFrame(
        {"j": part, "beta": fit.beta, "standard_error": fit.se, "converged": fit.converged,
         "n_iterations": fit.n_iterations, "firth": False}
    )  # fmt: skip
    redo = {"always": np.ones(len(part), bool), "fallback": ~fit.converged,
            "never": np.zeros(len(part), bool)}[firth]  # fmt: skip
    for k in np.flatnonzero(redo):
        keep = ~np.isnan(y[:, k])
        start = np.zeros(x.shape[1])
        b, se, ok, it = firth_logistic(x[keep], y[keep, k], start=start, max_iter=100)
        frame.loc[k, ["beta", "standard_error", "converged", "n_iterations", "firth"]] = (
            b, se, ok, it, True
        )  # fmt: skip
    return frame


def _results(
    rows: list[pd.DataFrame], codes: np.ndarray, cases: np.ndarray, controls: np.ndarray,
    defs: pd.DataFrame,
) -> pd.DataFrame:  # fmt: skip
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in PHEWAS_COLUMNS})
    fits = pd.concat(rows, ignore_index=True)
    j = fits["j"].to_numpy()
    beta = fits["beta"].to_numpy(dtype=float)
    se = fits["standard_error"].to_numpy(dtype=float)
    p = 2 * norm.sf(np.abs(beta / se))
    low, high = beta - _Z975 * se, beta + _Z975 * se
    with np.errstate(over="ignore", divide="ignore"):  # a diverged fit's OR is inf
        ratios = np.exp(beta), np.exp(low), np.exp(high), -np.log10(p)
    out = pd.DataFrame(
        {
            "phecode": codes[j],
            "phecode_string": defs.loc[codes[j], "phecode_string"].to_numpy(),
            "phecode_category": defs.loc[codes[j], "category"].to_numpy(),
            "phecode_sex_restriction": defs.loc[codes[j], "sex"].to_numpy(),
            "cases": cases[j].astype(int),
            "controls": controls[j].astype(int),
            "p_value": p,
            "neg_log_p_value": ratios[3],
            "beta": beta,
            "standard_error": se,
            "conf_int_1": low,
            "conf_int_2": high,
            "odds_ratio": ratios[0],
            "odds_ratio_low": ratios[1],
            "odds_ratio_high": ratios[2],
            "log10_odds_ratio": beta / np.log(10),
            "converged": fits["converged"].to_numpy(dtype=bool),
            "firth": fits["firth"].to_numpy(dtype=bool),
            "n_iterations": fits["n_iterations"].to_numpy(dtype=int),
        }
    )
    return out.sort_values(["p_value", "phecode"], ignore_index=True, na_position="last")


def read_exposure(path: Path, column: str) -> pd.Series:
    """One column of a score or covariate file (TSV/CSV with ``research_id`` or ``#IID``).

    Raises
    ------
    InputError
        Naming the file, line and field of the first value that is not a number.
    """
    sep = "\t" if Path(path).suffix in (".tsv", ".txt", ".sscore") else ","
    frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    key = next((c for c in ("research_id", "#IID", "IID") if c in frame.columns), None)
    if key is None or column not in frame.columns:
        raise InputError(
            f"expected columns research_id (or #IID) and {column!r}; found {list(frame.columns)}",
            file=str(path),
        )
    text = frame[column].replace(["", "NA", "nan", "."], np.nan)
    values = pd.to_numeric(text, errors="coerce")
    bad = np.flatnonzero(values.isna() & text.notna())
    if bad.size:
        raise InputError(
            f"{text.iloc[bad[0]]!r} is not a number", file=str(path), line=int(bad[0]) + 2,
            field=column, value=text.iloc[bad[0]],
        )  # fmt: skip
    return pd.Series(values.to_numpy(), index=frame[key].to_numpy(), name=column)


def variant_dosage(pfile: PFile | str | Path, variant_id: str) -> pd.Series:
    """ALT-allele dosage of one variant of a PLINK 2 fileset, indexed by IID (NaN missing).

    Raises
    ------
    InputError
        If the fileset has no variant, or several, with that ID, or repeats a sample id.
    """
    pfile = pfile if isinstance(pfile, PFile) else PFile.open(pfile)
    hits = np.flatnonzero(pfile.variants["ID"].to_numpy() == variant_id)
    if hits.size != 1:
        raise InputError(
            f"{hits.size} variants have ID {variant_id!r}; expected exactly one",
            file=str(pfile.pgen.with_suffix(".pvar")),
        )
    iid = pfile.samples["IID"].astype(str)
    if iid.duplicated().any():
        raise InputError(
            f"sample id {iid[iid.duplicated()].iloc[0]!r} repeats; IIDs must be unique",
            file=str(pfile.pgen.with_suffix(".psam")), field="IID",
        )  # fmt: skip
    first = int(hits[0])
    _, block = next(iter_dosage_blocks(pfile, start=first, stop=first + 1))
    return pd.Series(block[0].astype(np.float64), index=iid.to_numpy(), name=variant_id)
