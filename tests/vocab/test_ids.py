"""Local concept ids: range, determinism, independence from the module, collision check."""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from opencohort.vocab import ConceptIdCollision, local_concept_id
from opencohort.vocab._ids import check_unique_ids, local_concept_ids


def _independent(vocabulary_id: str, code: str) -> int:
    digest = hashlib.blake2b(f"{vocabulary_id}\x1f{code}".encode(), digest_size=8).digest()
    return 2_000_000_000 + int.from_bytes(digest, "big") % 10**15


@given(st.text(), st.text())
def test_local_concept_id__any_string_in_range_and_deterministic(vocabulary_id, code):
    first = local_concept_id(vocabulary_id, code)
    assert isinstance(first, int)
    assert 2_000_000_000 <= first < 2_000_000_000 + 10**15
    assert first < 2**53
    assert local_concept_id(vocabulary_id, code) == first
    assert first == _independent(vocabulary_id, code)


def test_local_concept_id__vocabulary_part_of_key():
    assert local_concept_id("ICD10CM", "E11") != local_concept_id("ICD9CM", "E11")


def test_local_concept_ids__matches_scalar_function():
    codes = pd.Series(["E11.9", "250.2", "8280-0"])
    got = local_concept_ids("X", codes)
    assert got.dtype == "int64"
    assert list(got) == [local_concept_id("X", c) for c in codes]
    per_row = local_concept_ids(pd.Series(["A", "B", "C"]), codes)
    assert list(per_row) == [local_concept_id(v, c) for v, c in zip("ABC", codes, strict=True)]


def test_check_unique_ids__raises_on_shared_id():
    clash = pd.DataFrame(
        {"concept_id": [5, 5, 6], "vocabulary_id": ["A", "B", "A"], "concept_code": ["x", "y", "z"]}
    )
    with pytest.raises(ConceptIdCollision, match="A/x, B/y"):
        check_unique_ids(clash)


def test_check_unique_ids__same_code_twice_is_fine():
    same = pd.DataFrame(
        {"concept_id": [5, 5], "vocabulary_id": ["A", "A"], "concept_code": ["x", "x"]}
    )
    check_unique_ids(same)
