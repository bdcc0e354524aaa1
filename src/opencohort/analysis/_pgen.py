"""Read PLINK 2 filesets (pgen/pvar/psam) in variant blocks, straight from the pgen via pgenlib."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pgenlib

from opencohort.errors import InputError

BLOCK_SIZE = 2048
"""Default number of variants decoded per block."""
MISSING_CODE = -9.0
"""The dosage pgenlib writes for a missing genotype."""


def _skip_meta(path: Path) -> int:
    """Number of leading '##' lines in a pvar or psam file."""
    n = 0
    with open(path) as handle:
        for line in handle:
            if not line.startswith("##"):
                break
            n += 1
    return n


def read_psam(path: Path) -> pd.DataFrame:
    """Samples of a psam (or PLINK 1 fam) as a frame with IID first, in file order."""
    path = Path(path)
    if path.suffix == ".fam":
        fam = pd.read_csv(path, sep=r"\s+", header=None, dtype=str)
        return pd.DataFrame({"IID": fam[1], "FID": fam[0], "SEX": fam[4]})
    frame = pd.read_csv(path, sep="\t", skiprows=_skip_meta(path), dtype=str)
    frame = frame.rename(columns={"#IID": "IID", "#FID": "FID"})
    if "IID" not in frame.columns:
        raise InputError("no IID column; expected a psam header like '#IID SEX'", file=str(path))
    return frame


def read_pvar(path: Path) -> pd.DataFrame:
    """Variants of a pvar as CHROM, POS, ID, REF, ALT (plink2 names), in file order."""
    path = Path(path)
    frame = pd.read_csv(
        path,
        sep="\t",
        skiprows=_skip_meta(path),
        usecols=["#CHROM", "POS", "ID", "REF", "ALT"],
        dtype={"#CHROM": str, "ID": str, "REF": str, "ALT": str, "POS": np.int64},
    )
    return frame.rename(columns={"#CHROM": "CHROM"})


@dataclass(frozen=True)
class PFile:
    """A PLINK 2 fileset: the pgen path plus its variant and sample tables."""

    pgen: Path
    variants: pd.DataFrame
    samples: pd.DataFrame

    @classmethod
    def open(cls, prefix: str | Path) -> PFile:
        """Read the pvar and psam beside ``prefix.pgen``."""
        prefix = str(prefix)
        pgen = Path(prefix + ".pgen")
        for suffix in (".pgen", ".pvar", ".psam"):
            if not Path(prefix + suffix).exists():
                raise InputError(f"missing {prefix + suffix}; expected a PLINK 2 fileset prefix")
        return cls(pgen, read_pvar(Path(prefix + ".pvar")), read_psam(Path(prefix + ".psam")))


def iter_raw_blocks(
    pfile: PFile,
    *,
    sample_index: np.ndarray | None = None,
    block_size: int = BLOCK_SIZE,
    start: int = 0,
    stop: int | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Like :func:`iter_dosage_blocks`, but missing genotypes are left as :data:`MISSING_CODE`."""
    n_raw = len(pfile.samples)
    stop = len(pfile.variants) if stop is None else stop
    subset = None
    if sample_index is not None:
        subset = np.ascontiguousarray(sample_index, dtype=np.uint32)
        if subset.size and np.any(np.diff(subset.astype(np.int64)) <= 0):
            raise InputError("iter_dosage_blocks: sample_index must be strictly increasing")
    n = n_raw if subset is None else subset.size
    reader = pgenlib.PgenReader(bytes(pfile.pgen), raw_sample_ct=n_raw, sample_subset=subset)
    try:
        for first in range(start, stop, block_size):
            last = min(first + block_size, stop)
            block = np.empty((last - first, n), dtype=np.float32)
            reader.read_dosages_range(first, last, block)
            yield first, block
    finally:
        reader.close()


def iter_dosage_blocks(
    pfile: PFile,
    *,
    sample_index: np.ndarray | None = None,
    block_size: int = BLOCK_SIZE,
    start: int = 0,
    stop: int | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (first variant index, ALT dosage block) for variants ``start..stop``.

    Parameters
    ----------
    pfile
        The fileset to read.
    sample_index
        Increasing 0-based psam row numbers to keep; None keeps every sample.
    block_size
        Variants per block.
    start, stop
        Variant index range (stop defaults to the variant count).

    Yields
    ------
    tuple of int and numpy.ndarray
        The block's first variant index and a fresh float32 array (variants x samples) of
        ALT-allele dosages in [0, 2], NaN where the genotype is missing.
    """
    blocks = iter_raw_blocks(
        pfile, sample_index=sample_index, block_size=block_size, start=start, stop=stop
    )
    for first, block in blocks:
        block[block < 0] = np.nan
        yield first, block
