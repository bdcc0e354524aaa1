"""Genome-wide association scans on PLINK 2 filesets: linear and logistic, many traits per pass."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from opencohort.analysis import _gwas_kernels as kern
from opencohort.analysis._pgen import BLOCK_SIZE, MISSING_CODE, PFile, iter_raw_blocks
from opencohort.errors import ConfigError, InputError

RESULT_COLUMNS = [
    "phenotype", "CHROM", "POS", "ID", "REF", "ALT", "A1", "TEST", "OBS_CT",
    "BETA", "SE", "STAT", "P", "ERRCODE", "firth", "converged", "n_iterations",
]  # fmt: skip
"""Columns of a scan's result frame: plink2 --glm names plus fit diagnostics.

BETA is the effect of one A1 allele (a log odds ratio for logistic scans); STAT is the T_STAT
(linear) or Z_STAT (logistic) column of plink2.
"""
FIRTH_MODES = ("fallback", "always", "never")
VARIANT_COLUMNS = ("CHROM", "POS", "ID", "REF", "ALT")
CHUNK_BYTES = 4 << 20
"""Float64 working-array size the kernels get per call.

Blocks are cut into row chunks of about this size, so that a kernel's working arrays stay in
the CPU's last-level cache and below glibc's mmap threshold (larger arrays are returned to the
OS on free and page-faulted back in on every call).
"""
BLOCK_BYTES = 64 << 20
"""Largest decoded float32 block; with one block decoded ahead this bounds the genotype memory."""


def _as_pfile(pfile: PFile | str | Path) -> PFile:
    return pfile if isinstance(pfile, PFile) else PFile.open(pfile)


def _parse_inputs(
    pfile: PFile, phenotypes: pd.DataFrame, covariates: pd.DataFrame | None, caller: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Align traits and covariates to the psam; return sample rows, trait and covariate matrices.

    Samples missing from either frame or with any missing covariate are dropped, as plink2
    does. The covariate matrix gets a leading intercept column.
    """
    if phenotypes.shape[1] == 0:
        raise ConfigError(f"{caller}: phenotypes has no columns; pass at least one trait")
    iid = pfile.samples["IID"].astype(str)
    traits = phenotypes.copy()
    traits.index = traits.index.astype(str)
    if traits.index.duplicated().any():
        raise InputError(f"{caller}: phenotypes index has duplicate sample ids")
    frame = traits.reindex(iid.to_numpy())
    keep = frame.notna().any(axis=1).to_numpy()
    if covariates is not None and covariates.shape[1]:
        cov = covariates.copy()
        cov.index = cov.index.astype(str)
        cov = cov.reindex(iid.to_numpy()).astype(np.float64)
        keep &= cov.notna().all(axis=1).to_numpy()
        design = cov.to_numpy()
    else:
        design = np.empty((len(iid), 0))
    rows = np.flatnonzero(keep)
    if rows.size == 0:
        raise InputError(f"{caller}: no sample has both a phenotype and complete covariates")
    design = np.column_stack([np.ones(rows.size), design[rows]])
    return rows, frame.to_numpy(dtype=np.float64)[rows], design


def _groups(values: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Group trait columns by identical non-missing pattern: (sample mask, column indices)."""
    patterns: dict[bytes, list[int]] = {}
    masks: dict[bytes, np.ndarray] = {}
    for j in range(values.shape[1]):
        mask = ~np.isnan(values[:, j])
        key = np.packbits(mask).tobytes()
        patterns.setdefault(key, []).append(j)
        masks[key] = mask
    return [(masks[key], np.array(cols)) for key, cols in patterns.items()]


def _a1_flip(raw: np.ndarray) -> np.ndarray:
    """True where A1 (the tested, non-major allele) is REF rather than ALT.

    As in plink2, REF is A1 when the ALT frequency is at least one half (ties go to REF),
    except for constant variants, which keep ALT. ``raw`` holds dosages of every sample of
    the fileset, pgenlib's -9 where missing (no copy is made: four passes over the block).
    """
    n_missing = np.count_nonzero(raw < 0, axis=1)
    n_obs = raw.shape[1] - n_missing
    total = raw.sum(axis=1, dtype=np.float64) - MISSING_CODE * n_missing
    constant = total == n_obs * raw.max(axis=1, initial=0.0)
    return (total >= n_obs) & ~constant


def _chunks(n_var: int, n_samples: int) -> list[slice]:
    """Row slices of a (variants x samples) block, each about CHUNK_BYTES as float64."""
    step = max(8, CHUNK_BYTES // (8 * max(n_samples, 1)))
    return [slice(lo, min(lo + step, n_var)) for lo in range(0, n_var, step)]


def _prefetch(blocks: Iterator[tuple[int, np.ndarray]]) -> Iterator[tuple[int, np.ndarray]]:
    """Decode the next block in a background thread while the caller works on this one."""
    with ThreadPoolExecutor(1) as reader:
        pending = reader.submit(next, blocks, None)
        while (item := pending.result()) is not None:
            pending = reader.submit(next, blocks, None)
            yield item


def _scan(
    pfile: PFile, rows: np.ndarray, block_size: int, work: Callable[[int, np.ndarray], None]
) -> np.ndarray:
    """Call ``work(first variant, dosages of the analysed samples)`` over the whole fileset.

    Blocks are decoded from the pgen one ahead; each is cut into cache-sized row chunks that
    worker threads (one per usable CPU, BLAS single-threaded in each) hand to ``work``, which
    must write only its own variants' results. Returns the A1 flip of every variant, chosen
    from all samples of the fileset as plink2 does, so it does not depend on the traits.
    """
    flip = np.zeros(len(pfile.variants), dtype=bool)
    subset = None if rows.size == len(pfile.samples) else rows
    block_size = max(64, min(block_size, BLOCK_BYTES // (4 * max(len(pfile.samples), 1))))

    def task(first: int, raw: np.ndarray) -> None:
        flip[first : first + raw.shape[0]] = _a1_flip(raw)
        work(first, raw if subset is None else raw[:, subset])

    workers = len(os.sched_getaffinity(0))
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(workers) as pool:
        for first, raw in _prefetch(iter_raw_blocks(pfile, block_size=block_size)):
            parts = _chunks(*raw.shape)
            for done in [pool.submit(task, first + p.start, raw[p]) for p in parts]:
                done.result()
    return flip


def _frames(
    pfile: PFile, names: list[str], flip: np.ndarray, stats: dict[str, np.ndarray]
) -> pd.DataFrame:
    """Long result rows (phenotype-major), with A1 oriented and BETA/STAT sign-flipped to A1.

    ``stats`` holds (variants x phenotypes) arrays: beta, se, stat, p, n_obs and, for
    logistic scans, errcode, firth, converged and n_iterations.
    """
    variants = pfile.variants
    sign = np.where(flip, -1.0, 1.0)[:, None]
    beta = stats["beta"] * sign
    n_var = len(variants)
    errcode = stats.get("errcode", np.where(np.isnan(beta), "CONST_OMITTED_ALLELE", "."))
    columns = {
        "phenotype": np.repeat(np.array(names, dtype=object), n_var),
        **{c: np.tile(variants[c].to_numpy(), len(names)) for c in VARIANT_COLUMNS},
        "A1": np.tile(np.where(flip, variants["REF"], variants["ALT"]), len(names)),
        "TEST": "ADD",
        "OBS_CT": stats["n_obs"].T.ravel().astype(np.int64),
        "BETA": beta.T.ravel(),
        "SE": stats["se"].T.ravel(),
        "STAT": (stats["stat"] * sign).T.ravel(),
        "P": stats["p"].T.ravel(),
        "ERRCODE": errcode.T.ravel(),
        "firth": stats.get("firth", np.zeros_like(beta, dtype=bool)).T.ravel(),
        "converged": stats.get("converged", ~np.isnan(beta)).T.ravel(),
        "n_iterations": stats.get("n_iterations", np.zeros_like(beta, dtype=np.int64)).T.ravel(),
    }
    return pd.DataFrame(columns)


def linear_gwas(
    pfile: PFile | str | Path,
    phenotypes: pd.DataFrame,
    *,
    covariates: pd.DataFrame | None = None,
    block_size: int = BLOCK_SIZE,
) -> pd.DataFrame:
    """Linear-regression scan of quantitative traits against every variant, in one pass.

    Traits are residualised on the covariates once (a QR of each missingness pattern's
    covariate matrix), and each genotype block is projected with one matrix product serving
    every trait. Per variant and trait this gives plink2 ``--glm`` ADD results: the effect of
    one A1 (non-major) allele, its SE, t and p. A sample missing a trait is dropped for that
    trait; a sample whose genotype is missing is dropped for that variant, exactly (the
    covariate fit is downdated by those samples), so OBS_CT and every statistic match plink2.

    Parameters
    ----------
    pfile
        A :class:`PFile` or a fileset prefix.
    phenotypes
        Traits indexed by IID, one column each, NaN for missing.
    covariates
        Covariates indexed by IID; samples with any missing covariate are dropped. An intercept
        is added.
    block_size
        Variants decoded per block.

    Returns
    -------
    pandas.DataFrame
        Long results with :data:`RESULT_COLUMNS`, grouped by phenotype in column order.
    """
    pfile = _as_pfile(pfile)
    rows, values, design = _parse_inputs(pfile, phenotypes, covariates, "linear_gwas")
    names = [str(c) for c in phenotypes.columns]
    groups = []
    for mask, cols in _groups(values):
        try:
            model = kern.LinearModel.fit(design[mask], values[np.ix_(mask, cols)])
        except np.linalg.LinAlgError as exc:
            raise InputError("linear_gwas: covariates are collinear; drop one") from exc
        groups.append((mask, cols, model))
    n_var = len(pfile.variants)
    stats = {key: np.full((n_var, len(names)), np.nan) for key in ("beta", "se", "stat", "p")}
    stats["n_obs"] = np.zeros((n_var, len(names)), dtype=np.int64)

    def work(first: int, block: np.ndarray) -> None:
        for mask, cols, model in groups:
            out = kern.linear_block(model, block if mask.all() else block[:, mask])
            span = slice(first, first + block.shape[0])
            for key, values in out.items():
                stats[key][span, cols] = values if values.ndim == 2 else values[:, None]

    flip = _scan(pfile, rows, block_size, work)
    return _frames(pfile, names, flip, stats)


def logistic_gwas(
    pfile: PFile | str | Path,
    phenotypes: pd.DataFrame,
    *,
    covariates: pd.DataFrame | None = None,
    firth: str = "fallback",
    block_size: int = BLOCK_SIZE,
    max_iter: int = 25,
) -> pd.DataFrame:
    """Logistic-regression scan of binary (0/1) traits against every variant.

    Each variant is fitted by Newton-Raphson with all covariates, vectorised over the variants
    of a block. ``firth="fallback"`` follows plink2's default ``firth-fallback``: a variant whose
    ordinary fit does not converge (including separation) is refitted with Firth's penalised
    likelihood and flagged in ``firth``. plink2 does not switch to Firth on small p (that is
    regenie's rule), so neither does this. Rows always carry ``converged`` and
    ``n_iterations``; a fit that fails gives NaN statistics, never an exception.

    Parameters
    ----------
    pfile
        A :class:`PFile` or a fileset prefix.
    phenotypes
        Binary traits indexed by IID coded 0 (control) / 1 (case), NaN for missing.
    covariates
        Covariates indexed by IID (an intercept is added).
    firth
        ``"fallback"``, ``"always"`` or ``"never"``.
    block_size, max_iter
        Variants per block and Newton iteration cap.

    Returns
    -------
    pandas.DataFrame
        Long results with :data:`RESULT_COLUMNS`; BETA and SE are on the log-odds scale.
    """
    if firth not in FIRTH_MODES:
        raise ConfigError(f"logistic_gwas: firth={firth!r}; expected one of {FIRTH_MODES}")
    pfile = _as_pfile(pfile)
    rows, values, design = _parse_inputs(pfile, phenotypes, covariates, "logistic_gwas")
    bad = ~np.isnan(values) & (values != 0) & (values != 1)
    if bad.any():
        raise InputError("logistic_gwas: phenotypes must be 0/1 (or NaN for missing)")
    names = [str(c) for c in phenotypes.columns]
    fits = []
    for j in range(values.shape[1]):
        mask = ~np.isnan(values[:, j])
        try:
            q = kern.orthonormal_basis(design[mask]) * np.sqrt(mask.sum())
        except np.linalg.LinAlgError as exc:
            raise InputError("logistic_gwas: covariates are collinear; drop one") from exc
        fits.append((mask, kern.LogisticModel.fit(q, values[mask, j])))
    n_var = len(pfile.variants)
    stats: dict[str, np.ndarray] = {
        key: np.full((n_var, len(names)), np.nan) for key in ("beta", "se", "stat", "p")
    }
    for key, dtype in (("n_obs", np.int64), ("n_iterations", np.int64), ("firth", bool),
                       ("converged", bool), ("errcode", object)):  # fmt: skip
        stats[key] = np.zeros((n_var, len(names)), dtype=dtype)

    def work(first: int, block: np.ndarray) -> None:
        span = slice(first, first + block.shape[0])
        for j, (mask, model) in enumerate(fits):
            res = kern.logistic_block(model, block[:, mask], firth=firth, max_iter=max_iter)
            for key, values in (
                ("beta", res.beta), ("se", res.se), ("stat", res.z), ("p", res.p),
                ("n_obs", res.n_obs), ("firth", res.firth), ("converged", res.converged),
                ("n_iterations", res.n_iterations), ("errcode", _logistic_errcode(res)),
            ):  # fmt: skip
                stats[key][span, j] = values

    flip = _scan(pfile, rows, block_size, work)
    return _frames(pfile, names, flip, stats)


def _logistic_errcode(res: kern.LogisticResult) -> np.ndarray:
    """plink2-style ERRCODE for each logistic row ('.' when the fit succeeded)."""
    failed = np.where(res.firth, "FIRTH_CONVERGE_FAIL", "UNFINISHED")
    code = np.where(np.isnan(res.beta), failed, ".")
    return np.where(res.constant, "CONST_OMITTED_ALLELE", code)
