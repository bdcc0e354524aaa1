"""The cohort genotype store on disk: per-chromosome PLINK 2 files plus Parquet tables."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pgenlib

from opencohort.config import Home
from opencohort.genomics import _columns as c

STORE_DIR = "genomics/store"
VARIANTS_FILE = "variants.parquet"
SAMPLES_FILE = "samples.parquet"
READ_BLOCK = 4096
"""Variants read from a pgen at a time."""


def store_dir(home: Home) -> Path:
    """Directory of the cohort genotype store in a program home."""
    return home.root / STORE_DIR


def contig_key(name: str) -> tuple[int, str]:
    """Sort key putting chr1..chr22 in number order, then X, Y, M and the rest."""
    bare = re.sub(r"^chr", "", name)
    if bare.isdigit():
        return int(bare), ""
    return {"X": 23, "Y": 24, "M": 25, "MT": 25}.get(bare, 26), bare


def store_contigs(root: Path) -> list[str]:
    """Contigs that have a pgen in the store, in chromosome order."""
    return sorted((p.stem for p in root.glob("*.pgen")), key=contig_key)


def read_samples(root: Path) -> pd.DataFrame:
    """The store's sample table (empty when the store is new)."""
    path = root / SAMPLES_FILE
    return pd.read_parquet(path) if path.exists() else pd.DataFrame()


def read_variants(root: Path) -> pd.DataFrame:
    """The store's variant table (empty when the store is new)."""
    path = root / VARIANTS_FILE
    return pd.read_parquet(path) if path.exists() else pd.DataFrame(columns=list(c.VARIANT_COLUMNS))


def read_pvar(path: Path) -> pd.DataFrame:
    """CHROM, POS, ID, REF, ALT of a pvar as chrom, pos, variant_id, ref, alt."""
    with open(path) as handle:
        meta = 0
        while handle.readline().startswith("##"):
            meta += 1
    frame = pd.read_csv(
        path, sep="\t", skiprows=meta, dtype={"#CHROM": str, "ID": str, "REF": str, "ALT": str}
    )
    return frame.rename(
        columns={"#CHROM": c.CHROM, "POS": c.POS, "ID": c.VARIANT_ID, "REF": c.REF, "ALT": c.ALT}
    )


def write_plink(
    prefix: Path, genotypes: np.ndarray, variants: pd.DataFrame, samples: pd.DataFrame
) -> None:
    """Write ``prefix.pgen/.pvar/.psam`` from (variants, samples) int8 dosages.

    ``samples`` needs sample_id and sex_at_birth (male -> SEX 1, female -> 2, else NA).
    """
    n_var, n_samples = genotypes.shape
    writer = pgenlib.PgenWriter(
        str(prefix.with_suffix(".pgen")).encode(), n_samples, variant_ct=n_var, nonref_flags=False
    )
    for start in range(0, n_var, READ_BLOCK):
        writer.append_biallelic_batch(np.ascontiguousarray(genotypes[start : start + READ_BLOCK]))
    writer.close()
    pvar = pd.DataFrame(
        {
            "#CHROM": variants[c.CHROM].to_numpy(),
            "POS": variants[c.POS].to_numpy(),
            "ID": variants[c.VARIANT_ID].to_numpy(),
            "REF": variants[c.REF].to_numpy(),
            "ALT": variants[c.ALT].to_numpy(),
        }
    )
    pvar.to_csv(prefix.with_suffix(".pvar"), sep="\t", index=False)
    sex = samples[c.SEX_AT_BIRTH].map({"male": "1", "female": "2"}).fillna("NA")
    psam = pd.DataFrame({"#IID": samples[c.SAMPLE_ID].to_numpy(), "SEX": sex.to_numpy()})
    psam.to_csv(prefix.with_suffix(".psam"), sep="\t", index=False)


def read_genotypes(pgen: Path, start: int = 0, stop: int | None = None) -> np.ndarray:
    """(variants, samples) int8 dosages of variants ``start:stop`` of a pgen (-9 missing)."""
    with pgenlib.PgenReader(str(pgen).encode()) as reader:
        stop = reader.get_variant_ct() if stop is None else stop
        out = np.empty((stop - start, reader.get_raw_sample_ct()), dtype=np.int8)
        if stop > start:
            reader.read_range(start, stop, out)
    return out


def read_rows(pgen: Path, rows: np.ndarray) -> np.ndarray:
    """(len(rows), samples) int8 dosages of the variants at sorted indexes ``rows``."""
    with pgenlib.PgenReader(str(pgen).encode()) as reader:
        out = np.empty((len(rows), reader.get_raw_sample_ct()), dtype=np.int8)
        if len(rows):
            reader.read_list(np.asarray(rows, dtype=np.uint32), out)
    return out


def iter_blocks(pgen: Path, block: int = READ_BLOCK) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (first variant index, (variants, samples) int8 block) over a pgen."""
    with pgenlib.PgenReader(str(pgen).encode()) as reader:
        n_var, n = reader.get_variant_ct(), reader.get_raw_sample_ct()
        for start in range(0, n_var, block):
            stop = min(n_var, start + block)
            out = np.empty((stop - start, n), dtype=np.int8)
            reader.read_range(start, stop, out)
            yield start, out
