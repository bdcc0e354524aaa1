"""One region, start to finish: simulate, build mosaics, write every VCF, pick candidates.

Regions are independent (their own seeds, their own files), so they run in parallel worker
processes; a worker streams its region in chunks of sites and never holds more than one
chunk of genotypes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msprime
import numpy as np
import pandas as pd

from opencohort.synth._demography import (
    GENERATIONS_SINCE_ADMIXTURE,
    MSPRIME_NAMES,
    Region,
    build_demography,
    contig_lengths,
    mutation_rate,
)
from opencohort.synth._mosaic import (
    CODE_ALLELES,
    HAPLOID,
    MISSING_DIPLOID,
    MISSING_HAPLOID,
    N_CODES,
    POPULATIONS,
    Segments,
    add_relatives,
    genotype_codes,
    haplotypes,
    mosaic,
    pair_code,
)
from opencohort.synth._samples import PANEL_NAME, GenomePlan, OutputSet
from opencohort.synth._vcf import (
    FORMAT,
    HOM_ERROR,
    POOL,
    POOL_BITS,
    TIER_MEAN,
    TIER_MISSING,
    BgzipWriter,
    cell_id,
    cell_pools,
    cell_table,
    header,
    records_text,
)

SUBCONTIG_BP = 1_000_000
"""Longest stretch simulated in one msprime run; a longer region is several unlinked runs."""
CHUNK_GENOTYPES = 262_144
DUPLICATE_DISCORDANCE = 0.002
"""Share of a duplicate sample's calls that differ from the first sample."""
CANDIDATE_MIN_AF = 0.05
SPECIFIC_MIN_AF = 0.2
SPECIFIC_MAX_EUR = 0.02
COMPRESS_LEVEL = 1
_STREAM_MOSAIC, _STREAM_RELATIVES, _STREAM_SIM, _STREAM_OUTPUT, _STREAM_CANDIDATES = range(21, 26)
_NONREF_SHARE = np.array(
    [(CODE_ALLELES[c, 1:].sum() / max(CODE_ALLELES[c].sum(), 1)) for c in range(N_CODES)]
)
_DOSE = CODE_ALLELES.T.astype(np.int8)
_ALT_DOSE = _DOSE[1]
_NONREF = _DOSE[1:].sum(axis=0) > 0
_TOP_ALLELE = np.array(
    [np.flatnonzero(CODE_ALLELES[c])[-1] if CODE_ALLELES[c].any() else 0 for c in range(N_CODES)]
)


@dataclass(frozen=True)
class RegionTask:
    """The work of one region."""

    plan: GenomePlan
    index: int
    region: Region
    genomes_dir: Path
    n_common: int
    n_specific: int


@dataclass
class RegionResult:
    """What a region worker reports back."""

    index: int
    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    candidates: pd.DataFrame | None = None
    dosage: np.ndarray | None = None


class _Clock:
    """Accumulate wall seconds per stage."""

    def __init__(self, seconds: dict[str, float]) -> None:
        self.seconds, self._t, self._stage = seconds, time.perf_counter(), None

    def to(self, stage: str | None) -> None:
        now = time.perf_counter()
        if self._stage:
            self.seconds[self._stage] = self.seconds.get(self._stage, 0.0) + now - self._t
        self._stage, self._t = stage, now


@dataclass
class _Chunk:
    positions: np.ndarray  # region-relative, 0-based
    alleles: list[tuple[str, ...]]
    source: np.ndarray  # (k, n_source) int8


def _chunks(task: RegionTask, rows: int, clock: _Clock) -> Iterator[_Chunk]:
    """Simulate the region as unlinked sub-contigs and yield chunks of decoded sites."""
    region, plan = task.region, task.plan
    rng = np.random.default_rng([plan.seed, _STREAM_SIM, task.index])
    demography = build_demography()
    samples = [
        msprime.SampleSet(int(n), population=name, ploidy=2)
        for name, n in zip(MSPRIME_NAMES, plan.counts, strict=True)
    ]
    n_source = int(2 * plan.counts.sum())
    for left in range(0, region.length, SUBCONTIG_BP):
        clock.to("simulate")
        length = min(SUBCONTIG_BP, region.length - left)
        seeds = rng.integers(1, 2**31 - 1, size=2)
        ts = msprime.sim_ancestry(
            samples=samples,
            demography=demography,
            sequence_length=length,
            recombination_rate=region.recombination_rate,
            random_seed=int(seeds[0]),
        )
        ts = msprime.sim_mutations(ts, rate=mutation_rate(), random_seed=int(seeds[1]))
        clock.to("mosaic")
        site_pos = left + ts.sites_position.astype(np.int64)
        buffer = np.empty((rows, n_source), dtype=np.int8)
        alleles: list[tuple[str, ...]] = []
        for variant in ts.variants(copy=False):
            buffer[len(alleles)] = variant.genotypes
            alleles.append(variant.alleles)
            if len(alleles) == rows:
                first = variant.site.id + 1 - rows
                yield _Chunk(site_pos[first : first + rows], alleles, buffer)
                clock.to("mosaic")
                buffer = np.empty((rows, n_source), dtype=np.int8)
                alleles = []
        if alleles:
            k = len(alleles)
            yield _Chunk(site_pos[ts.num_sites - k :], alleles, buffer[:k])


class _Reservoir:
    """Uniform random sample without replacement of a stream of candidate sites."""

    FIELDS = ("pos", "ref", "alt", "af", "dosage")

    def __init__(self, size: int) -> None:
        self.size = size
        self.keys = np.zeros(0)
        self.items: dict[str, np.ndarray] = {}

    def offer(self, keys: np.ndarray, **items: np.ndarray) -> None:
        """Offer sites with random ``keys``; the ``size`` smallest keys are kept."""
        if self.size == 0 or not len(keys):
            return
        all_keys = np.concatenate([self.keys, keys])
        keep = np.argsort(all_keys, kind="stable")[: self.size]
        self.keys = all_keys[keep]
        for name, value in items.items():
            old = self.items.get(name)
            merged = value if old is None else np.concatenate([old, value])
            self.items[name] = merged[keep]

    def table(self, chrom: str, limit: int) -> tuple[pd.DataFrame, np.ndarray]:
        """The kept sites (at most ``limit``) as candidate rows and (people, sites) dosages."""
        if not self.items:
            return pd.DataFrame(), np.zeros((0, 0), dtype=np.int8)
        it = {k: v[:limit] for k, v in self.items.items()}
        frame = pd.DataFrame(
            {
                "variant_id": [
                    f"{chrom}:{p}:{a}:{b}"
                    for p, a, b in zip(it["pos"], it["ref"], it["alt"], strict=True)
                ],
                "chrom": chrom,
                "pos": it["pos"],
                "ref": it["ref"],
                "alt": it["alt"],
                **{f"af_{p}": it["af"][:, i] for i, p in enumerate(POPULATIONS)},
            }
        )
        return frame, it["dosage"].T


def _offer_candidates(
    task: RegionTask,
    chunk: _Chunk,
    codes: np.ndarray,
    rng: np.random.Generator,
    specific: _Reservoir,
    common: _Reservoir,
) -> None:
    """Offer the chunk's common biallelic SNPs to the candidate reservoirs."""
    plan = task.plan
    biallelic = np.fromiter((len(a) == 2 for a in chunk.alleles), bool, len(chunk.alleles))
    keys = rng.random(len(chunk.alleles))
    rows = np.flatnonzero(biallelic)
    dosage = _ALT_DOSE[codes[rows, : plan.n_cohort]]
    eligible = dosage.sum(axis=1, dtype=np.int64) >= 2 * CANDIDATE_MIN_AF * plan.n_cohort
    rows, dosage = rows[eligible], dosage[eligible]
    if not len(rows):
        return
    bounds = np.concatenate([[0], np.cumsum(2 * plan.counts)])
    pop_af = np.stack(
        [(chunk.source[rows, bounds[p] : bounds[p + 1]] == 1).mean(axis=1) for p in range(6)],
        axis=1,
    )
    eur = POPULATIONS.index("eur")
    others = np.delete(pop_af, eur, axis=1).max(axis=1)
    is_specific = (pop_af[:, eur] <= SPECIFIC_MAX_EUR) & (others >= SPECIFIC_MIN_AF)
    items = {
        "pos": task.region.start + chunk.positions[rows] + 1,
        "ref": np.array([chunk.alleles[r][0] for r in rows], dtype=object),
        "alt": np.array([chunk.alleles[r][1] for r in rows], dtype=object),
        "af": pop_af,
        "dosage": dosage,
    }
    for reservoir, mask in ((specific, is_specific), (common, ~is_specific)):
        reservoir.offer(keys[rows][mask], **{k: v[mask] for k, v in items.items()})


def _contaminate(
    codes: np.ndarray,
    contaminant_codes: np.ndarray,
    fraction: np.ndarray,
    tier: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Calls, depths and read counts of samples whose reads are mixed with another person's.

    Reads come from the sample with probability ``1 - fraction`` and from the contaminant
    otherwise; the call is homozygous below 10% or above 90% alternate reads and
    heterozygous in between, which gives extra heterozygotes with skewed allele balance.
    """
    dp = np.clip(rng.poisson(TIER_MEAN[tier], size=codes.shape), 2, 99)
    share = (1 - fraction) * _NONREF_SHARE[codes] + fraction * _NONREF_SHARE[contaminant_codes]
    alt_reads = rng.binomial(dp, share * (1 - HOM_ERROR) + (1 - share) * HOM_ERROR)
    alt = np.maximum(
        np.where(_TOP_ALLELE[codes] > 0, _TOP_ALLELE[codes], _TOP_ALLELE[contaminant_codes]), 1
    )
    frac = alt_reads / dp
    haploid = codes >= HAPLOID
    zero = np.zeros_like(alt)
    diploid_call = np.where(
        frac < 0.1, 0, np.where(frac > 0.9, pair_code(alt, alt), pair_code(zero, alt))
    )
    call = np.where(haploid, HAPLOID + np.where(frac >= 0.5, alt, 0), diploid_call)
    # Stray reads of a homozygous-alt or haploid-alt call are the reference reads.
    hom_alt = (call == pair_code(alt, alt)) | (call == HAPLOID + alt)
    x = np.where(hom_alt, dp - alt_reads, alt_reads)
    return call.astype(np.int8), dp, x


def _missing_calls(tier: np.ndarray, rows: int, rng: np.random.Generator) -> np.ndarray:
    """Flat (row-major) indexes of missing calls in a (rows, len(tier)) block.

    Each column misses calls at its coverage tier's rate; drawn sparsely (a binomial count,
    then positions) rather than by testing every call.
    """
    m = len(tier)
    picks = []
    for t, rate in enumerate(TIER_MISSING):
        cols = np.flatnonzero(tier == t)
        n = rng.binomial(rows * len(cols), rate) if len(cols) else 0
        picks.append(rng.integers(0, rows, n) * m + cols[rng.integers(0, max(len(cols), 1), n)])
    return np.unique(np.concatenate(picks))


def _code_map(present: np.ndarray) -> np.ndarray:
    """Per-row genotype-code remapping after dropping alleles absent from an output."""
    new_index = np.cumsum(present, axis=1) - 1
    rows = len(present)
    out = np.tile(np.arange(N_CODES, dtype=np.int8), (rows, 1))
    for b in range(4):
        for a in range(b + 1):
            out[:, b * (b + 1) // 2 + a] = pair_code(new_index[:, a], new_index[:, b])
        out[:, HAPLOID + b] = HAPLOID + new_index[:, b]
    return out


def _output_chunk(
    task: RegionTask,
    out: OutputSet,
    chunk: _Chunk,
    codes: np.ndarray,
    rng: np.random.Generator,
) -> tuple[bytes, np.ndarray, np.ndarray, int]:
    """One output's records for a chunk: text, record lengths, rows kept, multi-allelic count."""
    calls = np.take(codes, out.source, axis=1)
    k, m = calls.shape
    ploidy = np.where(calls[0] >= HAPLOID, 1, 2) if k else np.zeros(m, np.int64)
    dup = np.flatnonzero(out.duplicate)
    if dup.size:
        sub = calls[:, dup]
        flip = rng.random(sub.shape) < DUPLICATE_DISCORDANCE
        flip &= (sub <= 2) | (sub == HAPLOID) | (sub == HAPLOID + 1)
        shifted = np.where(
            sub >= HAPLOID, HAPLOID + (sub == HAPLOID), (sub + rng.integers(1, 3, sub.shape)) % 3
        )
        calls[:, dup] = np.where(flip, shifted, sub)
    cont = np.flatnonzero(out.contaminant >= 0)
    if cont.size:
        calls[:, cont], cont_dp, cont_x = _contaminate(
            calls[:, cont],
            codes[:, out.contaminant[cont]],
            out.contamination[cont],
            out.tier[cont],
            rng,
        )
    flat = calls.reshape(-1)
    missing = _missing_calls(out.tier, k, rng)
    flat[missing] = np.where(flat[missing] >= HAPLOID, MISSING_HAPLOID, MISSING_DIPLOID)
    nonref = np.flatnonzero(_NONREF[calls])
    nonref_row = nonref // m

    allele_counts = np.zeros((k, 4), dtype=np.int64)
    values = flat[nonref]
    for j in (1, 2, 3):
        allele_counts[:, j] = np.bincount(nonref_row, weights=_DOSE[j][values], minlength=k)
    lost = np.bincount(missing // m, weights=ploidy[missing % m], minlength=k)
    an = ploidy.sum() - lost.astype(np.int64)
    allele_counts[:, 0] = an - allele_counts[:, 1:].sum(axis=1)
    present = allele_counts > 0
    present[:, 0] = True
    n_alleles = present.sum(axis=1)
    keep = n_alleles >= 2
    gaps = (present[:, 1:] & ~present[:, :-1]).any(axis=1) & keep
    if gaps.any():
        calls[gaps] = np.take_along_axis(_code_map(present[gaps]), calls[gaps], axis=1)

    pools = cell_pools(task.plan.seed)
    index = np.left_shift(calls, POOL_BITS, dtype=np.int32)
    index += (out.tier.astype(np.int32) * (N_CODES * POOL))[None, :]
    index += rng.integers(0, POOL, size=(k, m), dtype=np.uint16)
    if (n_alleles[keep] == 2).all():
        ids = pools[2][index]
    else:
        ids = np.zeros((k, m), dtype=np.int32)
        for n_al in (2, 3, 4):
            rows = keep & (n_alleles == n_al)
            ids[rows] = pools[n_al][index[rows]]
    if cont.size:
        sub = calls[:, cont]
        called = sub < MISSING_DIPLOID
        ids[:, cont] = cell_id(
            np.maximum(n_alleles, 2)[:, None],
            sub,
            np.where(called, cont_dp, 0),
            np.where(called, cont_x, 0),
        )
    _, gq_table = cell_table()
    qual = np.bincount(nonref_row, weights=gq_table[ids.reshape(-1)[nonref]], minlength=k)
    if not keep.all():
        ids = ids[keep]

    chrom, start = task.region.chrom, task.region.start
    prefixes = []
    for row in np.flatnonzero(keep):
        alleles = chunk.alleles[row]
        alts = [i for i in range(1, len(alleles)) if present[row, i]]
        prefixes.append(
            f"{chrom}\t{start + chunk.positions[row] + 1}\t.\t{alleles[0]}\t"
            f"{','.join(alleles[i] for i in alts)}\t{int(qual[row])}\tPASS\t"
            f"AC={','.join(str(allele_counts[row, i]) for i in alts)};AN={an[row]}\t"
            f"{FORMAT}".encode()
        )
    text, lengths = records_text(prefixes, ids)
    return text, lengths, keep, int((n_alleles[keep] > 2).sum())


def run_region(task: RegionTask) -> RegionResult:
    """Simulate one region and write its VCF in every output set.

    Parameters
    ----------
    task
        The plan, the region and where to write.

    Returns
    -------
    RegionResult
        Record and genotype counts, seconds per stage, and the region's candidate
        variants with the cohort's true dosages.
    """
    plan, region = task.plan, task.region
    result = RegionResult(task.index)
    clock = _Clock(result.seconds)
    clock.to("mosaic")
    rng = np.random.default_rng([plan.seed, _STREAM_MOSAIC, task.index])
    segments: Segments = mosaic(
        plan.ancestry,
        plan.columns,
        region.length,
        GENERATIONS_SINCE_ADMIXTURE * region.recombination_rate,
        rng,
    )
    segments = add_relatives(
        segments,
        plan.parent_child,
        plan.siblings,
        plan.male,
        region.recombination_rate,
        np.random.default_rng([plan.seed, _STREAM_RELATIVES, task.index]),
        is_x=region.is_x,
    )
    haploid = plan.male if region.is_x else None
    clock.to("write")
    cell_table()
    cell_pools(plan.seed)
    contigs = contig_lengths()
    writers = []
    for out in plan.outputs:
        directory = task.genomes_dir / out.name
        directory.mkdir(parents=True, exist_ok=True)
        writer = BgzipWriter(directory / f"{region.chrom}.vcf.gz", region.chrom, COMPRESS_LEVEL)
        writer.write(header(list(out.sample_ids), contigs, out.header_extra))
        writers.append(writer)
    out_rngs = [
        np.random.default_rng([plan.seed, _STREAM_OUTPUT, task.index, i])
        for i in range(len(plan.outputs))
    ]
    cand_rng = np.random.default_rng([plan.seed, _STREAM_CANDIDATES, task.index])
    specific = _Reservoir(task.n_specific)
    common = _Reservoir(task.n_common + task.n_specific)
    counts = dict.fromkeys(
        ("sites", "variants", "records", "multiallelic_records", "genotypes", "cohort_genotypes"),
        0,
    )
    rows = max(16, CHUNK_GENOTYPES // max(1, len(plan.ancestry)))
    for chunk in _chunks(task, rows, clock):
        clock.to("mosaic")
        codes = genotype_codes(haplotypes(chunk.source, chunk.positions, segments), haploid)
        counts["sites"] += len(chunk.positions)
        if not region.is_x:
            _offer_candidates(task, chunk, codes, cand_rng, specific, common)
        clock.to("write")
        in_cohort = np.zeros(len(chunk.positions), dtype=bool)
        for out, writer, out_rng in zip(plan.outputs, writers, out_rngs, strict=True):
            text, lengths, kept, n_multi = _output_chunk(task, out, chunk, codes, out_rng)
            writer.write_records(text, region.start + chunk.positions[kept] + 1, lengths)
            n_genotypes = int(kept.sum()) * len(out.sample_ids)
            counts["records"] += int(kept.sum())
            counts["multiallelic_records"] += n_multi
            counts["genotypes"] += n_genotypes
            if out.name != PANEL_NAME:
                in_cohort |= kept
                counts["cohort_genotypes"] += n_genotypes
        counts["variants"] += int(in_cohort.sum())
        clock.to(None)
    clock.to("write")
    for writer in writers:
        writer.close()
    clock.to("index")
    for writer in writers:
        writer.index()
    clock.to(None)
    counts["files"] = 2 * len(writers)
    result.counts = counts
    spec_table, spec_dosage = specific.table(region.chrom, task.n_specific)
    n_fill = task.n_common + task.n_specific - len(spec_table)
    common_table, common_dosage = common.table(region.chrom, n_fill)
    tables = [t for t in (spec_table, common_table) if len(t)]
    if tables:
        table = pd.concat(tables, ignore_index=True)
        dosage = np.concatenate([d for d in (spec_dosage, common_dosage) if d.size], axis=1)
        order = np.argsort(table["pos"].to_numpy(), kind="stable")
        result.candidates = table.iloc[order].reset_index(drop=True)
        result.dosage = dosage[:, order]
    return result
