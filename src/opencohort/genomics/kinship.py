"""Relatedness: KING-robust kinship of all sample pairs and a maximal unrelated set."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from opencohort.config import Home
from opencohort.errors import ConfigError, NotFound
from opencohort.genomics import _columns as c
from opencohort.genomics import _store
from opencohort.genomics.executor import Executor, local_or

KING_DEGREES = ((0.354, "duplicate"), (0.177, "first"), (0.0884, "second"), (0.0442, "third"))
"""KING's kinship cut-offs (lower bounds, exclusive) of each degree; below: unrelated."""
SAMPLE_ID_1, SAMPLE_ID_2 = "sample_id_1", "sample_id_2"
KINSHIP = "pair_kinship"
DEGREE = "pair_degree"
PAIR_COLUMNS = (
    SAMPLE_ID_1, SAMPLE_ID_2, "participant_id_1", "participant_id_2",
    "pair_n_variants", "pair_n_het_het", "pair_n_ibs0", KINSHIP, DEGREE,
)  # fmt: skip
MEMORY_BYTES = 1 << 29
"""Working-memory budget that sets the sample tile and variant block sizes."""
RADIX = 4096
"""Two counts share one float32 product as ``low + RADIX * high``; exact while a block has
fewer than RADIX variants (every partial sum stays below 2**24)."""
Progress = Callable[[str, float], None]


def king_degree(kinship: np.ndarray) -> np.ndarray:
    """Degree of relationship per kinship value by KING's cut-offs."""
    kinship = np.asarray(kinship, dtype=float)
    conditions = [kinship > lo for lo, _ in KING_DEGREES]
    return np.select(conditions, [name for _, name in KING_DEGREES], default="unrelated")


def _sizes(n: int, memory: int) -> tuple[int, int]:
    """Sample tile and variant block that keep accumulators and indicators within memory."""
    tile = int(max(64, min(n, memory // (5 * 8 * max(n, 1)))))
    block = int(max(256, min(RADIX - 1, memory // (4 * 4 * max(n, 1)))))
    return tile, block


def king_kinship(
    root: Path,
    *,
    min_kinship: float | None = 0.1,
    memory: int = MEMORY_BYTES,
    progress: Progress | None = None,
    executor: Executor | None = None,
) -> pd.DataFrame:
    """KING-robust kinship of sample pairs over the store's autosomal variants.

    Parameters
    ----------
    root
        The store directory.
    min_kinship
        Report pairs with kinship above this; ``None`` reports every pair.
    memory
        Working-memory budget in bytes (sets tile and block sizes; results do not depend
        on it).
    progress
        Called with a label and the fraction of sample tiles done.
    executor
        Where the sample tiles run, one task each (default in this process; see
        :mod:`opencohort.genomics.executor`); results do not depend on it.

    Returns
    -------
    pandas.DataFrame
        One row per reported pair (sample_id_1 before sample_id_2 in store order):
        participant ids, pair_n_variants (called in both), pair_n_het_het, pair_n_ibs0
        (opposite homozygotes), pair_kinship and pair_degree (:func:`king_degree`).

    Notes
    -----
    1. For samples i, j over the variants called in both, with ``h = min(N_het,i, N_het,j)``:
       ``kinship = (N_het,het - 2 N_ibs0) / (2h) + 1/2 - (N_het,i + N_het,j) / (4h)``
       (KING-robust's between-family estimator, as ``plink2 --make-king-table``).
    2. The counts are float32 matrix products of indicator matrices (het, hom-ref,
       hom-alt, called; four products, two counts packed in each of two of them) over
       blocks of fewer than 4,096 variants, for one row tile of samples against the samples
       from the tile on; memory is O(tile x samples + block x samples), and each row tile
       is one pass over the pgens.
    """
    if min_kinship is not None and not -1 <= min_kinship <= 0.5:
        raise ConfigError(f"king_kinship: min_kinship={min_kinship} not in [-1, 0.5]")
    samples = _store.read_samples(root)
    if samples.empty:
        raise NotFound(f"no genotype store in {root}; run 'opencohort genomics ingest DIR' first")
    n = len(samples)
    contigs = [k for k in _store.store_contigs(root) if k.removeprefix("chr").isdigit()]
    tile, block = _sizes(n, memory)
    tasks = [(root, contigs, a, min(n, a + tile), block, min_kinship) for a in range(0, n, tile)]
    parts = []
    for task, part in zip(tasks, local_or(executor).map(_tile_task, tasks), strict=True):
        parts.append(part)
        if progress:
            progress("kinship", task[3] / n)
    i, j, counts = (np.concatenate(p) for p in zip(*parts, strict=True)) if parts else ([],) * 3
    i, j = np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64)
    counts = np.asarray(counts, dtype=float).reshape(-1, 5)
    ids, pids = samples[c.SAMPLE_ID].to_numpy(), samples[c.PARTICIPANT_ID].to_numpy()
    kin = _kinship(counts)
    return pd.DataFrame(
        {
            SAMPLE_ID_1: ids[i],
            SAMPLE_ID_2: ids[j],
            "participant_id_1": pids[i],
            "participant_id_2": pids[j],
            "pair_n_variants": counts[:, 0].astype(np.int64),
            "pair_n_het_het": counts[:, 1].astype(np.int64),
            "pair_n_ibs0": counts[:, 2].astype(np.int64),
            KINSHIP: kin,
            DEGREE: king_degree(kin),
        }
    )


def _kinship(counts: np.ndarray) -> np.ndarray:
    """Kinship from (n_variants, het_het, ibs0, het_i, het_j) columns."""
    het_min = np.minimum(counts[:, 3], counts[:, 4])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(
            het_min > 0,
            (counts[:, 1] - 2 * counts[:, 2]) / (2 * het_min)
            + 0.5
            - (counts[:, 3] + counts[:, 4]) / (4 * het_min),
            np.nan,
        )


def _tile_task(
    task: tuple[Path, list[str], int, int, int, float | None],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reported pairs of one row tile: (store, contigs, first row, end row, block, min)."""
    root, contigs, a, b, block, min_kinship = task
    return _tile_pairs(_tile_sums(root, contigs, a, b, block), a, min_kinship)


def _tile_sums(root: Path, contigs: list[str], a: int, b: int, block: int) -> np.ndarray:
    """(5, b - a, n - a) float64 sums for row samples a:b against samples a:n.

    The five counts per pair are n_variants, het_het, ibs0, het_i and het_j (both over
    jointly called variants); four float32 products per block give them: ``(c + R h)_i .
    c_j`` holds n_variants and het_i, ``(h + R c)_i . h_j`` holds het_het and het_j, and
    ``ref_i . alt_j + alt_i . ref_j`` is ibs0.
    """
    sums: np.ndarray | None = None
    rows = slice(0, b - a)
    for contig in contigs:
        for _, g in _store.iter_blocks(root / f"{contig}.pgen", block):
            g = g[:, a:]
            het = (g == 1).astype(np.float32)
            ref = (g == 0).astype(np.float32)
            alt = (g == 2).astype(np.float32)
            called = het + ref + alt
            called_het = (called[:, rows] + RADIX * het[:, rows]).T @ called
            het_called = (het[:, rows] + RADIX * called[:, rows]).T @ het
            ibs0 = ref[:, rows].T @ alt + alt[:, rows].T @ ref
            high_1, high_2 = np.floor(called_het / RADIX), np.floor(het_called / RADIX)
            part = np.stack(
                [
                    called_het - RADIX * high_1,
                    het_called - RADIX * high_2,
                    ibs0,
                    high_1,
                    high_2,
                ]
            ).astype(np.float64)
            sums = part if sums is None else sums + part
    if sums is None:
        return np.zeros((5, b - a, 0))
    return sums


def _tile_pairs(
    sums: np.ndarray, a: int, min_kinship: float | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (i < j) of one row tile to report, with their five counts."""
    rows, cols = sums.shape[1], sums.shape[2]
    upper = np.arange(cols)[None, :] > np.arange(rows)[:, None]
    if min_kinship is not None:
        upper &= _kinship(sums.reshape(5, -1).T).reshape(rows, cols) > min_kinship
    ii, jj = np.nonzero(upper)
    return ii + a, jj + a, sums[:, ii, jj].T


def maximal_unrelated(
    sample_ids: list[str] | np.ndarray,
    pairs: pd.DataFrame,
    *,
    max_kinship: float = 0.1,
) -> list[str]:
    """A maximal set of samples with no pair above ``max_kinship``, greedily.

    Parameters
    ----------
    sample_ids
        All samples.
    pairs
        Pairs with sample_id_1, sample_id_2 and pair_kinship (e.g. :func:`king_kinship`).
    max_kinship
        Pairs above this are related.

    Returns
    -------
    list of str
        The kept samples, in input order.

    Notes
    -----
    While related pairs remain, drop the sample in the most of them (ties: the largest
    sample_id), then add back any dropped sample with no related pair among the kept ones.
    Differs from Hail's ``maximal_independent_set``, which uses a different heuristic.
    """
    related = pairs[pairs[KINSHIP] > max_kinship]
    edges = list(zip(related[SAMPLE_ID_1], related[SAMPLE_ID_2], strict=True))
    dropped: list[str] = []
    while edges:
        degree = pd.Series([s for e in edges for s in e]).value_counts()
        top = degree[degree == degree.max()].index.max()
        dropped.append(top)
        edges = [e for e in edges if top not in e]
    out = set(sample_ids) - set(dropped)
    all_edges = list(zip(related[SAMPLE_ID_1], related[SAMPLE_ID_2], strict=True))
    for s in reversed(dropped):
        if not any((x == s and y in out) or (y == s and x in out) for x, y in all_edges):
            out.add(s)
    return [s for s in sample_ids if s in out]


KINSHIP_FILE = "genomics/kinship.parquet"
UNRELATED_FILE = "genomics/unrelated.parquet"


def run_kinship(
    home: Home,
    *,
    min_kinship: float = 0.1,
    progress: Progress | None = None,
    executor: Executor | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Kinship of the home's store and its maximal unrelated set, written as Parquet.

    Writes ``genomics/kinship.parquet`` (pairs above ``min_kinship``, see
    :func:`king_kinship`) and ``genomics/unrelated.parquet`` (sample_id, participant_id,
    sample_unrelated: in the maximal unrelated set of :func:`maximal_unrelated`).
    `executor` runs the sample tiles (default in this process).

    Raises
    ------
    NotFound
        If the home has no genotype store.
    """
    root = _store.store_dir(home)
    pairs = king_kinship(root, min_kinship=min_kinship, progress=progress, executor=executor)
    samples = _store.read_samples(root)
    ids = samples[c.SAMPLE_ID].tolist()
    kept = set(maximal_unrelated(ids, pairs, max_kinship=min_kinship))
    unrelated = samples[[c.SAMPLE_ID, c.PARTICIPANT_ID]].copy()
    unrelated["sample_unrelated"] = unrelated[c.SAMPLE_ID].isin(kept)
    path = home.root / KINSHIP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    pairs.to_parquet(path, index=False)
    unrelated.to_parquet(home.root / UNRELATED_FILE, index=False)
    return pairs, unrelated
