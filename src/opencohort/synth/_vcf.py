"""Fast VCF text: per-genotype cells from lookup tables, bgzip compression, tabix indexes.

A genotype cell (``\\t0/1:14,15:29:84``) is fully decided by the genotype code, the depth
and one read count, so every possible cell is formatted once into a table and a chunk of
records becomes one ``pyarrow`` ``take`` over cell ids, which concatenates the chosen byte
strings in C.
"""

from __future__ import annotations

import shutil
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pysam

from opencohort.synth._mosaic import HAPLOID, MISSING_DIPLOID, N_CODES

MAX_DP = 99
_NDP = MAX_DP + 1
_PER_NAL = N_CODES * _NDP * _NDP
POOL_BITS = 12
POOL = 1 << POOL_BITS
HOM_ERROR = 0.01
"""Per-read error rate behind the stray reads of homozygous calls."""
TIERS: tuple[tuple[float, float, float], ...] = (
    (18.0, 0.05, 0.020),
    (26.0, 0.25, 0.008),
    (32.0, 0.45, 0.005),
    (38.0, 0.25, 0.004),
)
"""Sample coverage tiers: (mean depth, share of samples, share of missing calls)."""
TIER_MEAN = np.array([t[0] for t in TIERS])
TIER_SHARE = np.array([t[1] for t in TIERS])
TIER_MISSING = np.array([t[2] for t in TIERS])
FORMAT = "GT:AD:DP:GQ"
TAKE_GENOTYPES = 32_768
"""Cells per pyarrow ``take``: small blocks reuse memory and avoid fresh-page faults."""
BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
"""The empty block that ends every BGZF file."""


_CODE_ALLELES: tuple[tuple[int, int] | None, ...] = (
    *((a, b) for b in range(4) for a in range(b + 1)),
    *((a, a) for a in range(4)),
    None,
    None,
)


def code_alleles(code: int) -> tuple[int, int] | None:
    """Alleles (a, b) of a genotype code, (a, a) for haploid; None for missing."""
    return _CODE_ALLELES[code]


def cell_id(n_alleles: np.ndarray, code: np.ndarray, dp: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Cell ids for explicit depths.

    ``x`` is the read count of the second allele of a heterozygote, or the stray reads of a
    homozygous or haploid call (they go to allele 1, or to allele 0 for a non-reference call).
    Missing codes take ``dp = x = 0``.
    """
    code = np.asarray(code, dtype=np.int64)
    return ((n_alleles - 2) * _PER_NAL + (code * _NDP + dp) * _NDP + x).astype(np.int32)


def _gq(dp: int, x: int, het: bool) -> int:
    """Genotype quality: about 3 per supporting read, lowered by stray or minor reads."""
    raw = 6 * min(dp - x, x) if het else 3 * dp - 15 * x
    return max(0, min(99, raw))


def _cell(code: int, dp: int, x: int, n_alleles: int) -> tuple[bytes, int]:
    alleles = code_alleles(code)
    if alleles is None:
        return (b"\t./." if code == MISSING_DIPLOID else b"\t."), 0
    a, b = alleles
    depths = [0] * n_alleles
    het = a != b
    depths[a] = dp - x
    depths[b if het else (1 if a == 0 else 0)] += x
    gt = f"{a}" if code >= HAPLOID else f"{a}/{b}"
    gq = _gq(dp, x, het)
    return f"\t{gt}:{','.join(map(str, depths))}:{dp}:{gq}".encode(), gq


@lru_cache(maxsize=1)
def cell_table() -> tuple[pa.Array, np.ndarray]:
    """Every genotype cell for 2-4 alleles, as a binary array and its GQ values."""
    texts = [b""] * (3 * _PER_NAL)
    gqs = np.zeros(3 * _PER_NAL, dtype=np.uint8)
    for n_alleles in (2, 3, 4):
        base = (n_alleles - 2) * _PER_NAL
        for code in range(N_CODES):
            alleles = code_alleles(code)
            if alleles is None:
                texts[base + code * _NDP * _NDP] = _cell(code, 0, 0, n_alleles)[0]
                continue
            if max(alleles) >= n_alleles:
                continue
            for dp in range(_NDP):
                for x in range(dp + 1):
                    i = base + (code * _NDP + dp) * _NDP + x
                    texts[i], gqs[i] = _cell(code, dp, x, n_alleles)
    return pa.array(texts, type=pa.binary()), gqs


@lru_cache(maxsize=4)
def cell_pools(seed: int) -> dict[int, np.ndarray]:
    """Pools of cell ids drawn from the depth model, per allele count, tier and code.

    Returns
    -------
    dict
        ``n_alleles -> (n_tiers * 16 * POOL,)`` int32; entry
        ``(tier * 16 + code) * POOL + r`` is a random cell for that tier and code.

    Notes
    -----
    Depth is Poisson around the tier mean, clipped to 2..99. A heterozygote's second
    allele gets Binomial(DP, 1/2) reads; a homozygous or haploid call has Binomial(DP, 0.01)
    stray reads. Looking up a pool with 12 random bits costs far less than drawing
    Poisson and binomial variates for every genotype.
    """
    rng = np.random.default_rng([seed, 0x5C11])
    pools = {}
    for n_alleles in (2, 3, 4):
        pool = np.zeros((len(TIERS), N_CODES, POOL), dtype=np.int32)
        for t, mean in enumerate(TIER_MEAN):
            for code in range(N_CODES):
                alleles = code_alleles(code)
                if alleles is None or max(alleles) >= n_alleles:
                    missing = code if alleles is None else MISSING_DIPLOID
                    pool[t, code] = cell_id(np.int32(n_alleles), np.int32(missing), 0, 0)
                    continue
                dp = np.clip(rng.poisson(mean, POOL), 2, MAX_DP)
                x = rng.binomial(dp, 0.5 if alleles[0] != alleles[1] else HOM_ERROR)
                pool[t, code] = cell_id(np.int32(n_alleles), np.int32(code), dp, x)
        pools[n_alleles] = pool.ravel()
    return pools


def records_text(prefixes: list[bytes], ids: np.ndarray) -> tuple[bytes, np.ndarray]:
    """VCF records from row prefixes (CHROM..FORMAT) and a (rows, samples) cell-id matrix.

    Returns the text and the byte length of each record.
    """
    if not prefixes:
        return b"", np.zeros(0, dtype=np.int64)
    table, _ = cell_table()
    n_rows, n_samples = ids.shape
    parts: list[bytes | memoryview] = []
    cells = np.zeros(n_rows, dtype=np.int64)
    step = max(1, TAKE_GENOTYPES // max(n_samples, 1))
    for first in range(0, n_rows, step):
        block = ids[first : first + step]
        taken = table.take(pa.array(block.ravel(), type=pa.int32()))
        offsets = np.frombuffer(taken.buffers()[1], dtype=np.int32)[taken.offset :]
        bounds = offsets[::n_samples][: len(block) + 1].astype(np.int64)
        data = memoryview(taken.buffers()[2])
        for r in range(len(block)):
            parts += [prefixes[first + r], data[bounds[r] : bounds[r + 1]], b"\n"]
        cells[first : first + len(block)] = np.diff(bounds)
    lengths = cells + np.fromiter(map(len, prefixes), np.int64, n_rows) + 1
    return b"".join(parts), lengths


def header(sample_ids: list[str], contigs: dict[str, int], extra: tuple[str, ...]) -> bytes:
    """VCFv4.2 header with GRCh38 contigs, INFO AC/AN and FORMAT GT:AD:DP:GQ."""
    lines = [
        "##fileformat=VCFv4.2",
        '##FILTER=<ID=PASS,Description="All filters passed">',
        "##reference=GRCh38",
        *(
            f"##contig=<ID={name},length={length},assembly=GRCh38>"
            for name, length in contigs.items()
        ),
        '##INFO=<ID=AC,Number=A,Type=Integer,Description="Allele count in called genotypes, '
        'per ALT allele">',
        '##INFO=<ID=AN,Number=1,Type=Integer,Description="Number of alleles in called genotypes">',
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        '##FORMAT=<ID=AD,Number=R,Type=Integer,Description="Allelic depths for the REF and ALT '
        'alleles, in the order listed">',
        '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Read depth">',
        '##FORMAT=<ID=GQ,Number=1,Type=Integer,Description="Genotype quality">',
        *extra,
        "\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT"])
        + "".join("\t" + s for s in sample_ids),
    ]
    return ("\n".join(lines) + "\n").encode()


class BgzipWriter:
    """Write a bgzipped VCF and its tabix index.

    Compression runs in a ``bgzip`` process beside Python, which also reports its block
    offsets (``.gzi``); with the byte offset of every record that gives the tabix index
    without reading the file back. Without the ``bgzip`` program, pysam compresses in
    process and indexes afterwards.
    """

    def __init__(self, path: Path, chrom: str, level: int = 1) -> None:
        self.path, self.chrom = path, chrom
        self._gzi = path.with_name(path.name + ".gzi")
        self._proc: subprocess.Popen[bytes] | None = None
        self._out: BinaryIO | None = None
        self._written = 0
        self._pos: list[np.ndarray] = []
        self._starts: list[np.ndarray] = []
        self._lengths: list[np.ndarray] = []
        program = shutil.which("bgzip")
        if program:
            self._out = open(path, "wb")  # noqa: SIM115 - closed in close()
            self._proc = subprocess.Popen(
                [program, "-c", "-l", str(level), "-i", "-I", str(self._gzi)],
                stdin=subprocess.PIPE,
                stdout=self._out,
            )
            self._sink = self._proc.stdin
        else:
            self._sink = pysam.libcbgzf.BGZFile(str(path), f"wb{level}")

    def write(self, data: bytes) -> None:
        """Append bytes that hold no records (the header)."""
        self._sink.write(data)
        self._written += len(data)

    def write_records(self, data: bytes, positions: np.ndarray, lengths: np.ndarray) -> None:
        """Append records at 1-based ``positions`` whose texts have ``lengths`` bytes."""
        if not len(lengths):
            return
        self._pos.append(np.asarray(positions, dtype=np.int64))
        self._starts.append(self._written + np.concatenate([[0], np.cumsum(lengths)[:-1]]))
        self._lengths.append(lengths)
        self.write(data)

    def close(self) -> None:
        """Finish compression."""
        self._sink.close()
        if self._proc is not None:
            code = self._proc.wait()
            self._out.close()
            if code != 0:
                raise RuntimeError(f"bgzip exited with code {code} writing {self.path}")

    def index(self) -> None:
        """Write ``path.tbi`` (after :meth:`close`)."""
        if self._proc is None:
            pysam.tabix_index(str(self.path), preset="vcf", force=True)
            return
        raw = np.fromfile(self._gzi, dtype="<u8")
        self._gzi.unlink()
        eof = [[self.path.stat().st_size - len(BGZF_EOF), self._written]]
        blocks = np.concatenate([[[0, 0]], raw[1:].reshape(-1, 2), eof]).astype(np.int64)
        empty = np.zeros(0, dtype=np.int64)
        pos = np.concatenate(self._pos) if self._pos else empty
        starts = np.concatenate(self._starts) if self._starts else empty
        ends = starts + (np.concatenate(self._lengths) if self._lengths else empty)
        tbi = self.path.with_name(self.path.name + ".tbi")
        write_tbi(tbi, self.chrom, pos, starts, ends, blocks)


def _voffset(offsets: np.ndarray, blocks: np.ndarray) -> np.ndarray:
    """BGZF virtual offsets of uncompressed offsets, given each block's two start offsets."""
    i = np.searchsorted(blocks[:, 1], offsets, side="right") - 1
    return (blocks[i, 0].astype(np.uint64) << np.uint64(16)) | (offsets - blocks[i, 1]).astype(
        np.uint64
    )


def write_tbi(
    path: Path,
    chrom: str,
    positions: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    blocks: np.ndarray,
) -> None:
    """Write a tabix index for single-base records of one chromosome.

    Parameters
    ----------
    path
        Output ``.tbi`` path.
    chrom
        The chromosome of every record.
    positions
        1-based sorted record positions.
    starts, ends
        Uncompressed byte offsets where each record starts and ends.
    blocks
        (n, 2) compressed and uncompressed start offsets of every BGZF block.

    Notes
    -----
    Layout from the SAM/tabix specification: VCF preset (format 2, columns 1/2/0, meta
    ``#``); each record of length 1 falls in the level-5 bin ``4681 + (beg >> 14)``; one
    chunk per bin (records are sorted); a linear index of 16 kb windows, empty windows
    taking the previous window's offset; htslib's pseudo-bin 37450 holding the file's
    record span and the count of records; and the count of records without coordinates.
    """
    out = [np.array([*b"TBI\x01"], dtype=np.uint8).tobytes()]
    if not len(positions):
        out.append(np.array([0, 2, 1, 2, 0, ord("#"), 0, 0], dtype="<i4").tobytes())
    else:
        name = chrom.encode() + b"\0"
        out.append(np.array([1, 2, 1, 2, 0, ord("#"), 0, len(name)], dtype="<i4").tobytes())
        out.append(name)
        beg = positions - 1
        vs, ve = _voffset(starts, blocks), _voffset(ends, blocks)
        window = beg >> 14
        bins, first = np.unique(4681 + window, return_index=True)
        last = np.concatenate([first[1:], [len(beg)]]) - 1
        out.append(np.array([len(bins) + 1], dtype="<i4").tobytes())
        for b, f, la in zip(bins, first, last, strict=True):
            out.append(np.array([b, 1], dtype="<u4").tobytes())
            out.append(np.array([vs[f], ve[la]], dtype="<u8").tobytes())
        out.append(np.array([37450, 2], dtype="<u4").tobytes())
        out.append(np.array([vs[0], ve[-1], len(beg), 0], dtype="<u8").tobytes())
        n_intv = int(window[-1]) + 1
        ioff = np.zeros(n_intv, dtype=np.uint64)
        seen = np.zeros(n_intv, dtype=bool)
        w_unique, w_first = np.unique(window, return_index=True)
        ioff[w_unique], seen[w_unique] = vs[w_first], True
        filled = np.maximum.accumulate(np.where(seen, np.arange(n_intv), -1))
        ioff = np.where(filled >= 0, ioff[np.maximum(filled, 0)], vs[0])
        out.append(np.array([n_intv], dtype="<i4").tobytes())
        out.append(ioff.astype("<u8").tobytes())
    out.append(np.zeros(1, dtype="<u8").tobytes())  # records without coordinates
    with pysam.libcbgzf.BGZFile(str(path), "wb") as handle:
        handle.write(b"".join(out))
