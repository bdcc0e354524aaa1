"""Read one VCF into biallelic genotype arrays: validate, filter genotypes, split multi-allelics.

cyvcf2 decodes each record's GT/AD/DP/GQ into arrays over samples; records are gathered
into blocks and every filter, statistic and split runs on the whole block in numpy.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from cyvcf2 import VCF

MISSING = -9
"""Missing genotype code (the pgenlib convention)."""
BLOCK_RECORDS = 1024
_ALLELE = re.compile(r"^[ACGTN]+$")
_INT_MISSING = np.iinfo(np.int32).min


@dataclass(frozen=True)
class GenotypeFilter:
    """Genotype-level filters: a call failing any of them is set to missing.

    Attributes
    ----------
    min_gq, min_dp
        Least genotype quality and read depth.
    min_ab, max_ab
        Allowed allele balance of a heterozygote a/b: reads of b over reads of a and b.
    """

    min_gq: int = 20
    min_dp: int = 10
    min_ab: float = 0.2
    max_ab: float = 0.8


@dataclass(frozen=True)
class Problem:
    """One bad record or header item: where, which field, and what is wrong."""

    file: str
    line: int | None
    field: str
    message: str


@dataclass
class SampleReadStats:
    """Per-sample sums over raw (unfiltered) calls, for contamination and ploidy checks."""

    n_het: np.ndarray
    ab_dispersion_sum: np.ndarray
    stray_reads: np.ndarray
    hom_depth: np.ndarray
    haploid_calls: np.ndarray
    called: np.ndarray

    @classmethod
    def zeros(cls, n: int) -> SampleReadStats:
        """All-zero sums for ``n`` samples."""
        return cls(*(np.zeros(n, dtype=np.float64) for _ in range(6)))


@dataclass
class VcfCalls:
    """Biallelic calls of one VCF: sorted records, int8 dosages and what went wrong.

    ``genotypes`` is (variants, samples) int8 alt-allele counts with ``MISSING`` for no
    call; haploid calls count as homozygous (0 or 2), as PLINK 2 stores them.
    """

    path: str
    chrom: str
    sample_ids: list[str]
    pos: np.ndarray
    ref: np.ndarray
    alt: np.ndarray
    genotypes: np.ndarray
    stats: SampleReadStats
    n_records: int = 0
    n_multiallelic: int = 0
    n_filtered: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def haploid(self) -> np.ndarray:
        """True for samples whose calls on this chromosome are mostly haploid."""
        return self.stats.haploid_calls * 2 > self.stats.called


def header_line_count(path: Path) -> int:
    """Lines of the header as written in the file (htslib adds lines to its own copy)."""
    count = 0
    with gzip.open(path, "rb") as handle:
        for line in handle:
            if not line.startswith(b"#"):
                break
            count += 1
    return count


def _format(record, name: str, n: int, width: int) -> tuple[np.ndarray | None, str | None]:
    """A FORMAT field as (samples, width) int32, or None if absent; a problem if malformed."""
    values = record.format(name)
    if values is None:
        return None, None
    values = np.asarray(values, dtype=np.int32)
    if values.ndim != 2 or values.shape[0] != n or values.shape[1] != width:
        got = values.shape[1] if values.ndim == 2 else 0
        return None, f"{got} values per sample; expected {width}"
    return values, None


def _decode(
    record, n: int
) -> tuple[np.ndarray | None, dict[str, np.ndarray | None], tuple[str, str] | None]:
    """GT allele indexes (samples, 2) and AD/DP/GQ of a record, or the problem found."""
    n_alleles = 1 + len(record.ALT)
    try:
        gt = record.genotype.array()[:, :2] if record.genotype is not None else None
    except Exception as exc:  # cyvcf2 raises a bare Exception on undecodable genotypes
        return None, {}, ("GT", f"genotypes cannot be decoded: {exc}")
    if gt is None or gt.shape[0] != n:
        return None, {}, ("GT", "no genotypes")
    if gt.max(initial=-1) >= n_alleles:
        return None, {}, ("GT", f"allele index {int(gt.max())} but only {n_alleles} alleles")
    fields: dict[str, np.ndarray | None] = {}
    for name, width in (("AD", n_alleles), ("DP", 1), ("GQ", 1)):
        try:
            fields[name], bad = _format(record, name, n, width)
        except Exception as exc:
            bad = f"cannot be decoded: {exc}"
        if bad:
            return None, {}, (name, bad)
    return gt, fields, None


def _check(record, contigs: dict[str, int], chrom: str | None, last: int) -> tuple[str, str] | None:
    """Field and message of the first problem of a record, or None."""
    contig, pos = record.CHROM, record.POS
    if contig not in contigs:
        return "CHROM", f"contig {contig!r} is not declared in the header"
    if chrom is not None and contig != chrom:
        return "CHROM", f"contig {contig!r} in a file of {chrom!r}; expected one contig per file"
    length = contigs[contig]
    if pos < 1 or (length and pos > length):
        return "POS", f"position {pos} outside 1..{length}"
    if pos < last:
        return "POS", f"position {pos} after {last}; records must be sorted"
    if not _ALLELE.match(record.REF):
        return "REF", f"{record.REF!r} is not a DNA allele"
    if not record.ALT:
        return "ALT", "no alternate allele"
    bad = [a for a in record.ALT if not _ALLELE.match(a)]
    if bad:
        return "ALT", f"{bad[0]!r} is not a DNA allele (symbolic and '*' alleles are not supported)"
    return None


class _Block:
    """Records gathered for one vectorised pass."""

    def __init__(self) -> None:
        self.gt: list[np.ndarray] = []
        self.ad: list[np.ndarray | None] = []
        self.dp: list[np.ndarray | None] = []
        self.gq: list[np.ndarray | None] = []
        self.pos: list[int] = []
        self.ref: list[str] = []
        self.alts: list[list[str]] = []

    def __len__(self) -> int:
        return len(self.pos)


def _stack(values: list[np.ndarray | None], shape: tuple[int, ...], fill: int) -> np.ndarray:
    out = np.full((len(values), *shape), fill, dtype=np.int32)
    for i, v in enumerate(values):
        if v is not None:
            out[i, :, : v.shape[1]] = v
    return out


def _process(block: _Block, keep: np.ndarray, gf: GenotypeFilter, calls: VcfCalls) -> list:
    """Filter and split one block; update ``calls`` statistics; return output arrays."""
    n_alleles = np.array([1 + len(a) for a in block.alts])
    width = int(n_alleles.max())
    gt = np.stack(block.gt)[:, keep, :]
    ad = _stack(block.ad, (gt.shape[1], width), -1)
    dp = _stack(block.dp, (gt.shape[1], 1), 99)[:, :, 0]
    gq = _stack(block.gq, (gt.shape[1], 1), 99)[:, :, 0]
    a = gt[:, :, 0]
    b = gt[:, :, 1]
    haploid = b == -2
    b = np.where(haploid, a, b)
    missing = (a < 0) | (b < 0)
    het = ~missing & (a != b)
    ad[ad == _INT_MISSING] = -1
    st = calls.stats
    n = gt.shape[1]
    # heterozygotes are few: allele balance on their coordinates only
    hr, hc = np.nonzero(het)
    da = ad[hr, hc, a[hr, hc]]
    db = ad[hr, hc, b[hr, hc]]
    has_ad = (da >= 0) & (db >= 0)
    pair = (da + db).astype(np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        ab = np.where(has_ad & (pair > 0), db / pair, np.nan)
        dispersion = (db - pair / 2) ** 2 / (pair / 4)
    balanced = has_ad & (pair > 0)
    st.n_het += np.bincount(hc[balanced], minlength=n)
    st.ab_dispersion_sum += np.bincount(hc[balanced], weights=dispersion[balanced], minlength=n)
    # homozygous calls: reads of any other allele
    depth_a = np.take_along_axis(ad, np.maximum(a, 0)[:, :, None].astype(np.intp), axis=2)
    depth_a = depth_a[:, :, 0]
    hom = ~missing & ~het & (depth_a >= 0)
    total = np.maximum(ad, 0).sum(axis=2, dtype=np.int32)
    st.stray_reads += np.where(hom, total - depth_a, 0).sum(axis=0)
    st.hom_depth += np.where(hom, total, 0).sum(axis=0)
    st.haploid_calls += (haploid & ~missing).sum(axis=0)
    st.called += (~missing).sum(axis=0)
    fail = ~missing & ((gq < gf.min_gq) | (dp < gf.min_dp))
    bad_ab = has_ad & ~((ab >= gf.min_ab) & (ab <= gf.max_ab))
    fail[hr[bad_ab], hc[bad_ab]] = True
    calls.n_filtered += int(fail.sum())
    missing |= fail
    # split: one output row per alternate allele k of each record
    n_out = n_alleles - 1
    rec = np.repeat(np.arange(len(block)), n_out)
    k = np.arange(len(rec)) - np.repeat(np.cumsum(n_out) - n_out, n_out) + 1
    kk = k[:, None]
    dosage = ((a[rec] == kk).astype(np.int8) + (b[rec] == kk).astype(np.int8)).astype(np.int8)
    dosage[missing[rec]] = MISSING
    calls.n_multiallelic += int((n_alleles > 2).sum())
    pos = np.repeat(np.array(block.pos, dtype=np.int64), n_out)
    ref = np.repeat(np.array(block.ref, dtype=object), n_out)
    alt = np.array([x for alts in block.alts for x in alts], dtype=object)
    return [pos, ref, alt, dosage]


def read_vcf(
    path: Path,
    *,
    samples: list[str] | None = None,
    genotype_filter: GenotypeFilter | None = None,
    label: str | None = None,
    block_records: int = BLOCK_RECORDS,
) -> VcfCalls:
    """Read a bgzipped VCF into filtered, biallelic int8 genotypes.

    Parameters
    ----------
    path
        The VCF (one contig per file).
    samples
        Samples to keep, in output order; each must be in the VCF header (default: all).
    genotype_filter
        Genotype filters (default :class:`GenotypeFilter`).
    label
        Name of the file in problems (default: the path).
    block_records
        Records per vectorised block.

    Returns
    -------
    VcfCalls
        Sorted biallelic records with dosages, per-sample raw read statistics and a list of
        problems; a bad record is skipped and reported with its line and field.

    Notes
    -----
    1. Each record is checked: contig declared and single per file, position inside the
       contig and sorted, REF/ALT plain DNA alleles, GT allele indexes below the number of
       alleles, FORMAT AD/DP/GQ of the right shape when present.
    2. Raw statistics per sample, before filters: heterozygote count, the summed
       allele-balance dispersion ``(AD[b] - n/2)^2 / (n/4)`` over heterozygotes
       (``n = AD[a] + AD[b]``; about 1 per het for a clean sample at any depth), and stray
       reads (reads of other alleles) in homozygous calls; both rise with contamination.
    3. A call is set to missing when GQ < ``min_gq``, DP < ``min_dp``, or for a
       heterozygote a/b when ``AD[b] / (AD[a] + AD[b])`` is outside
       [``min_ab``, ``max_ab``]; the balance is taken on the record's own alleles,
       before splitting. A filter whose FORMAT field is absent (or '.') is not applied;
       DP falls back to the sum of AD. A line htslib cannot parse is a problem of field
       ``record``; reading goes on with the next line.
    4. A record with alleles 0..m becomes m biallelic records; in the record for allele k,
       the other alternate alleles count as reference (as ``bcftools norm -m-any``).
    """
    gf = genotype_filter or GenotypeFilter()
    name = label or str(path)
    vcf = VCF(str(path), lazy=True, threads=1)
    header_samples = list(vcf.samples)
    keep_ids = header_samples if samples is None else list(samples)
    index = {s: i for i, s in enumerate(header_samples)}
    keep = np.array([index[s] for s in keep_ids], dtype=np.int64)
    try:
        lengths = dict(zip(vcf.seqnames, vcf.seqlens, strict=True))
    except AttributeError:
        lengths = dict.fromkeys(vcf.seqnames, 0)
    header_lines = header_line_count(Path(path))
    n = len(keep_ids)
    calls = VcfCalls(
        path=name,
        chrom="",
        sample_ids=keep_ids,
        pos=np.zeros(0, np.int64),
        ref=np.zeros(0, object),
        alt=np.zeros(0, object),
        genotypes=np.zeros((0, n), np.int8),
        stats=SampleReadStats.zeros(n),
    )
    parts: list[list[np.ndarray]] = []
    block = _Block()
    last = 0
    chrom: str | None = None
    n_header = len(header_samples)
    records = iter(vcf)
    line = header_lines
    while True:
        line += 1
        try:
            record = next(records)
        except StopIteration:
            break
        except Exception as exc:  # htslib rejects the line; report it and read on
            calls.n_records += 1
            calls.problems.append(Problem(name, line, "record", f"unreadable: {exc}"))
            continue
        calls.n_records += 1
        problem = _check(record, lengths, chrom, last)
        if problem is None:
            gt, fields, problem = _decode(record, n_header)
        if problem is not None:
            calls.problems.append(Problem(name, line, *problem))
            continue
        chrom, last = record.CHROM, record.POS
        ad, dp, gq = fields["AD"], fields["DP"], fields["GQ"]
        if dp is None and ad is not None:
            dp = np.clip(ad, 0, None).sum(axis=1, keepdims=True)
        block.gt.append(gt)
        block.ad.append(ad[keep] if ad is not None else None)
        block.dp.append(dp[keep] if dp is not None else None)
        block.gq.append(gq[keep] if gq is not None else None)
        block.pos.append(record.POS)
        block.ref.append(record.REF)
        block.alts.append(list(record.ALT))
        if len(block) >= block_records:
            parts.append(_process(block, keep, gf, calls))
            block = _Block()
    if len(block):
        parts.append(_process(block, keep, gf, calls))
    vcf.close()
    calls.chrom = chrom or ""
    if parts:
        calls.pos = np.concatenate([p[0] for p in parts])
        calls.ref = np.concatenate([p[1] for p in parts])
        calls.alt = np.concatenate([p[2] for p in parts])
        calls.genotypes = np.concatenate([p[3] for p in parts])
    return calls
