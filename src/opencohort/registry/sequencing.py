"""Choose whom to sequence next so that the sequenced set moves toward diversity targets.

The core, `select_for_sequencing`, is pure: candidates, the already-sequenced set and the
targets go in; the chosen participant ids and a report of every target come out.
`plan_sequencing` gathers those frames from the registry and calls it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd
from sqlalchemy import Connection, func, select, update

from opencohort.errors import InputError, NotFound
from opencohort.registry import _facts, _status_frame, audit
from opencohort.registry import models as m
from opencohort.registry.service import SYSTEM_ACTOR, Registry, remember_response
from opencohort.registry.status import (
    GenomicState,
    SampleState,
    TransitionError,
    WithdrawalStatus,
    genomic_state,
    genomic_transition,
)

#: Weekly sequencing capacity of the genome centres (samples).
DEFAULT_CAPACITY = 5000
#: Greedy steps per selection: each step adds up to ceil(capacity / STEPS) people of one kind.
STEPS = 500
UNKNOWN = "unknown"
#: US Census Bureau regions of each state and DC (territories are outside every region).
_REGION_STATES = {
    "northeast": "CT ME MA NH RI VT NJ NY PA",
    "midwest": "IL IN MI OH WI IA KS MN MO NE ND SD",
    "south": "DE DC FL GA MD NC SC VA WV AL KY MS TN AR LA OK TX",
    "west": "AZ CO ID MT NV NM UT WY AK CA HI OR WA",
}
CENSUS_REGION = MappingProxyType(
    {state: region for region, states in _REGION_STATES.items() for state in states.split()}
)
#: Share of the US population in each census region (2020 census, resident population).
REGION_POPULATION_SHARE = MappingProxyType(
    {"northeast": 0.174, "midwest": 0.208, "south": 0.381, "west": 0.237}
)
#: Age groups (lower bound, label) on the as-of day.
AGE_GROUPS = ((0, "under_18"), (18, "18_44"), (45, "45_64"), (65, "65_plus"))
#: Candidate columns `sequencing_attributes` derives (the attributes targets may name).
ATTRIBUTES = ("race_group", "age_group", "sex_at_birth", "census_region", "ubr", "health")
#: Genomic workflow states that commit a sample to sequencing (counted as sequenced).
COMMITTED = frozenset(
    {
        GenomicState.MANIFEST_SENT,
        GenomicState.RECEIVED,
        GenomicState.SEQUENCED,
        GenomicState.QC_PASSED,
        GenomicState.IN_RELEASE,
    }
)


@dataclass(frozen=True)
class Target:
    """Target shares of some categories of one attribute.

    Attributes
    ----------
    attribute
        Candidate column holding the category of each person.
    shares
        Category -> target share of the sequenced set (categories left out have no target).
    at_least
        True: a share above its target is no deficit (e.g. at least 45% non-White);
        False: any difference counts (e.g. census regions proportional to the population).
    """

    attribute: str
    shares: Mapping[str, float]
    at_least: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "shares", MappingProxyType(dict(self.shares)))
        bad = {k: v for k, v in self.shares.items() if not 0.0 <= v <= 1.0}
        if bad:
            raise InputError(f"target shares must lie in [0, 1], got {bad}", field=self.attribute)
        if sum(self.shares.values()) > 1.0 + 1e-9:
            raise InputError(
                f"target shares sum to {sum(self.shares.values()):.3f} > 1", field=self.attribute
            )


@dataclass(frozen=True)
class Targets:
    """The diversity targets of the sequenced set and the tolerance of a two-sided target."""

    targets: tuple[Target, ...]
    tolerance: float = 0.02

    def __post_init__(self) -> None:
        names = [t.attribute for t in self.targets]
        if len(set(names)) != len(names):
            raise InputError(f"an attribute is targeted twice: {names}", field="targets")

    @property
    def attributes(self) -> tuple[str, ...]:
        """Names of the targeted attributes, in target order."""
        return tuple(t.attribute for t in self.targets)


#: The program's default targets: 45% non-White, 75% UBR, 25% aged 65+, regions as the US,
#: and at least 25% with a disability (about one US adult in four, CDC 2022).
DEFAULT_TARGETS = Targets(
    (
        Target("race_group", {"non_white": 0.45}, at_least=True),
        Target("ubr", {"yes": 0.75}, at_least=True),
        Target("census_region", REGION_POPULATION_SHARE),
        Target("age_group", {"65_plus": 0.25}),
        Target("health", {"disability": 0.25}, at_least=True),
    )
)


@dataclass(frozen=True, eq=False)
class Selection:
    """Whom to sequence next, in pick order, and how the targets are met.

    Attributes
    ----------
    participant_ids
        Chosen participant ids (object array), earliest pick first.
    report
        One row per attribute and category: target (NaN when none), at_least, count and share
        before (sequenced set), share among the chosen, share after (sequenced plus chosen)
        and met (None when the category has no target).
    deficit_before, deficit_after
        Summed squared deficit of the sequenced set against the targets, before and after.
    pool
        Number of candidates.
    capacity
        Most people the selection could choose.
    without_sample
        Genome-eligible people neither sequenced nor candidates because no DNA sample of theirs
        can be sent (every one failed QC, is disposed or has a quality issue): they need a new
        collection (filled in by `plan_sequencing`; 0 from `select_for_sequencing`).
    """

    participant_ids: np.ndarray
    report: pd.DataFrame
    deficit_before: float
    deficit_after: float
    pool: int
    capacity: int = DEFAULT_CAPACITY
    without_sample: int = 0

    def to_dict(self) -> dict:
        """Return the selection as plain JSON-ready data (NaN and missing values as None)."""
        report = self.report.astype(object).where(self.report.notna(), None)
        return {
            "capacity": self.capacity,
            "pool": self.pool,
            "without_sample": self.without_sample,
            "participant_ids": [str(p) for p in self.participant_ids],
            "deficit_before": self.deficit_before,
            "deficit_after": self.deficit_after,
            "report": report.to_dict(orient="records"),
        }


# --- the pure core ---------------------------------------------------------------------------


@dataclass
class _Coded:
    """Integer category codes per targeted attribute, with the target of each code."""

    categories: list[np.ndarray]
    target: list[np.ndarray]
    at_least: list[bool]


def _parse(
    candidates: pd.DataFrame, sequenced: pd.DataFrame, targets: Targets, capacity: int
) -> None:
    if capacity < 0:
        raise InputError(f"capacity must be >= 0, got {capacity}", field="capacity")
    for name, frame in (("candidates", candidates), ("sequenced", sequenced)):
        missing = [c for c in ("participant_id", *targets.attributes) if c not in frame.columns]
        if missing:
            raise InputError(
                f"{name} lacks columns {missing}; has {list(frame.columns)}", field=missing[0]
            )
    ids = candidates["participant_id"]
    if ids.duplicated().any():
        first = ids[ids.duplicated()].iloc[0]
        raise InputError(f"candidate {first} appears twice", field="participant_id")
    overlap = ids[ids.isin(sequenced["participant_id"])]
    if len(overlap):
        raise InputError(
            f"candidate {overlap.iloc[0]} is already sequenced", field="participant_id"
        )


def _code(
    candidates: pd.DataFrame, sequenced: pd.DataFrame, targets: Targets
) -> tuple[_Coded, list[np.ndarray], list[np.ndarray]]:
    """Return category codes of candidates and sequenced, per targeted attribute."""
    coded = _Coded([], [], [])
    cand_codes, seq_codes = [], []
    for target in targets.targets:
        a = target.attribute
        seen = pd.concat([candidates[a], sequenced[a]]).astype(str).unique()
        categories = np.array(sorted(set(seen) | set(target.shares)), dtype=object)
        index = pd.Index(categories)
        cand_codes.append(index.get_indexer(candidates[a].astype(str)))
        seq_codes.append(index.get_indexer(sequenced[a].astype(str)))
        coded.categories.append(categories)
        coded.target.append(np.array([target.shares.get(c, np.nan) for c in categories]))
        coded.at_least.append(target.at_least)
    return coded, cand_codes, seq_codes


def _gap(share: np.ndarray, target: np.ndarray, at_least: bool) -> np.ndarray:
    """Squared deficit per category (0 where there is no target)."""
    diff = share - target
    if at_least:
        diff = np.minimum(diff, 0.0)
    return np.where(np.isnan(target), 0.0, diff * diff)


def _deficit(counts: list[np.ndarray], total: int, coded: _Coded) -> float:
    if total == 0:
        return float(sum(np.nansum(t * t) for t in coded.target))
    return float(
        sum(
            _gap(c / total, t, al).sum()
            for c, t, al in zip(counts, coded.target, coded.at_least, strict=True)
        )
    )


def targets_deficit(people: pd.DataFrame, targets: Targets) -> float:
    """Return the summed squared deficit of a set of people against `targets`.

    Each targeted category adds (share - target)^2, or only its shortfall squared when the
    target is a minimum. An empty set has every share 0.
    """
    coded, codes, _ = _code(people, people.iloc[:0], targets)
    counts = [
        np.bincount(c, minlength=len(k)) for c, k in zip(codes, coded.categories, strict=True)
    ]
    return _deficit(counts, len(people), coded)


def _greedy(
    profiles: np.ndarray,
    start: np.ndarray,
    size: np.ndarray,
    head_rank: np.ndarray,
    counts: list[np.ndarray],
    total: int,
    capacity: int,
    coded: _Coded,
) -> np.ndarray:
    """Return the picks as rows (profile, offset inside the profile, number taken).

    Each step scores one more person of every profile by the deficit after adding them,
    takes up to ``ceil(capacity / STEPS)`` people of the best profile (ties: smallest next
    participant id rank, ``head_rank`` being id ranks in profile order) and updates counts.
    """
    taken = np.zeros(len(size), dtype=np.int64)
    picks: list[tuple[int, int, int]] = []
    step = max(1, math.ceil(capacity / STEPS))
    left = min(capacity, int(size.sum()))
    counts = [c.astype(np.float64) for c in counts]
    while left > 0:
        after = total + 1.0
        score = np.zeros(len(size))
        for a, (c, t, al) in enumerate(zip(counts, coded.target, coded.at_least, strict=True)):
            base = _gap(c / after, t, al)
            code = profiles[:, a]
            score += base.sum() - base[code] + _gap((c[code] + 1.0) / after, t[code], al)
        open_ = taken < size
        score[~open_] = np.inf
        heads = np.where(open_, head_rank[start + np.minimum(taken, size - 1)], len(head_rank))
        best = int(np.lexsort((heads, score))[0])
        n = int(min(step, left, size[best] - taken[best]))
        picks.append((best, int(taken[best]), n))
        taken[best] += n
        left -= n
        total += n
        for a, c in enumerate(counts):
            c[profiles[best, a]] += n
    return np.array(picks, dtype=np.int64).reshape(-1, 3)


def _report(
    before: pd.DataFrame, selected: pd.DataFrame, after: pd.DataFrame, targets: Targets
) -> pd.DataFrame:
    rows = []
    for target in targets.targets:
        a = target.attribute
        counts = {
            name: frame[a].astype(str).value_counts()
            for name, frame in (("before", before), ("selected", selected), ("after", after))
        }
        for category in sorted(set(counts["after"].index) | set(target.shares)):
            row = {
                "attribute": a,
                "category": category,
                "target": target.shares.get(category, np.nan),
                "at_least": target.at_least,
            }
            for name, frame in (("before", before), ("selected", selected), ("after", after)):
                n = int(counts[name].get(category, 0))
                row[f"count_{name}"] = n
                row[f"share_{name}"] = n / len(frame) if len(frame) else np.nan
            rows.append(
                row
                | {
                    "met": _met(
                        row["share_after"], row["target"], target.at_least, targets.tolerance
                    )
                }
            )
    columns = [
        "attribute",
        "category",
        "target",
        "at_least",
        "count_before",
        "share_before",
        "count_selected",
        "share_selected",
        "count_after",
        "share_after",
        "met",
    ]
    return pd.DataFrame(rows, columns=columns)


def _met(share: float, target: float, at_least: bool, tolerance: float) -> bool | None:
    """Whether a share meets its target (None without a target)."""
    if np.isnan(target):
        return None
    if np.isnan(share):
        return False
    return bool(share >= target - 1e-12 if at_least else abs(share - target) <= tolerance)


def select_for_sequencing(
    candidates: pd.DataFrame,
    sequenced: pd.DataFrame,
    targets: Targets = DEFAULT_TARGETS,
    *,
    capacity: int = DEFAULT_CAPACITY,
) -> Selection:
    """Choose up to `capacity` candidates that bring the sequenced set closest to `targets`.

    Parameters
    ----------
    candidates
        Genome-eligible, not yet sequenced people: ``participant_id`` and one column per
        targeted attribute (any values; missing values count as their own category).
    sequenced
        The already-sequenced people, with the same columns.
    targets
        Target shares per attribute and category.
    capacity
        Most people to choose.

    Returns
    -------
    Selection
        ``min(capacity, len(candidates))`` participant ids in pick order, and the report.

    Raises
    ------
    InputError
        If a targeted column is missing, a candidate id repeats or is already sequenced, or
        `capacity` is negative.

    Notes
    -----
    Greedy marginal-deficit weighting. People with the same categories on every targeted
    attribute are interchangeable for the deficit, so candidates are grouped into such
    profiles (sorted by participant id inside each). Each step scores one more person of every
    profile by the summed squared deficit of the combined set after adding them, takes up to
    ``ceil(capacity / STEPS)`` people from the best profile (ties: the smallest next
    participant id), and updates the counts. Sorting is O(n log n); a step is O(profiles x
    attributes), so one million candidates take a few seconds at most.
    """
    _parse(candidates, sequenced, targets, capacity)
    coded, cand_codes, seq_codes = _code(candidates, sequenced, targets)
    counts = [
        np.bincount(c, minlength=len(k)) for c, k in zip(seq_codes, coded.categories, strict=True)
    ]
    total = len(sequenced)
    ids = candidates["participant_id"].astype(str).to_numpy(dtype=object)
    by_id = np.argsort(ids.astype(str), kind="stable")
    widths = [len(k) for k in coded.categories]
    if math.prod(widths) >= 2**62:
        raise InputError(f"targeted attributes have too many categories ({widths}) to combine; "
                         "group rare categories", field="targets")  # fmt: skip
    key = np.zeros(len(ids), dtype=np.int64)
    for codes, width in zip(cand_codes, widths, strict=True):
        key = key * width + codes
    order = by_id[np.argsort(key[by_id], kind="stable")]
    uniq, start, size = np.unique(key[order], return_index=True, return_counts=True)
    rank = np.empty(len(ids), dtype=np.int64)
    rank[by_id] = np.arange(len(ids))
    profiles = np.zeros((len(uniq), len(widths)), dtype=np.int64)
    rest = uniq.copy()
    for a in reversed(range(len(widths))):
        profiles[:, a], rest = rest % widths[a], rest // widths[a]
    picks = _greedy(profiles, start, size, rank[order], counts, total, capacity, coded)
    chosen = np.concatenate(
        [np.zeros(0, dtype=np.int64)]
        + [order[start[p] + offset : start[p] + offset + n] for p, offset, n in picks]
    )
    selected = candidates.iloc[chosen]
    after = pd.concat([sequenced[list(targets.attributes)], selected[list(targets.attributes)]])
    report = _report(sequenced, selected, after, targets)
    return Selection(
        participant_ids=ids[chosen],
        report=report,
        deficit_before=targets_deficit(sequenced, targets),
        deficit_after=targets_deficit(after, targets),
        pool=len(candidates),
        capacity=capacity,
    )


# --- from the registry -----------------------------------------------------------------------


def sequencing_attributes(people: pd.DataFrame, *, as_of: date) -> pd.DataFrame:
    """Return each person's targetable attributes (``ATTRIBUTES``) from registry fields.

    Parameters
    ----------
    people
        ``participant_id``, ``race_ethnicity``, ``birth_date``, ``sex_at_birth``, ``state``,
        ``disability`` and ``ubr`` (bool: in any UBR category).
    as_of
        Day on which ages are counted.

    Returns
    -------
    pd.DataFrame
        participant_id and race_group (white, non_white, unknown), age_group, sex_at_birth,
        census_region (unknown outside the 50 states and DC), ubr (yes, no) and health
        (disability, no_disability).

    Notes
    -----
    Health status is The Basics disability answer, the one health-status fact the registry
    holds. Self-rated general health (the Overall Health survey) would be a finer proxy, but
    the registry stores only that a survey was completed; the answers flow to curation with
    the rest of the survey data, which the registry, upstream of it, never reads. Limited
    access to care is stored, but it measures access rather than health and already counts
    toward the ``ubr`` target; physical measurements exist only for the measured, so a
    measurement-based class would be missing for many candidates.
    """
    race = people["race_ethnicity"].fillna("skip")
    born = pd.to_datetime(people["birth_date"])
    months, days = born.dt.month.to_numpy(), born.dt.day.to_numpy()
    before_birthday = (months > as_of.month) | ((months == as_of.month) & (days > as_of.day))
    ages = as_of.year - born.dt.year.to_numpy() - before_birthday
    bounds = [low for low, _ in AGE_GROUPS]
    labels = np.array([label for _, label in AGE_GROUPS], dtype=object)
    return pd.DataFrame(
        {
            "participant_id": people["participant_id"].astype(str).to_numpy(),
            "race_group": np.select(
                [race == "white", race == "skip"], ["white", UNKNOWN], "non_white"
            ),
            "age_group": labels[np.searchsorted(bounds, ages, side="right") - 1],
            "sex_at_birth": people["sex_at_birth"].fillna("skip").to_numpy(),
            "census_region": people["state"].map(CENSUS_REGION).fillna(UNKNOWN).to_numpy(),
            "ubr": np.where(people["ubr"].astype(bool), "yes", "no"),
            "health": np.where(people["disability"].astype(bool), "disability", "no_disability"),
        }
    )


_SENDABLE = (None, GenomicState.ELIGIBLE.value)


def _registry_pools(connection: Connection, as_of: date) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Return the candidates' and the sequenced set's attributes, and the count without a
    sample to send, all derived set-wise (``_status_frame``)."""
    statuses = _status_frame.status_frame(connection, as_of=as_of)
    samples = _status_frame.genomic_samples(connection, as_of=as_of)
    p = m.Participant
    fields = (p.race_ethnicity, p.birth_date, p.sex_at_birth, p.state, p.disability)
    rows = connection.execute(select(p.participant_id, *fields)).all()
    people = pd.DataFrame(rows, columns=["participant_id", *(f.key for f in fields)])
    people = people.set_index("participant_id").reindex(statuses.index).reset_index()
    ubr = statuses[[c for c in statuses.columns if c.startswith("ubr_")]].any(axis=1)
    people["ubr"] = ubr.to_numpy()
    attributes = sequencing_attributes(people, as_of=as_of)
    state = samples["genomic_state"]
    sendable = samples["received"] & ~samples["unusable"] & state.isin(_SENDABLE)
    ids = statuses.index
    committed = ids.isin(samples.loc[state.isin(list(COMMITTED)), "participant_id"])
    has_sample = ids.isin(samples.loc[sendable, "participant_id"])
    eligible = statuses["genomic_eligible"].to_numpy(dtype=bool)
    stays = (statuses["withdrawal"] == WithdrawalStatus.NOT_WITHDRAWN.value).to_numpy()
    candidates = attributes[eligible & ~committed & has_sample].reset_index(drop=True)
    sequenced = attributes[committed & stays].reset_index(drop=True)
    return candidates, sequenced, int((eligible & ~committed & ~has_sample).sum())


def plan_sequencing(
    registry: Registry,
    *,
    as_of: date,
    capacity: int = DEFAULT_CAPACITY,
    targets: Targets | None = None,
) -> Selection:
    """Choose whom the registry should send for sequencing next, toward `targets`.

    Candidates are participants eligible for sequencing on `as_of` (``genomic_eligibility``)
    who are not yet sequenced and have a DNA sample that can be sent: received by the
    biobank, without a quality issue or disposal, and with no genomic step past
    ``eligible``. The sequenced set is everyone not withdrawn with a sample committed to
    sequencing (``COMMITTED``: manifest sent and on, except QC failed).

    Parameters
    ----------
    registry
        An open `Registry`.
    as_of
        Day the statuses are derived on.
    capacity
        Samples the genome centres take this week.
    targets
        Diversity targets; `DEFAULT_TARGETS` when None.

    Returns
    -------
    Selection
        The chosen participant ids and how the targets are met (see `select_for_sequencing`).

    Notes
    -----
    A QC failure is final for that sample (``status.GENOMIC_TRANSITIONS``: a failed sample is
    never re-sent), so a participant whose committed samples all failed is not sequenced and
    is a candidate again when another of their DNA samples can be sent; when none can, they
    count in ``Selection.without_sample`` (a new collection is needed).
    """
    with registry.engine.connect() as connection:
        candidates, sequenced, without_sample = _registry_pools(connection, as_of)
    chosen = select_for_sequencing(
        candidates, sequenced, targets or DEFAULT_TARGETS, capacity=capacity
    )
    return dataclasses.replace(chosen, without_sample=without_sample)


# --- sending the chosen samples --------------------------------------------------------------

#: Columns of a sequencing manifest, as the genome centre receives it (biobank ids only: the
#: participant id never leaves the program).
MANIFEST_COLUMNS = ("sample_id", "biobank_id", "test_code", "sex_at_birth", "sent_date")
_CHUNK = 5000


class ManifestRefused(TransitionError):
    """Some participants cannot be sent for sequencing; nothing was recorded.

    ``problems`` names each participant and why. Plan again (``plan_sequencing`` leaves out
    everyone who cannot be sent) and send the new choice.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        shown = "; ".join(problems[:20]) + (
            f"; and {len(problems) - 20} more" if len(problems) > 20 else ""
        )
        super().__init__(f"{len(problems)} participants cannot be sent for sequencing: {shown}")


def _chunks(ids: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]


def _bump(connection: Connection, ids: list[str]) -> None:
    """Bump each participant's version once (locking its row); raise NotFound for unknown ids."""
    p = m.Participant
    bumped = 0
    for chunk in _chunks(ids):
        bump = update(p).where(p.participant_id.in_(chunk)).values(version=p.version + 1)
        bumped += connection.execute(bump).rowcount
    if bumped != len(ids):
        known = set()
        for chunk in _chunks(ids):
            known |= set(
                connection.execute(
                    select(p.participant_id).where(p.participant_id.in_(chunk))
                ).scalars()
            )
        missing = [pid for pid in ids if pid not in known]
        raise NotFound(f"no participants {', '.join(missing[:20])} in the registry")


def _samples(connection: Connection, ids: list[str]) -> dict[str, list[dict]]:
    """Return each participant's samples (first received first) with their genomic steps and
    the first day of a quality issue or disposal."""
    sample, g, e = m.Sample, m.GenomicEvent, m.SampleEvent
    found: dict[str, list[dict]] = {}
    for chunk in _chunks(ids):
        rows = connection.execute(
            select(sample.sample_id, sample.participant_id, sample.test_code, sample.received_date)
            .where(sample.participant_id.in_(chunk))
            .order_by(sample.received_date, sample.sample_id)
        ).mappings()
        by_id = {r["sample_id"]: dict(r, history=[], spoiled=None) for r in rows}
        owned = select(sample.sample_id).where(sample.participant_id.in_(chunk))
        steps = select(g.sample_id, g.state, g.event_date).where(g.sample_id.in_(owned))
        for sample_id, state, day in connection.execute(steps.order_by(g.genomic_event_id)):
            by_id[sample_id]["history"].append((GenomicState(state), day))
        spoiled = select(e.sample_id, func.min(e.event_date)).where(
            e.sample_id.in_(owned),
            e.state.in_([SampleState.QUALITY_ISSUE.value, SampleState.DISPOSED.value]),
        )
        for sample_id, day in connection.execute(spoiled.group_by(e.sample_id)):
            by_id[sample_id]["spoiled"] = day
        for row in by_id.values():
            found.setdefault(row["participant_id"], []).append(row)
    return found


def _pick(pid: str, samples: list[dict], status: _facts.ParticipantStatus, day: date):
    """Return (sample, its current state) to send for `pid`, or (None, the problem)."""
    if status.withdrawal.value != WithdrawalStatus.NOT_WITHDRAWN:
        return None, f"{pid} has withdrawn ({status.withdrawal.reason})"
    if not status.genomic.eligible:
        return None, f"{pid} is not eligible for sequencing on {day}: {status.genomic.reason}"
    states = [genomic_state(sample["history"], as_of=date.max) for sample in samples]
    for sample, current in zip(samples, states, strict=True):
        if current.value in COMMITTED:
            return None, (f"{pid} is already sent for sequencing "
                          f"(sample {sample['sample_id']} is {current.value.value})")  # fmt: skip
    seen = []
    for sample, current in zip(samples, states, strict=True):
        name, received = sample["sample_id"], sample["received_date"]
        if sample["test_code"] not in m.DNA_TEST_CODES:
            continue
        if current.since is not None and current.since > day:
            seen.append(f"{name} has a step after {day}")
        elif received is None or received > day:
            seen.append(f"{name} not received by {day}")
        elif sample["spoiled"] is not None and sample["spoiled"] <= day:
            seen.append(f"{name} has a quality issue or is disposed")
        elif current.value not in (None, GenomicState.ELIGIBLE):
            seen.append(f"{name} is {current.value.value}")
        else:
            return sample, current.value
    return None, f"{pid} has no DNA sample to send ({'; '.join(seen) or 'none stored'})"


def send_for_sequencing(
    registry: Registry,
    participant_ids: Iterable[str],
    *,
    day: date,
    manifest: Path | None = None,
    actor: str = SYSTEM_ACTOR,
) -> pd.DataFrame:
    """Record that one DNA sample of each participant is sent for sequencing, all or nothing.

    Parameters
    ----------
    registry
        An open `Registry`.
    participant_ids
        Whom to send (e.g. ``plan_sequencing(...).participant_ids``); manifest rows keep
        this order.
    day
        Day the manifest is sent (eligibility is checked on it).
    manifest
        New CSV file to write the manifest to (``MANIFEST_COLUMNS``); it appears only once
        the steps are committed. None writes no file.
    actor
        Who sends, for the audit log.

    Returns
    -------
    pandas.DataFrame
        The manifest: ``MANIFEST_COLUMNS`` and ``participant_id``, one row per participant.

    Raises
    ------
    InputError
        If an id repeats or `manifest` exists or has no directory.
    NotFound
        If a participant is not registered.
    ManifestRefused
        If any participant has withdrawn, is not eligible on `day`, is already sent, or has
        no DNA sample to send; every problem is named and nothing is stored or written.

    Notes
    -----
    In one transaction: bump and lock every participant's row; derive their statuses with
    the pure functions; pick each one's first-received DNA sample that can be sent (as
    `plan_sequencing` counts them); record ``eligible`` (when the sample has no step yet) and
    ``manifest_sent`` on `day`, each checked by ``status.genomic_transition`` and audited as
    ``advance_genomic`` records it; bump the version once per step; and audit the manifest
    itself (file name, rows and sha256).
    """
    ids = [str(pid) for pid in participant_ids]
    repeated = sorted(pid for pid, n in Counter(ids).items() if n > 1)
    if repeated:
        raise InputError(
            f"participants appear twice: {', '.join(repeated[:20])}", field="participant_ids"
        )
    path = None if manifest is None else Path(manifest)
    if path is not None and path.exists():
        raise InputError(f"{path} exists; a manifest is never overwritten", field="manifest")
    if path is not None and not path.parent.is_dir():
        raise InputError(f"{path.parent} is not a directory", field="manifest")
    partial = None if path is None else path.with_name(f".{path.name}.partial")
    try:
        with registry.engine.begin() as connection:
            frame, content = _send(connection, ids, day, path, actor)
            remember_response(connection, lambda: frame)
            if partial is not None:
                partial.write_text(content, encoding="utf-8")
        if partial is not None:
            os.replace(partial, path)
    finally:
        if partial is not None:
            partial.unlink(missing_ok=True)
    return frame


def _send(
    connection: Connection, ids: list[str], day: date, path: Path | None, actor: str
) -> tuple[pd.DataFrame, str]:
    """Check and record the whole manifest; return it as a frame and as CSV text."""
    ordered = sorted(ids)
    _bump(connection, ordered)
    facts = {
        f.row["participant_id"]: f
        for chunk in _chunks(ordered)
        for f in _facts.load_facts(connection, chunk)
    }
    samples = _samples(connection, ordered)
    picks, problems = {}, []
    for pid in ordered:
        sample, found = _pick(pid, samples.get(pid, []), _facts.derive(facts[pid], as_of=day), day)
        if sample is None:
            problems.append(found)
        else:
            picks[pid] = (sample, found)
    if problems:
        raise ManifestRefused(problems)
    name = path.name if path is not None else f"manifest-{day}"
    entries = _record_steps(connection, [(pid, *picks[pid]) for pid in ids], day, name)
    frame = pd.DataFrame(
        {
            "sample_id": [picks[pid][0]["sample_id"] for pid in ids],
            "biobank_id": [facts[pid].row["biobank_id"] for pid in ids],
            "test_code": [picks[pid][0]["test_code"] for pid in ids],
            "sex_at_birth": [facts[pid].row["sex_at_birth"] for pid in ids],
            "sent_date": [day] * len(ids),
            "participant_id": ids,
        },
        columns=[*MANIFEST_COLUMNS, "participant_id"],
    )
    content = frame[list(MANIFEST_COLUMNS)].to_csv(index=False, lineterminator="\n")
    if ids:
        digest = hashlib.sha256(content.encode()).hexdigest()
        entries.append({"action": "send_for_sequencing", "entity": "manifest", "entity_id": name,
                        "after": {"day": day, "samples": len(ids), "sha256": digest}})  # fmt: skip
    audit.record_many(connection, entries, actor=actor)
    return frame, content


def _record_steps(
    connection: Connection, picks: list[tuple[str, dict, GenomicState | None]], day: date,
    name: str,
) -> list[dict]:  # fmt: skip
    """Store ``eligible`` (if needed) and ``manifest_sent`` for each (participant, sample,
    state) pick, bump versions for the extra step, and return the steps' audit entries."""
    steps, owners = [], []
    for pid, sample, state in picks:
        news = [GenomicState.MANIFEST_SENT]
        if state is None:
            news.insert(0, GenomicState.ELIGIBLE)
        for new in news:
            state = genomic_transition(state, new)
            detail = f"manifest {name}" if new == GenomicState.MANIFEST_SENT else ""
            steps.append({"sample_id": sample["sample_id"], "state": new.value,
                          "event_date": day, "detail": detail})  # fmt: skip
            owners.append(pid)
    table = m.GenomicEvent.__table__
    stored = []
    if steps:
        insert = table.insert().returning(*table.columns, sort_by_parameter_order=True)
        stored = connection.execute(insert, steps).mappings().all()
    twice = sorted(pid for pid, _, state in picks if state is None)
    p = m.Participant
    for chunk in _chunks(twice):
        bump = update(p).where(p.participant_id.in_(chunk)).values(version=p.version + 1)
        connection.execute(bump)
    return [{"action": "advance_genomic", "entity": table.name, "entity_id": pid,
             "after": dict(row)} for pid, row in zip(owners, stored, strict=True)]  # fmt: skip
