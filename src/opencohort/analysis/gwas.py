"""Genome-wide association scans on PLINK 2 filesets: linear and logistic, many traits per pass."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd

from opencohort.analysis import _gwas_kernels as kern
from opencohort.analysis._pgen import BLOCK_SIZE, PFile, iter_dosage_blocks
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
CHUNK_BYTES = 8 << 20
"""Float64 working-array size the kernels get per call.

Blocks are cut into row chunks of about this size: arrays above glibc's 32 MB mmap ceiling
are returned to the OS on free and page-faulted back in on every call, which cost more than
the arithmetic in measurements on a 2-core VM.
"""


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


def _a1_flip(block: np.ndarray) -> np.ndarray:
    """True where A1 (the tested, non-major allele) is REF rather than ALT.

    As in plink2, REF is A1 when the ALT frequency is at least one half (ties go to REF),
    except for constant variants, which keep ALT.
    """
    observed = ~np.isnan(block)
    total = np.where(observed, block, 0.0).sum(axis=1, dtype=np.float64)
    return (total >= observed.sum(axis=1)) & ~_constant(block)


def _chunks(shape: tuple[int, int]) -> list[slice]:
    """Row slices of a (variants x samples) block, each about CHUNK_BYTES as float64."""
    step = max(8, CHUNK_BYTES // (8 * max(shape[1], 1)))
    return [slice(lo, lo + step) for lo in range(0, max(shape[0], 1), step)]


def _blocks(
    pfile: PFile, rows: np.ndarray, block_size: int
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Yield (first variant, A1 flip, dosages of the analysed samples) per block.

    The A1 allele is chosen from all samples of the fileset, as plink2 does, so it does not
    depend on which traits are scanned together.
    """
    subset = None if rows.size == len(pfile.samples) else rows
    for first, block in iter_dosage_blocks(pfile, block_size=block_size):
        yield first, _a1_flip(block), block if subset is None else block[:, subset]


def _frame(
    pfile: PFile, first: int, flip: np.ndarray, name: str, stats: dict[str, np.ndarray]
) -> pd.DataFrame:
    """One phenotype's rows for a block, with A1 oriented and BETA/STAT sign-flipped to A1."""
    variants = pfile.variants.iloc[first : first + flip.size]
    sign = np.where(flip, -1.0, 1.0)
    beta = stats["beta"] * sign
    out = pd.DataFrame(
        {
            "phenotype": name,
            "CHROM": variants["CHROM"].to_numpy(),
            "POS": variants["POS"].to_numpy(),
            "ID": variants["ID"].to_numpy(),
            "REF": variants["REF"].to_numpy(),
            "ALT": variants["ALT"].to_numpy(),
            "A1": np.where(flip, variants["REF"], variants["ALT"]),
            "TEST": "ADD",
            "OBS_CT": stats["n_obs"].astype(np.int64),
            "BETA": beta,
            "SE": stats["se"],
            "STAT": stats["stat"] * sign,
            "P": stats["p"],
            "ERRCODE": stats.get("errcode", np.where(np.isnan(beta), "CONST_OMITTED_ALLELE", ".")),
            "firth": stats.get("firth", np.zeros(flip.size, dtype=bool)),
            "converged": stats.get("converged", ~np.isnan(beta)),
            "n_iterations": stats.get("n_iterations", np.zeros(flip.size, dtype=np.int64)),
        }
    )
    return out


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
    parts: dict[int, list[pd.DataFrame]] = {j: [] for j in range(len(names))}
    for first, flip, block in _blocks(pfile, rows, block_size):
        for mask, cols, model in groups:
            sub = block[:, mask] if not mask.all() else block
            pieces = [kern.linear_block(model, sub[part]) for part in _chunks(sub.shape)]
            stats = {key: np.concatenate([p[key] for p in pieces]) for key in pieces[0]}
            for i, j in enumerate(cols):
                one = {key: (v[:, i] if v.ndim == 2 else v) for key, v in stats.items()}
                parts[j].append(_frame(pfile, first, flip, names[j], one))
    return pd.concat([f for j in range(len(names)) for f in parts[j]], ignore_index=True)


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
    parts: dict[int, list[pd.DataFrame]] = {j: [] for j in range(len(names))}
    for first, flip, block in _blocks(pfile, rows, block_size):
        for j, (mask, model) in enumerate(fits):
            sub = block[:, mask]
            pieces = [
                kern.logistic_block(model, sub[part], firth=firth, max_iter=max_iter)
                for part in _chunks(sub.shape)
            ]
            res = kern.LogisticResult(
                **{
                    f.name: np.concatenate([getattr(p, f.name) for p in pieces])
                    for f in fields(kern.LogisticResult)
                }
            )
            stats = {
                "beta": res.beta, "se": res.se, "stat": res.z, "p": res.p,
                "n_obs": res.n_obs, "firth": res.firth, "converged": res.converged,
                "n_iterations": res.n_iterations, "errcode": _logistic_errcode(res),
            }  # fmt: skip
            parts[j].append(_frame(pfile, first, flip, names[j], stats))
    return pd.concat([f for j in range(len(names)) for f in parts[j]], ignore_index=True)


def _logistic_errcode(res: kern.LogisticResult) -> np.ndarray:
    """plink2-style ERRCODE for each logistic row ('.' when the fit succeeded)."""
    failed = np.where(res.firth, "FIRTH_CONVERGE_FAIL", "UNFINISHED")
    code = np.where(np.isnan(res.beta), failed, ".")
    return np.where(res.constant, "CONST_OMITTED_ALLELE", code)


def _constant(block: np.ndarray) -> np.ndarray:
    """True for variants with no dosage variation among observed samples (or none observed)."""
    return ~(np.fmax.reduce(block, axis=1) > np.fmin.reduce(block, axis=1))
