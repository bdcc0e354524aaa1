"""Exports of the cohort store for other tools: bgzipped VCF and PLINK 1 binary (bed/bim/fam).

Both are written block by block over the store's pgen files, one file set per contig.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pysam

from opencohort.config import Home
from opencohort.errors import ConfigError, NotFound
from opencohort.genomics import _columns as c
from opencohort.genomics import _store
from opencohort.genomics._qc_kernels import chrx_nonpar

FORMATS = ("vcf", "bed")
EXPORT_DIR = "genomics/exports"
Progress = Callable[[str, float], None]
_BED_MAGIC = bytes([0x6C, 0x1B, 0x01])
#: PLINK 1 two-bit codes by ALT dosage 0, 1, 2 and missing (A1 = ALT, A2 = REF).
_BED_CODE = {0: 0b11, 1: 0b10, 2: 0b00, -9: 0b01}
_DIPLOID_GT = np.array(["0/0", "0/1", "1/1", "./."], dtype=object)
_HAPLOID_GT = np.array(["0", ".", "1", "."], dtype=object)


def _haploid(samples: pd.DataFrame, contig: str) -> np.ndarray:
    return samples[c.HAPLOID_CONTIGS].map(lambda v: contig in str(v).split(",")).to_numpy(bool)


def _gt_index(g: np.ndarray) -> np.ndarray:
    """Dosage (0, 1, 2, -9 missing) as an index 0..3 into the genotype string tables."""
    return np.where(g < 0, 3, g).astype(np.intp)


def write_vcf(root: Path, contig: str, path: Path) -> Path:
    """Write one contig of the store as a bgzipped, tabix-indexed VCFv4.2 (GT only).

    Samples called haploid on the contig get one-allele GTs outside the chrX
    pseudo-autosomal regions (a stored 2 is ``1``), as the genome centres delivered them.
    """
    samples = _store.read_samples(root).reset_index(drop=True)
    pvar = _store.read_pvar(root / f"{contig}.pvar")
    haploid = _haploid(samples, contig)
    hemi = chrx_nonpar(pvar[c.POS].to_numpy()) if contig in ("chrX", "X") else None
    plain = path.with_suffix("")
    header = ["##fileformat=VCFv4.2", f"##contig=<ID={contig}>",
              '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
              "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t"
              + "\t".join(samples[c.SAMPLE_ID])]  # fmt: skip
    with plain.open("w") as out:
        out.write("\n".join(header) + "\n")
        for start, g in _store.iter_blocks(root / f"{contig}.pgen"):
            index = _gt_index(g)
            text = _DIPLOID_GT[index]
            if haploid.any():
                one = haploid[None, :] & (
                    True if hemi is None else hemi[start : start + len(g), None]
                )
                text = np.where(one, _HAPLOID_GT[index], text)
            rows = pvar.iloc[start : start + len(g)]
            for (pos, vid, ref, alt), calls in zip(
                rows[[c.POS, c.VARIANT_ID, c.REF, c.ALT]].itertuples(index=False), text,
                strict=True,
            ):  # fmt: skip
                out.write(f"{contig}\t{pos}\t{vid}\t{ref}\t{alt}\t.\t.\t.\tGT\t"
                          + "\t".join(calls) + "\n")  # fmt: skip
    pysam.tabix_compress(str(plain), str(path), force=True)
    plain.unlink()
    pysam.tabix_index(str(path), preset="vcf", force=True)
    return path


def write_bed(root: Path, contig: str, prefix: Path) -> Path:
    """Write one contig of the store as PLINK 1 ``prefix.bed/.bim/.fam`` (variant-major).

    A1 is the ALT allele and A2 the REF allele; FID is 0 and sex follows sex at birth.
    """
    samples = _store.read_samples(root).reset_index(drop=True)
    pvar = _store.read_pvar(root / f"{contig}.pvar")
    n = len(samples)
    lut = np.zeros(256, dtype=np.uint8)
    for dosage, code in _BED_CODE.items():
        lut[dosage & 0xFF] = code
    with open(f"{prefix}.bed", "wb") as bed:
        bed.write(_BED_MAGIC)
        for _, g in _store.iter_blocks(root / f"{contig}.pgen"):
            codes = lut[g.view(np.uint8)]
            padded = np.zeros((len(g), -(-n // 4) * 4), dtype=np.uint8)
            padded[:, :n] = codes
            quads = padded.reshape(len(g), -1, 4)
            packed = (
                quads[:, :, 0] | quads[:, :, 1] << 2 | quads[:, :, 2] << 4 | quads[:, :, 3] << 6
            )
            bed.write(packed.astype(np.uint8).tobytes())
    bim = pd.DataFrame({"chrom": pvar[c.CHROM], "id": pvar[c.VARIANT_ID], "cm": 0,
                        "pos": pvar[c.POS], "a1": pvar[c.ALT], "a2": pvar[c.REF]})  # fmt: skip
    bim.to_csv(f"{prefix}.bim", sep="\t", header=False, index=False)
    sex = samples[c.SEX_AT_BIRTH].map({"male": 1, "female": 2}).fillna(0).astype(int)
    fam = pd.DataFrame({"fid": 0, "iid": samples[c.SAMPLE_ID], "father": 0, "mother": 0,
                        "sex": sex, "phenotype": -9})  # fmt: skip
    fam.to_csv(f"{prefix}.fam", sep=" ", header=False, index=False)
    return Path(f"{prefix}.bed")


def export_store(
    home: Home, fmt: str, *, out: Path | None = None, progress: Progress | None = None
) -> list[Path]:
    """Export the home's genotype store, one file set per contig; return the written files.

    Parameters
    ----------
    home
        The program home.
    fmt
        ``vcf`` (``<contig>.vcf.gz`` + ``.tbi``) or ``bed`` (``<contig>.bed/.bim/.fam``).
    out
        Output folder (default ``<home>/genomics/exports/<fmt>``).
    progress
        Called with a label and the fraction of contigs done.

    Raises
    ------
    ConfigError
        If `fmt` is not one of :data:`FORMATS` (before anything is written).
    NotFound
        If the home has no genotype store.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"export_store: fmt must be one of {', '.join(FORMATS)}, not {fmt!r}")
    root = _store.store_dir(home)
    if _store.read_samples(root).empty:
        raise NotFound(f"no genotype store in {root}; run 'opencohort genomics ingest DIR' first")
    folder = Path(out) if out is not None else home.root / EXPORT_DIR / fmt
    folder.mkdir(parents=True, exist_ok=True)
    contigs = _store.store_contigs(root)
    written = []
    for done, contig in enumerate(contigs):
        if fmt == "vcf":
            written.append(write_vcf(root, contig, folder / f"{contig}.vcf.gz"))
        else:
            written.append(write_bed(root, contig, folder / contig))
        if progress:
            progress(f"export {fmt}", (done + 1) / len(contigs))
    return written
