"""Shared fixtures for the vocabulary tests: one build per test process."""

from __future__ import annotations

import pytest

from opencohort.vocab import Vocabulary, build_vocabulary


@pytest.fixture(scope="session")
def vocab() -> Vocabulary:
    return build_vocabulary()


@pytest.fixture(scope="session")
def concept_by_code(vocab: Vocabulary):
    """Map (vocabulary_id, concept_code) to a concept row."""
    return vocab.concept.set_index(["vocabulary_id", "concept_code"])
