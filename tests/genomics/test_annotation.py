"""Annotation: genes and region classes on hand-made intervals and on GENCODE, novelty, counts."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from opencohort.errors import InputError
from opencohort.genomics.annotation import (
    GeneModels,
    annotate_genes,
    annotate_novelty,
    gencode_models,
    read_known_variants,
    release_counts,
)

# 0-based half-open, as GENCODE-derived BED files are
MODELS = GeneModels(
    genes=pd.DataFrame({
        "contig": ["chr1", "chr1", "chr1", "chr3"],
        "start": [100, 150, 50, 10],
        "end": [200, 400, 1000, 20],
        "gene_name": ["GA", "GB", "GC", "GD"],
        "gene_id": ["ENSG1", "ENSG2", "ENSG3", "ENSG4"],
        "gene_type": ["protein_coding", "lncRNA", "protein_coding", "lncRNA"],
    }),
    exons=pd.DataFrame({"contig": ["chr1", "chr3"], "start": [120, 10], "end": [130, 20],
                        "gene_name": ["GA", "GD"]}),
)  # fmt: skip
# (chrom, 1-based pos) -> (gene, region class)
EXPECTED = {
    ("chr1", 100): ("GC", "intronic"),  # 0-based 99: before GA's first base
    ("chr1", 101): ("GA", "intronic"),  # GA's first base; the shorter coding gene wins
    ("chr1", 121): ("GA", "exonic"),
    ("chr1", 130): ("GA", "exonic"),  # the exon's last base
    ("chr1", 131): ("GA", "intronic"),
    ("chr1", 200): ("GA", "intronic"),  # GA's last base
    ("chr1", 201): ("GC", "intronic"),  # GB (lncRNA) too, but coding genes come first
    ("chr1", 1001): (None, "intergenic"),
    ("chr2", 150): (None, "intergenic"),
    ("chr3", 15): ("GD", "noncoding_gene"),  # exon of a non-coding gene is not exonic
}


def _variants(keys) -> pd.DataFrame:
    frame = pd.DataFrame(list(keys), columns=["chrom", "pos"])
    frame["ref"], frame["alt"] = "A", "G"
    frame.insert(0, "variant_id", frame["chrom"] + ":" + frame["pos"].astype(str) + ":A:G")
    return frame


def test_annotate_genes__hand_made_intervals():
    keys = list(EXPECTED)[::-1]  # unsorted input keeps its order
    out = annotate_genes(_variants(keys), MODELS)
    assert list(zip(out["chrom"], out["pos"], strict=True)) == keys
    got = {(r.chrom, r.pos): (None if pd.isna(r.variant_gene) else r.variant_gene,
                              r.variant_region_class) for r in out.itertuples()}  # fmt: skip
    assert got == EXPECTED
    assert out.loc[out["variant_gene"] == "GD", "variant_gene_type"].tolist() == ["lncRNA"]
    assert out.loc[out["variant_gene"] == "GA", "variant_gene_id"].unique().tolist() == ["ENSG1"]


def test_annotate_genes__empty_and_input_unchanged():
    variants = _variants([])
    out = annotate_genes(variants, MODELS)
    assert len(out) == 0 and "variant_region_class" in out
    assert "variant_region_class" not in variants


def test_gencode_models__pharmacogenes_where_gencode_has_them():
    out = annotate_genes(_variants([("chr1", 97_450_000), ("chr10", 94_800_000),
                                    ("chr6", 18_140_000)]), gencode_models())  # fmt: skip
    assert out["variant_gene"].tolist() == ["DPYD", "CYP2C19", "TPMT"]
    assert set(out["variant_gene_type"]) == {"protein_coding"}


def test_annotate_novelty__known_list(tmp_path: Path):
    variants = _variants([("chr1", 101), ("chr1", 121)])
    path = tmp_path / "known.csv"
    pd.DataFrame({"chrom": ["chr1"], "pos": [121], "ref": ["A"], "alt": ["G"]}).to_csv(path)
    known = read_known_variants(path)
    assert known == {"chr1:121:A:G"}
    assert annotate_novelty(variants, known)["variant_novel"].tolist() == [True, False]
    assert annotate_novelty(variants, None)["variant_novel"].isna().all()
    ids = tmp_path / "ids.tsv"
    ids.write_text("variant_id\nchr1:101:A:G\n")
    assert read_known_variants(ids) == {"chr1:101:A:G"}


def test_read_known_variants__bad_file_names_it(tmp_path: Path):
    bad = tmp_path / "bad.csv"
    bad.write_text("name\nx\n")
    with pytest.raises(InputError, match="bad.csv"):
        read_known_variants(bad)
    with pytest.raises(InputError, match="does not exist"):
        read_known_variants(tmp_path / "missing.csv")


def test_release_counts__from_annotated_table():
    out = annotate_novelty(annotate_genes(_variants(EXPECTED), MODELS), {"chr1:121:A:G"})
    counts = release_counts(out)
    assert counts["variants"] == 10 and counts["novel"] == 9
    assert counts["genic"] == 8 and counts["coding_gene_exonic"] == 2
    assert counts["region_intronic"] == 5 and counts["region_intergenic"] == 2
    assert release_counts(annotate_novelty(out, None))["novel"] is None
