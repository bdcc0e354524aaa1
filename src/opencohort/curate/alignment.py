"""Domain alignment: a row whose concept belongs to another domain moves to that domain's table.

A site may file a drug under conditions or a lab test under observations. The concept's
``domain_id`` (from the vocabulary build plus any OMOP vocabulary the operator put in the
home, :func:`concept_domains`) names the table the row belongs in; a row of concept 0 or of a
concept the vocabulary lacks stays where it is. Rows of the five clinical
tables below are moved between them, their fields carried by role (concept, dates, type,
source value ...); a row whose concept's domain has none of these tables is dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from opencohort.curate._omop import SRC_ID, empty, primary_key
from opencohort.curate.rules import Context, Result, Rule, register
from opencohort.vocab import build_vocabulary

#: OMOP domain -> the clinical table its rows belong in.
DOMAIN_TABLES = {
    "Condition": "condition_occurrence",
    "Procedure": "procedure_occurrence",
    "Observation": "observation",
    "Measurement": "measurement",
    "Drug": "drug_exposure",
}
_TABLE_DOMAIN = {t: d for d, t in DOMAIN_TABLES.items()}
_STEMS = {t: t.split("_")[0] for t in DOMAIN_TABLES.values()}
_DATES = {
    "condition_occurrence": ("condition_start_date", "condition_end_date"),
    "procedure_occurrence": ("procedure_date", "procedure_end_date"),
    "observation": ("observation_date", None),
    "measurement": ("measurement_date", None),
    "drug_exposure": ("drug_exposure_start_date", "drug_exposure_end_date"),
}
_SHARED = ("person_id", "provider_id", "visit_occurrence_id", "visit_detail_id", SRC_ID)
_VALUES = ("value_as_number", "value_as_concept_id", "unit_concept_id", "unit_source_value")
#: Where an operator puts an OMOP vocabulary download (Athena's tab-separated CONCEPT.csv).
ATHENA_CONCEPT = Path("vocab") / "athena" / "CONCEPT.csv"


def concept_domains(root: Path | None = None) -> pd.Series:
    """Domain of every known concept: the vocabulary build, then the home's Athena concepts.

    Parameters
    ----------
    root
        Program home folder; its :data:`ATHENA_CONCEPT` file (if any) adds concepts the build
        does not have (the build's domain wins for a concept in both).

    Returns
    -------
    pandas.Series
        ``domain_id`` indexed by ``concept_id`` (float64, so Int64 columns look it up).
    """
    built = build_vocabulary().concept[["concept_id", "domain_id"]]
    parts = [built]
    path = None if root is None else Path(root) / ATHENA_CONCEPT
    if path is not None and path.is_file():
        athena = pd.read_csv(path, sep="\t", dtype=str, usecols=["concept_id", "domain_id"],
                             keep_default_na=False)  # fmt: skip
        parts.append(athena.assign(concept_id=pd.to_numeric(athena["concept_id"])))
    table = pd.concat(parts, ignore_index=True).drop_duplicates("concept_id")
    return pd.Series(table["domain_id"].to_numpy(), index=table["concept_id"].astype("float64"))


def _roles(table: str) -> dict[str, str]:
    """Role -> column of `table`, for the fields a moved row carries over."""
    stem = _STEMS[table]
    start, end = _DATES[table]
    roles = {
        "concept": f"{stem}_concept_id",
        "source_concept": f"{stem}_source_concept_id",
        "source_value": f"{stem}_source_value",
        "type": f"{stem}_type_concept_id",
        "start": start,
        "start_datetime": start.replace("_date", "_datetime"),
        **{c: c for c in _SHARED},
    }
    if end is not None:
        roles |= {"end": end, "end_datetime": end.replace("_date", "_datetime")}
    if table in ("measurement", "observation"):
        roles |= {c: c for c in _VALUES}
    if table in ("procedure_occurrence", "drug_exposure"):
        roles["quantity"] = "quantity"
    return roles


def _domains(frame: pd.DataFrame, table: str, domains: pd.Series) -> np.ndarray:
    """Domain of each row's concept; missing for concept 0 ("No matching concept") and unknowns."""
    concept = frame[f"{_STEMS[table]}_concept_id"].astype("float64")
    return domains.reindex(concept.where(concept != 0)).to_numpy(dtype=object)


def _moved(rows: pd.DataFrame, source: str, target: str, first_id: int, columns) -> pd.DataFrame:
    """`rows` of `source` rewritten as rows of `target` (`columns`), numbered from `first_id`."""
    out = empty(target, src=True).reindex(range(len(rows)))
    theirs = _roles(source)
    for role, column in _roles(target).items():
        if role in theirs and theirs[role] in rows.columns:
            values = pd.Series(rows[theirs[role]].to_numpy())
            if out[column].dtype == "Int64":  # e.g. a drug's quantity 2.5 has no procedure count
                values = pd.to_numeric(values).astype("float64")
                values = values.where(values % 1 == 0)
            out[column] = values.astype(out[column].dtype)
    if target == "drug_exposure":
        start = out["drug_exposure_start_date"]
        out["drug_exposure_end_date"] = out["drug_exposure_end_date"].fillna(start)
    out[primary_key(target)] = pd.array(np.arange(first_id, first_id + len(rows)), dtype="Int64")
    return out.reindex(columns=columns)


@register
class DomainAlignment(Rule):
    """Move rows to the table of their concept's domain; drop those whose domain has no table."""

    id = "domain_alignment"
    purpose = "Move rows coded with another domain's concept to that domain's table."
    reads = writes = tuple(DOMAIN_TABLES.values())
    depends_on = ("duplicate_ids", "unmapped_concepts")
    implements = "issue 4; AoU DomainAlignment (domain_alignment.py)"

    def _misaligned(self, frames: Mapping[str, pd.DataFrame], ctx: Context):
        domains = ctx.concept_domains
        for table, frame in frames.items():
            domain = _domains(frame, table, domains)
            wrong = pd.notna(domain) & (domain != _TABLE_DOMAIN[table])
            yield table, frame, domain, wrong

    def apply(self, frames, ctx):
        out, removed, moves = {}, {}, []
        for table, frame, domain, wrong in self._misaligned(frames, ctx):
            out[table] = frame[~wrong].reset_index(drop=True)
            removed[table] = frame[wrong]
            targets = pd.Series(domain[wrong], dtype=object).map(DOMAIN_TABLES).to_numpy()
            for target in sorted({t for t in targets if isinstance(t, str) and t in frames}):
                moves.append((table, target, frame[wrong][targets == target]))
        added: dict[str, pd.DataFrame] = {}
        for target in sorted({target for _, target, _ in moves}):
            key = frames[target][primary_key(target)]
            next_id = int(key.max()) + 1 if key.notna().any() else 1
            new = []
            for source, _, rows in (m for m in moves if m[1] == target):
                new.append(_moved(rows, source, target, next_id, frames[target].columns))
                next_id += len(rows)
            added[target] = pd.concat(new, ignore_index=True)
            out[target] = pd.concat([out[target], added[target]], ignore_index=True)
        return Result(out, removed=removed, added=added)

    def check(self, frames, ctx):
        return [
            f"{wrong.sum()} rows of {table} have a concept of another domain"
            for table, _, _, wrong in self._misaligned({t: frames[t] for t in self.writes}, ctx)
            if wrong.any()
        ]
