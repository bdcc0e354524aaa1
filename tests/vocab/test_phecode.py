"""Phecode 1.2 and X maps and definitions."""

from __future__ import annotations

import pytest

from opencohort.errors import ConfigError
from opencohort.vocab import phecode_definitions, phecode_map


def test_phecode_map__e11_9_to_type2_diabetes():
    rows = phecode_map("1.2")
    hit = rows[(rows["icd_code"] == "E11.9") & (rows["vocabulary_id"] == "ICD10CM")]
    assert hit["phecode"].tolist() == ["250.2"]
    assert hit["phecode_string"].iloc[0] == "Type 2 diabetes"
    assert hit["sex"].iloc[0] == "Both"
    assert "250.1" in hit["exclude_phecodes"].iloc[0]


def test_phecode_map__rollup_adds_parents():
    rolled = phecode_map("1.2", rollup=True)
    assert set(rolled.loc[rolled["icd_code"] == "E11.9", "phecode"]) == {"250", "250.2"}
    x = phecode_map("X")
    assert x.loc[x["icd_code"] == "E11.9", "phecode"].tolist() == ["EM_202.2"]
    x_rolled = phecode_map("X", rollup=True)
    assert set(x_rolled.loc[x_rolled["icd_code"] == "E11.9", "phecode"]) == {"EM_202", "EM_202.2"}


def test_phecode_map__icd9_codes_have_dots_and_vocabulary():
    rows = phecode_map("1.2")
    icd9 = rows[rows["vocabulary_id"] == "ICD9CM"]
    assert set(icd9.loc[icd9["icd_code"] == "250.00", "phecode"]) == {"250.2"}
    assert set(rows["vocabulary_id"]) == {"ICD9CM", "ICD10CM"}
    assert not rows.duplicated(["icd_code", "vocabulary_id", "phecode"]).any()


def test_phecode_definitions__sex_restriction_and_exclusions():
    defs = phecode_definitions("1.2").set_index("phecode")
    assert defs.index.is_unique
    assert defs.loc["180.1", "sex"] == "Female"
    assert defs.loc["185", "sex"] == "Male"
    assert set(defs["sex"]) == {"Both", "Female", "Male"}
    excl = defs.loc["250.2", "exclude_phecodes"]
    assert isinstance(excl, tuple)
    assert {"249", "250", "250.1"} <= set(excl)
    assert all(code and "," not in code for code in excl)
    assert defs.loc["250.21", "parent_phecode"] == "250.2"
    assert defs.loc["250.2", "parent_phecode"] == "250"
    assert defs.loc["250", "parent_phecode"] is None


def test_phecode_definitions__x_has_hierarchy_and_no_exclusions():
    defs = phecode_definitions("X").set_index("phecode")
    assert defs.index.is_unique
    assert defs.loc["EM_202.2", "parent_phecode"] == "EM_202"
    assert defs.loc["EM_202.31", "parent_phecode"] == "EM_202.3"
    assert (defs["exclude_phecodes"].map(len) == 0).all()
    assert (defs["sex"] == "Female").sum() > 0


def test_phecode_map__bad_version():
    with pytest.raises(ConfigError, match="expected '1.2' or 'X'"):
        phecode_map("2.0")  # type: ignore[arg-type]
