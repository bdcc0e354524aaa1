"""The rule framework: declarative rule classes, pipelines of named stages, sandboxes, rule logs.

A rule declares what it is (id, purpose, tables read and written, the rules it depends on, the
tiers it may run in, the issue or policy it implements) and holds its logic in one pure method,
:meth:`Rule.apply`, which takes frames and a :class:`Context` and returns a :class:`Result`: the
written tables and every removed or changed row. :meth:`Rule.validate` checks the rule's own
postcondition on its output. :func:`build_pipeline` orders rules from their declared
dependencies (a cycle or a missing dependency raises :class:`RuleError` before anything runs)
and :func:`run_stage` runs one stage, keeps every removed or changed row in a sandbox and
returns the rule log for the release manifest.

An :class:`IbisRule` holds its logic as Ibis expressions instead (:meth:`IbisRule.plan`), so
it runs on any :class:`~opencohort.curate.engine.Engine` (DuckDB or Spark); every built-in rule
is one. :func:`run_tables` runs a stage on tables that stay on the engine (curation registers
its frames once and fetches each tier's tables at the end); a rule written with pandas gets
its tables fetched and its output registered again. ``IbisRule.apply`` runs one rule on a
temporary DuckDB engine, so every rule also takes and returns frames.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import operator
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import ClassVar

import ibis
import numpy as np
import pandas as pd

from opencohort.curate._omop import SRC_ID, primary_key
from opencohort.curate.engine import ORDER, Engine, open_engine
from opencohort.errors import RuleError

Frames = dict[str, pd.DataFrame]
#: Columns that identify a row in the sandbox's changed rows (those a table has).
ROW_KEYS = (SRC_ID, "person_id")


class Tier(StrEnum):
    """Where a rule may run: before tiers (both) or in one tier's de-identification."""

    BOTH = "both"
    REGISTERED = "registered"
    CONTROLLED = "controlled"


TIERS = (Tier.REGISTERED, Tier.CONTROLLED)
_DAY_FACTS = ("birth_date", "death_date", "deactivated_date")
_FLAG_FACTS = ("ehr_consent", "primary_consent", "wearables_consent", "no_use", "retracted")
#: Boolean column of the table an Ibis rule marks: True for the rows it removes.
REMOVE = "_remove"


@dataclass(frozen=True)
class Context:
    """Registry facts and settings a rule may read; never changed by a rule.

    ``people`` has one row per registry participant, indexed by the site person number
    (``person_id`` before de-identification) with columns participant_id, research_id,
    date_shift_days, birth_date (day number), ehr_consent (bool), no_use (bool), retracted
    (bool: named in a retraction), death_date (day number or NA), deactivated_date (day
    number or NA), state and race_ethnicity.
    ``identity_drops`` lists (src_id, person_id) pairs whose rows identity matching drops;
    ``site_states`` maps site id to state; ``concept_domains`` gives the ``domain_id`` of each
    known concept (indexed by concept id as float);
    ``ehr_sites`` lists (person_id, src_id) pairs of who sent EHR for whom (filled after
    cleaning); ``cutoff`` is the submission cut-off as a day number; ``tier`` is the tier being
    built (``both`` before the tiers).
    """

    cutoff: int
    people: pd.DataFrame
    identity_drops: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame({"src_id": [], "person_id": []})
    )
    site_states: Mapping[str, str] = field(default_factory=dict)
    ehr_sites: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame({"person_id": [], "src_id": []})
    )
    settings: Mapping[str, object] = field(default_factory=dict)
    tier: Tier = Tier.BOTH
    concept_domains: pd.Series = field(default_factory=lambda: pd.Series([], dtype=object))

    @cached_property
    def person_facts(self) -> pd.DataFrame:
        """``people``'s day-number and yes/no facts as plain columns, ``person_id`` first.

        Day numbers are float64 (missing as NaN), flags bool: the shape Ibis rules join on.
        """
        people = self.people
        columns = {"person_id": people.index.to_numpy(dtype="float64").astype("int64")}
        for name in _DAY_FACTS:
            if name in people:
                columns[name] = people[name].astype("float64").to_numpy()
        for name in _FLAG_FACTS:
            if name in people:
                columns[name] = people[name].astype(bool).to_numpy()
        return pd.DataFrame(columns)

    @cached_property
    def by_research_id(self) -> pd.DataFrame:
        """``people`` indexed by research id (for rules running after pid -> rid)."""
        return self.people.reset_index().set_index("research_id", drop=False)

    def with_(self, **changes: object) -> Context:
        """A copy with some fields replaced."""
        return replace(self, **changes)


@dataclass
class Result:
    """What a rule returns: its written tables, and the rows it removed, changed or added.

    ``removed`` holds, per table, the removed rows as they were before the rule; ``changed`` the
    changed rows, compactly (see :func:`changing`);
    ``added`` the rows a rule wrote into a table (rows it moved there from another), as written.
    So per table, rows out = rows in - removed + added.
    """

    frames: Frames
    removed: dict[str, pd.DataFrame] = field(default_factory=dict)
    changed: dict[str, pd.DataFrame] = field(default_factory=dict)
    added: dict[str, pd.DataFrame] = field(default_factory=dict)

    def counts(self) -> dict[str, dict[str, int]]:
        """Rows removed, changed and added per table (``added`` only when a rule adds rows)."""
        counts = {
            "removed": {t: len(f) for t, f in self.removed.items() if len(f)},
            "changed": {t: len(f) for t, f in self.changed.items() if len(f)},
        }
        added = {t: len(f) for t, f in self.added.items() if len(f)}
        return counts | ({"added": added} if added else {})


def dropping(frames: Mapping[str, pd.DataFrame], masks: Mapping[str, np.ndarray]) -> Result:
    """Result of removing, per table, the rows where ``masks[table]`` is True."""
    out, removed = {}, {}
    for table, mask in masks.items():
        frame = frames[table]
        mask = np.asarray(mask, dtype=bool)
        if mask.any():
            out[table] = frame[~mask].reset_index(drop=True)
            removed[table] = frame[mask]
        else:  # nothing removed: no copy of the kept rows (under copy-on-write)
            out[table] = frame.reset_index(drop=True)
            removed[table] = frame.iloc[:0]
    return Result(out, removed=removed)


def _differs(a: pd.Series, b: pd.Series) -> np.ndarray | None:
    """Rows where two versions of a column differ (None when none can)."""
    if a.dtype == b.dtype and a.equals(b):
        return None
    na_a, na_b = a.isna().to_numpy(), b.isna().to_numpy()
    if pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b):
        va = a.to_numpy(dtype="float64", na_value=np.nan)
        vb = b.to_numpy(dtype="float64", na_value=np.nan)
    elif na_b.all():
        return ~na_a
    else:
        va, vb = a.astype(object).to_numpy(), b.astype(object).to_numpy()
    both = ~na_a & ~na_b
    return (na_a != na_b) | (both & (va != vb))


def changing(frames: Mapping[str, pd.DataFrame], new: Mapping[str, pd.DataFrame]) -> Result:
    """Result of replacing tables with `new` (same rows, same order); changed rows detected.

    A changed row is kept compactly: its identifying columns (the table's primary key and
    :data:`ROW_KEYS`) and the columns the rule changed, as they were before; an identifying
    column the rule changed is also kept as it is after, named ``sandbox_new_<column>``.
    """
    changed = {}
    for table, after in new.items():
        before = frames[table]
        differs = np.zeros(len(before), dtype=bool)
        columns = []
        for column in before.columns:
            if column in after.columns:
                rows = _differs(before[column], after[column])
            else:
                rows = before[column].notna().to_numpy()
            if rows is not None and rows.any():
                differs |= rows
                columns.append(column)
        keys = [c for c in dict.fromkeys((primary_key(table), *ROW_KEYS)) if c in before.columns]
        kept = before.loc[differs, list(dict.fromkeys([*keys, *columns]))]
        renamed = {f"sandbox_new_{c}": after[c].to_numpy()[differs]
                   for c in keys if c in columns and c in after.columns}  # fmt: skip
        changed[table] = kept.assign(**renamed) if renamed else kept
    return Result(dict(new), changed=changed)


class Rule:
    """Base of every curation and de-identification rule; subclasses set the metadata.

    Subclasses implement :meth:`apply` (pure: it never changes its inputs) and may extend
    :meth:`validate`. ``idempotent`` is False only for rules that transform values by a
    per-person amount (re-applying them would transform twice); ``introduces`` names the
    codes a generalisation may write that were not in its input.
    """

    id: ClassVar[str]
    purpose: ClassVar[str]
    reads: ClassVar[tuple[str, ...]]
    writes: ClassVar[tuple[str, ...]]
    depends_on: ClassVar[tuple[str, ...]] = ()
    tiers: ClassVar[frozenset[Tier]] = frozenset({Tier.BOTH})
    implements: ClassVar[str]
    idempotent: ClassVar[bool] = True
    introduces: ClassVar[frozenset[str]] = frozenset()

    def apply(self, frames: Mapping[str, pd.DataFrame], ctx: Context) -> Result:
        """Return the written tables and the removed or changed rows."""
        raise NotImplementedError(f"{type(self).__name__}.apply")

    def check(self, frames: Mapping[str, pd.DataFrame], ctx: Context) -> list[str]:
        """Problems with this rule's postcondition on `frames` (empty when it holds)."""
        return []

    def validate(self, frames: Mapping[str, pd.DataFrame], ctx: Context) -> None:
        """Check the postcondition after the rule ran.

        Raises
        ------
        RuleError
            If any problem is found; the message names the rule and each problem.
        """
        missing = [t for t in self.writes if t in frames and frames[t] is None]
        problems = [f"table {t} missing" for t in missing] + self.check(frames, ctx)
        if problems:
            raise RuleError(f"rule {self.id}: postcondition failed: " + "; ".join(problems))

    @classmethod
    def as_dict(cls) -> dict:
        """The rule's declaration as plain data (for the manifest's rule log)."""
        return {
            "id": cls.id,
            "purpose": cls.purpose,
            "reads": list(cls.reads),
            "writes": list(cls.writes),
            "depends_on": list(cls.depends_on),
            "tiers": sorted(t.value for t in cls.tiers),
            "implements": cls.implements,
        }


@dataclass
class Plan:
    """What an Ibis rule returns: per table, the rows it removes, rewrites, replaces or adds.

    ``remove`` maps a table to its input rows (all their columns) plus a boolean column
    :data:`REMOVE`, True for every row the rule removes (missing counts as False; see
    :func:`marking`). ``rewrite`` maps a table to column -> new value, expressions over the
    input table (cast back to the column's type). ``replace`` maps a table to its new rows,
    any query over the tables (joins included) keeping the input's :data:`ORDER`: a row
    whose number is missing is removed, a column that is missing is dropped, other values
    are compared with the input's to find changed rows. One table takes one of these three.
    ``add`` maps a table to rows appended after its kept rows (its columns, missing ones
    null), in the order of their own :data:`ORDER` numbers.
    """

    remove: dict[str, ibis.Table] = field(default_factory=dict)
    rewrite: dict[str, dict[str, ibis.Value]] = field(default_factory=dict)
    replace: dict[str, ibis.Table] = field(default_factory=dict)
    add: dict[str, ibis.Table] = field(default_factory=dict)


def marking(table: ibis.Table, remove: ibis.BooleanValue) -> ibis.Table:
    """`table` with :data:`REMOVE` set to `remove` (a boolean expression over its rows)."""
    return table.mutate(**{REMOVE: remove})


class IbisRule(Rule):
    """A rule written as Ibis expressions: it runs on DuckDB and on Spark alike.

    Subclasses implement :meth:`plan` and may implement :meth:`problems` (the postcondition,
    as queries). The engine computes kept, removed and changed rows and their counts from the
    plan, so a rule never removes a row silently.
    """

    def plan(self, tables: Mapping[str, ibis.Table], ctx: Context, db: Engine) -> Plan:
        """Return the rows to remove or the columns to rewrite, as expressions over `tables`."""
        raise NotImplementedError(f"{type(self).__name__}.plan")

    def problems(self, tables: Mapping[str, ibis.Table], ctx: Context, db: Engine) -> list[str]:
        """Problems with this rule's postcondition on `tables` (empty when it holds)."""
        return []

    def apply(self, frames, ctx):
        """Run the rule on `frames` on a temporary DuckDB engine; the result as frames."""
        with open_engine() as db:
            tables = {t: db.register(t, f) for t, f in frames.items()}
            step = _step(self, tables, {t: len(f) for t, f in frames.items()}, ctx, db)
            removed = {t: frames[t].iloc[:0] for t in step.removing}
            removed |= {t: db.fetch(t, r, positions=True) for t, r in step.removed.items()}
            written = [t for t in self.writes if t in frames]
            changed = {t: frames[t].iloc[:0] for t in step.touched}
            changed |= {t: db.fetch(t, c, positions=True) for t, c in step.changed.items()}
            return Result(
                {t: db.fetch(t, step.tables[t]) for t in written},
                removed=removed,
                changed=changed,
                added={t: db.fetch(t, a) for t, a in step.added.items()},
            )

    def validate(self, frames, ctx):
        """Check the postcondition on `frames` (on a temporary DuckDB engine).

        Raises
        ------
        RuleError
            If any problem is found; the message names the rule and each problem.
        """
        with open_engine() as db:
            tables = {t: db.register(t, frames[t]) for t in self.reads if t in frames}
            _raise_problems(self, self.problems(tables, ctx, db))


def _raise_problems(rule: Rule, problems: list[str]) -> None:
    if problems:
        raise RuleError(f"rule {rule.id}: postcondition failed: " + "; ".join(problems))


#: Every registered rule class by id.
RULES: dict[str, type[Rule]] = {}


def register(cls: type[Rule]) -> type[Rule]:
    """Class decorator adding a rule to :data:`RULES`.

    Raises
    ------
    RuleError
        If the id is taken or a declaration field is missing.
    """
    for name in ("id", "purpose", "reads", "writes", "implements"):
        if not hasattr(cls, name):
            raise RuleError(f"rule class {cls.__name__} does not declare {name}")
    if cls.id in RULES:
        raise RuleError(f"rule id {cls.id!r} is registered twice ({cls.__name__})")
    RULES[cls.id] = cls
    return cls


@dataclass(frozen=True)
class Stage:
    """A named stage: rules in dependency order."""

    name: str
    rules: tuple[Rule, ...]
    tier: Tier = Tier.BOTH


@dataclass(frozen=True)
class Pipeline:
    """Named stages, checked and ordered when built."""

    stages: tuple[Stage, ...]

    @property
    def rule_ids(self) -> list[str]:
        """Every rule id in run order."""
        return [r.id for s in self.stages for r in s.rules]


def _order(stage: str, ids: Sequence[str], rules: Mapping[str, type[Rule]], done: set[str]):
    """Order one stage's rules from their dependencies (declared order breaks ties)."""
    pending = list(dict.fromkeys(ids))
    ordered: list[str] = []
    while pending:
        ready = [r for r in pending if all(d in done or d in ordered for d in rules[r].depends_on)]
        if not ready:
            raise RuleError(
                f"stage {stage}: dependency cycle among {', '.join(sorted(pending))}; "
                "remove one of the depends_on declarations"
            )
        ordered.append(ready[0])
        pending.remove(ready[0])
    return ordered


def build_pipeline(
    stages: Mapping[str, Sequence[str]],
    *,
    tier: Tier = Tier.BOTH,
    after: Pipeline | None = None,
    rules: Mapping[str, type[Rule]] | None = None,
) -> Pipeline:
    """Build a pipeline from stage name -> rule ids, checking every declaration first.

    Parameters
    ----------
    stages
        Stage names mapped to the ids of their rules, in run order of the stages.
    tier
        The tier these stages run in (``both`` for the stages before tiers).
    after
        A pipeline that runs before this one; its rules satisfy dependencies.
    rules
        Rule classes by id (default :data:`RULES`).

    Raises
    ------
    RuleError
        If a rule id is unknown, a rule may not run in `tier`, a dependency is not in an
        earlier stage or the same stage, or dependencies form a cycle.
    """
    rules = RULES if rules is None else rules
    done = set(after.rule_ids) if after is not None else set()
    all_ids = set(done) | {r for ids in stages.values() for r in ids}
    built = []
    for name, ids in stages.items():
        for rule_id in ids:
            if rule_id not in rules:
                raise RuleError(f"stage {name}: unknown rule {rule_id!r}; known: {sorted(rules)}")
            cls = rules[rule_id]
            if tier not in cls.tiers:
                allowed = ", ".join(sorted(t.value for t in cls.tiers))
                raise RuleError(
                    f"stage {name}: rule {rule_id} runs in {allowed}, not in {tier.value}"
                )
            for dep in cls.depends_on:
                if dep not in all_ids:
                    raise RuleError(
                        f"stage {name}: rule {rule_id} depends on {dep!r}, which is in no stage"
                    )
                if dep not in done and dep not in ids:
                    raise RuleError(
                        f"stage {name}: rule {rule_id} depends on {dep!r}, which runs later"
                    )
        order = _order(name, ids, rules, done)
        built.append(Stage(name, tuple(rules[r]() for r in order), tier))
        done.update(order)
    return Pipeline(tuple(built))


def _sandbox(root: Path, rule: Rule, tier: Tier, result: Result) -> None:
    """Write each table's removed, changed and added rows once, in that order."""
    folder = root / rule.id if tier == Tier.BOTH else root / rule.id / tier.value
    actions = (("removed", result.removed), ("changed", result.changed), ("added", result.added))
    parts: dict[str, list[pd.DataFrame]] = {}
    for action, tables in actions:
        for table, rows in tables.items():
            if len(rows):
                parts.setdefault(table, []).append(rows.assign(sandbox_action=action))
    for table, frames in parts.items():
        folder.mkdir(parents=True, exist_ok=True)
        rows = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        rows.to_parquet(folder / f"{table}.parquet", index=False)


@dataclass
class _Step:
    """One Ibis rule's outcome: tables and row counts after it, removed, changed, added rows."""

    tables: dict[str, ibis.Table]
    rows: dict[str, int]
    touched: tuple[str, ...]
    removing: tuple[str, ...] = ()
    removed: dict[str, ibis.Table] = field(default_factory=dict)
    changed: dict[str, ibis.Table] = field(default_factory=dict)
    added: dict[str, ibis.Table] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(
        default_factory=lambda: {"removed": {}, "changed": {}}
    )


def _step(rule: IbisRule, tables, rows, ctx: Context, db: Engine) -> _Step:
    """Plan `rule` on `tables`, materialise what it keeps, count what it removed or changed."""
    plan = rule.plan({t: tables[t] for t in rule.reads if t in tables}, ctx, db)
    kinds = (plan.remove, plan.rewrite, plan.replace)
    touched = tuple(dict.fromkeys(t for kind in (*kinds, plan.add) for t in kind))
    undeclared = set(touched) - set(rule.writes)
    if undeclared:
        raise RuleError(f"rule {rule.id} wrote undeclared tables {sorted(undeclared)}")
    if any(set(a) & set(b) for a, b in itertools.combinations(kinds, 2)):
        raise RuleError(
            f"rule {rule.id} plans more than one of remove, rewrite, replace for a table"
        )
    step = _Step(dict(tables), dict(rows), touched, (*plan.remove, *plan.replace))
    flags = {t: m[REMOVE].fill_null(False) for t, m in plan.remove.items()}
    counts = db.counts({t: m.filter(flags[t]) for t, m in plan.remove.items() if rows[t]})
    for table, marked in plan.remove.items():
        flag, gone = flags[table], counts.get(table, 0)
        if gone:  # nothing is materialised for a table the rule leaves as it was
            step.tables[table] = db.persist(marked.filter(~flag).drop(REMOVE))
            step.removed[table] = marked.filter(flag).drop(REMOVE)
            step.counts["removed"][table] = gone
            step.rows[table] = rows[table] - gone
    for table, columns in plan.rewrite.items():
        if rows[table]:
            _rewrite(step, table, tables[table], columns, db)
    for table, expr in plan.replace.items():
        if ORDER not in expr.columns:
            raise RuleError(f"rule {rule.id}: the new rows of {table} lost their {ORDER} numbers")
        _replace(step, table, tables[table], expr, db)
    for table, expr in plan.add.items():
        _add(step, table, expr, db)
    return step


def _keys(table: str, base: ibis.Table) -> list[str]:
    """Columns identifying a row of `table` in the sandbox (those it has)."""
    return [c for c in dict.fromkeys((primary_key(table), *ROW_KEYS)) if c in base.columns]


def _changes(differs: dict[str, ibis.BooleanValue], over: ibis.Table) -> tuple[list[str], int, int]:
    """Columns changed in some row of `over`, rows changed and rows of `over`, in one query."""
    anywhere = functools.reduce(operator.or_, differs.values(), ibis.literal(False))
    sums = {f"c{i}": d.cast("int64").sum() for i, d in enumerate(differs.values())}
    stats = over.aggregate(n=anywhere.cast("int64").sum(), rows=over.count(), **sums)
    stats = stats.to_pyarrow().to_pylist()[0]
    hit = [c for i, c in enumerate(differs) if (stats[f"c{i}"] or 0) > 0]
    return hit, stats["n"] or 0, stats["rows"]


def _rewrite(step: _Step, table: str, base: ibis.Table, columns, db: Engine) -> None:
    """Apply one table's column rewrites; keep its changed rows compactly (as :func:`changing`)."""
    new = {c: e.cast(base[c].type()) for c, e in columns.items()}
    differs = {c: ~base[c].identical_to(value) for c, value in new.items()}
    if not differs:
        return
    hit, n, _ = _changes(differs, base)
    if not hit:
        return
    anywhere = functools.reduce(operator.or_, (differs[c] for c in hit))
    keys = _keys(table, base)
    renamed = {f"sandbox_new_{c}": new[c] for c in keys if c in hit}
    step.changed[table] = base.filter(anywhere).select(
        *dict.fromkeys([*keys, *hit, ORDER]), **renamed
    )
    step.counts["changed"][table] = n
    step.tables[table] = db.persist(base.mutate(**{c: new[c] for c in hit}))


def _replace(step: _Step, table: str, base: ibis.Table, expr: ibis.Table, db: Engine) -> None:
    """Replace a table's rows by `expr`'s (matched on :data:`ORDER`); keep what went or changed."""
    kept = [c for c in base.columns if c in expr.columns]
    dropped = [c for c in base.columns if c not in expr.columns]
    new = db.persist(expr.select(*(expr[c].cast(base[c].type()).name(c) for c in kept)))
    other = new.rename({f"_n_{c}": c for c in kept})
    joined = base.inner_join(other, base[ORDER] == other[f"_n_{ORDER}"])
    differs = {c: ~joined[c].identical_to(joined[f"_n_{c}"]) for c in kept if c != ORDER}
    differs |= {c: joined[c].notnull() for c in dropped}
    hit, n, rows = _changes(differs, joined)
    gone = step.rows[table] - rows
    if not (gone or hit or dropped):
        db.drop(new)
        return
    if gone:
        step.removed[table] = base.anti_join(new, ORDER)
        step.counts["removed"][table] = gone
        step.rows[table] -= gone
    if hit:
        anywhere = functools.reduce(operator.or_, (differs[c] for c in hit))
        keys = _keys(table, base)
        renamed = {f"sandbox_new_{c}": joined[f"_n_{c}"] for c in keys if c in hit and c in kept}
        step.changed[table] = joined.filter(anywhere).select(
            *dict.fromkeys([*keys, *hit, ORDER]), **renamed
        )
        step.counts["changed"][table] = n
    step.tables[table] = new


def _add(step: _Step, table: str, expr: ibis.Table, db: Engine) -> None:
    """Append `expr`'s rows to a table, numbered after its rows in their :data:`ORDER`."""
    current = step.tables[table]
    n = db.count(expr)
    if not n:
        return
    last = current[ORDER].max().execute()
    first = 0 if last is None or pd.isna(last) else int(last) + 1
    rows = expr.select(*(
        (expr[ORDER] + first if c == ORDER else expr[c] if c in expr.columns else ibis.null())
        .cast(t).name(c) for c, t in current.schema().items()
    ))  # fmt: skip
    added = db.persist(rows)
    step.tables[table] = db.persist(current.union(added))
    step.added[table] = added
    step.counts.setdefault("added", {})[table] = n
    step.rows[table] += n


def _ibis_sandbox(root: Path, rule: Rule, tier: Tier, step: _Step, db: Engine) -> None:
    """Write each table's removed, changed and added rows once, in that order (as `_sandbox`)."""
    folder = root / rule.id if tier == Tier.BOTH else root / rule.id / tier.value
    parts: dict[str, list[ibis.Table]] = {}
    actions = (("removed", step.removed), ("changed", step.changed), ("added", step.added))
    for rank, (action, tables) in enumerate(actions):
        for table, rows in tables.items():
            marked = rows.mutate(sandbox_action=ibis.literal(action), _rank=ibis.literal(rank))
            parts.setdefault(table, []).append(marked)
    for table, rows in parts.items():
        schema: dict[str, object] = {}
        for part in rows:
            for column, kind in part.schema().items():
                schema.setdefault(column, kind)
        padded = [
            part.select(*((part[c] if c in part.columns else ibis.null()).cast(t).name(c)
                          for c, t in schema.items()))
            for part in rows
        ]  # fmt: skip
        union = functools.reduce(lambda a, b: a.union(b), padded)
        db.write(union.order_by(["_rank", ORDER]).drop("_rank"), folder / f"{table}.parquet")


def run_tables(
    stage: Stage,
    tables: Mapping[str, ibis.Table],
    rows: Mapping[str, int],
    ctx: Context,
    db: Engine,
    *,
    sandbox: Path | None = None,
    on_rule: Callable[[Rule], None] | None = None,
    keep: Collection[str] = (),
) -> tuple[dict[str, ibis.Table], dict[str, int], list[dict]]:
    """Run one stage on tables of engine `db` (see :func:`run_stage`); tables stay on it.

    Returns the tables and their row counts after the stage, and its rule log. A table a
    rule replaced is dropped from the engine unless its name is in `keep`. A pandas rule's
    tables are fetched for it and its output registered again.
    """
    tables, rows, log = dict(tables), dict(rows), []
    for rule in stage.rules:
        if on_rule is not None:
            on_rule(rule)
        before = {t: rows[t] for t in rule.writes if t in rows}
        started = time.perf_counter()
        if isinstance(rule, IbisRule):
            step = _step(rule, tables, rows, ctx, db)
            _raise_problems(rule, rule.problems(
                {t: step.tables[t] for t in rule.reads if t in step.tables}, ctx, db))  # fmt: skip
            if sandbox is not None:
                _ibis_sandbox(sandbox, rule, stage.tier, step, db)
            after, counts = step.tables, step.counts
            rows = step.rows
        else:
            after, counts, written = _pandas_step(rule, tables, ctx, db, stage, sandbox)
            rows = rows | written
        for table, old in tables.items():
            if after[table] is not old and old.get_name() not in keep:
                db.drop(old)
        tables = after
        log.append(_entry(rule, stage, before, {t: rows[t] for t in before}, counts, started))
    return tables, rows, log


def _pandas_step(rule: Rule, tables, ctx: Context, db: Engine, stage: Stage, sandbox):
    """Run a rule written with pandas on fetched tables; register what it wrote."""
    frames = {t: db.fetch(t, tables[t]) for t in rule.reads if t in tables}
    result = rule.apply(frames, ctx)
    undeclared = set(result.frames) - set(rule.writes)
    if undeclared:
        raise RuleError(f"rule {rule.id} wrote undeclared tables {sorted(undeclared)}")
    rule.validate({**frames, **result.frames}, ctx)
    if sandbox is not None:
        _sandbox(sandbox, rule, stage.tier, result)
    after = dict(tables) | {t: db.register(t, f) for t, f in result.frames.items()}
    return after, result.counts(), {t: len(f) for t, f in result.frames.items()}


def _entry(rule: Rule, stage: Stage, before, after, counts, started: float) -> dict:
    """One rule's record in the rule log."""
    return {
        **rule.as_dict(),
        "stage": stage.name,
        "tier": stage.tier.value,
        "rows_in": before,
        "rows_out": after,
        **counts,
        "seconds": round(time.perf_counter() - started, 3),
    }


def run_stage(
    stage: Stage,
    frames: Frames,
    ctx: Context,
    *,
    sandbox: Path | None = None,
    on_rule: Callable[[Rule], None] | None = None,
    engine: Engine | None = None,
) -> tuple[Frames, list[dict]]:
    """Run one stage's rules in order; return the new frames and the stage's rule log.

    Parameters
    ----------
    stage
        The stage (from :func:`build_pipeline`).
    frames
        Table name -> frame; not changed.
    ctx
        Registry facts and settings.
    sandbox
        Folder receiving ``<rule id>[/<tier>]/<table>.parquet`` with every removed, changed or
        added row (column ``sandbox_action``); None keeps nothing.
    on_rule
        Called with each rule before it runs (progress reporting).
    engine
        Where the rules run (default: a temporary DuckDB engine for the stage).

    Returns
    -------
    frames : dict
        The frames after the stage.
    log : list of dict
        One record per rule: its declaration, stage, tier, rows in and out per written table,
        rows removed and changed (and added, by rules that add) per table, and seconds taken
        (apply, validate, sandbox).

    Raises
    ------
    RuleError
        If a rule writes a table it did not declare or its postcondition fails.
    """
    with contextlib.ExitStack() as stack:
        db = engine if engine is not None else stack.enter_context(open_engine())
        names = sorted({t for rule in stage.rules for t in rule.reads if t in frames})
        tables = {t: db.register(t, frames[t]) for t in names}
        after, _, log = run_tables(stage, tables, {t: len(frames[t]) for t in names}, ctx, db,
                                   sandbox=sandbox, on_rule=on_rule)  # fmt: skip
        out = dict(frames)
        out.update({t: db.fetch(t, after[t]) for t in names if after[t] is not tables[t]})
    return out, log
