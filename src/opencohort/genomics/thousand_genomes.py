"""Real 1000 Genomes genotypes with super-population labels, as shipped by ``peddy`` (MIT).

peddy 0.4.8 ships ``GRCH38.sites`` (23,770 ``chrom:pos:ref:alt`` lines), ``GRCH38.sites.bin.gz``
(a gzipped uint8 matrix of those sites x the 2,504 phase-3 samples, alternate allele counts)
and the samples' super-population codes as a ``|``-joined string in ``peddy/pca.py``. They
are read as data: peddy's code never runs (its PCA fails on numpy 2). Sample ids are not
shipped, so samples are named ``1kg_0000`` .. ``1kg_2503`` in file order.
"""

from __future__ import annotations

import gzip
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from opencohort.errors import ConfigError, InputError
from opencohort.genomics import _columns as c
from opencohort.genomics import _store
from opencohort.genomics.ancestry import AncestryConfig, ReferencePanel, select_sites

N_SAMPLES = 2504
SUPERPOPULATIONS = ("afr", "amr", "eas", "eur", "sas")
"""peddy's label codes 0..4, in order (its ``ipops``)."""
_LABELS = re.compile(r'^_str = "([0-4|]+)"', re.MULTILINE)


@dataclass(frozen=True)
class ThousandGenomes:
    """All shipped sites (variant_id, chrom, pos, ref, alt), their (sites, 2,504) int8
    genotypes, sample ids and super-population labels."""

    variants: pd.DataFrame
    genotypes: np.ndarray
    sample_ids: np.ndarray
    labels: np.ndarray


def _peddy_dir() -> Path:
    spec = importlib.util.find_spec("peddy")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "1000 Genomes panel: the peddy package is not installed (pip install peddy==0.4.8)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def read_thousand_genomes(build: str = "GRCh38") -> ThousandGenomes:
    """Read peddy's 1000 Genomes sites, genotypes and labels.

    Parameters
    ----------
    build
        ``GRCh38`` (contigs named ``chr1``.., as the store) or ``GRCh37`` (``1``..).

    Raises
    ------
    ConfigError
        If peddy is not installed or the build is unknown.
    InputError
        If a file does not have the expected shape (names the file).
    """
    if build not in ("GRCh37", "GRCh38"):
        raise ConfigError(f"read_thousand_genomes: build={build!r}; expected GRCh37 or GRCh38")
    root = _peddy_dir()
    sites_path = root / f"{build.upper()}.sites"
    sites = pd.read_csv(sites_path, sep=":", header=None, names=[c.CHROM, c.POS, c.REF, c.ALT],
                        dtype={c.CHROM: str, c.POS: np.int64, c.REF: str, c.ALT: str})  # fmt: skip
    if build == "GRCh38":
        sites[c.CHROM] = "chr" + sites[c.CHROM]
    sites.insert(0, c.VARIANT_ID, sites[c.CHROM] + ":" + sites[c.POS].astype(str) + ":"
                 + sites[c.REF] + ":" + sites[c.ALT])  # fmt: skip
    matrix_path = sites_path.with_name(sites_path.name + ".bin.gz")
    with gzip.open(matrix_path, "rb") as handle:
        raw = np.frombuffer(handle.read(), dtype=np.uint8)
    if raw.size != len(sites) * N_SAMPLES or raw.max(initial=0) > 2:
        raise InputError(
            f"{matrix_path}, line 1, field genotypes: {raw.size} values; expected "
            f"{len(sites)} sites x {N_SAMPLES} samples of 0, 1 or 2"
        )
    found = _LABELS.search((root / "pca.py").read_text())
    codes = np.array(found.group(1).split("|"), dtype=int) if found else np.zeros(0, int)
    if len(codes) != N_SAMPLES:
        raise InputError(
            f"{root / 'pca.py'}, line 1, field _str: {len(codes)} labels; expected {N_SAMPLES}"
        )
    return ThousandGenomes(
        variants=sites,
        genotypes=raw.reshape(len(sites), N_SAMPLES).astype(np.int8),
        sample_ids=np.array([f"1kg_{k:04d}" for k in range(N_SAMPLES)]),
        labels=np.array(SUPERPOPULATIONS)[codes],
    )


def thousand_genomes_panel(
    data: ThousandGenomes,
    *,
    samples: np.ndarray | None = None,
    wanted: set[str] | None = None,
    config: AncestryConfig | None = None,
) -> ReferencePanel:
    """A reference panel of 1000 Genomes samples: high-quality, LD-pruned autosomal SNPs.

    Parameters
    ----------
    data
        From :func:`read_thousand_genomes`.
    samples
        Indexes of the samples to use (e.g. a training split); default all 2,504.
    wanted
        Variant ids that may be used, e.g. a cohort store's.
    config
        Site thresholds (default :class:`AncestryConfig`).

    Notes
    -----
    Sites are chosen per autosome by :func:`~opencohort.genomics.ancestry.select_sites` on
    the chosen samples only, exactly as for a VCF panel.
    """
    columns = np.arange(N_SAMPLES) if samples is None else np.asarray(samples)
    frames, blocks = [], []
    variants = data.variants
    snp = (variants[c.REF].str.len() == 1) & (variants[c.ALT].str.len() == 1)
    autosomes = sorted(
        (k for k in variants[c.CHROM].unique() if k.removeprefix("chr").isdigit()),
        key=_store.contig_key,
    )
    for chrom in autosomes:
        rows = np.flatnonzero((variants[c.CHROM] == chrom).to_numpy() & snp.to_numpy())
        sub = variants.iloc[rows]
        order = np.argsort(sub[c.POS].to_numpy(), kind="stable")
        rows, sub = rows[order], sub.iloc[order]
        frame, block = select_sites(
            chrom, sub[c.POS].to_numpy(), sub[c.REF].to_numpy(), sub[c.ALT].to_numpy(),
            data.genotypes[np.ix_(rows, columns)], wanted=wanted, config=config,
        )  # fmt: skip
        frames.append(frame)
        blocks.append(block)
    return ReferencePanel(
        variants=pd.concat(frames, ignore_index=True),
        genotypes=np.concatenate(blocks),
        sample_ids=data.sample_ids[columns].tolist(),
        labels=data.labels[columns],
    )
