"""Building a release: curate both tiers, scan for identifiers, write, publish with one rename."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from opencohort.config import Home
from opencohort.curate import Policy, Rule, Tier, curate, gather, open_engine, read_identifiers
from opencohort.curate._omop import field_types, folder
from opencohort.curate.engine import ENGINES
from opencohort.errors import ConfigError, ReleaseError
from opencohort.genomics.release import write_genomic_release
from opencohort.release.manifest import write_manifest
from opencohort.release.privacy import Finder
from opencohort.release.read import read_release

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_ARROW = {
    "int": pa.int64(),
    "float": pa.float64(),
    "date": pa.date32(),
    "datetime": pa.timestamp("s"),
    "text": pa.string(),
}


#: File in a release's sandbox listing the participant ids its retraction left out.
RETRACTED = "retracted.json"


@dataclass(frozen=True)
class Retraction:
    """A rebuild of published `release` without the named participants."""

    release: str
    participant_ids: tuple[str, ...]
    reason: str


def sandbox_dir(home: Home, name: str) -> Path:
    """Where the rows a release's rules removed or changed are kept (beside the release)."""
    return home.root / "sandbox" / name


def retracted_ids(home: Home, name: str) -> tuple[str, ...]:
    """Participant ids release `name` was built without by retraction (kept beside it)."""
    path = sandbox_dir(home, name) / RETRACTED
    return tuple(json.loads(path.read_text())) if path.is_file() else ()


def to_arrow(table: str, frame: pd.DataFrame) -> pa.Table:
    """Convert a curated frame to its release schema (day numbers become dates)."""
    types = field_types(table)
    arrays, fields = [], []
    for column in frame.columns:
        kind = types.get(column, "text")
        values = frame[column]
        if kind in ("date", "datetime"):
            days = pa.array(values.astype("Int64").to_numpy(dtype="float64", na_value=float("nan")),
                            from_pandas=True).cast(pa.int64())  # fmt: skip
            array = days.cast(pa.int32()).cast(pa.date32())
            if kind == "datetime":
                array = array.cast(pa.timestamp("s"))
        elif kind == "text":
            array = pa.array(values.astype(object).where(values.notna(), None), type=pa.string())
        else:
            array = pa.array(values, type=_ARROW[kind], from_pandas=True)
        arrays.append(array)
        fields.append(pa.field(column, _ARROW[kind]))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise ConfigError(
            f"release name {name!r} is not allowed; use letters, digits, '_', '.', '-' "
            "(first character a letter or digit, at most 64)"
        )


def build_release(
    home: Home,
    name: str,
    *,
    cutoff: date | None = None,
    policy: Policy | None = None,
    on_rule: Callable[[str, Rule], None] | None = None,
    retraction: Retraction | None = None,
    engine: str = "duckdb",
) -> dict:
    """Build release `name` from the home's latest submissions and registry, then publish it.

    Parameters
    ----------
    home
        The program home.
    name
        Release name (a new one: releases are immutable).
    cutoff
        Submission cut-off date (default: today, UTC).
    policy
        Which rules run (default: cleaning stages and :data:`opencohort.curate.TIER_POLICY`).
    on_rule
        Called with (stage name, rule) before each rule runs.
    retraction
        Rebuild an earlier release instead: its cut-off and submissions, today's registry
        (so later withdrawals leave too), without the named participants nor those the
        earlier release was itself retracted for. The ids are kept in the sandbox (the
        manifest only counts them).
    engine
        Where Ibis rules run: ``duckdb`` (default) or ``spark`` (local mode). Either gives
        the same release content.

    Returns
    -------
    dict
        The manifest: name, created, cutoff, source snapshot, rule log, row counts per tier
        and table, the genomic release's counts (when the home has a genotype store), the
        retraction (release, reason, participant count) if any, and the
        sha256 of every file.

    Raises
    ------
    ConfigError
        If `name` is not a valid release name, `engine` is not known, or both `cutoff` and
        `retraction` are given.
    ReleaseError
        If a release of that name exists, or the privacy scan finds a direct identifier
        (nothing is published then).
    RuleError
        If the policy is mis-declared or a rule fails (nothing is published).

    Notes
    -----
    1. Check the policy's pipelines (before anything runs) and the name.
    2. Gather: registry facts, the latest submission of every site.
    3. Clean once, de-identify per tier; removed and changed rows go to the sandbox.
    4. As soon as a tier is done, scan its values for the registry's direct identifiers and
       write its Parquet tables into ``releases/.building-<name>-<pid>`` (one tier in memory
       at a time).
    5. If no identifier was found, write the Controlled tier's ``genomics/`` from the
       genotype store (:func:`opencohort.genomics.release.write_genomic_release`: research
       ids only, participants with genomic consent who pass sample QC and are not
       withdrawn or retracted), then the manifest there and rename the folder to
       ``releases/<name>``. Any failure removes the temporary folder and the
       release's sandbox; earlier releases are never touched.
    """
    _check_name(name)
    if engine not in ENGINES:
        raise ConfigError(f"engine {engine!r} is not known; use one of {', '.join(ENGINES)}")
    policy = policy or Policy()
    policy.pipelines()
    final = home.releases / name
    if final.exists():
        raise ReleaseError(f"release {name} exists and releases are immutable; choose a new name")
    pinned, pinned_feeds, record, left_out = None, None, {}, []
    if retraction is not None:
        if cutoff is not None:
            raise ConfigError("a retraction uses the retracted release's cut-off; give no cutoff")
        earlier = read_release(home, retraction.release).manifest
        cutoff = date.fromisoformat(earlier["cutoff"])
        pinned = {s["site_id"]: s["submission_id"] for s in earlier["source"]["submissions"]}
        pinned_feeds = {f["feed"]: f["submission_id"] for f in earlier["source"].get("feeds", [])}
        left_out = sorted({*retraction.participant_ids, *retracted_ids(home, retraction.release)})
        record = {"retraction": {"release": retraction.release, "reason": retraction.reason,
                                 "participants": len(left_out)}}  # fmt: skip
    cutoff = cutoff or datetime.now(UTC).date()
    home.releases.mkdir(parents=True, exist_ok=True)
    staging = home.releases / f".building-{name}-{os.getpid()}"
    work = home.releases / f".engine-{name}-{os.getpid()}"
    sandbox = sandbox_dir(home, name)
    for stale in (staging, work, sandbox):
        shutil.rmtree(stale, ignore_errors=True)
    try:
        sources = gather(home, cutoff=cutoff, pinned=pinned, pinned_feeds=pinned_feeds,
                         retract=left_out)  # fmt: skip
        registry_snapshot = datetime.now(UTC).isoformat()
        counts: dict[str, dict[str, int]] = {}
        hits: list[dict] = []
        finder = Finder(read_identifiers(home))

        def publish(tier: Tier, frames: dict[str, pd.DataFrame]) -> None:
            for table, frame in frames.items():
                hits.extend(finder.frame_hits(f"{tier.value}/{folder(table)}/{table}", frame))
            counts[tier.value] = {}
            for table, frame in sorted(frames.items()):
                path = staging / tier.value / folder(table) / f"{table}.parquet"
                path.parent.mkdir(parents=True, exist_ok=True)
                pq.write_table(to_arrow(table, frame), path)
                counts[tier.value][table] = len(frame)

        with open_engine(engine, work) as db:
            _, log = curate(sources, policy=policy, sandbox=sandbox, on_rule=on_rule,
                            on_tier=publish, consume=True, engine=db)  # fmt: skip
        if hits:
            where = ", ".join(f"{h['table']}.{h['column']} ({h['values']})" for h in hits)
            raise ReleaseError(f"release {name} not published: direct identifiers found in {where}")
        genomics = write_genomic_release(home, staging / Tier.CONTROLLED.value,
                                         sources.context.people)  # fmt: skip
        if genomics is not None:
            record["genomics"] = genomics
        manifest = write_manifest(
            staging,
            {
                "name": name,
                "created": datetime.now(UTC).isoformat(),
                "cutoff": cutoff.isoformat(),
                "engine": engine,
                "source": {**sources.snapshot, "registry_snapshot": registry_snapshot},
                "tiers": [t.value for t in (Tier.REGISTERED, Tier.CONTROLLED)],
                "rule_log": log,
                "row_counts": counts,
                **record,
            },
        )
        if retraction is not None:
            sandbox.mkdir(parents=True, exist_ok=True)
            (sandbox / RETRACTED).write_text(json.dumps(left_out) + "\n")
        staging.rename(final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(sandbox, ignore_errors=True)
        raise
    return manifest
