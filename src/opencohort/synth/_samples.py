"""Who is sequenced where: sample ids, genome-centre batches, genetic sex and planted QC issues."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from opencohort.errors import InputError
from opencohort.synth._mosaic import POPULATIONS, allocate_slots, renormalise
from opencohort.synth._vcf import TIER_SHARE
from opencohort.synth.models import SynthConfig

ANCESTRY_COLUMNS = tuple(f"anc_{p}" for p in POPULATIONS)
GENOME_CENTERS = ("bcm", "broad", "uwnw")
PANEL_GROUPS = ("afr", "amr", "eas", "eur", "mid", "sas")
PANEL_NAME = "reference_panel"
MIN_PER_POPULATION = 100
"""Individuals simulated per population at least, so per-population frequencies are stable."""
AMR_PROTOTYPES = np.array(
    [  # afr, eur, eas, sas, mid, nat: rounded global ancestry of 1000 Genomes AMR groups
        [0.05, 0.45, 0.0, 0.0, 0.0, 0.50],  # MXL
        [0.18, 0.70, 0.0, 0.0, 0.0, 0.12],  # PUR
        [0.10, 0.65, 0.0, 0.0, 0.0, 0.25],  # CLM
        [0.03, 0.20, 0.0, 0.0, 0.0, 0.77],  # PEL
    ]
)
RELATED_SHARE = 0.005
"""Related pairs per genome (half parent-offspring, half full siblings)."""
PER_2000 = {"duplicate": 3, "swap": 2, "contaminated": 3}
"""Planted sample issues per 2,000 genomes (a swap exchanges two samples)."""
MIN_GENOMES_FOR_ISSUES = 50
_STREAM_SEX, _STREAM_PANEL, _STREAM_ISSUES, _STREAM_IDS, _STREAM_TIERS = 11, 12, 13, 14, 15


@dataclass(frozen=True)
class OutputSet:
    """The samples of one VCF per chromosome: a genome-centre batch or the reference panel."""

    name: str
    sample_ids: tuple[str, ...]
    source: np.ndarray  # genome unit shown in each column
    tier: np.ndarray  # coverage tier of each column
    duplicate: np.ndarray  # bool: a re-sequenced sample with a few discordant calls
    contaminant: np.ndarray  # genome unit whose reads contaminate the column, -1 if none
    contamination: np.ndarray  # contaminating read fraction
    header_extra: tuple[str, ...]


@dataclass(frozen=True)
class GenomePlan:
    """Everything a region worker needs, independent of the region.

    Genome units ``0..n_cohort-1`` are the cohort people in input order; the rest are the
    reference panel.
    """

    seed: int
    ancestry: np.ndarray  # (units, 6) renormalised proportions
    columns: np.ndarray  # (units, 6, 2) source haplotype column, -1 where unused
    counts: np.ndarray  # (6,) individuals simulated per population
    male: np.ndarray  # (units,) genetic sex is male
    parent_child: np.ndarray  # (k, 2) units
    siblings: np.ndarray  # (k, 2) units
    n_cohort: int
    outputs: tuple[OutputSet, ...]


@dataclass(frozen=True)
class SampleTables:
    """Manifest and truth tables decided before any genotype exists."""

    manifest: pd.DataFrame
    related_pairs: pd.DataFrame
    sample_issues: pd.DataFrame
    genetic_sex: pd.DataFrame
    labels: pd.DataFrame


def _ancestry(people: pd.DataFrame) -> np.ndarray:
    missing = [c for c in ("participant_id", "sex_at_birth", *ANCESTRY_COLUMNS) if c not in people]
    if missing:
        raise InputError(f"simulate_genomes: people frame lacks columns {missing}")
    anc = people[list(ANCESTRY_COLUMNS)].to_numpy(dtype=float)
    bad = ~np.isfinite(anc).all(axis=1) | (anc < 0).any(axis=1)
    bad |= np.abs(np.nan_to_num(anc).sum(axis=1) - 1) > 0.01
    if bad.any():
        ids = people["participant_id"].to_numpy()[bad][:5].tolist()
        raise InputError(
            f"simulate_genomes: {int(bad.sum())} rows have ancestry proportions that are not "
            f"non-negative numbers summing to 1 (first: {ids})",
            field="anc_*",
        )
    return anc


def _genetic_sex(sex_at_birth: pd.Series, rng: np.random.Generator) -> np.ndarray:
    """True where genetically male; intersex, none_of_these and skip get a random sex."""
    male = sex_at_birth.eq("male").to_numpy()
    other = ~sex_at_birth.isin(["male", "female"]).to_numpy()
    male[other] = rng.random(int(other.sum())) < 0.5
    return male


def _panel(config: SynthConfig) -> tuple[np.ndarray, pd.DataFrame, np.ndarray]:
    """Reference-panel ancestry, labels and sex: pure groups plus an admixed amr group."""
    rng = np.random.default_rng([config.seed, _STREAM_PANEL])
    k = config.reference_per_group
    blocks = []
    for group in PANEL_GROUPS:
        if group == "amr":
            proto = AMR_PROTOTYPES[np.arange(k) % len(AMR_PROTOTYPES)]
            anc = np.zeros((k, len(POPULATIONS)))
            used = proto > 0
            anc[used] = np.concatenate([rng.dirichlet(40 * row[row > 0]) for row in proto])
        else:
            anc = np.zeros((k, len(POPULATIONS)))
            anc[:, POPULATIONS.index(group)] = 1.0
        blocks.append(anc)
    male = rng.random(k * len(PANEL_GROUPS)) < 0.5
    labels = pd.DataFrame(
        {
            "sample_id": [f"REF{g.upper()}{i + 1:04d}" for g in PANEL_GROUPS for i in range(k)],
            "group": np.repeat(PANEL_GROUPS, k),
            "genetic_sex": np.where(male, "male", "female"),
        }
    )
    return np.concatenate(blocks), labels, male


def _issue_counts(n: int) -> dict[str, int]:
    if n < MIN_GENOMES_FOR_ISSUES:
        return {"related": 0, **{k: 0 for k in PER_2000}}
    out = {"related": max(2, round(RELATED_SHARE * n))}
    out.update({k: max(1, round(v * n / 2000)) for k, v in PER_2000.items()})
    return out


def _related_pairs(anc: np.ndarray, n_pairs: int, rng: np.random.Generator) -> np.ndarray:
    """Disjoint pairs of people with similar ancestry (L1 distance at most 0.2)."""
    if n_pairs == 0:
        return np.zeros((0, 2), dtype=np.int64)
    top = anc.argmax(axis=1)
    order = np.lexsort((anc[np.arange(len(anc)), top], top))
    pairs = order[: len(order) // 2 * 2].reshape(-1, 2)
    close = np.abs(anc[pairs[:, 0]] - anc[pairs[:, 1]]).sum(axis=1) <= 0.2
    pairs = pairs[close]
    chosen = pairs[rng.choice(len(pairs), size=min(n_pairs, len(pairs)), replace=False)]
    flip = rng.random(len(chosen)) < 0.5
    chosen[flip] = chosen[flip][:, ::-1]
    return chosen


def plan_genomes(people: pd.DataFrame, config: SynthConfig) -> tuple[GenomePlan, SampleTables]:
    """Decide sample ids, batches, sexes, relatives and sample issues for a cohort.

    Parameters
    ----------
    people
        Participant frame rows of the people to sequence (participant_id, sex_at_birth,
        anc_*; dna_received_date is used as the collection date when present). With
        dna_sample_id (the biobank's first DNA sample of each person) and dna_sample_id_2
        (a second one, or missing), sample ids are those, and duplicates are drawn among
        people with a second sample; otherwise sample ids are random ``S#########``.
    config
        Synthetic program options (seed, genome_batches, reference_per_group).

    Returns
    -------
    GenomePlan
        Region-independent input of the region workers.
    SampleTables
        Manifest and truth tables.
    """
    anc = _ancestry(people)
    n = len(people)
    pid = people["participant_id"].astype(str).to_numpy()
    male_cohort = _genetic_sex(
        people["sex_at_birth"], np.random.default_rng([config.seed, _STREAM_SEX])
    )
    panel_anc, labels, male_panel = _panel(config)
    ancestry = renormalise(np.concatenate([anc, panel_anc]))
    slot, counts = allocate_slots(ancestry, MIN_PER_POPULATION)
    offsets = np.concatenate([[0], np.cumsum(2 * counts)])[:-1]
    columns = np.where(
        slot[:, :, None] >= 0,
        offsets[None, :, None] + 2 * slot[:, :, None] + np.arange(2)[None, None, :],
        -1,
    ).astype(np.int32)
    male = np.concatenate([male_cohort, male_panel])

    rng = np.random.default_rng([config.seed, _STREAM_ISSUES])
    wanted = _issue_counts(n)
    pairs = _related_pairs(anc, wanted["related"], rng)
    n_po = (len(pairs) + 1) // 2
    parent_child, siblings = pairs[:n_po], pairs[n_po:]

    n_batches = max(1, min(config.genome_batches, n))
    batch_of = np.zeros(n, dtype=np.int64)
    for b, members in enumerate(np.array_split(np.arange(n), n_batches)):
        batch_of[members] = b
    free = rng.permutation(np.setdiff1d(np.arange(n), pairs.ravel()))
    taken = np.zeros(n, dtype=bool)

    biobank = "dna_sample_id" in people
    second = (
        people["dna_sample_id_2"].notna().to_numpy()
        if "dna_sample_id_2" in people
        else np.full(n, not biobank)
    )

    def draw(
        batch: int | None = None, prefer_male: bool | None = None, among: np.ndarray | None = None
    ) -> int | None:
        """Next untouched person (in ``batch`` and `among`, preferring the given sex), or None."""
        pool = free[~taken[free]]
        if among is not None:
            pool = pool[among[pool]]
        if batch is not None:
            pool = pool[batch_of[pool] == batch]
        if prefer_male is not None and (male_cohort[pool] == prefer_male).any():
            pool = pool[male_cohort[pool] == prefer_male]
        if not len(pool):
            return None
        taken[pool[0]] = True
        return int(pool[0])

    issues = []
    source = np.arange(n)
    contaminant = np.full(n, -1)
    fraction = np.zeros(n)
    for _ in range(wanted["swap"]):
        a = draw()
        b = None if a is None else draw(int(batch_of[a]), not male_cohort[a])
        if b is None:
            continue
        source[a], source[b] = b, a
        issues += [(a, "swap", b), (b, "swap", a)]
    for _ in range(wanted["contaminated"]):
        a = draw()
        mates = (
            np.flatnonzero((batch_of == batch_of[a]) & (np.arange(n) != a)) if a is not None else []
        )
        if not len(mates):
            continue
        contaminant[a] = rng.choice(mates)
        fraction[a] = round(float(rng.uniform(0.10, 0.25)), 3)
        issues.append((a, "contaminated", int(contaminant[a])))
    duplicated = [
        p for p in (draw(among=second) for _ in range(wanted["duplicate"])) if p is not None
    ]

    ids_rng = np.random.default_rng([config.seed, _STREAM_IDS])
    numbers = ids_rng.choice(900_000_000, size=n + len(duplicated), replace=False) + 100_000_000
    sample_id = np.array([f"S{v:09d}" for v in numbers])
    dup_id = sample_id[n:]
    sample_id = sample_id[:n]
    if biobank:  # the biobank's DNA sample ids, as the registry knows them
        sample_id = people["dna_sample_id"].astype(str).to_numpy()
        dup_id = people["dna_sample_id_2"].to_numpy()[duplicated].astype(str)
    dup_batch = [(batch_of[p] + 1) % n_batches for p in duplicated]

    tiers_rng = np.random.default_rng([config.seed, _STREAM_TIERS])
    outputs = []
    batch_names = [f"batch_{b + 1:03d}" for b in range(n_batches)]
    for b in range(n_batches):
        members = np.flatnonzero(batch_of == b)
        dups = [i for i, db in enumerate(dup_batch) if db == b]
        ids = np.concatenate([sample_id[members], dup_id[dups]])
        src = np.concatenate([source[members], np.array(duplicated, dtype=np.int64)[dups]])
        is_dup = np.concatenate([np.zeros(len(members), bool), np.ones(len(dups), bool)])
        cont = np.concatenate([contaminant[members], np.full(len(dups), -1)])
        frac = np.concatenate([fraction[members], np.zeros(len(dups))])
        order = np.argsort(ids, kind="stable")
        outputs.append(
            OutputSet(
                name=batch_names[b],
                sample_ids=tuple(ids[order]),
                source=src[order].astype(np.int64),
                tier=tiers_rng.choice(len(TIER_SHARE), size=len(ids), p=TIER_SHARE)[order],
                duplicate=is_dup[order],
                contaminant=cont[order].astype(np.int64),
                contamination=frac[order],
                header_extra=(
                    f"##opencohort_genome_center={GENOME_CENTERS[b % len(GENOME_CENTERS)]}",
                    f"##opencohort_batch={batch_names[b]}",
                ),
            )
        )
    n_panel = len(labels)
    outputs.append(
        OutputSet(
            name=PANEL_NAME,
            sample_ids=tuple(labels["sample_id"]),
            source=np.arange(n, n + n_panel),
            tier=tiers_rng.choice(len(TIER_SHARE), size=n_panel, p=TIER_SHARE),
            duplicate=np.zeros(n_panel, bool),
            contaminant=np.full(n_panel, -1),
            contamination=np.zeros(n_panel),
            header_extra=(f"##opencohort_set={PANEL_NAME}",),
        )
    )

    plan = GenomePlan(
        seed=config.seed,
        ancestry=ancestry,
        columns=columns,
        counts=counts,
        male=male,
        parent_child=parent_child,
        siblings=siblings,
        n_cohort=n,
        outputs=tuple(outputs),
    )
    tables = _tables(
        people,
        pid,
        sample_id,
        batch_of,
        batch_names,
        male_cohort,
        parent_child,
        siblings,
        issues,
        fraction,
        duplicated,
        dup_id,
        dup_batch,
        labels,
    )
    return plan, tables


def _tables(
    people: pd.DataFrame,
    pid: np.ndarray,
    sample_id: np.ndarray,
    batch_of: np.ndarray,
    batch_names: list[str],
    male: np.ndarray,
    parent_child: np.ndarray,
    siblings: np.ndarray,
    issues: list[tuple[int, str, int]],
    fraction: np.ndarray,
    duplicated: list[int],
    dup_id: np.ndarray,
    dup_batch: list[int],
    labels: pd.DataFrame,
) -> SampleTables:
    """Manifest, related pairs, sample issues, genetic sex and panel labels."""
    collected = (
        pd.to_datetime(people["dna_received_date"]).to_numpy()
        if "dna_received_date" in people
        else np.full(len(people), np.datetime64("NaT"), dtype="datetime64[ns]")
    )
    person = np.concatenate([np.arange(len(pid)), np.array(duplicated, dtype=np.int64)])
    batch = np.concatenate([batch_of, np.array(dup_batch, dtype=np.int64)])
    manifest = pd.DataFrame(
        {
            "sample_id": np.concatenate([sample_id, dup_id]),
            "participant_id": pid[person],
            "sex_at_birth": people["sex_at_birth"].to_numpy()[person],
            "genome_center": [GENOME_CENTERS[b % len(GENOME_CENTERS)] for b in batch],
            "batch": [batch_names[b] for b in batch],
            "collection_date": collected[person],
        }
    )
    related = pd.DataFrame(
        {
            "participant_id_1": pid[np.concatenate([parent_child[:, 0], siblings[:, 0]])],
            "participant_id_2": pid[np.concatenate([parent_child[:, 1], siblings[:, 1]])],
            "relationship": ["parent_offspring"] * len(parent_child)
            + ["full_sibling"] * len(siblings),
            "expected_kinship": 0.25,
        }
    )
    rows = []
    for a, issue, b in issues:
        detail = (
            f"VCF column holds the genome of {sample_id[b]} (participant {pid[b]})"
            if issue == "swap"
            else f"reads of {sample_id[b]} (participant {pid[b]}) at fraction {fraction[a]}"
        )
        rows.append((sample_id[a], pid[a], issue, detail))
    for p, d, b in zip(duplicated, dup_id, dup_batch, strict=True):
        detail = f"second sample of participant {pid[p]} (first: {sample_id[p]}), {batch_names[b]}"
        rows.append((d, pid[p], "duplicate", detail))
    sample_issues = pd.DataFrame(rows, columns=["sample_id", "participant_id", "issue", "detail"])
    genetic_sex = pd.DataFrame(
        {
            "participant_id": pid,
            "sex_at_birth": people["sex_at_birth"].to_numpy(),
            "genetic_sex": np.where(male, "male", "female"),
        }
    )
    return SampleTables(manifest, related, sample_issues, genetic_sex, labels)
