"""Local-ancestry mosaics: which simulated haplotype a person carries at each position.

A region is simulated once for a pool of haplotypes per source population. Each person owns
one simulated individual (two haplotypes) in every population they descend from, so no two
people share a haplotype by accident. A person's haplotype is a list of segments
``(left, column)``: from ``left`` to the next segment it copies source column ``column``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

POPULATIONS: tuple[str, ...] = ("afr", "eur", "eas", "sas", "mid", "nat")
"""Source populations, in the order of the ``anc_*`` columns and of every per-population array."""
MIN_COMPONENT = 0.05
"""Ancestry components below this share are dropped (and the rest rescaled)."""

# Unordered diploid genotype (a, b), a <= b, is code b*(b+1)/2 + a (the VCF likelihood order);
# haploid allele a is 10 + a; missing diploid 14, missing haploid 15.
N_CODES = 16
HAPLOID = 10
MISSING_DIPLOID = 14
MISSING_HAPLOID = 15
_PAIR = np.array(
    [max(a, b) * (max(a, b) + 1) // 2 + min(a, b) for a in range(4) for b in range(4)],
    dtype=np.int8,
)
CODE_ALLELES = np.zeros((N_CODES, 4), dtype=np.int16)
"""How many copies of each allele (columns 0..3) a genotype code carries."""
for _a in range(4):
    for _b in range(_a, 4):
        CODE_ALLELES[_b * (_b + 1) // 2 + _a, _a] += 1
        CODE_ALLELES[_b * (_b + 1) // 2 + _a, _b] += 1
    CODE_ALLELES[HAPLOID + _a, _a] = 1


def pair_code(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Diploid genotype codes of allele arrays ``a`` and ``b`` (values 0..3)."""
    return _PAIR[a.astype(np.int8) * 4 + b]


def renormalise(ancestry: np.ndarray) -> np.ndarray:
    """Drop ancestry components below :data:`MIN_COMPONENT` and rescale rows to sum 1."""
    anc = np.where(ancestry >= MIN_COMPONENT, ancestry, 0.0)
    top = anc.argmax(axis=1)
    empty = anc.sum(axis=1) == 0
    anc[empty, top[empty]] = 1.0
    return anc / anc.sum(axis=1, keepdims=True)


def allocate_slots(ancestry: np.ndarray, minimum: int) -> tuple[np.ndarray, np.ndarray]:
    """Give each person an own simulated individual in each population they descend from.

    Parameters
    ----------
    ancestry
        (n, 6) renormalised ancestry proportions.
    minimum
        Simulate at least this many individuals per population (for allele frequencies).

    Returns
    -------
    slot
        (n, 6) int32 index of the person's individual within each population, -1 if unused.
    counts
        (6,) individuals to simulate per population.
    """
    need = ancestry > 0
    slot = np.where(need, np.cumsum(need, axis=0) - 1, -1).astype(np.int32)
    counts = np.maximum(need.sum(axis=0), minimum).astype(np.int64)
    return slot, counts


@dataclass(frozen=True)
class Segments:
    """Haplotype segments of a region, sorted by haplotype then position.

    Haplotype ``2*u + h`` is haplotype ``h`` of genome unit ``u``; every haplotype has a
    segment starting at 0.
    """

    hap: np.ndarray
    left: np.ndarray
    col: np.ndarray
    length: int

    @property
    def n_haps(self) -> int:
        """Number of haplotypes described."""
        return int(self.hap[-1]) + 1

    @cached_property
    def _key(self) -> np.ndarray:
        """Sort key (haplotype, left) as one integer."""
        return self.hap * (self.length + 1) + self.left

    @cached_property
    def _by_left(self) -> tuple[np.ndarray, np.ndarray]:
        """Segment indexes sorted by left end, and those left ends."""
        order = np.argsort(self.left, kind="stable")
        return order, self.left[order]

    def of(self, hap: int) -> tuple[np.ndarray, np.ndarray]:
        """Left ends and source columns of one haplotype."""
        lo, hi = np.searchsorted(self.hap, [hap, hap + 1])
        return self.left[lo:hi], self.col[lo:hi]

    def replace(self, new: dict[int, tuple[np.ndarray, np.ndarray]]) -> Segments:
        """Return segments with the haplotypes in ``new`` replaced."""
        if not new:
            return self
        keep = ~np.isin(self.hap, np.fromiter(new, dtype=np.int64))
        haps = [self.hap[keep]] + [np.full(len(v[0]), h, np.int64) for h, v in new.items()]
        lefts = [self.left[keep]] + [v[0] for v in new.values()]
        cols = [self.col[keep]] + [v[1] for v in new.values()]
        hap, left, col = np.concatenate(haps), np.concatenate(lefts), np.concatenate(cols)
        order = np.lexsort((left, hap))
        return Segments(hap[order], left[order], col[order].astype(np.int32), self.length)


def mosaic(
    ancestry: np.ndarray,
    columns: np.ndarray,
    length: int,
    switch_rate: float,
    rng: np.random.Generator,
) -> Segments:
    """Build every person's two haplotypes as mosaics of local-ancestry tracts.

    Parameters
    ----------
    ancestry
        (n, 6) renormalised ancestry proportions.
    columns
        (n, 6, 2) source haplotype column of each person, population and haplotype.
    length
        Region length in bp.
    switch_rate
        Tract switches per bp (generations since admixture times recombination rate).
    rng
        Random source.

    Notes
    -----
    Along each haplotype, tract boundaries are a Poisson process of rate ``switch_rate``;
    each tract's population is drawn from the person's proportions, so a pure person
    copies one population's haplotype throughout.
    """
    n = len(ancestry)
    n_haps = 2 * n
    switches = rng.poisson(switch_rate * length, size=n_haps)
    hap = np.repeat(np.arange(n_haps, dtype=np.int64), switches + 1)
    left = rng.integers(1, max(length, 2), size=len(hap), dtype=np.int64)
    firsts = np.concatenate([[0], np.cumsum(switches + 1)[:-1]])
    left[firsts] = 0
    order = np.lexsort((left, hap))
    hap, left = hap[order], left[order]
    unit = hap // 2
    cum = np.cumsum(ancestry, axis=1)[unit]
    pop = np.minimum((rng.random(len(hap))[:, None] > cum).sum(axis=1), ancestry.shape[1] - 1)
    col = columns[unit, pop, hap % 2]
    return Segments(hap, left, col.astype(np.int32), length)


def _transmit(
    first: tuple[np.ndarray, np.ndarray],
    second: tuple[np.ndarray, np.ndarray],
    length: int,
    rate: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """One gamete from a parent's two haplotypes, with Poisson crossovers at ``rate`` per bp."""
    breaks = np.sort(rng.integers(1, max(length, 2), size=rng.poisson(rate * length)))
    bounds = np.concatenate([[0], breaks, [length]])
    start = int(rng.integers(2))
    lefts, cols = [], []
    for i in range(len(bounds) - 1):
        x, y = bounds[i], bounds[i + 1]
        if x >= y:
            continue
        src_left, src_col = (first, second)[(start + i) % 2]
        k = np.searchsorted(src_left, x, side="right") - 1
        inner = (src_left > x) & (src_left < y)
        lefts += [np.array([x]), src_left[inner]]
        cols += [src_col[k : k + 1], src_col[inner]]
    left, col = np.concatenate(lefts).astype(np.int64), np.concatenate(cols)
    keep = np.concatenate([[True], col[1:] != col[:-1]])
    return left[keep], col[keep]


def add_relatives(
    segments: Segments,
    parent_child: np.ndarray,
    siblings: np.ndarray,
    male: np.ndarray,
    rate: float,
    rng: np.random.Generator,
    *,
    is_x: bool,
) -> Segments:
    """Rewrite the haplotypes of related people so they share genome identical by descent.

    Parameters
    ----------
    segments
        Unrelated mosaics.
    parent_child
        (k, 2) genome units (parent, child): the child's haplotype 0 becomes a recombined
        gamete of the parent (kinship 1/4).
    siblings
        (k, 2) genome units (a, b): both become children of two virtual parents whose
        haplotypes are a's and b's original ones (kinship 1/4).
    male
        (n,) whether each unit is male (matters on chrX only).
    rate
        Crossover rate per bp.
    rng
        Random source.
    is_x
        Non-PAR chrX: a father passes his single X unrecombined to daughters and nothing to
        sons; a mother passes a recombined X.
    """
    length, new = segments.length, {}

    def gamete(unit: int, is_father_x: bool) -> tuple[np.ndarray, np.ndarray]:
        h0, h1 = segments.of(2 * unit), segments.of(2 * unit + 1)
        return h0 if is_father_x else _transmit(h0, h1, length, rate, rng)

    for parent, child in np.asarray(parent_child, dtype=np.int64).reshape(-1, 2):
        father_x = bool(is_x and male[parent])
        if father_x and male[child]:
            continue
        new[2 * child] = gamete(parent, father_x)
    for a, b in np.asarray(siblings, dtype=np.int64).reshape(-1, 2):
        for sib in (a, b):
            new[2 * sib] = gamete(a, False)
            if not is_x:
                new[2 * sib + 1] = gamete(b, False)
            elif not male[sib]:
                new[2 * sib + 1] = segments.of(2 * b)
    return segments.replace(new)


def haplotypes(source: np.ndarray, positions: np.ndarray, segments: Segments) -> np.ndarray:
    """Alleles of every haplotype at a chunk of sites.

    Parameters
    ----------
    source
        (k, n_source) allele indexes of the simulated haplotypes at ``k`` sites.
    positions
        (k,) sorted region-relative site positions.
    segments
        The haplotypes' segments.

    Returns
    -------
    np.ndarray
        (k, n_haps) int8 allele indexes.
    """
    p0, p1 = int(positions[0]), int(positions[-1])
    targets = np.arange(segments.n_haps, dtype=np.int64) * (segments.length + 1) + p0
    base = segments.col[np.searchsorted(segments._key, targets, side="right") - 1]
    out = source[:, base]
    order, lefts = segments._by_left
    events = order[np.searchsorted(lefts, p0, side="right") : np.searchsorted(lefts, p1, "right")]
    if events.size:
        rows = np.searchsorted(positions, segments.left[events], side="left")
        delta = segments.col[events].astype(np.int64) - segments.col[events - 1]
        affected, where = np.unique(segments.hap[events], return_inverse=True)
        steps = np.zeros((len(positions), len(affected)), dtype=np.int64)
        np.add.at(steps, (rows, where), delta)
        cols = base[affected] + np.cumsum(steps, axis=0)
        out[:, affected] = np.take_along_axis(source, cols, axis=1)
    return out


def genotype_codes(haps: np.ndarray, haploid: np.ndarray | None) -> np.ndarray:
    """Genotype codes of people from their two haplotypes' alleles.

    Parameters
    ----------
    haps
        (k, 2n) allele indexes, haplotypes ``2i`` and ``2i+1`` belong to person ``i``.
    haploid
        (n,) bool, people who carry only haplotype 0 here (males on chrX), or None.
    """
    a, b = haps[:, 0::2], haps[:, 1::2]
    codes = pair_code(a, b)
    if haploid is not None and haploid.any():
        codes[:, haploid] = HAPLOID + a[:, haploid]
    return codes
