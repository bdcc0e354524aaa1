"""Curation use case: gather the latest submissions and registry facts, then run the pipeline."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import ibis
import pandas as pd

from opencohort.config import Home
from opencohort.curate._omop import DEMOGRAPHICS, EHR_TABLES, PERSON, SRC_ID, concat_rows, empty
from opencohort.curate.alignment import concept_domains
from opencohort.curate.deid import PRE_TIER_STAGES, TIER_POLICY
from opencohort.curate.engine import Engine, open_engine
from opencohort.curate.facts import (
    demographics_table,
    person_table,
    read_facts,
    read_identifiers,
    to_day,
)
from opencohort.curate.feeds import gather_feeds
from opencohort.curate.rules import (
    TIERS,
    Context,
    Frames,
    Pipeline,
    Rule,
    Tier,
    build_pipeline,
    run_tables,
)
from opencohort.errors import InputError, NotFound
from opencohort.ingest import (
    PROGRAM,
    Submission,
    latest_submission,
    match_identities,
    read_submission,
    registry_identities,
    site_identities,
    submissions,
)


@dataclass(frozen=True)
class Policy:
    """Which rules run: the stages before the tiers and each tier's de-identification list."""

    stages: Mapping[str, Sequence[str]] = field(default_factory=lambda: dict(PRE_TIER_STAGES))
    tiers: Mapping[Tier, Sequence[str]] = field(default_factory=lambda: dict(TIER_POLICY))
    rules: Mapping[str, type[Rule]] | None = None

    def pipelines(self) -> tuple[Pipeline, dict[Tier, Pipeline]]:
        """Build (and so check) every pipeline before anything runs.

        Raises
        ------
        RuleError
            If a rule is unknown, misplaced, has a missing dependency or a cycle.
        """
        pre = build_pipeline(self.stages, rules=self.rules)
        tiers = {
            tier: build_pipeline(
                {f"{tier.value}_deid": self.tiers[tier]}, tier=tier, after=pre, rules=self.rules
            )
            for tier in TIERS
        }
        return pre, tiers


@dataclass
class Sources:
    """What a release is built from: the frames, the context and the source snapshot."""

    frames: Frames
    context: Context
    snapshot: dict


def _submission(home: Home, site: str, pinned: Mapping[str, str] | None) -> Submission:
    if pinned is None:
        return latest_submission(home, site)
    for stored in submissions(home, site):
        if stored.submission_id == pinned[site]:
            return stored
    raise NotFound(f"site {site} has no stored submission {pinned[site]} in {home.raw}")


def gather(
    home: Home,
    *,
    cutoff: date,
    people: pd.DataFrame | None = None,
    pinned: Mapping[str, str] | None = None,
    pinned_feeds: Mapping[str, str] | None = None,
    retract: Collection[str] = (),
) -> Sources:
    """Read registry facts, every site's latest submission and the program's feeds into frames.

    Parameters
    ----------
    home
        The program home.
    cutoff
        Submission cut-off date (events after it are removed; consents as of it).
    people
        Registry facts (from :func:`opencohort.curate.facts.read_facts`); default: read them.
    pinned
        Site id -> submission id to use instead of each site's latest (only these sites).
    pinned_feeds
        Feed -> submission id to use instead of each feed's latest valid one (only these
        feeds); used with `pinned`.
    retract
        Participant ids whose data the ``retracted_participants`` rule removes.

    Returns
    -------
    Sources
        Frames (EHR tables with a ``src_id`` column, physical measurements among them with
        the program as source, the person and demographics tables from the registry, survey
        answers and wearables), the context, and the snapshot (each site and feed
        submission id and checksum).

    Raises
    ------
    InputError
        If a participant id in `retract` is not in the registry.
    NotFound
        If a pinned submission is not in the raw store.
    """
    facts, site_states = read_facts(home, as_of=cutoff)
    if people is not None:
        facts = people
    unknown = sorted(set(retract) - set(facts["participant_id"]))
    if unknown:
        raise InputError(f"not in the registry: {', '.join(unknown)}", field="participant_id")
    facts = facts.assign(retracted=facts["participant_id"].isin(set(retract)))
    parts: dict[str, list[pd.DataFrame]] = {t: [] for t in EHR_TABLES}
    drops, snapshot = [], []
    ehr_root = home.raw / "ehr"
    sites = sorted(p.name for p in ehr_root.iterdir() if p.is_dir()) if ehr_root.is_dir() else []
    if pinned is not None:
        sites = sorted(pinned)
    identity = read_identifiers(home)
    registry = registry_identities(
        facts.reset_index()[["participant_id", "zip", "sex_at_birth"]]
        .assign(
            birth_date=pd.to_datetime(facts["birth_date"].astype("float64").to_numpy(), unit="D")
        )
        .merge(identity, on="participant_id", how="left")
    )
    for site in sites:
        submission = _submission(home, site, pinned)
        snapshot.append({"site_id": site, "submission_id": submission.submission_id,
                         "content_sha256": submission.content_sha256})  # fmt: skip
        _, tables = read_submission(submission)
        if "person" in tables:
            match = match_identities(site_identities(tables), registry)
            dropped = match.index[match["drop"].to_numpy(dtype=bool)]
            drops.append(pd.DataFrame({"src_id": site, "person_id": dropped.astype("Int64")}))
        for name in EHR_TABLES:
            if name in tables:
                parts[name].append(tables[name].frame.assign(**{SRC_ID: site}))
    frames = {t: concat_rows(parts.pop(t)) if parts[t] else empty(t, src=True) for t in EHR_TABLES}
    ids = frames["measurement"]["measurement_id"]
    first_id = int(ids.max()) + 1 if ids.notna().any() else 1
    known = set(facts["participant_id"])
    feed_frames, pm, feed_snapshot = gather_feeds(
        home, known, first_measurement_id=first_id,
        pinned=None if pinned is None else dict(pinned_feeds or {}),
    )  # fmt: skip
    if len(pm):
        frames["measurement"] = concat_rows([frames["measurement"], pm])
    frames[PERSON] = person_table(facts)
    frames[DEMOGRAPHICS] = demographics_table(facts)
    frames.update(feed_frames)
    no_drops = pd.DataFrame({"src_id": [], "person_id": []})
    ctx = Context(
        cutoff=to_day(cutoff),
        people=facts,
        identity_drops=pd.concat(drops, ignore_index=True) if drops else no_drops,
        site_states=site_states,
        settings=home.settings.get("privacy", {}),
        concept_domains=concept_domains(home.root),
    )
    return Sources(frames, ctx, {"submissions": snapshot, "feeds": feed_snapshot})


def ehr_sites(tables: Mapping[str, ibis.Table], ctx: Context) -> pd.DataFrame:
    """(research id, site) pairs of who sent EHR rows for whom (from the cleaned tables)."""
    parts = [t.select(person_id=t["person_id"].cast("int64"), **{SRC_ID: t[SRC_ID].cast("string")})
             for name, t in tables.items()
             if name in EHR_TABLES and {"person_id", SRC_ID} <= set(t.columns)]  # fmt: skip
    if not parts:
        return pd.DataFrame({"person_id": [], SRC_ID: []})
    union = functools.reduce(lambda a, b: a.union(b), parts).distinct()
    pairs = union.filter(union[SRC_ID] != PROGRAM).to_pandas()
    rid = ctx.people["research_id"].reindex(pairs["person_id"].astype("float64")).to_numpy()
    return pd.DataFrame({"person_id": rid, SRC_ID: pairs[SRC_ID].to_numpy()}).dropna()


def curate(
    sources: Sources,
    *,
    policy: Policy | None = None,
    sandbox: Path | None = None,
    on_rule: Callable[[str, Rule], None] | None = None,
    on_tier: Callable[[Tier, Frames], None] | None = None,
    consume: bool = False,
    engine: Engine | None = None,
) -> tuple[dict[Tier, Frames], list[dict]]:
    """Run cleaning once, then each tier's de-identification; return tier frames and rule log.

    The frames are registered on `engine` (default: a temporary DuckDB engine) once; every
    stage runs there and each tier's tables come back as frames when the tier is done.

    With `on_tier`, each tier's frames are passed to it as soon as the tier is done and are
    not kept (the returned mapping is then empty), so one tier is in memory at a time. With
    `consume`, ``sources.frames`` is emptied once registered.

    Raises
    ------
    RuleError
        If the policy's pipelines are mis-declared (raised before any rule runs) or a rule's
        postcondition fails.
    """
    policy = policy or Policy()
    pre, tier_pipelines = policy.pipelines()
    with contextlib.ExitStack() as stack:
        db = engine if engine is not None else stack.enter_context(open_engine())
        return _curate(sources, pre, tier_pipelines, sandbox, on_rule, on_tier, consume, db)


def _curate(sources, pre, tier_pipelines, sandbox, on_rule, on_tier, consume, db):
    ctx, log = sources.context, []
    tables = {t: db.register(t, f) for t, f in sources.frames.items()}
    rows = {t: len(f) for t, f in sources.frames.items()}
    if consume:
        sources.frames.clear()

    def progress(stage: str):
        return None if on_rule is None else (lambda rule: on_rule(stage, rule))

    for stage in pre.stages:
        tables, rows, entries = run_tables(
            stage, tables, rows, ctx, db, sandbox=sandbox, on_rule=progress(stage.name)
        )
        log += entries
    ctx = ctx.with_(ehr_sites=ehr_sites(tables, ctx))
    shared = {t.get_name() for t in tables.values()}
    out = {}
    for tier, pipeline in tier_pipelines.items():
        tier_tables, tier_rows, tier_ctx = tables, rows, ctx.with_(tier=tier)
        for stage in pipeline.stages:
            tier_tables, tier_rows, entries = run_tables(
                stage, tier_tables, tier_rows, tier_ctx, db, sandbox=sandbox,
                on_rule=progress(stage.name), keep=shared,
            )  # fmt: skip
            log += entries
        tier_frames = {t: db.fetch(t, table) for t, table in tier_tables.items()}
        for table in tier_tables.values():
            if table.get_name() not in shared:
                db.drop(table)
        if on_tier is None:
            out[tier] = tier_frames
        else:
            on_tier(tier, tier_frames)
        del tier_frames
    return out, log
