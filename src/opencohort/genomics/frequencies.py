"""Allele counts, numbers and frequencies per ancestry group, with the top ("popmax") group."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pgenlib

from opencohort.errors import NotFound
from opencohort.genomics import _columns as c
from opencohort.genomics import _store
from opencohort.genomics._qc_kernels import chrx_nonpar
from opencohort.genomics.executor import Executor, local_or

ALL = "all"
OTHER = "oth"
POPMAX_GROUP = "variant_popmax_group"
"""Group with the highest allele frequency (``oth`` and groups without calls excluded)."""
POPMAX_AF = "variant_popmax_af"
STATISTICS = ("ac", "an", "af", "n_hom_alt", "n_hemi_alt")
Progress = Callable[[str, float], None]


def frequency_column(statistic: str, group: str) -> str:
    """Column name of a statistic for a group, e.g. ``variant_af_afr``."""
    return f"variant_{statistic}_{group}"


def allele_frequencies(
    root: Path,
    *,
    groups: pd.Series | None = None,
    progress: Progress | None = None,
    executor: Executor | None = None,
) -> pd.DataFrame:
    """Per-variant allele counts and frequencies overall and per group.

    Parameters
    ----------
    root
        The store directory.
    groups
        Group label (e.g. predicted ancestry) per sample_id; samples without one count only
        in ``all``. Default: ``all`` alone.
    progress
        Called with a label and the fraction of contigs done.
    executor
        Where the per-block counts run (default in this process; see
        :mod:`opencohort.genomics.executor`); results do not depend on it.

    Returns
    -------
    pandas.DataFrame
        One row per store variant: variant_id, chrom, pos, ref, alt and, for ``all`` and
        each group g, ``variant_ac_<g>`` (alternate alleles), ``variant_an_<g>`` (called
        alleles), ``variant_af_<g>`` (AC / AN, NaN at AN 0), ``variant_n_hom_alt_<g>``
        (diploid homozygous-alternate samples) and ``variant_n_hemi_alt_<g>`` (haploid
        alternate calls); then variant_popmax_group and variant_popmax_af.

    Raises
    ------
    NotFound
        If the store is missing.

    Notes
    -----
    1. Genotype counts per group are pgenlib popcounts over each group's samples, per
       block of variants (one executor task per block), separately for diploid samples
       and for samples called haploid on the contig (outside the chrX pseudo-autosomal
       regions), since the store keeps haploid calls as 0/2.
    2. ``AC = het + 2 hom_alt`` (diploid) ``+ hemi_alt``; ``AN = 2 called`` (diploid)
       ``+ called`` (haploid); this equals ``plink2 --freq`` counts on autosomes.
    3. popmax is the group with the highest AF among groups other than ``oth``; ties go to
       the first group in sorted order.
    """
    samples = _store.read_samples(root).reset_index(drop=True)
    if samples.empty:
        raise NotFound(f"no genotype store in {root}; run 'opencohort genomics ingest DIR' first")
    executor = local_or(executor)
    variants = _store.read_variants(root)
    ids = samples[c.SAMPLE_ID]
    labels = ids.map(groups) if groups is not None else pd.Series(None, index=ids.index)
    names = [ALL, *sorted(str(g) for g in labels.dropna().unique())]
    member = np.zeros((len(ids), len(names)), dtype=np.float32)
    member[:, 0] = 1
    for k, name in enumerate(names[1:], start=1):
        member[:, k] = (labels == name).to_numpy()
    parts = []
    contigs = _store.store_contigs(root)
    for done, contig in enumerate(contigs):
        sub = variants[variants[c.CHROM] == contig].reset_index(drop=True)
        haploid = samples[c.HAPLOID_CONTIGS].map(lambda v, k=contig: k in str(v).split(","))
        haploid = haploid.to_numpy(dtype=bool)
        nonpar = chrx_nonpar(sub[c.POS].to_numpy()) if contig in ("chrX", "X") else None
        stats = {s: np.zeros((len(sub), len(names))) for s in STATISTICS}
        pgen = root / f"{contig}.pgen"
        tasks = []
        for a in range(0, len(sub), _store.READ_BLOCK):
            b = min(len(sub), a + _store.READ_BLOCK)
            hemi = None
            if haploid.any():
                hemi = (haploid, None if nonpar is None else nonpar[a:b])
            tasks.append((pgen, a, b, hemi, member))
        for task, part in zip(tasks, executor.map(_block_counts, tasks), strict=True):
            for s, values in part.items():
                stats[s][task[1] : task[2]] = values
        parts.append(_table(sub, stats, names))
        if progress:
            progress("allele frequencies", (done + 1) / len(contigs))
    return pd.concat(parts, ignore_index=True) if parts else _table(variants, {}, names)


def _block_counts(
    task: tuple[Path, int, int, tuple[np.ndarray, np.ndarray | None] | None, np.ndarray],
) -> dict[str, np.ndarray]:
    """Counts of one block: (pgen, start, stop, haploid samples and non-PAR rows, membership).

    Diploid calls count as they are, haploid calls with 2 as one allele. Genotype counts
    come from pgenlib's per-variant ``count`` on each group's sample subset (popcounts
    over the packed genotypes, as plink2), never from a decoded genotype matrix.
    """
    pgen, start, stop, hemi, member = task
    rows, groups = stop - start, member.shape[1]
    dip, hap = np.zeros((3, rows, groups), np.int64), np.zeros((3, rows, groups), np.int64)
    haploid, hemi_rows = (None, None) if hemi is None else hemi
    if haploid is not None and hemi_rows is None:
        hemi_rows = np.ones(rows, dtype=bool)
    with pgenlib.PgenReader(str(pgen).encode()) as reader:
        for k in range(groups):
            in_group = member[:, k] > 0
            if haploid is None:
                dip[:, :, k] = _subset_counts(reader, in_group, start, stop)
                continue
            full = _subset_counts(reader, in_group, start, stop)
            split = _subset_counts(reader, in_group & ~haploid, start, stop)
            dip[:, :, k] = np.where(hemi_rows[None, :], split, full)
            hap[:, :, k] = np.where(hemi_rows[None, :], full - split, 0)
    ref, het, alt = dip
    h_ref, _, h_alt = hap
    return {
        "ac": het + 2 * alt + h_alt,
        "an": 2 * (ref + het + alt) + h_ref + h_alt,
        "n_hom_alt": alt,
        "n_hemi_alt": h_alt,
    }


def _subset_counts(
    reader: pgenlib.PgenReader, keep: np.ndarray, start: int, stop: int
) -> np.ndarray:
    """(3, stop - start) hom-ref, het and hom-alt counts of variants among ``keep`` samples."""
    counts = np.zeros((stop - start, 4), np.uint32)
    if not keep.any():
        return counts[:, :3].T.astype(np.int64)
    subset = np.flatnonzero(keep).astype(np.uint32)
    reader.change_sample_subset(None if len(subset) == len(keep) else subset)
    for row, variant in enumerate(range(start, stop)):
        reader.count(variant, counts[row])
    return counts[:, :3].T.astype(np.int64)


def _table(sub: pd.DataFrame, stats: dict[str, np.ndarray], names: list[str]) -> pd.DataFrame:
    out = sub[[c.VARIANT_ID, c.CHROM, c.POS, c.REF, c.ALT]].reset_index(drop=True)
    n = len(out)
    columns: dict[str, np.ndarray] = {}
    ac = stats.get("ac", np.zeros((n, len(names))))
    an = stats.get("an", np.zeros((n, len(names))))
    with np.errstate(invalid="ignore", divide="ignore"):
        af = np.where(an > 0, ac / np.where(an > 0, an, 1), np.nan)
    for k, name in enumerate(names):
        columns[frequency_column("ac", name)] = ac[:, k].astype(np.int64)
        columns[frequency_column("an", name)] = an[:, k].astype(np.int64)
        columns[frequency_column("af", name)] = af[:, k]
        for s in ("n_hom_alt", "n_hemi_alt"):
            values = stats.get(s, np.zeros((n, len(names))))
            columns[frequency_column(s, name)] = values[:, k].astype(np.int64)
    candidates = [k for k, name in enumerate(names) if name not in (ALL, OTHER)]
    if candidates:
        sub_af = af[:, candidates]
        has = np.isfinite(sub_af).any(axis=1)
        best = np.argmax(np.where(np.isfinite(sub_af), sub_af, -1), axis=1)
        columns[POPMAX_GROUP] = np.where(has, np.array(names)[candidates][best], None)
        columns[POPMAX_AF] = np.where(has, sub_af[np.arange(n), best], np.nan)
    else:
        columns[POPMAX_GROUP] = np.full(n, None)
        columns[POPMAX_AF] = np.full(n, np.nan)
    return pd.concat([out, pd.DataFrame(columns)], axis=1)
