"""Genetic ancestry: PCA on a labelled reference panel, projection and a random forest.

Follows the reference program's ancestry workflow: high-quality sites, HWE-normalised PCA
with 16 PCs on the panel, projection of the cohort, a random forest on the PCs, and the
label ``oth`` when the top class probability is at most 0.75.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pgenlib
from cyvcf2 import VCF

from opencohort.config import Home
from opencohort.errors import ConfigError, InputError, NotFound
from opencohort.genomics import _columns as c
from opencohort.genomics import _store
from opencohort.genomics._ancestry_kernels import (
    hwe_normalize,
    ld_prune,
    pca_fit,
    shrinkage_factors,
)
from opencohort.genomics.executor import Executor

if TYPE_CHECKING:  # scikit-learn takes seconds to import: only ancestry fitting needs it
    from sklearn.ensemble import RandomForestClassifier

ANCESTRY_GROUPS = ("afr", "amr", "eas", "eur", "mid", "sas")
"""Continental groups of the reference program's labels."""
OTHER = "oth"
SAMPLE_ANCESTRY = "sample_ancestry"
"""Predicted group, ``oth`` when the top probability is at most the cut-off."""
SAMPLE_ANCESTRY_TOP = "sample_ancestry_top"
"""The random forest's most probable group, before the cut-off."""
PROB_PREFIX = "sample_ancestry_prob_"
PC_PREFIX = "sample_pc"
PANEL_GROUP = "panel_group"
Progress = Callable[[str, float], None]


@dataclass(frozen=True)
class AncestryConfig:
    """Options of ancestry inference (defaults: the reference program's).

    Attributes
    ----------
    min_call_rate
        Least panel call rate of a site.
    min_af
        A site's panel minor allele frequency must exceed this.
    ld_r2, ld_window
        LD pruning threshold and window (bases).
    n_pcs
        Principal components fitted and used as features.
    other_cutoff
        Top probability at or below which a sample is labelled ``oth``.
    seed
        Random state of the random forest.
    n_estimators
        Trees of the random forest.
    shrinkage_folds
        Folds of the held-out estimate of projection shrinkage
        (:func:`~opencohort.genomics._ancestry_kernels.shrinkage_factors`); projected scores
        are divided by it. 0 leaves projected scores as they are.
    min_shrinkage
        PCs whose estimated factor is below this are not corrected: their projected
        scores are mostly noise, which dividing would inflate.
    """

    min_call_rate: float = 0.99
    min_af: float = 0.001
    ld_r2: float = 0.1
    ld_window: int = 500_000
    n_pcs: int = 16
    other_cutoff: float = 0.75
    seed: int = 337337
    n_estimators: int = 100
    shrinkage_folds: int = 5
    min_shrinkage: float = 0.5


def _parse_config(config: AncestryConfig | None) -> AncestryConfig:
    config = config or AncestryConfig()
    checks = {
        "min_call_rate": 0 <= config.min_call_rate <= 1,
        "min_af": 0 <= config.min_af < 0.5,
        "ld_r2": 0 < config.ld_r2 <= 1,
        "ld_window": config.ld_window > 0,
        "n_pcs": config.n_pcs >= 1,
        "other_cutoff": 0 <= config.other_cutoff < 1,
        "n_estimators": config.n_estimators >= 1,
        "shrinkage_folds": config.shrinkage_folds == 0 or config.shrinkage_folds >= 2,
        "min_shrinkage": 0 < config.min_shrinkage <= 1,
    }
    for name, ok in checks.items():
        if not ok:
            raise ConfigError(f"ancestry: {name}={getattr(config, name)!r} is out of range")
    return config


@dataclass(frozen=True)
class ReferencePanel:
    """High-quality, LD-pruned genotypes of a labelled reference panel.

    ``variants`` has variant_id, chrom, pos, ref, alt and panel_af; ``genotypes`` is
    (variants, samples) int8 (-9 missing); ``labels`` is the group per panel sample.
    """

    variants: pd.DataFrame
    genotypes: np.ndarray
    sample_ids: list[str]
    labels: np.ndarray


@dataclass(frozen=True)
class AncestryModel:
    """A fitted ancestry model: sites with loadings, eigenvalues and the classifier.

    ``shrinkage`` (one factor per PC, 1 when not corrected) divides projected scores.
    """

    sites: pd.DataFrame
    loadings: np.ndarray
    eigenvalues: np.ndarray
    classifier: RandomForestClassifier
    panel: pd.DataFrame
    shrinkage: np.ndarray


@dataclass(frozen=True)
class AncestryResult:
    """Cohort ancestry table, the panel's PCs and labels, and the model."""

    samples: pd.DataFrame
    panel: pd.DataFrame
    model: AncestryModel


def read_labels(directory: Path) -> pd.DataFrame:
    """``labels.csv`` of a panel directory (sample_id, group), lower-case, ``oth`` dropped.

    Raises
    ------
    NotFound
        If the directory has no labels.csv.
    InputError
        If it lacks the sample_id or group column.
    """
    path = directory / "labels.csv"
    if not path.exists():
        raise NotFound(f"reference panel {directory}: no labels.csv (sample_id, group)")
    labels = pd.read_csv(path, dtype=str)
    for column in (c.SAMPLE_ID, "group"):
        if column not in labels.columns:
            raise InputError(f"{path}, line 1, field {column}: column missing")
    labels["group"] = labels["group"].str.strip().str.lower()
    return labels[labels["group"] != OTHER].reset_index(drop=True)


def _variant_ids(chrom: str, pos: np.ndarray, ref: np.ndarray, alt: np.ndarray) -> np.ndarray:
    return np.array([f"{chrom}:{p}:{r}:{a}" for p, r, a in zip(pos, ref, alt, strict=True)])


def read_panel(
    directory: Path,
    *,
    wanted: set[str] | None = None,
    config: AncestryConfig | None = None,
    progress: Progress | None = None,
) -> ReferencePanel:
    """Read a panel's autosomal VCFs and keep high-quality, LD-pruned sites.

    Parameters
    ----------
    directory
        Holds ``chr*.vcf.gz`` (one contig per file) and ``labels.csv``.
    wanted
        Variant ids (``chrom:pos:ref:alt``) that may be used, e.g. the cohort's; default all.
    config
        Site thresholds (default :class:`AncestryConfig`).
    progress
        Called with a label and the fraction of files done.

    Returns
    -------
    ReferencePanel
        The kept sites and genotypes of the labelled samples.

    Notes
    -----
    Per autosome: 1. SNPs of records with one alternate allele; 2. call rate >=
    ``min_call_rate`` and minor allele frequency > ``min_af``; 3. sites in ``wanted``;
    4. greedy LD pruning. Files are read in parallel processes. Differs from the
    reference program, which prunes first and intersects with its callset afterwards: we
    intersect first so that pruning picks among sites the cohort has.
    """
    config = _parse_config(config)
    labels = read_labels(directory)
    files = sorted(
        (p for p in directory.glob("*.vcf.gz") if _is_autosome(p.name.removesuffix(".vcf.gz"))),
        key=lambda p: _store.contig_key(p.name.removesuffix(".vcf.gz")),
    )
    if not files:
        raise NotFound(f"reference panel {directory}: no autosomal *.vcf.gz files")
    ids = labels[c.SAMPLE_ID].tolist()
    frames, blocks = [], []
    workers = max(1, min(len(files), os.cpu_count() or 1))
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        read = pool.map(_read_snps, files, [ids] * len(files))
    for done, (chrom, pos, ref, alt, g) in enumerate(read):
        frame, block = select_sites(chrom, pos, ref, alt, g, wanted=wanted, config=config)
        frames.append(frame)
        blocks.append(block)
        if progress:
            progress("reference panel", (done + 1) / len(files))
    return ReferencePanel(
        variants=pd.concat(frames, ignore_index=True),
        genotypes=np.concatenate(blocks),
        sample_ids=ids,
        labels=labels["group"].to_numpy(),
    )


def select_sites(
    chrom: str, pos: np.ndarray, ref: np.ndarray, alt: np.ndarray, genotypes: np.ndarray, *,
    wanted: set[str] | None = None, config: AncestryConfig | None = None,
) -> tuple[pd.DataFrame, np.ndarray]:  # fmt: skip
    """High-quality, LD-pruned sites of one chromosome's panel SNPs, and their genotypes.

    Parameters
    ----------
    chrom, pos, ref, alt
        The contig and the SNPs' positions (sorted) and alleles.
    genotypes
        (SNPs, panel samples) int8 dosages, -9 missing.
    wanted
        Variant ids (``chrom:pos:ref:alt``) that may be used; default all.
    config
        Site thresholds (default :class:`AncestryConfig`).

    Returns
    -------
    tuple
        The kept sites (variant_id, chrom, pos, ref, alt, panel_af) and their genotypes.

    Notes
    -----
    1. Call rate >= ``min_call_rate`` and minor allele frequency > ``min_af``;
    2. sites in ``wanted``; 3. greedy LD pruning (:func:`ld_prune`).
    """
    config = _parse_config(config)
    ids = _variant_ids(chrom, pos, ref, alt)
    n_called = (genotypes >= 0).sum(axis=1)
    af = np.where(genotypes >= 0, genotypes, 0).sum(axis=1) / np.maximum(2 * n_called, 1)
    keep = (n_called >= config.min_call_rate * genotypes.shape[1]) & (
        np.minimum(af, 1 - af) > config.min_af
    )
    if wanted is not None:
        keep &= np.isin(ids, list(wanted))
    rows = np.flatnonzero(keep)
    pruned = rows[ld_prune(genotypes[rows], pos[rows], r2=config.ld_r2, window=config.ld_window)]
    frame = pd.DataFrame(
        {
            c.VARIANT_ID: ids[pruned],
            c.CHROM: chrom,
            c.POS: pos[pruned],
            c.REF: ref[pruned],
            c.ALT: alt[pruned],
            "panel_af": af[pruned],
        }
    )
    return frame, genotypes[pruned]


def _read_snps(
    path: Path, samples: list[str]
) -> tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Contig, positions, alleles and int8 dosages (-9 missing) of a VCF's biallelic SNPs.

    Records with more than one alternate allele, or alleles longer than one base, are
    skipped; genotypes are taken as called (a curated panel carries no FORMAT to filter on).

    Raises
    ------
    InputError
        If a sample of ``samples`` is not in the VCF or the file holds several contigs.
    """
    vcf = VCF(str(path), gts012=True, lazy=True, threads=1)
    missing = sorted(set(samples) - set(vcf.samples))
    if missing:
        raise InputError(f"{path}, line 1, field samples: panel samples {missing[:5]} missing")
    vcf.set_samples(samples)
    column = {s: k for k, s in enumerate(vcf.samples)}
    order = np.array([column[s] for s in samples], dtype=np.int64)
    chroms, pos, ref, alt, rows = set(), [], [], [], []
    for record in vcf:
        if len(record.ALT) != 1 or len(record.REF) != 1 or len(record.ALT[0]) != 1:
            continue
        chroms.add(record.CHROM)
        pos.append(record.POS)
        ref.append(record.REF)
        alt.append(record.ALT[0])
        rows.append(record.gt_types.astype(np.int8))
    vcf.close()
    if len(chroms) > 1:
        raise InputError(f"{path}, field CHROM: several contigs {sorted(chroms)}; expected one")
    g = np.array(rows, dtype=np.int8).reshape(len(rows), len(samples))
    g[g == 3] = -9
    positions = np.array(pos, dtype=np.int64)
    if np.any(np.diff(positions) < 0):
        raise InputError(f"{path}, field POS: records not sorted by position")
    chrom = chroms.pop() if chroms else path.name.removesuffix(".vcf.gz")
    return chrom, positions, np.array(ref, dtype=str), np.array(alt, dtype=str), g[:, order]


def _is_autosome(contig: str) -> bool:
    return contig.removeprefix("chr").isdigit()


def fit_ancestry(panel: ReferencePanel, *, config: AncestryConfig | None = None) -> AncestryModel:
    """Fit the HWE-normalised PCA and the random forest on a reference panel.

    Raises
    ------
    ConfigError
        If the panel has fewer sites or samples than ``n_pcs + 1``.

    Notes
    -----
    1. Genotypes are normalised as ``(g - 2p) / sqrt(2p(1-p) M)`` with the panel's
       allele frequency p and M sites (Hail ``hwe_normalized_pca``).
    2. The top ``n_pcs`` components come from the samples x samples Gram matrix.
    3. ``RandomForestClassifier(random_state=seed)`` is trained on the panel's scores.
    4. Shrinkage factors of projected scores, from held-out panel folds
       (``shrinkage_folds``; see :func:`~opencohort.genomics._ancestry_kernels.shrinkage_factors`),
       kept for PCs at or above ``min_shrinkage`` (1 elsewhere). On the synthetic panel
       (360 samples, 3,255 sites, 600 cohort genomes) the share of >= 90%-one-group samples
       clearing the 0.75 cut-off went from 56% uncorrected to 80% correcting all 16 PCs and
       90% with the 0.5 floor (top-group accuracy 98% -> 100%); on 1000 Genomes (1,671
       training samples, 18,519 sites) correcting all PCs lowered it from 99.4% to 93.5%,
       as PCs 6-16 there are noise (factors ~0.2 = 1 / (1 + sqrt(M / n)), the pure-noise value).
    """
    config = _parse_config(config)
    m, n = panel.genotypes.shape
    if min(m, n) <= config.n_pcs:
        raise ConfigError(
            f"fit_ancestry: {m} sites and {n} panel samples; n_pcs={config.n_pcs} needs more "
            "of both (use a larger panel or lower n_pcs)"
        )
    af = panel.variants["panel_af"].to_numpy()
    x = hwe_normalize(panel.genotypes, af, m)
    eigenvalues, scores, loadings = pca_fit(x, config.n_pcs)
    shrinkage = np.ones(config.n_pcs)
    if config.shrinkage_folds:
        found = shrinkage_factors(x, config.n_pcs, folds=config.shrinkage_folds, seed=config.seed)
        shrinkage = np.where(found >= config.min_shrinkage, found, 1.0)
    from sklearn.ensemble import RandomForestClassifier

    forest = RandomForestClassifier(n_estimators=config.n_estimators, random_state=config.seed)
    forest.fit(scores, panel.labels)
    frame = pd.DataFrame(scores, columns=_pc_names(config.n_pcs))
    frame.insert(0, c.SAMPLE_ID, panel.sample_ids)
    frame.insert(1, PANEL_GROUP, panel.labels)
    return AncestryModel(panel.variants, loadings, eigenvalues, forest, frame, shrinkage)


def _pc_names(k: int) -> list[str]:
    return [f"{PC_PREFIX}{i + 1}" for i in range(k)]


def project_store(root: Path, model: AncestryModel, *, block: int = 4096) -> np.ndarray:
    """Scores (samples, k) of the store's samples on the model's loadings.

    Notes
    -----
    Each store genotype is normalised with the panel frequency and ``M`` (the model's site
    count), missing calls and sites absent from the store contribute 0 (Hail
    ``pc_project``); scores accumulate over blocks of the store's pgens, and are divided
    by the model's shrinkage factors at the end.
    """
    variants = _store.read_variants(root)
    n = len(_store.read_samples(root))
    m = len(model.sites)
    scores = np.zeros((n, model.loadings.shape[1]))
    site_row = pd.Series(np.arange(m), index=model.sites[c.VARIANT_ID].to_numpy())
    af = model.sites["panel_af"].to_numpy()
    for contig in _store.store_contigs(root):
        sub = variants[variants[c.CHROM] == contig].reset_index(drop=True)
        hit = sub[c.VARIANT_ID].isin(site_row.index).to_numpy()
        index = np.flatnonzero(hit).astype(np.uint32)
        rows = site_row[sub[c.VARIANT_ID].to_numpy()[hit]].to_numpy()
        if not len(index):
            continue
        with pgenlib.PgenReader(str(root / f"{contig}.pgen").encode()) as reader:
            for start in range(0, len(index), block):
                part = index[start : start + block]
                g = np.empty((len(part), n), dtype=np.int8)
                reader.read_list(part, g)
                r = rows[start : start + block]
                scores += hwe_normalize(g, af[r], m).T @ model.loadings[r]
    return scores / model.shrinkage


def project_genotypes(genotypes: np.ndarray, model: AncestryModel) -> np.ndarray:
    """Scores (samples, k) of in-memory genotypes at the model's sites, as :func:`project_store`.

    ``genotypes`` is (model sites, samples) int8, rows in the order of ``model.sites``.

    Raises
    ------
    InputError
        If the row count is not the model's site count.
    """
    m = len(model.sites)
    if genotypes.shape[0] != m:
        raise InputError(
            f"project_genotypes: genotypes have {genotypes.shape[0]} rows; the model has {m} sites"
        )
    x = hwe_normalize(genotypes, model.sites["panel_af"].to_numpy(), m)
    return (x.T @ model.loadings) / model.shrinkage


def classify(
    scores: np.ndarray, model: AncestryModel, *, other_cutoff: float = 0.75
) -> pd.DataFrame:
    """Random-forest group, probabilities and the ``oth`` cut-off for PC scores."""
    prob = model.classifier.predict_proba(scores)
    classes = model.classifier.classes_.astype(str)
    top = classes[prob.argmax(axis=1)]
    out = pd.DataFrame({SAMPLE_ANCESTRY: np.where(prob.max(axis=1) > other_cutoff, top, OTHER)})
    out[SAMPLE_ANCESTRY_TOP] = top
    for k, name in enumerate(classes):
        out[f"{PROB_PREFIX}{name}"] = prob[:, k]
    pcs = pd.DataFrame(scores, columns=_pc_names(scores.shape[1]))
    return pd.concat([out, pcs], axis=1)


def infer_ancestry(
    root: Path,
    panel_dir: Path,
    *,
    config: AncestryConfig | None = None,
    progress: Progress | None = None,
) -> AncestryResult:
    """Predict the genetic ancestry of every sample in a cohort store.

    Parameters
    ----------
    root
        The store directory (``genomics/store`` of a home).
    panel_dir
        Reference panel: ``chr*.vcf.gz`` and ``labels.csv`` (sample_id, group).
    config
        Options (default :class:`AncestryConfig`).
    progress
        Called with a label and the fraction done.

    Returns
    -------
    AncestryResult
        ``samples``: one row per store sample with sample_id, participant_id,
        sample_ancestry (group, or ``oth`` at top probability <= ``other_cutoff``),
        sample_ancestry_top (the most probable group), ``sample_ancestry_prob_<group>`` and
        ``sample_pc1`` .. ``sample_pc<n_pcs>``; ``panel``: the panel's scores with
        panel_group.

    Raises
    ------
    NotFound
        If the store or the panel is missing.
    ConfigError
        If an option is out of range or the panel is too small for ``n_pcs``.

    Notes
    -----
    1. Sites: :func:`read_panel` (panel sites that the store has).
    2. PCA: :func:`fit_ancestry`.
    3. Projection of the store's samples: :func:`project_store`.
    4. Labels: :func:`classify`.
    """
    config = _parse_config(config)
    samples = _store.read_samples(root)
    if samples.empty:
        raise NotFound(f"no genotype store in {root}; run 'opencohort genomics ingest DIR' first")
    wanted = set(_store.read_variants(root)[c.VARIANT_ID])
    panel = read_panel(panel_dir, wanted=wanted, config=config, progress=progress)
    model = fit_ancestry(panel, config=config)
    table = classify(project_store(root, model), model, other_cutoff=config.other_cutoff)
    table.insert(0, c.SAMPLE_ID, samples[c.SAMPLE_ID].to_numpy())
    table.insert(1, c.PARTICIPANT_ID, samples[c.PARTICIPANT_ID].to_numpy())
    if progress:
        progress("ancestry", 1.0)
    return AncestryResult(table, model.panel, model)


def plot_ancestry(result: AncestryResult, path: Path) -> Path:
    """Write a PC1/PC2 PNG: panel samples as open circles, cohort dots coloured by label."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = sorted(set(result.panel[PANEL_GROUP]) | set(result.samples[SAMPLE_ANCESTRY]))
    colours = dict(zip(groups, plt.get_cmap("tab10").colors, strict=False))
    fig, ax = plt.subplots(figsize=(7, 6))
    pc1, pc2 = f"{PC_PREFIX}1", f"{PC_PREFIX}2"
    for group in groups:
        cohort = result.samples[result.samples[SAMPLE_ANCESTRY] == group]
        ax.scatter(cohort[pc1], cohort[pc2], s=8, color=colours[group], label=group, alpha=0.7)
        ref = result.panel[result.panel[PANEL_GROUP] == group]
        ax.scatter(ref[pc1], ref[pc2], s=40, facecolors="none", edgecolors=colours[group])
    ax.set_xlabel("PC1")
    ax.set_ylabel("PC2")
    ax.set_title("Cohort (dots) projected on the reference panel (circles)")
    ax.legend(title="ancestry", markerscale=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


ANCESTRY_FILE = "genomics/ancestry.parquet"
FREQUENCIES_FILE = "genomics/frequencies.parquet"
PLOT_FILE = "genomics/plots/ancestry_pc1_pc2.png"


@dataclass(frozen=True)
class AncestryRun:
    """Files written by :func:`run_ancestry` and the ancestry result."""

    result: AncestryResult
    ancestry: Path
    frequencies: Path
    plot: Path


def run_ancestry(
    home: Home,
    panel_dir: Path,
    *,
    config: AncestryConfig | None = None,
    progress: Progress | None = None,
    executor: Executor | None = None,
) -> AncestryRun:
    """Infer ancestry of the home's store, then per-ancestry frequencies, and write them.

    Writes ``genomics/ancestry.parquet`` (see :func:`infer_ancestry`),
    ``genomics/frequencies.parquet`` (see
    :func:`opencohort.genomics.frequencies.allele_frequencies`, grouped by
    sample_ancestry) and ``genomics/plots/ancestry_pc1_pc2.png``. `executor` runs the
    frequency blocks (default in this process).

    Raises
    ------
    NotFound
        If the store or the panel is missing.
    ConfigError
        If an option is out of range.
    """
    from opencohort.genomics.frequencies import allele_frequencies

    root = _store.store_dir(home)
    result = infer_ancestry(root, panel_dir, config=config, progress=progress)
    ancestry = home.root / ANCESTRY_FILE
    ancestry.parent.mkdir(parents=True, exist_ok=True)
    result.samples.to_parquet(ancestry, index=False)
    groups = result.samples.set_index(c.SAMPLE_ID)[SAMPLE_ANCESTRY]
    frequencies = home.root / FREQUENCIES_FILE
    table = allele_frequencies(root, groups=groups, progress=progress, executor=executor)
    table.to_parquet(frequencies, index=False)
    plot = plot_ancestry(result, home.root / PLOT_FILE)
    return AncestryRun(result, ancestry, frequencies, plot)
