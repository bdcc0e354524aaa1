"""Variant QC over the cohort store: call rate, HWE per group, excess heterozygosity, AC."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from opencohort.errors import ConfigError
from opencohort.genomics import _columns as c
from opencohort.genomics import _store
from opencohort.genomics._qc_kernels import chrx_nonpar, hwe_exact
from opencohort.genomics.executor import Executor, local_or

EXCESS_HET_PHRED = 54.69
"""GATK/GVS ExcessHet cutoff: phred of p = 3.4e-6 (z = -4.5)."""
Progress = Callable[[str, float], None]


@dataclass(frozen=True)
class VariantQcConfig:
    """Thresholds of variant QC.

    Attributes
    ----------
    min_call_rate
        Least call rate over all samples.
    min_hwe_p
        HWE exact p-value below which a variant fails in any group (with at least
        ``hwe_min_samples`` called diploid samples).
    hwe_min_samples
        Least called diploid samples in a group for its HWE test to count.
    max_excess_het_phred
        ExcessHet phred above which a variant is flagged.
    min_ac
        Least alternate allele count after genotype filters.
    """

    min_call_rate: float = 0.95
    min_hwe_p: float = 1e-10
    hwe_min_samples: int = 20
    max_excess_het_phred: float = EXCESS_HET_PHRED
    min_ac: int = 1


def _parse_config(config: VariantQcConfig | None) -> VariantQcConfig:
    config = config or VariantQcConfig()
    if not 0 <= config.min_call_rate <= 1:
        raise ConfigError(f"variant_qc: min_call_rate={config.min_call_rate} not in [0, 1]")
    if not 0 <= config.min_hwe_p <= 1:
        raise ConfigError(f"variant_qc: min_hwe_p={config.min_hwe_p} not in [0, 1]")
    return config


def genotype_counts(
    genotypes: np.ndarray, onehot: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hom-ref, het and hom-alt counts per variant and group.

    Parameters
    ----------
    genotypes
        (variants, samples) int8 dosages, -9 missing.
    onehot
        (samples, groups) float32 membership; a zero row leaves a sample out.

    Returns
    -------
    tuple of numpy.ndarray
        Three (variants, groups) int64 arrays.
    """
    return tuple(
        np.rint((genotypes == g).astype(np.float32) @ onehot).astype(np.int64) for g in (0, 1, 2)
    )  # type: ignore[return-value]


def variant_qc(
    root: Path,
    *,
    groups: pd.Series | None = None,
    config: VariantQcConfig | None = None,
    progress: Progress | None = None,
    executor: Executor | None = None,
) -> pd.DataFrame:
    """Add QC statistics and flags to the store's variant table.

    Parameters
    ----------
    root
        The store directory.
    groups
        Group label (e.g. predicted ancestry) per sample_id; samples without one are left
        out of group tests. Default: one group ``all``.
    config
        Thresholds (default :class:`VariantQcConfig`).
    progress
        Called with a label and the fraction of contigs done.
    executor
        Where the per-block genotype counts run (default in this process; see
        :mod:`opencohort.genomics.executor`); results do not depend on it.

    Returns
    -------
    pandas.DataFrame
        The variant table with, added: variant_hwe_p_value (all diploid samples),
        ``variant_hwe_p_value_<group>`` per group, variant_excess_het_phred,
        variant_low_call_rate_flag, variant_hwe_flag, variant_excess_het_flag,
        variant_low_ac_flag and variant_qc_pass.

    Raises
    ------
    ConfigError
        If a threshold is out of range.

    Notes
    -----
    1. Genotype counts per group come from one matrix product per pgen block (one
       executor task per block).
    2. HWE uses diploid calls only: on non-PAR chrX, samples haploid there are left out
       (PLINK 2 reports chrX separately, with its own method; ours is the female-only
       exact test).
    3. ExcessHet = -10 log10 P(het >= observed | HWE), over all diploid samples, from the
       same exact distribution (GATK computes it the same way).
    """
    config = _parse_config(config)
    executor = local_or(executor)
    samples = _store.read_samples(root).reset_index(drop=True)
    variants = _store.read_variants(root)
    ids = samples[c.SAMPLE_ID]
    labels = ids.map(groups) if groups is not None else pd.Series(None, index=ids.index)
    names = sorted(labels.dropna().unique())
    member = np.zeros((len(ids), len(names) + 1), dtype=np.float32)
    member[:, 0] = 1
    for k, name in enumerate(names):
        member[:, k + 1] = (labels == name).to_numpy()
    parts = []
    contigs = _store.store_contigs(root)
    for done, contig in enumerate(contigs):
        sub = variants[variants[c.CHROM] == contig].reset_index(drop=True)
        onehot = member.copy()
        haploid = samples[c.HAPLOID_CONTIGS].map(lambda v, k=contig: k in v.split(","))
        if haploid.any():
            onehot[haploid.to_numpy()] = 0
        counts = [np.zeros((len(sub), member.shape[1]), np.int64) for _ in range(3)]
        pgen = root / f"{contig}.pgen"
        starts = range(0, len(sub), _store.READ_BLOCK)
        tasks = [(pgen, a, min(len(sub), a + _store.READ_BLOCK), onehot) for a in starts]
        for (_, a, b, _), block in zip(tasks, executor.map(_block_counts, tasks), strict=True):
            for total, part in zip(counts, block, strict=True):
                total[a:b] = part
        if contig in ("chrX", "X") and haploid.any():
            par = ~chrx_nonpar(sub[c.POS].to_numpy())
            if par.any():  # pseudo-autosomal: everyone is diploid
                for total, part in zip(counts, _par_counts(root, contig, par, member), strict=True):
                    total[par] = part
        parts.append(_group_tests(sub, counts, names, config))
        if progress:
            progress("variant QC", (done + 1) / len(contigs))
    out = pd.concat(parts, ignore_index=True) if parts else variants.copy()
    out["variant_low_call_rate_flag"] = ~(out[c.VARIANT_CALL_RATE] >= config.min_call_rate)
    out["variant_excess_het_flag"] = out["variant_excess_het_phred"] > config.max_excess_het_phred
    out["variant_low_ac_flag"] = out[c.VARIANT_AC] < config.min_ac
    flags = [
        "variant_low_call_rate_flag",
        "variant_hwe_flag",
        "variant_excess_het_flag",
        "variant_low_ac_flag",
    ]
    out["variant_qc_pass"] = ~out[flags].any(axis=1)
    return out


def _block_counts(task: tuple[Path, int, int, np.ndarray]) -> tuple[np.ndarray, ...]:
    """:func:`genotype_counts` of one block: (pgen, start, stop, membership)."""
    pgen, start, stop, onehot = task
    return genotype_counts(_store.read_genotypes(pgen, start, stop), onehot)


def _par_counts(
    root: Path, contig: str, par: np.ndarray, member: np.ndarray
) -> tuple[np.ndarray, ...]:
    rows = np.flatnonzero(par)
    g = _store.read_genotypes(root / f"{contig}.pgen")[rows]
    return genotype_counts(g, member)


def _group_tests(
    sub: pd.DataFrame, counts: list[np.ndarray], names: list[str], config: VariantQcConfig
) -> pd.DataFrame:
    hom_ref, het, hom_alt = counts
    out = sub.copy()
    p_all, p_excess = hwe_exact(het[:, 0], hom_ref[:, 0], hom_alt[:, 0])
    out["variant_hwe_p_value"] = p_all
    with np.errstate(divide="ignore"):
        out["variant_excess_het_phred"] = -10 * np.log10(p_excess)
    fail = np.zeros(len(sub), dtype=bool)
    for k, name in enumerate(names, start=1):
        p, _ = hwe_exact(het[:, k], hom_ref[:, k], hom_alt[:, k])
        out[f"variant_hwe_p_value_{name}"] = p
        enough = (het[:, k] + hom_ref[:, k] + hom_alt[:, k]) >= config.hwe_min_samples
        fail |= enough & (p < config.min_hwe_p)
    if not names:
        enough = (het[:, 0] + hom_ref[:, 0] + hom_alt[:, 0]) >= config.hwe_min_samples
        fail |= enough & (p_all < config.min_hwe_p)
    out["variant_hwe_flag"] = fail
    return out
