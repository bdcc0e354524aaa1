"""Numeric kernels of sample and variant QC: robust outliers, pairwise concordance, HWE exact."""

from __future__ import annotations

import numpy as np

MAD_SCALE = 1.4826
"""Scales the median absolute deviation to a normal standard deviation."""
PAR_GRCH38 = ((10_001, 2_781_479), (155_701_383, 156_030_895))
"""Pseudo-autosomal regions of chrX in GRCh38 (1-based, inclusive)."""


def robust_z(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Distance from the group median in scaled MADs (NaN where undefined).

    A group whose MAD is 0 gives 0 for values at the median and +-inf elsewhere.
    """
    values = np.asarray(values, dtype=float)
    out = np.full(values.shape, np.nan)
    for g in np.unique(groups):
        m = (groups == g) & np.isfinite(values)
        if not m.any():
            continue
        x = values[m]
        med = np.median(x)
        mad = MAD_SCALE * np.median(np.abs(x - med))
        with np.errstate(divide="ignore", invalid="ignore"):
            out[m] = np.where(x == med, 0.0, (x - med) / mad)
    return out


def pairwise_concordance(
    genotypes: np.ndarray, *, block: int = 2048, min_sites: int = 50, min_concordance: float = 0.9
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sample pairs whose genotypes agree at ``min_concordance`` or more of jointly called sites.

    Parameters
    ----------
    genotypes
        (variants, samples) int8 dosages, -9 missing.
    block
        Samples per tile; memory is O(variants x block + block^2).
    min_sites, min_concordance
        Least jointly called sites and concordance to report a pair.

    Returns
    -------
    tuple of numpy.ndarray
        i, j (i < j), concordance and jointly called sites of the reported pairs.

    Notes
    -----
    Concordance of samples i, j = sum over g in {0,1,2} of ``(G==g)_i . (G==g)_j`` divided
    by ``called_i . called_j``: three matrix products per pair of sample tiles.
    """
    n = genotypes.shape[1]
    hits: list[tuple[np.ndarray, ...]] = []
    onehot = [(genotypes == g).astype(np.float32) for g in (0, 1, 2)]
    called = (genotypes >= 0).astype(np.float32)
    for a in range(0, n, block):
        for b in range(a, n, block):
            same = sum(h[:, a : a + block].T @ h[:, b : b + block] for h in onehot)
            both = called[:, a : a + block].T @ called[:, b : b + block]
            with np.errstate(invalid="ignore", divide="ignore"):
                conc = np.where(both > 0, same / np.maximum(both, 1), 0.0)
            i, j = np.nonzero((conc >= min_concordance) & (both >= min_sites))
            i, j = i + a, j + b
            keep = i < j
            i, j = i[keep], j[keep]
            hits.append((i, j, conc[i - a, j - b], both[i - a, j - b]))
    if not hits:
        empty = np.zeros(0)
        return empty.astype(int), empty.astype(int), empty, empty
    return tuple(np.concatenate(parts) for parts in zip(*hits, strict=True))  # type: ignore[return-value]


def hwe_exact(
    n_het: np.ndarray, n_hom1: np.ndarray, n_hom2: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Hardy-Weinberg exact test p-values (two-sided) and excess-heterozygosity p-values.

    Parameters
    ----------
    n_het, n_hom1, n_hom2
        Per-variant genotype counts among diploid samples.

    Returns
    -------
    tuple of numpy.ndarray
        The exact test p-value (sum of the probabilities of het counts no more likely than
        the observed one) and the one-sided p-value of at least the observed het count.
        NaN where no genotype is called.

    Notes
    -----
    Wigginton, Cutler & Abecasis (2005). With n diploid genotypes and r copies of the
    rarer allele, the het count h has the parity of r and

    ``P(h + 2) / P(h) = 4 * hom_r(h) * hom_c(h) / ((h + 1) * (h + 2))``,

    with ``hom_r = (r - h) / 2`` and ``hom_c = n - h - hom_r``. Variants are processed in
    groups of similar r; log-probabilities come from a cumulative sum of the log ratio
    from the lowest het count, then are normalised. Probabilities within a relative
    1e-7 of the observed one count as ties (as PLINK 2 does).
    """
    het = np.asarray(n_het, dtype=np.int64)
    h1 = np.asarray(n_hom1, dtype=np.int64)
    h2 = np.asarray(n_hom2, dtype=np.int64)
    n = het + h1 + h2
    rare = np.minimum(2 * h1 + het, 2 * h2 + het)
    p_hwe = np.full(len(n), np.nan)
    p_excess = np.full(len(n), np.nan)
    order = np.argsort(rare, kind="stable")
    start = 0
    sorted_rare = rare[order]
    while start < len(order):
        # a group spans rare counts up to twice its first one: bounded memory per group
        limit = max(2 * int(sorted_rare[start]), 64)
        stop = min(int(np.searchsorted(sorted_rare, limit, side="right")), start + 4096)
        _hwe_group(order[start:stop], het, n, rare, p_hwe, p_excess)
        start = stop
    return p_hwe, p_excess


def _hwe_group(
    idx: np.ndarray,
    het: np.ndarray,
    n: np.ndarray,
    rare: np.ndarray,
    p_hwe: np.ndarray,
    p_excess: np.ndarray,
) -> None:
    r = rare[idx]
    nn = n[idx]
    valid = nn > 0
    steps = int(r.max()) // 2 + 1 if len(r) else 1
    k = np.arange(steps)
    h = (r % 2)[:, None] + 2 * k[None, :]  # het counts, parity of r
    possible = (h <= r[:, None]) & (h <= nn[:, None])
    hom_r = (r[:, None] - h) // 2
    hom_c = nn[:, None] - h - hom_r
    with np.errstate(divide="ignore", invalid="ignore"):
        log_up = (
            np.log(4.0)
            + np.log(hom_r.astype(float))
            + np.log(hom_c.astype(float))
            - np.log((h + 1).astype(float))
            - np.log((h + 2).astype(float))
        )
    log_up = np.where(possible, log_up, -np.inf)
    logp = np.zeros(h.shape)
    logp[:, 1:] = np.cumsum(log_up[:, :-1], axis=1)
    logp = np.where(possible, logp, -np.inf)
    logp -= logp.max(axis=1, keepdims=True)
    prob = np.exp(logp)
    prob /= prob.sum(axis=1, keepdims=True)
    obs = (het[idx] - r % 2) // 2
    p_obs = prob[np.arange(len(idx)), obs]
    p_hwe[idx] = np.where(
        valid, np.minimum(1.0, (prob * (prob <= p_obs[:, None] * (1 + 1e-7))).sum(axis=1)), np.nan
    )
    tail = np.cumsum(prob[:, ::-1], axis=1)[:, ::-1]
    p_excess[idx] = np.where(valid, np.minimum(1.0, tail[np.arange(len(idx)), obs]), np.nan)


def chrx_nonpar(pos: np.ndarray) -> np.ndarray:
    """True for chrX positions outside the GRCh38 pseudo-autosomal regions."""
    out = np.ones(len(pos), dtype=bool)
    for lo, hi in PAR_GRCH38:
        out &= ~((pos >= lo) & (pos <= hi))
    return out
