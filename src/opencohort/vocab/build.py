"""Assemble the OMOP concept, concept_relationship and concept_ancestor tables and write them."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from opencohort.vocab._ids import check_unique_ids
from opencohort.vocab.curated import curated_concepts
from opencohort.vocab.icd import icd9cm_tree, icd10cm_tree, icd_concepts
from opencohort.vocab.models import (
    REVERSE_RELATIONSHIP,
    SCHEMAS,
    VALID_END,
    VALID_START,
    Vocabulary,
)
from opencohort.vocab.phecode import PHECODE_VOCABULARY, phecode_concepts, phecode_map
from opencohort.vocab.survey import survey_concepts


@cache
def build_vocabulary() -> Vocabulary:
    """Build the vocabulary tables from the reference data shipped in the installed packages.

    Returns
    -------
    Vocabulary
        ICD-10-CM (FY2024) and ICD-9-CM (v32) with chapters, blocks and headers; phecode 1.2
        and X; the PPI survey codebook; curated LOINC, UCUM and RxNorm concepts. The result
        is cached: treat its frames as read-only.

    Raises
    ------
    ConceptIdCollision
        If two different codes would share a concept id.

    Notes
    -----
    1. Collect concept rows and (child, parent) hierarchy edges from each source.
    2. Check every concept id names one (vocabulary_id, concept_code).
    3. Relationships: ``Subsumes`` (parent to child) for each edge, ``Maps to phecode`` from
       each ICD code to its most specific phecode(s), PPI module/question/answer links;
       each also written in reverse.
    4. Ancestors: the transitive closure of the edges with min/max levels of separation,
       plus every concept as its own ancestor at level 0.
    """
    parts, edges = [], []
    for tree, vocabulary_id in ((icd10cm_tree(), "ICD10CM"), (icd9cm_tree(), "ICD9CM")):
        concept, edge = icd_concepts(tree, vocabulary_id)
        parts.append(concept)
        edges.append(edge)
    for version in PHECODE_VOCABULARY:
        concept, edge = phecode_concepts(version)
        parts.append(concept)
        edges.append(edge)
    ppi, ppi_links = survey_concepts()
    parts += [ppi, curated_concepts()]
    concept = pd.concat(parts, ignore_index=True)
    check_unique_ids(concept)
    concept = concept.drop_duplicates("concept_id", ignore_index=True)
    hierarchy = pd.concat(edges, ignore_index=True)

    links = [
        hierarchy.rename(columns={"parent_id": "concept_id_1", "child_id": "concept_id_2"}).assign(
            relationship_id="Subsumes"
        )[["concept_id_1", "concept_id_2", "relationship_id"]],
        ppi_links,
    ]
    for version, vocabulary_id in PHECODE_VOCABULARY.items():
        pairs = phecode_map(version)
        icd = concept_ids(concept, pairs["vocabulary_id"], pairs["icd_code"])
        phe = concept_ids(concept, vocabulary_id, pairs["phecode"])
        known = (icd > 0) & (phe > 0)
        links.append(
            pd.DataFrame(
                {
                    "concept_id_1": icd[known],
                    "concept_id_2": phe[known],
                    "relationship_id": "Maps to phecode",
                }
            )
        )
    return Vocabulary(
        concept=concept,
        concept_relationship=_with_reverse(pd.concat(links, ignore_index=True)),
        concept_ancestor=_ancestors(hierarchy, concept["concept_id"].to_numpy()),
    )


def concept_ids(
    concept: pd.DataFrame, vocabulary_id: str | pd.Series, codes: pd.Series
) -> np.ndarray:
    """Look up concept ids by vocabulary and code; 0 (OMOP "no matching concept") if absent.

    Parameters
    ----------
    concept
        A concept table, e.g. ``build_vocabulary().concept``.
    vocabulary_id
        One vocabulary id for all codes, or a Series aligned with ``codes``.
    codes
        Concept codes, e.g. ``pd.Series(["E11.9"])``.

    Returns
    -------
    numpy.ndarray
        int64 concept ids in the order of ``codes``.

    Examples
    --------
    >>> ids = concept_ids(build_vocabulary().concept, "ICD10CM", pd.Series(["E11.9", "nope"]))
    >>> bool(ids[0] > 2_000_000_000), int(ids[1])
    (True, 0)
    """
    codes = pd.Series(codes).reset_index(drop=True)
    vocabs = (
        pd.Series(vocabulary_id, index=codes.index)
        if isinstance(vocabulary_id, str)
        else pd.Series(vocabulary_id).reset_index(drop=True)
    )
    index = pd.MultiIndex.from_frame(concept[["vocabulary_id", "concept_code"]])
    pos = index.get_indexer(pd.MultiIndex.from_arrays([vocabs, codes]))
    ids = concept["concept_id"].to_numpy()[pos]
    return np.where(pos >= 0, ids, 0).astype(np.int64)


def _with_reverse(forward: pd.DataFrame) -> pd.DataFrame:
    reverse = forward.rename(
        columns={"concept_id_1": "concept_id_2", "concept_id_2": "concept_id_1"}
    ).assign(relationship_id=forward["relationship_id"].map(REVERSE_RELATIONSHIP))
    both = pd.concat([forward, reverse[forward.columns]], ignore_index=True).drop_duplicates(
        ignore_index=True
    )
    both["concept_id_1"] = both["concept_id_1"].astype("int64")
    both["concept_id_2"] = both["concept_id_2"].astype("int64")
    both["valid_start_date"] = VALID_START
    both["valid_end_date"] = VALID_END
    both["invalid_reason"] = None
    return both


def _ancestors(edges: pd.DataFrame, concept_ids_: np.ndarray) -> pd.DataFrame:
    """Transitive closure of (child_id, parent_id) edges with min/max levels, plus self rows."""
    parent_of = edges.rename(columns={"child_id": "via", "parent_id": "ancestor_concept_id"})
    step = edges.rename(
        columns={"child_id": "descendant_concept_id", "parent_id": "ancestor_concept_id"}
    ).assign(level=1)
    found = [
        pd.DataFrame(
            {"descendant_concept_id": concept_ids_, "ancestor_concept_id": concept_ids_, "level": 0}
        ),
        step,
    ]
    while len(step):
        step = (
            step.rename(columns={"ancestor_concept_id": "via"})
            .merge(parent_of, on="via")
            .drop(columns="via")
            .assign(level=lambda f: f["level"] + 1)
        )
        found.append(step)
    closure = pd.concat(found, ignore_index=True)
    table = (
        closure.groupby(["ancestor_concept_id", "descendant_concept_id"], sort=False)["level"]
        .agg(["min", "max"])
        .reset_index()
        .rename(columns={"min": "min_levels_of_separation", "max": "max_levels_of_separation"})
    )
    return table.astype(
        {
            "ancestor_concept_id": "int64",
            "descendant_concept_id": "int64",
            "min_levels_of_separation": "int32",
            "max_levels_of_separation": "int32",
        }
    )


def write_vocabulary(vocab: Vocabulary, out_dir: str | Path) -> dict[str, Path]:
    """Write the three tables as ``<table>.parquet`` in ``out_dir`` (created if missing).

    Parameters
    ----------
    vocab
        The tables to write, e.g. from :func:`build_vocabulary`.
    out_dir
        Target directory.

    Returns
    -------
    dict of str to Path
        Table name to the file written. Dates are Parquet ``date32``; ids ``int64``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, schema in SCHEMAS.items():
        frame = getattr(vocab, name).copy()
        for column in ("valid_start_date", "valid_end_date"):
            if column in frame:
                frame[column] = frame[column].dt.date
        table = pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)
        path = out / f"{name}.parquet"
        tmp = path.with_suffix(".parquet.tmp")
        pq.write_table(table, tmp)
        tmp.replace(path)
        written[name] = path
    return written
