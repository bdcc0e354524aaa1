"""Synthetic genomes: genome-centre VCF batches, a labelled reference panel and their truth.

Genotypes come from msprime coalescent simulations under a six-population extension of the
stdpopsim human model ``OutOfAfrica_3G09`` (see ``_demography.build_demography``). Each
person is a mosaic of local-ancestry tracts drawn from their own simulated haplotypes, so
their genome matches their ``anc_*`` proportions and no two people are related by accident;
planted relatives, duplicates, swaps and contaminated samples give QC something to find.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from opencohort.errors import InputError
from opencohort.synth._mosaic import POPULATIONS
from opencohort.synth._samples import PANEL_NAME, plan_genomes
from opencohort.synth.models import SynthConfig

CANDIDATES_TOTAL = 60
CANDIDATES_SPECIFIC = 15
"""Candidate variants in total, and how many of them have strongly ancestry-specific frequencies."""
CANDIDATE_COLUMNS = ("variant_id", "chrom", "pos", "ref", "alt", *(f"af_{p}" for p in POPULATIONS))
PARALLEL_MIN_WORK = 5_000
"""Genome units x megabases x regions above which regions run in worker processes."""


@dataclass(frozen=True)
class GenomeResult:
    """What :func:`simulate_genomes` made.

    Attributes
    ----------
    sample_ids
        Participant ids, in the order of the input frame.
    candidates
        Candidate causal or null variants: variant_id (``chr1:12345:A:G``), chrom, pos, ref,
        alt and af_afr ... af_nat (alt allele frequency in each source population).
    dosage
        int8 (n_samples, n_candidates): each person's true alt-allele count at each
        candidate, before any injected sample error.
    counts
        Variants, samples, files written, genotypes, planted issues, and milliseconds
        spent per stage (``ms_simulate``, ``ms_mosaic``, ``ms_write``, ``ms_index``, summed
        over workers, and ``ms_total`` wall time).
    """

    sample_ids: list[str]
    candidates: pd.DataFrame
    dosage: np.ndarray
    counts: dict[str, int]


def population_dosage(
    candidates: pd.DataFrame, ancestry: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Draw candidate dosages for people without genomes from their ancestry.

    Parameters
    ----------
    candidates
        Candidate table with af_afr ... af_nat columns.
    ancestry
        (n, 6) ancestry proportions in the order afr, eur, eas, sas, mid, nat.
    rng
        Random source.

    Returns
    -------
    np.ndarray
        int8 (n, n_candidates) dosages, Binomial(2, ancestry @ per-population frequency).

    Raises
    ------
    InputError
        If ``ancestry`` is not (n, 6).
    """
    anc = np.asarray(ancestry, dtype=float)
    if anc.ndim != 2 or anc.shape[1] != len(POPULATIONS):
        raise InputError(
            f"population_dosage: ancestry has shape {anc.shape}; expected (n, {len(POPULATIONS)})"
        )
    freqs = candidates[[f"af_{p}" for p in POPULATIONS]].to_numpy(dtype=float)
    p = np.clip(anc @ freqs.T, 0.0, 1.0)
    return rng.binomial(2, p).astype(np.int8)


def _quotas(n_regions: int, total: int) -> list[int]:
    return [total // n_regions + (i < total % n_regions) for i in range(n_regions)]


def _n_workers(n_tasks: int, work: float) -> int:
    if work < PARALLEL_MIN_WORK:
        return 1
    return max(1, min(n_tasks, len(os.sched_getaffinity(0))))


def simulate_genomes(
    people: pd.DataFrame,
    config: SynthConfig,
    out: Path,
    *,
    progress: Callable[[str, float], None] | None = None,
) -> GenomeResult:
    """Simulate and write the genomes of ``people`` as genome-centre VCF batches.

    Parameters
    ----------
    people
        One row per sequenced participant: participant_id, sex_at_birth, anc_afr ...
        anc_nat (dna_received_date, if present, becomes the manifest's collection date).
    config
        Seed, region_megabases, genome_batches and reference_per_group are used.
    out
        Program output root; writes ``genomes/`` and ``truth/`` under it.
    progress
        Called with a stage label and the fraction of regions done.

    Returns
    -------
    GenomeResult
        Sample ids, candidate variants, true candidate dosages and counts.

    Raises
    ------
    InputError
        If a needed column is missing or ancestry proportions are invalid.
    ConfigError
        If the regions do not fit the chromosomes.

    Notes
    -----
    Files written:

    - ``genomes/batch_NNN/chrN.vcf.gz`` (+ ``.tbi``): one joint-called VCFv4.2 per batch and
      chromosome, FORMAT GT:AD:DP:GQ, samples named by biobank sample id; males haploid on
      non-PAR chrX; ~0.6% missing calls; records only where the batch has an ALT call.
    - ``genomes/manifest.csv``: sample_id, participant_id, sex_at_birth, genome_center,
      batch, collection_date.
    - ``genomes/reference_panel/chrN.vcf.gz`` and ``labels.csv`` (sample_id, group,
      genetic_sex): ``config.reference_per_group`` people in each of afr, amr, eas, eur,
      mid, sas, simulated in the same msprime runs as the cohort.
    - ``truth/related_pairs.csv``, ``sample_issues.csv``, ``genetic_sex.csv`` and
      ``candidate_variants.csv``.

    Steps:

    1. Plan (before any file is written): genetic sex, batches, sample ids, related pairs
       among people of similar ancestry, duplicates, swaps and contaminated samples.
    2. Per region (in parallel worker processes when the job is large): simulate all
       source haplotypes with msprime in unlinked sub-contigs of at most 1 Mb; build each
       person's haplotypes as local-ancestry mosaics (tract switches at rate
       12 generations x recombination rate); rewrite relatives' haplotypes by transmitting
       recombined parental haplotypes; stream chunks of sites into every output VCF.
    3. Candidates: per autosomal region, a uniform sample of biallelic SNPs with cohort
       alt frequency >= 0.05, some of them with af_eur <= 0.02 and >= 0.2 elsewhere.
    """
    started = time.perf_counter()
    out = Path(out)
    plan, tables = plan_genomes(people, config)
    sample_ids = people["participant_id"].astype(str).tolist()
    if not sample_ids:
        empty = pd.DataFrame({c: pd.Series(dtype=object) for c in CANDIDATE_COLUMNS})
        return GenomeResult([], empty, np.zeros((0, 0), dtype=np.int8), {"samples": 0})

    from opencohort.synth._demography import default_regions
    from opencohort.synth._region import RegionTask, run_region

    regions = default_regions(config.region_megabases)
    autosomal = [i for i, r in enumerate(regions) if not r.is_x]
    n_common = CANDIDATES_TOTAL - CANDIDATES_SPECIFIC
    common = dict(zip(autosomal, _quotas(len(autosomal), n_common), strict=True))
    specific = dict(zip(autosomal, _quotas(len(autosomal), CANDIDATES_SPECIFIC), strict=True))
    genomes_dir = out / "genomes"
    tasks = [
        RegionTask(plan, i, r, genomes_dir, common.get(i, 0), specific.get(i, 0))
        for i, r in enumerate(regions)
    ]
    work = len(plan.ancestry) * config.region_megabases * len(regions)
    workers = _n_workers(len(tasks), work)
    results = {}
    if workers == 1:
        for done, task in enumerate(tasks):
            results[task.index] = run_region(task)
            if progress:
                progress(f"genomes {task.region.chrom}", (done + 1) / len(tasks))
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = {pool.submit(run_region, task): task for task in tasks}
            for done, future in enumerate(as_completed(futures)):
                result = future.result()
                results[result.index] = result
                if progress:
                    progress(f"genomes {futures[future].region.chrom}", (done + 1) / len(tasks))

    ordered = [results[i] for i in range(len(tasks))]
    parts = [r for r in ordered if r.candidates is not None]
    if parts:
        candidates = pd.concat([r.candidates for r in parts], ignore_index=True)
        dosage = np.ascontiguousarray(np.concatenate([r.dosage for r in parts], axis=1))
    else:
        candidates = pd.DataFrame({c: pd.Series(dtype=object) for c in CANDIDATE_COLUMNS})
        dosage = np.zeros((len(sample_ids), 0), dtype=np.int8)
    candidates = candidates[list(CANDIDATE_COLUMNS)]

    truth = out / "truth"
    truth.mkdir(parents=True, exist_ok=True)
    tables.manifest.to_csv(genomes_dir / "manifest.csv", index=False)
    tables.labels.to_csv(genomes_dir / PANEL_NAME / "labels.csv", index=False)
    tables.related_pairs.to_csv(truth / "related_pairs.csv", index=False)
    tables.sample_issues.to_csv(truth / "sample_issues.csv", index=False)
    tables.genetic_sex.to_csv(truth / "genetic_sex.csv", index=False)
    candidates.to_csv(truth / "candidate_variants.csv", index=False)

    counts = {
        key: sum(r.counts[key] for r in ordered)
        for key in ("sites", "variants", "records", "multiallelic_records", "genotypes")
    }
    counts["panel_genotypes"] = counts["genotypes"] - sum(
        r.counts["cohort_genotypes"] for r in ordered
    )
    counts["genotypes"] -= counts["panel_genotypes"]
    issues = tables.sample_issues["issue"].value_counts()
    counts.update(
        {
            "samples": len(tables.manifest),
            "participants": len(sample_ids),
            "reference_samples": len(tables.labels),
            "regions": len(regions),
            "batches": len(plan.outputs) - 1,
            "files": sum(r.counts["files"] for r in ordered) + 6,
            "candidates": len(candidates),
            "related_pairs": len(tables.related_pairs),
            "duplicates": int(issues.get("duplicate", 0)),
            "swaps": int(issues.get("swap", 0)) // 2,
            "contaminated": int(issues.get("contaminated", 0)),
            "workers": workers,
        }
    )
    for stage in ("simulate", "mosaic", "write", "index"):
        counts[f"ms_{stage}"] = round(1000 * sum(r.seconds.get(stage, 0.0) for r in ordered))
    counts["ms_total"] = round(1000 * (time.perf_counter() - started))
    return GenomeResult(sample_ids, candidates, dosage, counts)
