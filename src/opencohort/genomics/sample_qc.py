"""Sample QC over the cohort store: metrics, sex check, contamination, duplicates, swaps, outliers.

Every metric and flag is a column of one table keyed by sample_id; a sample passes when it
has no flag.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from opencohort.errors import ConfigError
from opencohort.genomics import _columns as c
from opencohort.genomics import _store
from opencohort.genomics._qc_kernels import chrx_nonpar, pairwise_concordance, robust_z
from opencohort.genomics.executor import Executor, local_or

TRANSITIONS = frozenset({("A", "G"), ("G", "A"), ("C", "T"), ("T", "C")})
OUTLIER_METRICS = {
    "sample_n_snp": "both",
    "sample_het_rate": "both",
    "sample_het_hom_alt_ratio": "upper",
    "sample_ti_tv": "both",
    "sample_n_singleton": "upper",
}
"""Metrics tested for outliers and the side(s) that count (after the reference program's QC,
where het/hom-alt ratio and singletons have an upper bound only)."""
QC_FLAGS = (
    "sample_low_call_rate_flag",
    "sample_sex_mismatch_flag",
    "sample_contamination_flag",
    "sample_duplicate_flag",
    "sample_swap_flag",
    "sample_outlier_flag",
)
Progress = Callable[[str, float], None]


@dataclass(frozen=True)
class SampleQcConfig:
    """Thresholds of sample QC.

    Attributes
    ----------
    min_call_rate
        Least autosomal call rate.
    male_f, female_f
        chrX inbreeding coefficient F above which a sample is called male, below which
        female (PLINK's ``--check-sex`` defaults); between them the sex is undetermined.
    x_min_af
        Least minor allele frequency of chrX variants used for F.
    contamination_mads
        Robust z of the stray-read fraction or the het allele-balance dispersion above
        which a sample is flagged as contaminated.
    duplicate_concordance
        Genotype concordance at which two samples are the same person.
    concordance_min_af, concordance_max_variants
        Variants used for concordance: alt frequency in [min_af, 1 - min_af], at most
        this many, evenly spaced.
    outlier_mads
        Distance from the group median, in scaled MADs, beyond which a metric is an outlier.
    """

    min_call_rate: float = 0.95
    male_f: float = 0.8
    female_f: float = 0.2
    x_min_af: float = 0.05
    contamination_mads: float = 8.0
    duplicate_concordance: float = 0.9
    concordance_min_af: float = 0.05
    concordance_max_variants: int = 20_000
    outlier_mads: float = 8.0


def _parse_config(config: SampleQcConfig | None) -> SampleQcConfig:
    config = config or SampleQcConfig()
    if not 0 <= config.min_call_rate <= 1:
        raise ConfigError(f"sample_qc: min_call_rate={config.min_call_rate} not in [0, 1]")
    if not config.female_f < config.male_f:
        raise ConfigError(
            f"sample_qc: female_f={config.female_f} must be below male_f={config.male_f}"
        )
    if config.outlier_mads <= 0 or config.contamination_mads <= 0:
        raise ConfigError("sample_qc: outlier_mads and contamination_mads must be positive")
    return config


def _is_x(contig: str) -> bool:
    return contig in ("chrX", "X")


def _is_autosome(contig: str) -> bool:
    return contig.removeprefix("chr").isdigit()


_SUMS = (
    "called", "total", "het", "hom_alt", "snp", "singleton", "ti", "tv",
    "x_called", "x_het", "x_expected_het",
)  # fmt: skip
"""Per-sample sums over variant blocks."""


def _autosome_block(
    task: tuple[Path, int, int, np.ndarray, np.ndarray, np.ndarray],
) -> dict[str, np.ndarray]:
    """Per-sample sums of one autosomal block: (pgen, start, stop, ref, alt, variant AC)."""
    pgen, start, stop, ref, alt, ac = task
    g = _store.read_genotypes(pgen, start, stop)
    called = g >= 0
    snp = (np.char.str_len(ref.astype(str)) == 1) & (np.char.str_len(alt.astype(str)) == 1)
    ti = snp & np.array([(r, a) in TRANSITIONS for r, a in zip(ref, alt, strict=True)], bool)
    carried = np.where(called, g, 0).astype(np.float32)
    return {
        "called": called.sum(axis=0),
        "total": np.full(g.shape[1], len(g)),
        "het": (g == 1).sum(axis=0),
        "hom_alt": (g == 2).sum(axis=0),
        "snp": (carried[snp] > 0).sum(axis=0),
        "singleton": (carried[ac == 1] > 0).sum(axis=0),
        "ti": ti.astype(np.float32) @ carried,
        "tv": (snp & ~ti).astype(np.float32) @ carried,
    }


def _x_block(task: tuple[Path, int, int, np.ndarray, float]) -> dict[str, np.ndarray]:
    """Per-sample chrX sums of one block: (pgen, start, stop, non-PAR mask, least MAF)."""
    pgen, start, stop, keep, min_af = task
    g = _store.read_genotypes(pgen, start, stop)[keep]
    called = g >= 0
    n_called = called.sum(axis=1)
    p = np.where(called, g, 0).sum(axis=1) / np.maximum(2 * n_called, 1)
    informative = (n_called > 0) & (np.minimum(p, 1 - p) >= max(min_af, 1e-12))
    g, called, p = g[informative], called[informative], p[informative]
    return {
        "x_called": called.sum(axis=0),
        "x_het": (g == 1).sum(axis=0),
        "x_expected_het": (2 * p * (1 - p)).astype(np.float64) @ called,
    }


def _block_sums(
    root: Path, variants: pd.DataFrame, contigs: list[str], n: int, config: SampleQcConfig,
    executor: Executor, progress: Progress | None,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Per-sample sums over every autosomal and chrX block, reduced in block order."""
    auto, x = [], []
    for contig in contigs:
        sub = variants[variants[c.CHROM] == contig].reset_index(drop=True)
        pgen = root / f"{contig}.pgen"
        ref, alt = sub[c.REF].to_numpy(), sub[c.ALT].to_numpy()
        blocks = [(a, min(len(sub), a + _store.READ_BLOCK))
                  for a in range(0, len(sub), _store.READ_BLOCK)]  # fmt: skip
        if _is_autosome(contig):
            ac = sub[c.VARIANT_AC].to_numpy()
            auto += [(pgen, a, b, ref[a:b], alt[a:b], ac[a:b]) for a, b in blocks]
        elif _is_x(contig):
            keep = chrx_nonpar(sub[c.POS].to_numpy())
            x += [(pgen, a, b, keep[a:b], config.x_min_af) for a, b in blocks]
    sums = {k: np.zeros(n) for k in _SUMS}
    total = max(len(auto) + len(x), 1)
    done = 0
    for fn, tasks in ((_autosome_block, auto), (_x_block, x)):
        for part in executor.map(fn, tasks):
            for key, value in part.items():
                sums[key] += value
            done += 1
            if progress:
                progress("sample QC", done / (total + 1))
    return sums


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _concordance_genotypes(root: Path, contigs: list[str], config: SampleQcConfig) -> np.ndarray:
    """Genotypes of common autosomal variants, evenly thinned, for pairwise concordance.

    Only the chosen rows are read, so memory is O(``concordance_max_variants`` x samples).
    """
    variants = _store.read_variants(root)
    found = []
    for contig in contigs:
        af = variants.loc[variants[c.CHROM] == contig, c.VARIANT_AF].to_numpy(dtype=float)
        lo = config.concordance_min_af
        common = np.flatnonzero((af >= lo) & (af <= 1 - lo))
        found += [(contig, int(k)) for k in common]
    if len(found) > config.concordance_max_variants:
        pick = np.linspace(0, len(found) - 1, config.concordance_max_variants).astype(int)
        found = [found[k] for k in pick]
    if not found:
        return np.zeros((0, 0), np.int8)
    blocks = []
    for contig in dict.fromkeys(k for k, _ in found):
        rows = np.array([i for k, i in found if k == contig], dtype=np.uint32)
        blocks.append(_store.read_rows(root / f"{contig}.pgen", rows))
    return np.concatenate(blocks)


def sample_qc(
    root: Path,
    *,
    config: SampleQcConfig | None = None,
    groups: pd.Series | None = None,
    progress: Progress | None = None,
    executor: Executor | None = None,
) -> pd.DataFrame:
    """Compute sample QC metrics and flags over a cohort store.

    Parameters
    ----------
    root
        The store directory (``genomics/store`` of a home).
    config
        Thresholds (default :class:`SampleQcConfig`).
    groups
        Optional group label per sample_id (e.g. predicted ancestry) for outlier
        strata; default one group of all samples.
    progress
        Called with a label and the fraction of blocks done.
    executor
        Where the block sums run (default in this process; see
        :mod:`opencohort.genomics.executor`); results do not depend on it.

    Returns
    -------
    pandas.DataFrame
        One row per sample_id with participant_id, sex_at_birth, batch and:
        sample_call_rate (autosomes), sample_n_het, sample_n_hom_alt, sample_n_snp,
        sample_het_rate (hets / called), sample_het_hom_alt_ratio, sample_ti_tv
        (alt alleles at transitions / transversions), sample_chrx_het_rate,
        sample_chrx_f (1 - observed / expected chrX hets), sample_genetic_sex,
        sample_het_ab_dispersion (mean ``(AD_b - n/2)^2 / (n/4)`` of raw hets, ~1 when clean),
        sample_stray_read_fraction (reads of other alleles in raw homozygous calls),
        sample_duplicate_of, sample_concordant_with, sample_qc_group, ``<metric>_z``
        robust z of each outlier metric, the flags in ``QC_FLAGS`` and sample_qc_pass.

    Raises
    ------
    ConfigError
        If a threshold is out of range.

    Notes
    -----
    1. Autosomal metrics and chrX heterozygosity are summed over pgen blocks (one task
       per block on the executor, reduced in block order).
    2. Sex: F on non-PAR chrX over variants with MAF >= ``x_min_af`` (as
       ``plink --check-sex``). When the caller models ploidy (some samples have haploid
       chrX calls), haploid samples are male, diploid ones female when F <= ``male_f``
       and undetermined above it; otherwise male above ``male_f``, female below
       ``female_f``. A mismatch with a male/female sex at birth is flagged. F alone is
       noisy on short chrX regions and biased upward in minority ancestries (pooled
       frequencies), hence ploidy first.
    3. Contamination: the stray-read fraction and het allele-balance dispersion from
       ingest; robust z above ``contamination_mads`` in either is flagged.
    4. Concordance of all sample pairs on common variants (tiled matrix products). A
       concordant pair of the same participant is a duplicate (the sample with the lower
       call rate is flagged); of two participants, both samples are flagged as swaps
       (a mix-up); two samples of one participant that are not concordant are both
       flagged as swaps too. Sex mismatches also set the swap flag.
    5. Outliers: each metric in ``OUTLIER_METRICS`` beyond ``outlier_mads`` scaled MADs
       of its group median, on the side(s) listed.
    """
    config = _parse_config(config)
    samples = _store.read_samples(root).reset_index(drop=True)
    n = len(samples)
    variants = _store.read_variants(root)
    contigs = _store.store_contigs(root)
    sums = _block_sums(root, variants, contigs, n, config, local_or(executor), progress)
    out = samples[[c.SAMPLE_ID, c.PARTICIPANT_ID, c.SEX_AT_BIRTH, c.BATCH]].copy()
    out["sample_call_rate"] = _ratio(sums["called"], sums["total"])
    out["sample_n_het"] = sums["het"]
    out["sample_n_hom_alt"] = sums["hom_alt"]
    out["sample_n_snp"] = sums["snp"]
    out["sample_n_singleton"] = sums["singleton"]
    out["sample_het_rate"] = _ratio(sums["het"], sums["called"])
    out["sample_het_hom_alt_ratio"] = _ratio(sums["het"], sums["hom_alt"])
    out["sample_ti_tv"] = _ratio(sums["ti"], sums["tv"])
    out["sample_chrx_het_rate"] = _ratio(sums["x_het"], sums["x_called"])
    out["sample_chrx_f"] = 1 - _ratio(sums["x_het"], sums["x_expected_het"])
    f = out["sample_chrx_f"].to_numpy()
    haploid_x = samples[c.HAPLOID_CONTIGS].map(lambda v: bool({"chrX", "X"} & set(v.split(","))))
    out["sample_genetic_sex"] = _genetic_sex(haploid_x.to_numpy(), f, config)
    out["sample_het_ab_dispersion"] = _ratio(
        samples["sample_raw_ab_dispersion_sum"].to_numpy(),
        samples["sample_raw_n_het"].to_numpy(),
    )
    out["sample_stray_read_fraction"] = _ratio(
        samples["sample_raw_stray_reads"].to_numpy(), samples["sample_raw_hom_depth"].to_numpy()
    )
    everyone = np.zeros(n, dtype=int)
    contamination = np.fmax(
        robust_z(out["sample_stray_read_fraction"].to_numpy(), everyone),
        robust_z(out["sample_het_ab_dispersion"].to_numpy(), everyone),
    )
    out["sample_contamination_z"] = contamination
    out["sample_low_call_rate_flag"] = ~(out["sample_call_rate"] >= config.min_call_rate)
    declared = out[c.SEX_AT_BIRTH].isin(["male", "female"])
    determined = out["sample_genetic_sex"] != "undetermined"
    out["sample_sex_mismatch_flag"] = (
        declared & determined & (out[c.SEX_AT_BIRTH] != out["sample_genetic_sex"])
    )
    out["sample_contamination_flag"] = contamination > config.contamination_mads
    autosomes = [k for k in contigs if _is_autosome(k)]
    _flag_pairs(out, _concordance_genotypes(root, autosomes, config), config)
    _flag_outliers(out, groups, config)
    out["sample_qc_pass"] = ~out[list(QC_FLAGS)].any(axis=1)
    if progress:
        progress("sample QC", 1.0)
    return out


def _genetic_sex(haploid: np.ndarray, f: np.ndarray, config: SampleQcConfig) -> np.ndarray:
    """Genetic sex from chrX ploidy calls when the caller makes them, else from F."""
    finite = np.isfinite(f)
    if haploid.any():
        female = ~haploid & finite & (f <= config.male_f)
        return np.select([haploid, female], ["male", "female"], default="undetermined")
    return np.select(
        [finite & (f > config.male_f), finite & (f < config.female_f)],
        ["male", "female"],
        default="undetermined",
    )


def _flag_pairs(out: pd.DataFrame, genotypes: np.ndarray, config: SampleQcConfig) -> None:
    """Set duplicate and swap flags from pairwise genotype concordance."""
    n = len(out)
    out["sample_duplicate_of"] = pd.Series([None] * n, dtype=object)
    out["sample_concordant_with"] = pd.Series([None] * n, dtype=object)
    out["sample_duplicate_flag"] = False
    out["sample_swap_flag"] = out["sample_sex_mismatch_flag"].to_numpy().copy()
    if genotypes.size == 0:
        return
    i, j, _, _ = pairwise_concordance(genotypes, min_concordance=config.duplicate_concordance)
    ids = out[c.SAMPLE_ID].to_numpy()
    pid = out[c.PARTICIPANT_ID].to_numpy()
    rate = out["sample_call_rate"].fillna(0).to_numpy()
    same = pid[i] == pid[j]
    # duplicates: flag the sample with the lower call rate (the later one on ties)
    worse = np.where(rate[i] < rate[j], i, j)[same]
    better = np.where(rate[i] < rate[j], j, i)[same]
    out.loc[worse, "sample_duplicate_of"] = ids[better]
    out.loc[worse, "sample_duplicate_flag"] = True
    for a, b in zip(i[~same], j[~same], strict=True):
        out.loc[[a, b], "sample_swap_flag"] = True
        out.loc[a, "sample_concordant_with"] = ids[b]
        out.loc[b, "sample_concordant_with"] = ids[a]
    found = set(zip(i[same].tolist(), j[same].tolist(), strict=True))
    by_person = pd.Series(np.arange(n)).groupby(pid).agg(list)
    for members in by_person[by_person.map(len) > 1]:
        pairs = [(a, b) for k, a in enumerate(members) for b in members[k + 1 :]]
        if not any(p in found for p in pairs):
            out.loc[members, "sample_swap_flag"] = True


def _flag_outliers(out: pd.DataFrame, groups: pd.Series | None, config: SampleQcConfig) -> None:
    """Robust z of each outlier metric within groups, and the outlier flag."""
    if groups is None:
        labels = np.array(["all"] * len(out), dtype=object)
    else:
        labels = out[c.SAMPLE_ID].map(groups).fillna("oth").to_numpy(dtype=object)
    out["sample_qc_group"] = labels
    flag = np.zeros(len(out), dtype=bool)
    for metric, side in OUTLIER_METRICS.items():
        z = robust_z(out[metric].to_numpy(dtype=float), labels)
        out[f"{metric}_z"] = z
        beyond = {"lower": -z, "upper": z, "both": np.abs(z)}[side] > config.outlier_mads
        flag |= np.nan_to_num(beyond, nan=False).astype(bool)
    out["sample_outlier_flag"] = flag
