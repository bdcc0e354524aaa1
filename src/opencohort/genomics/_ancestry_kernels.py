"""Numeric kernels of ancestry inference: LD pruning, HWE-normalised PCA and projection."""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse.linalg

MISSING = -9


def standardize(genotypes: np.ndarray) -> np.ndarray:
    """(variants, samples) float32 genotypes centred and scaled per variant, missing as 0.

    Each row has mean 0 and unit variance over its called samples (rows without
    variance become 0), so ``x_i . x_j / n`` is the correlation of variants i and j.
    """
    called = genotypes >= 0
    g = np.where(called, genotypes, 0).astype(np.float32)
    n_called = np.maximum(called.sum(axis=1, keepdims=True), 1)
    mean = g.sum(axis=1, keepdims=True) / n_called
    x = np.where(called, g - mean, 0.0).astype(np.float32)
    sd = np.sqrt((x * x).sum(axis=1, keepdims=True) / n_called)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sd > 0, x / np.where(sd > 0, sd, 1), 0.0).astype(np.float32)


def ld_prune(
    genotypes: np.ndarray, pos: np.ndarray, *, r2: float = 0.1, window: int = 500_000,
    chunk: int = 512,
) -> np.ndarray:  # fmt: skip
    """Greedy windowed LD pruning of one chromosome: indexes of the variants kept.

    Parameters
    ----------
    genotypes
        (variants, samples) int8 dosages, -9 missing, sorted by ``pos``.
    pos
        Positions of the variants.
    r2
        A variant is dropped when its squared correlation with a kept variant at most
        ``window`` bases before it reaches ``r2``.
    window
        Window in base pairs.
    chunk
        Variants whose correlations are computed in one matrix product.

    Returns
    -------
    numpy.ndarray
        Sorted indexes of the kept variants.

    Notes
    -----
    Variants are visited in position order; the first is kept, and each later one is kept
    when it is not in LD with any kept variant in the window before it. Correlations of a
    chunk with itself and with the kept variants of the window are one matrix product each
    (missing calls mean-imputed). Differs from Hail's ``ld_prune`` (a maximal independent
    set on the graph of correlated pairs), which can keep more variants per window.
    """
    x = standardize(genotypes)
    n = max(genotypes.shape[1], 1)
    kept: list[int] = []
    for start in range(0, len(x), chunk):
        stop = min(len(x), start + chunk)
        lo = int(np.searchsorted(pos, pos[start] - window, side="left"))
        prior = np.array([k for k in kept if k >= lo], dtype=np.int64)
        block = x[start:stop]
        r2_prior = ((block @ x[prior].T) / n) ** 2 if len(prior) else np.zeros((stop - start, 0))
        r2_self = ((block @ block.T) / n) ** 2
        near_prior = pos[start:stop, None] - pos[prior][None, :] <= window
        near_self = pos[start:stop, None] - pos[None, start:stop] <= window
        keep_self = np.zeros(stop - start, dtype=bool)
        for i in range(stop - start):
            if np.any((r2_prior[i] >= r2) & near_prior[i]):
                continue
            if np.any((r2_self[i, :i] >= r2) & near_self[i, :i] & keep_self[:i]):
                continue
            keep_self[i] = True
        kept.extend((start + np.flatnonzero(keep_self)).tolist())
    return np.array(kept, dtype=np.int64)


def hwe_normalize(genotypes: np.ndarray, af: np.ndarray, n_variants: int) -> np.ndarray:
    """``(g - 2p) / sqrt(2p(1-p) M)`` per entry, missing as 0 (Hail's HWE normalisation)."""
    scale = np.sqrt(2 * af * (1 - af) * n_variants)[:, None]
    called = genotypes >= 0
    x = (genotypes.astype(np.float64) - 2 * af[:, None]) / scale
    return np.where(called, x, 0.0)


def pca_fit(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top ``k`` principal components of normalised (variants, samples) genotypes.

    Returns
    -------
    tuple of numpy.ndarray
        Eigenvalues (k,), sample scores (samples, k) and variant loadings (variants, k),
        with ``x = loadings @ diag(sqrt(eigenvalues)) @ scores_unit.T`` truncated at k and
        ``scores = x.T @ loadings``.

    Notes
    -----
    The top ``k`` eigenpairs of the samples x samples Gram matrix ``x.T @ x`` are computed
    exactly (``scipy.linalg.eigh``; small while reference panels have thousands of samples);
    loadings are ``x @ u / s``. Signs are
    fixed so that each loading vector's largest-magnitude entry is positive.
    """
    values, u = _top_eigen(x.T @ x, k)
    s = np.sqrt(values)
    loadings = (x @ u) / np.where(s > 0, s, 1)
    flip = np.sign(loadings[np.abs(loadings).argmax(axis=0), np.arange(loadings.shape[1])])
    loadings *= np.where(flip == 0, 1, flip)
    return values, x.T @ loadings, loadings


def _top_eigen(gram: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest eigenvalues (descending, clipped at 0) and eigenvectors of a Gram."""
    n = len(gram)
    if n >= 1000 and k < n // 10:  # Lanczos: exact at tol=0, faster than LAPACK at this size
        start = np.full(n, 1 / np.sqrt(n))  # a fixed start vector: reproducible results
        values, vectors = scipy.sparse.linalg.eigsh(gram, k=k, which="LA", tol=0, v0=start)
        order = np.argsort(values)
        values, vectors = values[order], vectors[:, order]
    else:
        values, vectors = scipy.linalg.eigh(gram, subset_by_index=(max(0, n - k), n - 1))
    return np.clip(values[::-1], 0, None), vectors[:, ::-1]


def shrinkage_factors(x: np.ndarray, k: int, *, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Per-PC factor by which projected scores of samples outside a PCA shrink toward 0.

    Parameters
    ----------
    x
        (variants, samples) normalised panel genotypes (as for :func:`pca_fit`).
    k
        Components.
    folds
        Samples are split at random into this many folds; each is held out once.
    seed
        Seed of the split.

    Returns
    -------
    numpy.ndarray
        (k,) factors, about 1 for strong components and below 1 for weak ones; dividing
        projected scores by them puts them on the scale of the panel's own scores.

    Notes
    -----
    1. For each fold, the PCA is refitted on the other samples (top eigenvectors ``u``,
       values ``s^2`` of their Gram matrix ``G_tt``), and the held-out samples are
       projected: ``G_ht u / s`` (the same as ``x_h.T @ loadings``).
    2. The factor of PC j is ``sqrt(sum of held-out scores^2 / sum of in-sample scores^2)``
       pooled over the folds (each fold's in-sample sum rescaled to the held-out count).
       Sign and order of each refitted PC do not matter: only squared scores are compared.

    Projection shrinks scores because a sample outside the PCA did not help choose the
    axes, while the panel's own scores are inflated by fitting (Lee, Zou & Wright 2010).
    Differs from hdpca's asymptotic correction (Dey & Lee 2019), which infers the
    factors from the eigenvalue spectrum under a spiked model; the held-out estimate needs
    no such model, at ``folds`` more eigendecompositions of the (smaller) Gram matrix.
    """
    n = x.shape[1]
    gram = x.T @ x
    fold = np.random.default_rng(seed).permutation(n) % folds
    held, fitted = np.zeros(k), np.zeros(k)
    for f in range(folds):
        test, train = np.flatnonzero(fold == f), np.flatnonzero(fold != f)
        values, u = _top_eigen(gram[np.ix_(train, train)], k)
        s = np.sqrt(values)
        projected = gram[np.ix_(test, train)] @ u / np.where(s > 0, s, 1)
        held += (projected**2).sum(axis=0)
        fitted += values * len(test) / len(train)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(fitted > 0, np.sqrt(held / np.where(fitted > 0, fitted, 1)), 1.0)
