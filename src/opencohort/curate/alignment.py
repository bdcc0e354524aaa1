"""Domain alignment: a row whose concept belongs to another domain moves to that domain's table.

A site may file a drug under conditions or a lab test under observations. The concept's
``domain_id`` (from the vocabulary build plus any OMOP vocabulary the operator put in the
home, :func:`concept_domains`) names the table the row belongs in; a row of concept 0 or of a
concept the vocabulary lacks stays where it is. Rows of the five clinical
tables below are moved between them, their fields carried by role (concept, dates, type,
source value ...); a row whose concept's domain has none of these tables is dropped.
"""

from __future__ import annotations

import functools
from pathlib import Path

import ibis
import pandas as pd

from opencohort.curate._omop import SRC_ID, primary_key
from opencohort.curate.engine import ORDER, Engine
from opencohort.curate.rules import REMOVE, Context, IbisRule, Plan, register
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


def _domain_lookup(ctx: Context, db: Engine) -> ibis.Table:
    """The context's concept domains as a table (concept 0, "No matching concept", left out)."""
    domains = ctx.concept_domains
    known = domains[domains.index.notna() & (domains.index != 0)]
    frame = pd.DataFrame({"_a_concept": known.index.to_numpy().astype("int64"),
                          "_a_domain": known.to_numpy(dtype=object)})  # fmt: skip
    return db.lookup("concept_domains", frame, key=domains)


def _misaligned(name: str, t: ibis.Table, domains: ibis.Table):
    """`t` joined with its concepts' domains, and the rows whose domain is another table's."""
    joined = t.left_join(domains, t[f"{_STEMS[name]}_concept_id"] == domains["_a_concept"])
    domain = joined["_a_domain"]
    return joined, (domain.notnull() & (domain != _TABLE_DOMAIN[name])).fill_null(False)


def _moved(rows: ibis.Table, source: str, target: str, schema: ibis.Schema) -> dict:
    """Columns of `target` (name -> value) for `source` rows moved there, carried by role."""
    theirs, values = _roles(source), {}
    for role, column in _roles(target).items():
        if role in theirs and theirs[role] in rows.columns:
            value = rows[theirs[role]]
            if schema[column].is_integer() and value.type().is_floating():
                value = (value % 1 == 0).ifelse(value, ibis.null("float64"))  # 2.5 is no count
            values[column] = value.cast(schema[column])
    if target == "drug_exposure":
        start = values["drug_exposure_start_date"]
        end = values.get("drug_exposure_end_date")
        values["drug_exposure_end_date"] = start if end is None else end.fill_null(start)
    return values


@register
class DomainAlignment(IbisRule):
    """Move rows to the table of their concept's domain; drop those whose domain has no table."""

    id = "domain_alignment"
    purpose = "Move rows coded with another domain's concept to that domain's table."
    reads = writes = tuple(DOMAIN_TABLES.values())
    depends_on = ("duplicate_ids", "unmapped_concepts")
    implements = "issue 4; AoU DomainAlignment (domain_alignment.py)"

    def plan(self, tables, ctx, db):
        domains = _domain_lookup(ctx, db)
        remove, moves = {}, {t: [] for t in DOMAIN_TABLES.values() if t in tables}
        for rank, (name, t) in enumerate(tables.items()):
            joined, wrong = _misaligned(name, t, domains)
            remove[name] = joined.select(*t.columns, **{REMOVE: wrong})
            rows = joined.filter(wrong)
            for target in moves:
                moved = rows.filter(rows["_a_domain"] == _TABLE_DOMAIN[target])
                schema = tables[target].schema()
                values = _moved(moved, name, target, schema)
                columns = {c: values.get(c, ibis.null(k)) for c, k in schema.items() if c != ORDER}
                moves[target].append(
                    moved.select(**columns, _m_rank=ibis.literal(rank), _m_ord=moved[ORDER])
                )
        add = {}
        for target, parts in moves.items():
            t, key = tables[target], primary_key(target)
            union = functools.reduce(lambda a, b: a.union(b), parts)
            number = ibis.row_number().over(order_by=[union["_m_rank"], union["_m_ord"]])
            first = t[key].max().fill_null(0).as_scalar() + 1
            add[target] = union.mutate(**{key: first + number, ORDER: number}).drop(
                "_m_rank", "_m_ord"
            )
        return Plan(remove=remove, add=add)

    def problems(self, tables, ctx, db):
        domains = _domain_lookup(ctx, db)
        out = []
        for name in self.writes:
            joined, wrong = _misaligned(name, tables[name], domains)
            left = db.count(joined.filter(wrong))
            if left:
                out.append(f"{left} rows of {name} have a concept of another domain")
        return out
