"""Genome-centre deliveries: validate, keep the raw copy, and merge into the cohort store.

A delivery is a directory with a ``manifest.csv`` (sample_id, participant_id, sex_at_birth,
genome_center, batch, collection_date) and, per batch named in it, a subdirectory of
bgzipped, indexed VCFs, one per chromosome (files directly in the delivery directory serve
a manifest without batch subdirectories). Other subdirectories, such as a reference panel,
are kept in the raw copy but not ingested.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from opencohort.config import Home
from opencohort.errors import InputError
from opencohort.genomics import _columns as c
from opencohort.genomics import _store
from opencohort.genomics._vcf_reader import (
    MISSING,
    GenotypeFilter,
    Problem,
    VcfCalls,
    header_line_count,
    read_vcf,
)
from opencohort.genomics.workflow import DELIVERED, advance_samples, refused_samples

MANIFEST = "manifest.csv"
RAW_SUBDIR = "genomes"
REPORTS_DIR = "genomics/reports"
Progress = Callable[[str, float], None]
PARALLEL_MIN_BYTES = 16_000_000
"""Compressed VCF bytes in a delivery above which files are read in worker processes."""


@dataclass(frozen=True)
class Delivery:
    """A parsed delivery: its manifest and, per batch, the VCF of each contig."""

    path: Path
    manifest: pd.DataFrame
    files: dict[str, dict[str, Path]]
    problems: tuple[Problem, ...]

    @property
    def name(self) -> str:
        """The delivery's directory name."""
        return self.path.name


@dataclass
class IngestResult:
    """What :func:`ingest_delivery` did."""

    delivery: str
    raw_path: Path
    samples: int = 0
    variants: int = 0
    records: int = 0
    multiallelic_records: int = 0
    genotypes: int = 0
    filtered_genotypes: int = 0
    seconds: float = 0.0
    problems: list[Problem] = field(default_factory=list)

    @property
    def genotypes_per_second(self) -> float:
        """Raw VCF genotypes read per second of wall time."""
        return self.genotypes / self.seconds if self.seconds else 0.0


def find_deliveries(path: Path) -> list[Path]:
    """Deliveries at ``path``: itself if it has a manifest, else those below it (2 levels).

    Raises
    ------
    InputError
        If no ``manifest.csv`` is found.
    """
    path = Path(path)
    if (path / MANIFEST).is_file():
        return [path]
    found = sorted(
        {p.parent for p in path.glob(f"*/{MANIFEST}")}
        | {p.parent for p in path.glob(f"*/*/{MANIFEST}")}
    )
    found = [p for p in found if any(p.rglob("*.vcf.gz"))]
    if not found:
        raise InputError(f"no delivery ({MANIFEST} beside VCFs) in {path} or two levels below")
    return found


def _contig_of(vcf: Path) -> str:
    return vcf.name.removesuffix(".vcf.gz")


def parse_delivery(path: Path) -> Delivery:
    """Read and check a delivery's manifest and files, before anything is written.

    Raises
    ------
    InputError
        If the manifest is missing, lacks a column or repeats a sample id.

    Notes
    -----
    Sample-level disagreements between manifest and VCF headers are problems, not errors:
    a VCF sample missing from the manifest is dropped; a manifest sample missing from a
    VCF has no calls on that contig.
    """
    path = Path(path)
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise InputError(f"{path} has no {MANIFEST}", file=str(manifest_path))
    manifest = pd.read_csv(manifest_path, dtype=str, keep_default_na=False)
    missing = [col for col in c.MANIFEST_COLUMNS if col not in manifest.columns]
    if missing:
        raise InputError(
            f"lacks columns {missing}; expected {list(c.MANIFEST_COLUMNS)}",
            file=str(manifest_path),
            line=1,
        )
    dup = manifest[c.SAMPLE_ID].duplicated(keep=False)
    if dup.any():
        first = int(np.flatnonzero(dup)[0])
        raise InputError(
            f"sample id {manifest[c.SAMPLE_ID].iloc[first]!r} appears {int(dup.sum())} times",
            file=str(manifest_path),
            line=first + 2,
            field=c.SAMPLE_ID,
        )
    problems: list[Problem] = []
    files: dict[str, dict[str, Path]] = {}
    for batch in pd.unique(manifest[c.BATCH]):
        folder = path / batch if batch and (path / batch).is_dir() else path
        vcfs = {_contig_of(p): p for p in sorted(folder.glob("*.vcf.gz"))}
        if not vcfs:
            line = int(np.flatnonzero(manifest[c.BATCH].to_numpy() == batch)[0]) + 2
            problems.append(Problem(str(manifest_path), line, c.BATCH, f"no VCFs for {batch!r}"))
            continue
        files[batch] = vcfs
    return Delivery(path, manifest, files, tuple(problems))


def _sample_table(delivery: Delivery, stats: dict[str, dict]) -> pd.DataFrame:
    """Store rows of the delivery's called samples, with raw read statistics summed."""
    table = delivery.manifest[list(c.MANIFEST_COLUMNS)].copy()
    table = table[table[c.SAMPLE_ID].isin(stats)].reset_index(drop=True)
    table[c.DELIVERY] = delivery.name
    got = [stats[s] for s in table[c.SAMPLE_ID]]
    table[c.CONTIGS] = [",".join(sorted(g["contigs"], key=_store.contig_key)) for g in got]
    table[c.HAPLOID_CONTIGS] = [",".join(sorted(g["haploid"], key=_store.contig_key)) for g in got]
    for name in ("n_het", "ab_dispersion_sum", "stray_reads", "hom_depth", "called"):
        table[f"sample_raw_{name}"] = [float(g[name]) for g in got]
    return table


def _contigs_set(value: str) -> set[str]:
    return set(value.split(",")) if value else set()


def variant_stats(genotypes: np.ndarray, haploid: np.ndarray) -> pd.DataFrame:
    """Call rate, AC, AN, AF and diploid het / hom-alt counts of int8 dosage rows.

    Parameters
    ----------
    genotypes
        (variants, samples) int8 alt-allele counts, ``-9`` missing; haploid calls stored
        as 0/2.
    haploid
        (samples,) bool: the sample is haploid on this contig (counts 1 allele).

    Returns
    -------
    pandas.DataFrame
        variant_call_rate, variant_ac, variant_an, variant_af (NaN when AN is 0),
        variant_n_het and variant_n_hom_alt (diploid samples only).
    """
    called = genotypes != MISSING
    n = genotypes.shape[1]
    ploidy = np.where(haploid, 1, 2)
    g = np.where(called, genotypes, 0).astype(np.int64)
    dip = ~haploid
    ac = g[:, dip].sum(axis=1) + g[:, haploid].sum(axis=1) // 2
    an = called.astype(np.int64) @ ploidy
    with np.errstate(invalid="ignore", divide="ignore"):
        af = np.where(an > 0, ac / np.maximum(an, 1), np.nan)
    return pd.DataFrame(
        {
            c.VARIANT_CALL_RATE: called.sum(axis=1) / n if n else np.nan,
            c.VARIANT_AC: ac,
            c.VARIANT_AN: an,
            c.VARIANT_AF: af,
            c.VARIANT_N_HET: (genotypes[:, dip] == 1).sum(axis=1),
            c.VARIANT_N_HOM_ALT: (genotypes[:, dip] == 2).sum(axis=1),
        }
    )


@dataclass
class _Stream:
    """Calls of one source (a batch VCF or the old store) for one contig."""

    keys: pd.DataFrame
    genotypes: np.ndarray
    columns: np.ndarray
    fill: np.ndarray


def _merge_contig(
    contig: str, streams: list[_Stream], n_samples: int
) -> tuple[pd.DataFrame, np.ndarray]:
    """Union of the streams' variants and the (variants, samples) matrix over all samples.

    A variant absent from a stream takes the stream's ``fill`` for its samples: hom-ref
    (0) within a batch's called contigs, missing elsewhere.
    """
    keys = pd.concat([s.keys for s in streams], ignore_index=True)
    keys = keys.drop_duplicates([c.POS, c.REF, c.ALT]).sort_values(c.POS, kind="stable")
    keys = keys.reset_index(drop=True)
    index = pd.MultiIndex.from_frame(keys[[c.POS, c.REF, c.ALT]])
    merged = np.full((len(keys), n_samples), MISSING, dtype=np.int8)
    for s in streams:
        rows = index.get_indexer(pd.MultiIndex.from_frame(s.keys[[c.POS, c.REF, c.ALT]]))
        merged[:, s.columns] = s.fill[None, :]
        merged[np.ix_(rows, s.columns)] = s.genotypes
    keys.insert(0, c.CHROM, contig)
    keys.insert(
        0,
        c.VARIANT_ID,
        contig + ":" + keys[c.POS].astype(str) + ":" + keys[c.REF] + ":" + keys[c.ALT],
    )
    return keys, merged


def _keys(calls: VcfCalls) -> pd.DataFrame:
    return pd.DataFrame({c.POS: calls.pos, c.REF: calls.ref, c.ALT: calls.alt})


def ingest_delivery(
    path: Path,
    home: Home,
    *,
    genotype_filter: GenotypeFilter | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
    check_registry: bool = True,
    day: date | None = None,
) -> IngestResult:
    """Validate a delivery, keep it in ``raw/genomes/<name>/`` and merge it into the store.

    Parameters
    ----------
    path
        The delivery directory.
    home
        Program home; the store is ``<home>/genomics/store``.
    genotype_filter
        Genotype filters (default GQ >= 20, DP >= 10, het allele balance in [0.2, 0.8]).
    workers
        Processes reading VCFs (default: one per CPU when the delivery has more than
        ``PARALLEL_MIN_BYTES`` of VCF, else 1).
    progress
        Called with a label and the fraction of files read, then of contigs merged.
    check_registry
        Store only samples the registry allows
        (:func:`~opencohort.genomics.workflow.refused_samples`) and record their
        ``received`` and ``sequenced`` steps. Off only for deliveries of made-up samples.
    day
        Day of the registry checks and steps (default: today, UTC).

    Returns
    -------
    IngestResult
        Counts, timing and every problem found (also written to
        ``genomics/reports/ingest-<name>.csv``).

    Raises
    ------
    InputError
        If the manifest is unusable, the delivery was already ingested, or a sample id is
        already in the store. Nothing is written in these cases.

    Notes
    -----
    1. The delivery is copied byte for byte into the raw store first; VCFs are read from
       the copy. Samples the registry refuses (unknown, registered to another participant,
       no genomic consent, withdrawn) are reported with the manifest line and left out.
    2. Per contig, each batch's VCF is read (:func:`read_vcf`: record checks, genotype
       filters, multi-allelic split) and merged with the store's earlier samples on the
       union of variants. The simulator, like a joint caller emitting only variant sites,
       writes a record only where a batch has an ALT call, so a variant absent from a batch
       is hom-ref for that batch's samples on the contigs the batch called (had a VCF
       for), and missing on other contigs. Earlier samples follow the same rule.
    3. The new store is built beside the old one and swapped in by renames; a failure
       leaves the old store untouched.
    """
    started = time.perf_counter()
    delivery = parse_delivery(path)
    root = _store.store_dir(home)
    old_samples = _store.read_samples(root)
    known = set(old_samples[c.SAMPLE_ID]) if len(old_samples) else set()
    clash = sorted(known & set(delivery.manifest[c.SAMPLE_ID]))
    if clash:
        raise InputError(
            f"{len(clash)} sample ids already in the store (first: {clash[0]}); "
            "re-delivered samples need new sample ids",
            file=str(Path(path) / MANIFEST),
            field=c.SAMPLE_ID,
        )
    raw = home.raw / RAW_SUBDIR / delivery.name
    if raw.exists():
        raise InputError(f"delivery {delivery.name!r} was already ingested ({raw})")
    raw.parent.mkdir(parents=True, exist_ok=True)
    staging = raw.with_name(f".{delivery.name}.{uuid.uuid4().hex[:8]}")
    shutil.copytree(path, staging)
    staging.rename(raw)
    delivery = parse_delivery(raw)

    result = IngestResult(delivery.name, raw, problems=list(delivery.problems))
    manifest = delivery.manifest
    day = day or datetime.now(UTC).date()
    refused: set[str] = set()
    if check_registry:
        label = f"{delivery.name}/{MANIFEST}"
        problems = refused_samples(manifest, home, file=label, day=day)
        refused = {manifest[c.SAMPLE_ID].iloc[p.line - 2] for p in problems}
        result.problems.extend(problems)
    batch_samples = {
        b: manifest.loc[(manifest[c.BATCH] == b) & ~manifest[c.SAMPLE_ID].isin(refused),
                        c.SAMPLE_ID].tolist()
        for b in delivery.files
    }  # fmt: skip
    n_old = len(old_samples)
    new_ids = [s for b in delivery.files for s in batch_samples[b]]
    column = {s: n_old + i for i, s in enumerate(new_ids)}
    old_contigs = _store.store_contigs(root)
    contigs = sorted(
        set(old_contigs) | {k for files in delivery.files.values() for k in files},
        key=_store.contig_key,
    )
    read = _read_all(delivery, batch_samples, raw, result, genotype_filter, workers, progress,
                     refused)  # fmt: skip
    stats: dict[str, dict] = {}
    contig_data: dict[str, tuple[pd.DataFrame, np.ndarray, np.ndarray]] = {}
    for done, contig in enumerate(contigs):
        streams: list[_Stream] = []
        haploid = np.zeros(n_old + len(new_ids), dtype=bool)
        if contig in old_contigs:
            pvar = _store.read_pvar(root / f"{contig}.pvar")
            covered = old_samples[c.CONTIGS].map(lambda v, k=contig: k in _contigs_set(v))
            haploid[:n_old] = old_samples[c.HAPLOID_CONTIGS].map(
                lambda v, k=contig: k in _contigs_set(v)
            )
            streams.append(
                _Stream(
                    pvar[[c.POS, c.REF, c.ALT]],
                    _store.read_genotypes(root / f"{contig}.pgen"),
                    np.arange(n_old),
                    np.where(covered.to_numpy(), 0, MISSING).astype(np.int8),
                )
            )
        for batch, files in delivery.files.items():
            if contig not in files:
                continue
            calls = read[(contig, batch)]
            cols = np.array([column[s] for s in calls.sample_ids], dtype=np.int64)
            haploid[cols] = calls.haploid
            for i, s in enumerate(calls.sample_ids):
                entry = stats.setdefault(s, _empty_stats())
                entry["contigs"].add(contig)
                if calls.haploid[i]:
                    entry["haploid"].add(contig)
                for name in ("n_het", "ab_dispersion_sum", "stray_reads", "hom_depth", "called"):
                    entry[name] += getattr(calls.stats, name)[i]
            streams.append(
                _Stream(_keys(calls), calls.genotypes, cols, np.zeros(len(cols), np.int8))
            )
        keys, merged = _merge_contig(contig, streams, n_old + len(new_ids))
        contig_data[contig] = (keys, merged, haploid)
        if progress:
            progress(f"merge {delivery.name}", (done + 1) / len(contigs))

    new_table = _sample_table(delivery, stats)
    keep_new = np.array([column[s] for s in new_table[c.SAMPLE_ID]], dtype=np.int64)
    keep = np.concatenate([np.arange(n_old), keep_new])
    samples = pd.concat([old_samples, new_table], ignore_index=True) if n_old else new_table
    _write_store(root, samples, contig_data, keep)
    result.samples = len(new_table)
    result.variants = sum(len(v[0]) for v in contig_data.values())
    if check_registry:
        notes = advance_samples(home, new_table[c.SAMPLE_ID], DELIVERED, day=day)
        result.problems += [Problem(label, None, "genomic_state", n) for n in notes]
    _write_problems(home, delivery.name, result.problems)
    result.seconds = time.perf_counter() - started
    return result


def _empty_stats() -> dict:
    return {
        "contigs": set(),
        "haploid": set(),
        "n_het": 0.0,
        "ab_dispersion_sum": 0.0,
        "stray_reads": 0.0,
        "hom_depth": 0.0,
        "called": 0.0,
    }


def _check_samples(
    vcf: Path, wanted: list[str], label: str, result: IngestResult, refused: set[str]
) -> list[str]:
    """Manifest samples present in a VCF header, reporting disagreements as problems.

    Columns of `refused` samples (already reported) are dropped silently.
    """
    from cyvcf2 import VCF

    reader = VCF(str(vcf), lazy=True)
    header = list(reader.samples)
    reader.close()
    line = header_line_count(vcf)
    present = set(header)
    for s in sorted(present - set(wanted) - refused):
        result.problems.append(
            Problem(label, line, "sample", f"sample {s!r} is not in the manifest; dropped")
        )
    for s in [s for s in wanted if s not in present]:
        result.problems.append(
            Problem(label, line, "sample", f"manifest sample {s!r} has no column here")
        )
    return [s for s in wanted if s in present]


def _n_workers(files: list[Path], workers: int | None) -> int:
    if workers is not None:
        return max(1, workers)
    if sum(p.stat().st_size for p in files) < PARALLEL_MIN_BYTES:
        return 1
    return max(1, min(len(files), len(os.sched_getaffinity(0))))


def _read_all(
    delivery: Delivery,
    batch_samples: dict[str, list[str]],
    raw: Path,
    result: IngestResult,
    genotype_filter: GenotypeFilter | None,
    workers: int | None,
    progress: Progress | None,
    refused: set[str],
) -> dict[tuple[str, str], VcfCalls]:
    """Read every batch VCF (in worker processes when the delivery is large)."""
    jobs = {}
    for batch, files in delivery.files.items():
        for contig, vcf in files.items():
            label = str(vcf.relative_to(raw.parent))
            keep = _check_samples(vcf, batch_samples[batch], label, result, refused)
            jobs[(contig, batch)] = (vcf, keep, label)
    n = _n_workers([job[0] for job in jobs.values()], workers)
    out: dict[tuple[str, str], VcfCalls] = {}

    def done(key: tuple[str, str], calls: VcfCalls) -> None:
        out[key] = calls
        result.records += calls.n_records
        result.multiallelic_records += calls.n_multiallelic
        result.genotypes += calls.n_records * len(calls.sample_ids)
        result.filtered_genotypes += calls.n_filtered
        result.problems.extend(calls.problems)
        if progress:
            progress(f"read {delivery.name}", len(out) / len(jobs))

    if n == 1:
        for key, (vcf, keep, label) in jobs.items():
            done(key, read_vcf(vcf, samples=keep, genotype_filter=genotype_filter, label=label))
        return out
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=n, mp_context=context) as pool:
        futures = {
            pool.submit(
                read_vcf, vcf, samples=keep, genotype_filter=genotype_filter, label=label
            ): key
            for key, (vcf, keep, label) in jobs.items()
        }
        for future in as_completed(futures):
            done(futures[future], future.result())
    return out


def _write_store(
    root: Path,
    samples: pd.DataFrame,
    contig_data: dict[str, tuple[pd.DataFrame, np.ndarray, np.ndarray]],
    keep: np.ndarray,
) -> None:
    """Write a whole new store beside ``root`` and swap it in."""
    root.parent.mkdir(parents=True, exist_ok=True)
    new = root.with_name(f".store-new-{uuid.uuid4().hex[:8]}")
    new.mkdir()
    tables = []
    for contig, (keys, merged, haploid) in contig_data.items():
        genotypes = merged[:, keep]
        _store.write_plink(new / contig, genotypes, keys, samples)
        tables.append(pd.concat([keys, variant_stats(genotypes, haploid[keep])], axis=1))
    variants = (
        pd.concat(tables, ignore_index=True)
        if tables
        else pd.DataFrame(columns=list(c.VARIANT_COLUMNS))
    )
    variants[list(c.VARIANT_COLUMNS)].to_parquet(new / _store.VARIANTS_FILE, index=False)
    samples.to_parquet(new / _store.SAMPLES_FILE, index=False)
    old = root.with_name(f".store-old-{uuid.uuid4().hex[:8]}")
    if root.exists():
        root.rename(old)
    new.rename(root)
    if old.exists():
        shutil.rmtree(old)


def _write_problems(home: Home, name: str, problems: list[Problem]) -> Path:
    folder = home.root / REPORTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"ingest-{name}.csv"
    frame = pd.DataFrame(
        [(p.file, p.line, p.field, p.message) for p in problems],
        columns=["file", "line", "field", "message"],
    )
    frame.to_csv(path, index=False)
    return path


def ingest(
    path: Path,
    home: Home,
    *,
    genotype_filter: GenotypeFilter | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
    check_registry: bool = True,
    day: date | None = None,
) -> list[IngestResult]:
    """Ingest a delivery, or every delivery found below ``path``, in name order."""
    return [
        ingest_delivery(d, home, genotype_filter=genotype_filter, workers=workers,
                        progress=progress, check_registry=check_registry, day=day)
        for d in find_deliveries(path)
    ]  # fmt: skip
