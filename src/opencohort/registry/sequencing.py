"""Choose whom to sequence next so that the sequenced set moves toward diversity targets.

The core, `select_for_sequencing`, is pure: candidates, the already-sequenced set and the
targets go in; the chosen participant ids and a report of every target come out.
`plan_sequencing` gathers those frames from the registry and calls it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from types import MappingProxyType

import numpy as np
import pandas as pd
from sqlalchemy import Connection, select

from opencohort.errors import InputError
from opencohort.registry import _facts
from opencohort.registry import models as m
from opencohort.registry.service import Registry
from opencohort.registry.status import GenomicState, WithdrawalStatus

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
_STATE_RANK = {
    GenomicState.ELIGIBLE: 0,
    GenomicState.MANIFEST_SENT: 1,
    GenomicState.RECEIVED: 2,
    GenomicState.SEQUENCED: 3,
    GenomicState.QC_FAILED: 4,
    GenomicState.QC_PASSED: 4,
    GenomicState.IN_RELEASE: 5,
}


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
    """

    participant_ids: np.ndarray
    report: pd.DataFrame
    deficit_before: float
    deficit_after: float
    pool: int
    capacity: int = DEFAULT_CAPACITY


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
        (disability, no_disability: the registry's health-status proxy).
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


def _genomic_progress(connection: Connection, as_of: date) -> pd.DataFrame:
    """Return each participant's furthest genomic state rank and whether one is committed."""
    g, sample = m.GenomicEvent, m.Sample
    events = pd.DataFrame(
        connection.execute(
            select(sample.participant_id, g.sample_id, g.state)
            .join(sample, sample.sample_id == g.sample_id)
            .where(g.event_date <= as_of)
        ).all(),
        columns=["participant_id", "sample_id", "state"],
    )
    events["rank"] = events["state"].map({s.value: r for s, r in _STATE_RANK.items()})
    last = events.sort_values("rank").groupby("sample_id").tail(1)
    last = last.assign(committed=last["state"].isin({s.value for s in COMMITTED}))
    return last.groupby("participant_id").agg(rank=("rank", "max"), committed=("committed", "any"))


def plan_sequencing(
    registry: Registry,
    *,
    as_of: date,
    capacity: int = DEFAULT_CAPACITY,
    targets: Targets | None = None,
) -> Selection:
    """Choose whom the registry should send for sequencing next, toward `targets`.

    Candidates are participants eligible for sequencing on `as_of` (``genomic_eligibility``)
    with no sample past ``eligible`` in the genomic workflow; the sequenced set is everyone
    not withdrawn with a sample committed to sequencing (manifest sent and on, except QC
    failed).

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
    """
    with registry.engine.connect() as connection:
        facts = _facts.load_facts(connection)
        progress = _genomic_progress(connection, as_of)
    statuses = [_facts.derive(f, as_of=as_of) for f in facts]
    people = pd.DataFrame(
        [f.row for f in facts], columns=[c.key for c in m.Participant.__table__.columns]
    )
    people["ubr"] = [bool(s.ubr.value) for s in statuses]
    attributes = sequencing_attributes(people, as_of=as_of)
    ids = people["participant_id"]
    beyond = ids.isin(progress.index[progress["rank"].astype(float) > 0]).to_numpy()
    committed = ids.isin(progress.index[progress["committed"].astype(bool)]).to_numpy()
    eligible = np.array([s.genomic.eligible for s in statuses], dtype=bool)
    withdrawn = np.array(
        [s.withdrawal.value != WithdrawalStatus.NOT_WITHDRAWN for s in statuses], dtype=bool
    )
    candidates = attributes[eligible & ~beyond].reset_index(drop=True)
    sequenced = attributes[committed & ~withdrawn].reset_index(drop=True)
    return select_for_sequencing(
        candidates, sequenced, targets or DEFAULT_TARGETS, capacity=capacity
    )
