"""Stable local concept ids for codes that have no standard OMOP concept id we can verify."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from opencohort.errors import OpencohortError

LOCAL_CONCEPT_ID_BASE = 2_000_000_000
LOCAL_CONCEPT_ID_SPAN = 10**15
"""Width of the local id space above the base (ids stay below 2**53, exact in float64 and JSON)."""


class ConceptIdCollision(OpencohortError):
    """Two different codes hashed to one local concept id; rename a code or widen the id span."""


def local_concept_id(vocabulary_id: str, code: str) -> int:
    """Return the stable local concept id of one code of one vocabulary.

    Parameters
    ----------
    vocabulary_id
        OMOP vocabulary id, e.g. ``"ICD10CM"``.
    code
        The concept code within that vocabulary, e.g. ``"E11.9"``.

    Returns
    -------
    int
        ``2_000_000_000 + blake2b(vocabulary_id, code) mod 10**15``: the same on every run and
        every machine, and above the OMOP local-concept threshold.

    Notes
    -----
    1. Encode ``vocabulary_id``, a unit-separator byte and ``code`` as UTF-8.
    2. Take the 8-byte BLAKE2b digest as a big-endian unsigned integer.
    3. Reduce it modulo ``10**15`` and add ``2_000_000_000``.

    The OMOP DDL declares ``concept_id`` a 32-bit integer, which leaves 147 million local ids.
    Hashing about 120,000 codes into so few values gives about 50 expected collisions (birthday
    bound), so the ids here are 64-bit, as in the reference program's BigQuery CDR (INT64).

    Examples
    --------
    >>> local_concept_id("ICD10CM", "E11.9") == local_concept_id("ICD10CM", "E11.9")
    True
    >>> local_concept_id("ICD10CM", "E11.9") > 2_000_000_000
    True
    """
    key = f"{vocabulary_id}\x1f{code}".encode()
    digest = hashlib.blake2b(key, digest_size=8).digest()
    return LOCAL_CONCEPT_ID_BASE + int.from_bytes(digest, "big") % LOCAL_CONCEPT_ID_SPAN


def local_concept_ids(vocabulary_id: str | pd.Series, codes: pd.Series) -> np.ndarray:
    """Return :func:`local_concept_id` for many codes as an int64 array.

    Parameters
    ----------
    vocabulary_id
        One vocabulary id for every code, or a Series aligned with ``codes``.
    codes
        Concept codes.

    Returns
    -------
    numpy.ndarray
        One id per code, in the order given.
    """
    vocabs = [vocabulary_id] * len(codes) if isinstance(vocabulary_id, str) else list(vocabulary_id)
    return np.fromiter(
        (local_concept_id(v, c) for v, c in zip(vocabs, codes, strict=True)),
        dtype=np.int64,
        count=len(codes),
    )


def check_unique_ids(concept: pd.DataFrame) -> None:
    """Raise if one concept id is given to two different (vocabulary_id, concept_code) pairs.

    Parameters
    ----------
    concept
        Frame with ``concept_id``, ``vocabulary_id`` and ``concept_code``.

    Raises
    ------
    ConceptIdCollision
        Naming every clashing id with its codes.
    """
    keys = concept[["concept_id", "vocabulary_id", "concept_code"]].drop_duplicates()
    clash = keys[keys["concept_id"].duplicated(keep=False)]
    if len(clash):
        listing = "; ".join(
            f"{cid}: "
            + ", ".join(f"{v}/{c}" for v, c in zip(g.vocabulary_id, g.concept_code, strict=True))
            for cid, g in clash.groupby("concept_id")
        )
        raise ConceptIdCollision(f"concept ids shared by different codes: {listing}")
