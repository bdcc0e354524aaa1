"""Tests of sequencing selection: the pure greedy core, the registry service and the command."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from typer.testing import CliRunner

from opencohort.config import init_home
from opencohort.errors import InputError, NotFound
from opencohort.registry import (
    GenomicState,
    ManifestRefused,
    Target,
    Targets,
    WithdrawalStatus,
    advance_genomic,
    genomic_sample_state,
    load_feed,
    open_registry,
    participant_status,
    plan_sequencing,
    select_for_sequencing,
    send_for_sequencing,
    sequencing_attributes,
    targets_deficit,
    verify_audit_chain,
    withdraw,
)
from opencohort.registry import models as m
from opencohort.registry.auth import DEV_SECRET, Role, create_token
from opencohort.registry.cli import registry as registry_cli
from opencohort.registry.sequencing import DEFAULT_TARGETS, MANIFEST_COLUMNS, _registry_pools
from opencohort.web import REGISTRY_PREFIX, Settings, create_app

LATE = date(2030, 1, 1)
RACE = Targets((Target("race_group", {"non_white": 0.45}, at_least=True),))
TWO = Targets(
    (
        Target("race_group", {"non_white": 0.45}, at_least=True),
        Target("census_region", {"northeast": 0.2, "midwest": 0.2, "south": 0.4, "west": 0.2}),
    )
)


def _pool(n: int, *, seed: int, white: float = 0.8, prefix: str = "P") -> pd.DataFrame:
    """A candidate pool with `white` share of White people and skewed regions."""
    rng = np.random.default_rng([seed, 7])
    return pd.DataFrame(
        {
            "participant_id": [f"{prefix}{i:07d}" for i in rng.permutation(n)],
            "race_group": np.where(rng.random(n) < white, "white", "non_white"),
            "census_region": rng.choice(
                ["northeast", "midwest", "south", "west"], n, p=[0.4, 0.3, 0.2, 0.1]
            ),
        }
    )


def test_select_for_sequencing__capacity_respected() -> None:
    pool = _pool(2000, seed=1)
    chosen = select_for_sequencing(pool, pool.iloc[:0], TWO, capacity=300)
    assert len(chosen.participant_ids) == 300
    assert len(set(chosen.participant_ids)) == 300
    assert set(chosen.participant_ids) <= set(pool["participant_id"])


def test_select_for_sequencing__beats_random_on_skewed_pool() -> None:
    pool, sequenced = _pool(5000, seed=2), _pool(3000, seed=3, prefix="S")
    chosen = select_for_sequencing(pool, sequenced, TWO, capacity=1000)
    picked = pool[pool["participant_id"].isin(chosen.participant_ids)]
    after = pd.concat([sequenced, picked])
    for draw in range(20):
        random = pool.sample(1000, random_state=draw)
        random_after = pd.concat([sequenced, random])
        assert chosen.deficit_after <= targets_deficit(random_after, TWO)
        random_share = (random_after["race_group"] == "non_white").mean()
        greedy_share = (after["race_group"] == "non_white").mean()
        assert abs(greedy_share - 0.45) < abs(random_share - 0.45)
    assert chosen.deficit_after < chosen.deficit_before
    assert chosen.deficit_after == pytest.approx(targets_deficit(after, TWO))


def test_select_for_sequencing__meets_reachable_targets() -> None:
    pool = _pool(20_000, seed=4, white=0.6)
    chosen = select_for_sequencing(pool, pool.iloc[:0], TWO, capacity=2000)
    targeted = chosen.report[chosen.report["target"].notna()]
    assert targeted["met"].all(), targeted
    non_white = targeted.set_index("category").loc["non_white"]
    assert non_white["share_after"] >= 0.45


def test_select_for_sequencing__first_pick_is_the_best_single_person() -> None:
    pool, sequenced = _pool(300, seed=5), _pool(200, seed=6, prefix="S")
    chosen = select_for_sequencing(pool, sequenced, TWO, capacity=1)
    deficits = [
        targets_deficit(pd.concat([sequenced, pool.iloc[[i]]]), TWO) for i in range(len(pool))
    ]
    best = np.flatnonzero(np.isclose(deficits, min(deficits)))
    assert chosen.participant_ids[0] == min(pool["participant_id"].iloc[best])


def test_select_for_sequencing__deterministic_and_order_free() -> None:
    pool, sequenced = _pool(3000, seed=7), _pool(500, seed=8, prefix="S")
    first = select_for_sequencing(pool, sequenced, TWO, capacity=700)
    shuffled = pool.sample(frac=1.0, random_state=1)
    second = select_for_sequencing(shuffled, sequenced, TWO, capacity=700)
    assert list(first.participant_ids) == list(second.participant_ids)
    pd.testing.assert_frame_equal(first.report, second.report)


def test_select_for_sequencing__ties_by_participant_id() -> None:
    pool = pd.DataFrame(
        {"participant_id": ["P9", "P3", "P5", "P1"], "race_group": ["non_white"] * 4}
    )
    chosen = select_for_sequencing(pool, pool.iloc[:0], RACE, capacity=2)
    assert list(chosen.participant_ids) == ["P1", "P3"]


def test_select_for_sequencing__empty_pool() -> None:
    pool = _pool(0, seed=9)
    sequenced = _pool(50, seed=10, prefix="S")
    chosen = select_for_sequencing(pool, sequenced, TWO, capacity=10)
    assert len(chosen.participant_ids) == 0
    assert chosen.deficit_after == pytest.approx(chosen.deficit_before)
    assert (chosen.report["count_selected"] == 0).all()


def test_select_for_sequencing__capacity_above_pool_takes_everyone() -> None:
    pool = _pool(40, seed=11)
    chosen = select_for_sequencing(pool, pool.iloc[:0], TWO, capacity=5000)
    assert sorted(chosen.participant_ids) == sorted(pool["participant_id"])
    report = chosen.report.set_index(["attribute", "category"])
    assert report.loc[("race_group", "non_white"), "count_after"] == (
        (pool["race_group"] == "non_white").sum()
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda p, s: (p.drop(columns="census_region"), s), "census_region"),
        (lambda p, s: (pd.concat([p, p.iloc[:1]]), s), "participant_id"),
        (lambda p, s: (p, pd.concat([s, p.iloc[:1]])), "participant_id"),
    ],
)
def test_select_for_sequencing__bad_input(change, field) -> None:
    pool, sequenced = change(_pool(20, seed=12), _pool(5, seed=13, prefix="S"))
    with pytest.raises(InputError) as caught:
        select_for_sequencing(pool, sequenced, TWO, capacity=3)
    assert caught.value.field == field


def test_select_for_sequencing__bad_capacity_and_targets() -> None:
    with pytest.raises(InputError, match="capacity"):
        select_for_sequencing(_pool(5, seed=1), _pool(0, seed=1), TWO, capacity=-1)
    with pytest.raises(InputError, match="sum"):
        Target("census_region", {"south": 0.7, "west": 0.6})
    with pytest.raises(InputError, match="twice"):
        Targets((TWO.targets[0], TWO.targets[0]))


def test_targets_deficit__by_hand() -> None:
    people = pd.DataFrame(
        {
            "participant_id": ["P1", "P2", "P3", "P4"],
            "race_group": ["white", "white", "white", "non_white"],
            "census_region": ["south", "south", "west", "unknown"],
        }
    )
    # race: (0.25 - 0.45)^2; regions: ne 0.2^2 + mw 0.2^2 + south (0.5-0.4)^2 + west (0.25-0.2)^2
    expected = 0.2**2 + 0.2**2 + 0.2**2 + 0.1**2 + 0.05**2
    assert targets_deficit(people, TWO) == pytest.approx(expected)
    above = people.assign(race_group="non_white")
    assert targets_deficit(above, RACE) == 0.0


@st.composite
def _pools(draw):
    n_pool = draw(st.integers(0, 60))
    n_seq = draw(st.integers(0, 30))
    categories = st.sampled_from(["a", "b", "c"])
    frame = pd.DataFrame(
        {
            "participant_id": [f"P{i}" for i in range(n_pool + n_seq)],
            "x": draw(st.lists(categories, min_size=n_pool + n_seq, max_size=n_pool + n_seq)),
            "y": draw(st.lists(categories, min_size=n_pool + n_seq, max_size=n_pool + n_seq)),
        }
    )
    x_share = draw(st.floats(0, 1))
    y_shares = draw(st.lists(st.floats(0, 0.5), min_size=2, max_size=2))
    targets = Targets(
        (
            Target("x", {"a": x_share}, at_least=draw(st.booleans())),
            Target("y", {"b": y_shares[0], "c": y_shares[1]}),
        )
    )
    return frame.iloc[:n_pool], frame.iloc[n_pool:], targets, draw(st.integers(0, 80))


@settings(max_examples=60, deadline=None)
@given(_pools())
def test_select_for_sequencing__property(case) -> None:
    pool, sequenced, targets, capacity = case
    chosen = select_for_sequencing(pool, sequenced, targets, capacity=capacity)
    ids = list(chosen.participant_ids)
    assert set(ids) <= set(pool["participant_id"]) and len(set(ids)) == len(ids)
    assert len(ids) == min(capacity, len(pool))
    report = chosen.report
    for _, rows in report.groupby("attribute"):
        assert rows["count_after"].sum() == len(sequenced) + len(ids)
        if len(sequenced) + len(ids):
            assert rows["share_after"].sum() == pytest.approx(1.0)
        if len(sequenced):
            assert rows["share_before"].sum() == pytest.approx(1.0)


def test_sequencing_attributes__regions_ages_and_flags() -> None:
    people = pd.DataFrame(
        {
            "participant_id": ["P1", "P2", "P3"],
            "race_ethnicity": ["white", "black", "skip"],
            "birth_date": [date(1950, 6, 1), date(1990, 1, 1), date(2010, 1, 1)],
            "sex_at_birth": ["female", "male", "skip"],
            "state": ["NY", "TX", "PR"],
            "disability": [True, False, False],
            "ubr": [True, False, True],
        }
    )
    got = sequencing_attributes(people, as_of=date(2025, 1, 1))
    assert list(got["race_group"]) == ["white", "non_white", "unknown"]
    assert list(got["age_group"]) == ["65_plus", "18_44", "under_18"]
    assert list(got["census_region"]) == ["northeast", "south", "unknown"]
    assert list(got["ubr"]) == ["yes", "no", "yes"]
    assert list(got["health"]) == ["disability", "no_disability", "no_disability"]


# --- service and command on the registry (both engines) ---------------------------------------


def _dna_samples(registry, participant_ids) -> dict[str, str]:
    s = m.Sample
    with registry.session() as session:
        rows = session.execute(
            select(s.participant_id, s.sample_id)
            .where(s.test_code.in_(m.DNA_TEST_CODES), s.received_date.is_not(None))
            .order_by(s.sample_id)
        ).all()
    found: dict[str, str] = {}
    for pid, sample_id in rows:
        if pid in participant_ids:
            found.setdefault(pid, sample_id)
    return found


def test_plan_sequencing__eligible_only_and_workflow_respected(registry, feed) -> None:
    directory, people = feed
    load_feed(registry, directory, seed=3)
    eligible = {
        pid
        for pid in people["participant_id"]
        if participant_status(registry, pid, as_of=LATE).genomic.eligible
    }
    assert len(eligible) > 20
    samples = _dna_samples(registry, eligible)
    sent = sorted(samples)[:5]
    for pid in sent:
        advance_genomic(registry, samples[pid], state=GenomicState.ELIGIBLE, day=LATE)
        advance_genomic(registry, samples[pid], state=GenomicState.MANIFEST_SENT, day=LATE)
    plan = plan_sequencing(registry, capacity=10_000, as_of=LATE)
    assert set(plan.participant_ids) == eligible - set(sent)
    assert plan.pool == len(eligible) - len(sent)
    before = plan.report.groupby("attribute")["count_before"].sum()
    assert (before == len(sent)).all()
    small = plan_sequencing(registry, capacity=7, as_of=LATE)
    assert len(small.participant_ids) == 7
    assert small.deficit_after <= small.deficit_before or small.deficit_before == 0


def test_registry_cli__sequencing_plan(feed, tmp_path) -> None:
    directory, _ = feed
    home = init_home(tmp_path / "home")
    runner = CliRunner()
    loaded = runner.invoke(registry_cli, ["load", str(directory), "--home", str(home.root)])
    assert loaded.exit_code == 0, loaded.output
    args = ["sequencing-plan", "--home", str(home.root), "--as-of", "2030-01-01"]
    shown = runner.invoke(registry_cli, [*args, "--capacity", "12", "--json"])
    assert shown.exit_code == 0, shown.output
    plan = json.loads(shown.output)
    assert len(plan["participant_ids"]) == min(12, plan["pool"])
    assert {row["attribute"] for row in plan["report"]} == set(DEFAULT_TARGETS.attributes)
    table = runner.invoke(registry_cli, [*args, "--capacity", "12"])
    assert table.exit_code == 0 and "census_region" in table.output, table.output
    bad = runner.invoke(registry_cli, [*args, "--capacity", "-1"])
    assert bad.exit_code == 2
    alone = runner.invoke(registry_cli, [*args, "--send"])
    assert alone.exit_code == 2 and "--manifest" in alone.output


def test_registry_cli__sequencing_plan_send(feed, tmp_path) -> None:
    home = init_home(tmp_path / "home")
    runner = CliRunner()
    assert (
        runner.invoke(registry_cli, ["load", str(feed[0]), "--home", str(home.root)]).exit_code == 0
    )
    args = ["sequencing-plan", "--home", str(home.root), "--as-of", "2030-01-01", "--json"]
    path = tmp_path / "week1.csv"
    sent = runner.invoke(
        registry_cli, [*args, "--capacity", "15", "--send", "--manifest", str(path)]
    )
    assert sent.exit_code == 0, sent.output
    first = json.loads(sent.output)
    assert first["sent"] == {"samples": 15, "manifest": str(path)}
    manifest = pd.read_csv(path, dtype=str)
    assert len(manifest) == 15 and manifest["sample_id"].is_unique
    registry = open_registry(home.registry_url)
    try:
        steps = _steps(registry)
        sent_ids = steps.loc[steps["state"] == "manifest_sent", "participant_id"]
        assert list(sent_ids) == first["participant_ids"]
        assert set(steps.loc[steps["state"] == "manifest_sent", "sample_id"]) == set(
            manifest["sample_id"]
        )
        assert verify_audit_chain(registry).ok
        start = _snapshot(registry)
    finally:
        registry.close()
    again = runner.invoke(
        registry_cli, [*args, "--capacity", "15", "--send", "--manifest", str(path)]
    )
    assert again.exit_code == 1 and isinstance(again.exception, InputError)
    shown = json.loads(runner.invoke(registry_cli, [*args, "--capacity", "10000"]).output)
    assert shown["pool"] == first["pool"] - 15
    assert not set(shown["participant_ids"]) & set(first["participant_ids"])
    registry = open_registry(home.registry_url)
    try:
        assert _snapshot(registry) == start
    finally:
        registry.close()


def _snapshot(registry) -> tuple:
    """What a send may change: genomic steps, the audit log and participant versions."""
    with registry.session() as session:
        return (
            session.scalar(select(func.count()).select_from(m.GenomicEvent)),
            session.scalar(select(func.max(m.AuditEntry.audit_id))),
            session.scalar(select(func.sum(m.Participant.version))),
        )


def _versions(registry) -> dict[str, int]:
    p = m.Participant
    with registry.session() as session:
        return dict(session.execute(select(p.participant_id, p.version)).all())


def _steps(registry) -> pd.DataFrame:
    g, s = m.GenomicEvent, m.Sample
    with registry.session() as session:
        rows = session.execute(
            select(s.participant_id, g.sample_id, g.state, g.event_date, s.test_code)
            .join(s, s.sample_id == g.sample_id)
            .order_by(g.genomic_event_id)
        ).all()
    return pd.DataFrame(
        rows, columns=["participant_id", "sample_id", "state", "event_date", "test_code"]
    )


def test_send_for_sequencing__moves_exactly_the_chosen(registry, feed, tmp_path) -> None:
    load_feed(registry, feed[0], seed=3)
    plan = plan_sequencing(registry, capacity=30, as_of=LATE)
    chosen = list(plan.participant_ids)
    assert len(chosen) == 30
    versions, start = _versions(registry), _snapshot(registry)
    path = tmp_path / "manifest.csv"
    sent = send_for_sequencing(registry, chosen, day=LATE, manifest=path, actor="tester")
    steps = _steps(registry)
    assert list(steps.loc[steps["state"] == "manifest_sent", "participant_id"]) == chosen
    assert (steps.groupby("participant_id")["sample_id"].nunique() == 1).all()
    assert set(steps["test_code"]) <= set(m.DNA_TEST_CODES)
    assert list(steps["state"].value_counts().sort_index().items()) == [
        ("eligible", 30),
        ("manifest_sent", 30),
    ]
    for pid, sample_id in zip(sent["participant_id"], sent["sample_id"], strict=True):
        state = genomic_sample_state(registry, sample_id, as_of=LATE)
        assert (state["participant_id"], state["state"]) == (pid, "manifest_sent")
    after = _versions(registry)
    assert {pid for pid in after if after[pid] != versions[pid]} == set(chosen)
    assert all(after[pid] == versions[pid] + 2 for pid in chosen)
    assert verify_audit_chain(registry).ok
    end = _snapshot(registry)
    assert end[1] - start[1] == 60 + 1  # one row per step and one for the manifest
    written = pd.read_csv(path, dtype=str)
    assert list(written.columns) == list(MANIFEST_COLUMNS)
    assert list(written["sample_id"]) == list(sent["sample_id"])
    with registry.session() as session:
        biobank = dict(session.execute(select(m.Participant.participant_id,
                                              m.Participant.biobank_id)).all())  # fmt: skip
    assert list(written["biobank_id"]) == [biobank[pid] for pid in chosen]
    assert set(written["sent_date"]) == {LATE.isoformat()}
    again = plan_sequencing(registry, capacity=10_000, as_of=LATE)
    assert not set(again.participant_ids) & set(chosen)
    assert again.pool == plan.pool - 30
    assert (again.report.groupby("attribute")["count_before"].sum() == 30).all()


def test_send_for_sequencing__whole_plan_is_sendable(registry, feed) -> None:
    """The set-wise plan and the pure checks of a send agree on who can be sent."""
    load_feed(registry, feed[0], seed=3)
    with registry.session() as session:
        spoiled = session.scalar(select(func.count()).select_from(m.SampleEvent))
    assert spoiled > 0  # the feed has disposed and quality-issue samples to leave out
    plan = plan_sequencing(registry, capacity=10_000, as_of=LATE)
    sent = send_for_sequencing(registry, plan.participant_ids, day=LATE)
    assert len(sent) == plan.pool > 100
    assert plan_sequencing(registry, capacity=10_000, as_of=LATE).pool == 0


def test_send_for_sequencing__refusal_changes_nothing(registry, feed, tmp_path) -> None:
    load_feed(registry, feed[0], seed=3)
    chosen = list(plan_sequencing(registry, capacity=20, as_of=LATE).participant_ids)
    withdraw(registry, chosen[3], status=WithdrawalStatus.NO_USE, authored=LATE, reason="x")
    send_for_sequencing(registry, chosen[:2], day=LATE)
    start = _snapshot(registry)
    out = tmp_path / "out"
    out.mkdir()
    path = out / "manifest.csv"
    with pytest.raises(ManifestRefused) as refused:
        send_for_sequencing(registry, chosen, day=LATE, manifest=path)
    assert len(refused.value.problems) == 3
    assert any(chosen[3] in p and "withdrawn" in p for p in refused.value.problems)
    assert str(refused.value).count("already sent") == 2
    with pytest.raises(NotFound, match="P999"):
        send_for_sequencing(registry, [*chosen[4:], "P999"], day=LATE, manifest=path)
    with pytest.raises(InputError, match="twice"):
        send_for_sequencing(registry, [chosen[5], chosen[5]], day=LATE, manifest=path)
    assert _snapshot(registry) == start
    assert list(out.iterdir()) == []
    path.write_text("kept")
    with pytest.raises(InputError, match="never overwritten"):
        send_for_sequencing(registry, chosen[4:], day=LATE, manifest=path)
    assert _snapshot(registry) == start and path.read_text() == "kept"


def _dna_counts(registry) -> dict[str, int]:
    s = m.Sample
    with registry.session() as session:
        rows = session.execute(
            select(s.participant_id, func.count())
            .where(s.test_code.in_(m.DNA_TEST_CODES), s.received_date.is_not(None))
            .group_by(s.participant_id)
        ).all()
    return dict(rows)


def _fail_qc(registry, sample_id: str, day: date) -> None:
    for state in (GenomicState.RECEIVED, GenomicState.SEQUENCED, GenomicState.QC_FAILED):
        advance_genomic(registry, sample_id, state=state, day=day)


def test_plan_sequencing__qc_failed_rechosen(registry, feed) -> None:
    load_feed(registry, feed[0], seed=3)
    plan = plan_sequencing(registry, capacity=10_000, as_of=LATE)
    counts = _dna_counts(registry)
    two = next(pid for pid in plan.participant_ids if counts[pid] >= 2)
    one = next(pid for pid in plan.participant_ids if counts[pid] == 1)
    first = send_for_sequencing(registry, [two, one], day=LATE).set_index("participant_id")
    sent = plan_sequencing(registry, capacity=10_000, as_of=LATE)
    assert {two, one}.isdisjoint(sent.participant_ids)
    for pid in (two, one):
        _fail_qc(registry, first.loc[pid, "sample_id"], LATE)
    failed = plan_sequencing(registry, capacity=10_000, as_of=LATE)
    assert two in set(failed.participant_ids) and one not in set(failed.participant_ids)
    assert (failed.report.groupby("attribute")["count_before"].sum() == 0).all()
    assert failed.without_sample == sent.without_sample + 1
    assert failed.pool == sent.pool + 1
    second = send_for_sequencing(registry, [two], day=LATE).set_index("participant_id")
    assert second.loc[two, "sample_id"] != first.loc[two, "sample_id"]
    with pytest.raises(ManifestRefused, match="no DNA sample to send"):
        send_for_sequencing(registry, [one], day=LATE)
    final = plan_sequencing(registry, capacity=10_000, as_of=LATE)
    assert (final.report.groupby("attribute")["count_before"].sum() == 1).all()


def test_plan_sequencing__targets_move_toward_shares(registry, feed) -> None:
    load_feed(registry, feed[0], seed=3)
    pool = plan_sequencing(registry, capacity=10_000, as_of=LATE)
    # A first batch chosen without regard to the targets: the lowest participant ids.
    send_for_sequencing(registry, sorted(pool.participant_ids)[:40], day=LATE)
    plan = plan_sequencing(registry, capacity=40, as_of=LATE)
    assert plan.deficit_after < plan.deficit_before
    report = plan.report[plan.report["target"].notna()]
    short = report[report["at_least"] & (report["share_before"] < report["target"])]
    assert len(short) > 0
    assert (short["share_after"] > short["share_before"]).all(), short
    with registry.engine.connect() as connection:
        candidates, sequenced, _ = _registry_pools(connection, LATE)
    for draw in range(10):
        random = candidates.sample(40, random_state=draw)
        after = pd.concat([sequenced, random])
        assert plan.deficit_after <= targets_deficit(after, DEFAULT_TARGETS)


def test_api__sequencing_plan_and_manifest(db_url, feed) -> None:
    app = create_app(Settings(registry_url=db_url))
    registry = app.state.registry
    try:
        load_feed(registry, feed[0], seed=3)
        client = TestClient(app, base_url="http://testserver" + REGISTRY_PREFIX)
        token = {role: create_token(registry, name=role.value, role=role, secret=DEV_SECRET)
                 for role in (Role.CURATION, Role.SITE_STAFF)}  # fmt: skip
        curation = {"Authorization": f"Bearer {token[Role.CURATION]}"}
        staff = {"Authorization": f"Bearer {token[Role.SITE_STAFF]}"}
        query = {"capacity": 10, "as_of": LATE.isoformat()}
        plan = client.get("/sequencing/plan", params=query, headers=curation)
        assert plan.status_code == 200, plan.text
        chosen = plan.json()["participant_ids"]
        assert len(chosen) == 10
        assert chosen == list(plan_sequencing(registry, capacity=10, as_of=LATE).participant_ids)
        body = {"participant_ids": chosen, "day": LATE.isoformat()}
        assert client.get("/sequencing/plan", params=query, headers=staff).status_code == 403
        assert client.post("/sequencing/manifests", json=body, headers=staff).status_code == 403
        start = _snapshot(registry)
        sent = client.post("/sequencing/manifests", json=body, headers=curation)
        assert sent.status_code == 201, sent.text
        rows = sent.json()["data"]
        assert [r["participant_id"] for r in rows] == chosen and sent.json()["count"] == 10
        for row in rows:
            state = genomic_sample_state(registry, row["sample_id"], as_of=LATE)
            assert state["state"] == "manifest_sent"
        middle = _snapshot(registry)
        assert middle[0] == start[0] + 20
        again = client.post("/sequencing/manifests", json=body, headers=curation)
        assert again.status_code == 409 and "already sent" in again.json()["message"]
        assert _snapshot(registry) == middle
        after = client.get("/sequencing/plan", params=query, headers=curation).json()
        assert not set(after["participant_ids"]) & set(chosen)
        assert verify_audit_chain(registry).ok
    finally:
        registry.close()


def test_send_for_sequencing__any_committed_sample_blocks(registry, feed) -> None:
    """A participant sent with their later sample is not sent again with the earlier one."""
    load_feed(registry, feed[0], seed=3)
    plan = plan_sequencing(registry, capacity=10_000, as_of=LATE)
    counts = _dna_counts(registry)
    pid = next(p for p in plan.participant_ids if counts[p] >= 2)
    s = m.Sample
    with registry.session() as session:
        later = session.scalars(
            select(s.sample_id)
            .where(s.participant_id == pid, s.test_code.in_(m.DNA_TEST_CODES))
            .order_by(s.received_date.desc(), s.sample_id.desc())
        ).first()
    for state in (GenomicState.ELIGIBLE, GenomicState.MANIFEST_SENT):
        advance_genomic(registry, later, state=state, day=LATE)
    assert pid not in set(plan_sequencing(registry, capacity=10_000, as_of=LATE).participant_ids)
    start = _snapshot(registry)
    with pytest.raises(ManifestRefused, match=f"{pid} is already sent .*{later}"):
        send_for_sequencing(registry, [pid], day=LATE)
    assert _snapshot(registry) == start
