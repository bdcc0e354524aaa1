"""Shapes of the OMOP CDM v5.4 vocabulary tables that opencohort builds."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pyarrow as pa

VALID_START = pd.Timestamp("1970-01-01")
"""OMOP default ``valid_start_date`` when the source gives none."""
VALID_END = pd.Timestamp("2099-12-31")
"""OMOP ``valid_end_date`` of a concept that is still valid."""

CONCEPT_SCHEMA = pa.schema(
    [
        ("concept_id", pa.int64()),
        ("concept_name", pa.string()),
        ("domain_id", pa.string()),
        ("vocabulary_id", pa.string()),
        ("concept_class_id", pa.string()),
        ("standard_concept", pa.string()),
        ("concept_code", pa.string()),
        ("valid_start_date", pa.date32()),
        ("valid_end_date", pa.date32()),
        ("invalid_reason", pa.string()),
    ]
)
CONCEPT_RELATIONSHIP_SCHEMA = pa.schema(
    [
        ("concept_id_1", pa.int64()),
        ("concept_id_2", pa.int64()),
        ("relationship_id", pa.string()),
        ("valid_start_date", pa.date32()),
        ("valid_end_date", pa.date32()),
        ("invalid_reason", pa.string()),
    ]
)
CONCEPT_ANCESTOR_SCHEMA = pa.schema(
    [
        ("ancestor_concept_id", pa.int64()),
        ("descendant_concept_id", pa.int64()),
        ("min_levels_of_separation", pa.int32()),
        ("max_levels_of_separation", pa.int32()),
    ]
)
SCHEMAS = {
    "concept": CONCEPT_SCHEMA,
    "concept_relationship": CONCEPT_RELATIONSHIP_SCHEMA,
    "concept_ancestor": CONCEPT_ANCESTOR_SCHEMA,
}

REVERSE_RELATIONSHIP = {
    "Subsumes": "Is a",
    "Maps to phecode": "Phecode mapped from",
    "PPI parent code of": "Has PPI parent code",
    "Has answer (PPI)": "Answer of (PPI)",
}
"""Every relationship we write, with the reverse written beside it (OMOP stores both)."""


@dataclass(frozen=True)
class Vocabulary:
    """The three OMOP vocabulary tables opencohort builds from packaged reference data.

    Attributes
    ----------
    concept
        One row per concept: ``concept_id`` (int64), ``concept_name``, ``domain_id``,
        ``vocabulary_id``, ``concept_class_id``, ``standard_concept`` ('S', 'C' or None),
        ``concept_code``, ``valid_start_date``, ``valid_end_date`` (datetime64),
        ``invalid_reason`` (None).
    concept_relationship
        ``concept_id_1``, ``concept_id_2`` (int64), ``relationship_id``, ``valid_start_date``,
        ``valid_end_date``, ``invalid_reason``; each relationship appears in both directions.
    concept_ancestor
        ``ancestor_concept_id``, ``descendant_concept_id`` (int64),
        ``min_levels_of_separation``, ``max_levels_of_separation`` (int32); every concept is
        its own ancestor at level 0.
    """

    concept: pd.DataFrame
    concept_relationship: pd.DataFrame
    concept_ancestor: pd.DataFrame


def concept_frame(
    *,
    concept_id: object,
    concept_name: object,
    domain_id: object,
    vocabulary_id: object,
    concept_class_id: object,
    standard_concept: object,
    concept_code: object,
) -> pd.DataFrame:
    """Assemble concept rows with OMOP default validity dates and column order.

    Parameters
    ----------
    concept_id, concept_name, domain_id, vocabulary_id, concept_class_id, standard_concept, \
concept_code
        Column values: array-likes of one length, or scalars broadcast to that length.

    Returns
    -------
    pandas.DataFrame
        Columns in :data:`CONCEPT_SCHEMA` order.
    """
    frame = pd.DataFrame(
        {
            "concept_id": concept_id,
            "concept_name": concept_name,
            "domain_id": domain_id,
            "vocabulary_id": vocabulary_id,
            "concept_class_id": concept_class_id,
            "standard_concept": standard_concept,
            "concept_code": concept_code,
        }
    )
    frame["concept_id"] = frame["concept_id"].astype("int64")
    frame["valid_start_date"] = VALID_START
    frame["valid_end_date"] = VALID_END
    frame["invalid_reason"] = None
    return frame
