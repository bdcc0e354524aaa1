"""The rule framework: pipeline building, and the contract every registered rule keeps."""

from __future__ import annotations

import ibis
import numpy as np
import pandas as pd
import pytest

from opencohort.curate import (
    PRE_TIER_STAGES,
    RULES,
    TIER_POLICY,
    Rule,
    Tier,
    build_pipeline,
    changing,
    dropping,
    run_stage,
)
from opencohort.curate._omop import empty_cohort
from opencohort.curate.rules import Context
from opencohort.curate.service import ehr_sites
from opencohort.errors import RuleError


def _rule(rule_id: str, deps: tuple[str, ...] = ()) -> type[Rule]:
    return type(
        rule_id,
        (Rule,),
        {"id": rule_id, "purpose": "test", "reads": ("person",), "writes": ("person",),
         "depends_on": deps, "implements": "test"},
    )  # fmt: skip


def test_build_pipeline__orders_by_dependency():
    rules = {"a": _rule("a", ("b",)), "b": _rule("b")}
    assert build_pipeline({"s": ["a", "b"]}, rules=rules).rule_ids == ["b", "a"]


@pytest.mark.parametrize(
    ("stages", "message"),
    [
        ({"s": ["a"]}, "which is in no stage"),
        ({"s": ["a", "b"], "t": ["c"]}, "cycle"),
        ({"s": ["d"], "t": ["c"]}, "runs later"),
        ({"s": ["x"]}, "unknown rule"),
    ],
    ids=["missing", "cycle", "later-stage", "unknown"],
)
def test_build_pipeline__bad_declarations_raise(stages, message):
    rules = {"a": _rule("a", ("b",)), "b": _rule("b", ("a",)), "c": _rule("c"),
             "d": _rule("d", ("c",))}  # fmt: skip
    if message == "cycle":
        stages = {"s": ["a", "b"]}
    with pytest.raises(RuleError, match=message):
        build_pipeline(stages, rules=rules)


def test_build_pipeline__wrong_tier_raises():
    with pytest.raises(RuleError, match="runs in registered"):
        build_pipeline({"c": ["date_shift"]}, tier=Tier.CONTROLLED, rules=RULES)


def test_default_policy__builds():
    pre = build_pipeline(PRE_TIER_STAGES)
    for tier, ids in TIER_POLICY.items():
        assert set(build_pipeline({"d": ids}, tier=tier, after=pre).rule_ids) == set(ids)


@pytest.fixture(scope="module")
def staged(sources):
    """Inputs for each rule: raw frames, cleaned frames, and per tier after pid_to_rid."""
    pre = build_pipeline(PRE_TIER_STAGES)
    frames, ctx = sources.frames, sources.context
    for stage in pre.stages:
        frames, _ = run_stage(stage, frames, ctx)
    ctx = ctx.with_(ehr_sites=ehr_sites({t: ibis.memtable(f) for t, f in frames.items()}, ctx))
    after_pid = {}
    for tier in (Tier.REGISTERED, Tier.CONTROLLED):
        stage = build_pipeline({"p": ["pid_to_rid"]}, tier=tier, after=pre).stages[0]
        after_pid[tier], _ = run_stage(stage, frames, ctx.with_(tier=tier))
    return sources.frames, frames, after_pid, ctx


def _input(cls: type[Rule], staged):
    raw, cleaned, after_pid, ctx = staged
    if Tier.BOTH in cls.tiers:
        return (cleaned if cls.id == "row_ids" else raw), sources_ctx(ctx, Tier.BOTH)
    tier = min(cls.tiers)
    frames = after_pid[tier] if "pid_to_rid" in cls.depends_on else cleaned
    return frames, sources_ctx(ctx, tier)


def sources_ctx(ctx: Context, tier: Tier) -> Context:
    return ctx.with_(tier=tier)


def _strings(frame: pd.DataFrame, column: str) -> set:
    return set(frame[column].dropna().astype(str))


@pytest.mark.parametrize("rule_id", sorted(RULES))
def test_rule_contract(rule_id, staged):
    cls = RULES[rule_id]
    rule = cls()
    assert cls.purpose and cls.implements and cls.writes
    assert set(cls.writes) <= set(cls.reads)
    assert set(cls.as_dict()) >= {"id", "reads", "writes", "depends_on", "tiers", "implements"}
    frames, ctx = _input(cls, staged)
    inputs = {t: frames[t] for t in cls.reads}
    result = rule.apply(inputs, ctx)
    assert set(result.frames) <= set(cls.writes), "writes an undeclared table"
    rule.validate({**frames, **result.frames}, ctx)
    # a rule moving rows between tables carries their values along
    moved = set().union(*(_strings(f, c) for f in result.removed.values() for c in f.columns
                          if f[c].dtype == object)) if result.added else set()  # fmt: skip
    for table, out in result.frames.items():
        before = inputs[table]
        removed = len(result.removed.get(table, []))
        added = len(result.added.get(table, []))
        assert len(before) - len(out) == removed - added, f"{table}: silent removal"
        assert set(out.columns) <= set(before.columns), f"{table}: adds a column"
        for column in out.columns:
            if column == "person_id" and rule_id == "pid_to_rid":
                assert set(out[column]) <= set(ctx.people["research_id"])
            elif out[column].dtype == object:
                new = _strings(out, column) - _strings(before, column) - cls.introduces
                new -= moved
                assert not new, f"{table}.{column} gains values {sorted(new)[:3]}"
            elif column == "person_id":
                assert set(out[column].dropna()) <= set(before[column].dropna())
    empty = rule.apply({t: f for t, f in empty_cohort().items() if t in cls.reads}, ctx)
    assert all(len(f) == 0 for f in empty.frames.values())
    if cls.idempotent:
        again = rule.apply({**inputs, **result.frames}, ctx)
        for table, out in result.frames.items():
            pd.testing.assert_frame_equal(
                again.frames[table].reset_index(drop=True), out.reset_index(drop=True)
            )


def test_run_stage__sandbox_keeps_removed_rows(tmp_path):
    frame = pd.DataFrame({"person_id": pd.array([1, 2, 3], dtype="Int64")})

    class DropTwo(_rule("drop_two")):
        def apply(self, frames, ctx):
            return dropping(frames, {"person": (frames["person"]["person_id"] == 2).to_numpy()})

    stage = build_pipeline({"s": ["drop_two"]}, rules={"drop_two": DropTwo}).stages[0]
    ctx = Context(cutoff=0, people=pd.DataFrame())
    out, log = run_stage(stage, {"person": frame}, ctx, sandbox=tmp_path)
    kept = pd.read_parquet(tmp_path / "drop_two" / "person.parquet")
    assert kept["person_id"].tolist() == [2] and list(out["person"]["person_id"]) == [1, 3]
    assert log[0]["removed"] == {"person": 1} and log[0]["rows_out"] == {"person": 2}
    assert np.all(kept["sandbox_action"] == "removed")


def test_run_stage__sandbox_keeps_changed_rows_compactly(tmp_path):
    frame = pd.DataFrame(
        {
            "visit_occurrence_id": pd.array([10, 11, 12], dtype="Int64"),
            "person_id": pd.array([1, 2, 3], dtype="Int64"),
            "visit_source_value": ["a", "b", "c"],
            "src_id": ["s1", "s1", "s2"],
        }
    )

    class RenumberAndDrop(_rule("renumber")):
        reads = writes = ("visit_occurrence",)

        def apply(self, frames, ctx):
            v = frames["visit_occurrence"]
            ids = v["visit_occurrence_id"].where(v["person_id"] != 2, 99)
            result = changing(frames, {"visit_occurrence": v.assign(visit_occurrence_id=ids)})
            result.removed = {"visit_occurrence": v[v["person_id"] == 3]}
            return result

    stage = build_pipeline({"s": ["renumber"]}, rules={"renumber": RenumberAndDrop}).stages[0]
    ctx = Context(cutoff=0, people=pd.DataFrame())
    run_stage(stage, {"visit_occurrence": frame}, ctx, sandbox=tmp_path)
    kept = pd.read_parquet(tmp_path / "renumber" / "visit_occurrence.parquet")
    assert kept["sandbox_action"].tolist() == ["removed", "changed"]
    changed = kept[kept["sandbox_action"] == "changed"].iloc[0]
    assert (changed["visit_occurrence_id"], changed["sandbox_new_visit_occurrence_id"]) == (11, 99)
    assert (changed["person_id"], changed["src_id"]) == (2, "s1")
    assert pd.isna(changed["visit_source_value"])  # unchanged columns are not kept
    removed = kept[kept["sandbox_action"] == "removed"].iloc[0]
    assert removed["visit_source_value"] == "c"
