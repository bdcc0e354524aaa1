"""KING-robust kinship against plink2 and the planted relatives, and the unrelated set."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from opencohort.genomics import _store, king_degree, king_kinship, maximal_unrelated


@pytest.fixture(scope="module")
def all_pairs(store: Path) -> pd.DataFrame:
    """Kinship of every pair of the session store, with a tiny memory budget (many tiles)."""
    return king_kinship(store, min_kinship=None, memory=1 << 20)


@pytest.fixture(scope="module")
def plink_king(store: Path, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """``plink2 --make-king-table`` on the store's autosomes merged into one pfile."""
    out = tmp_path_factory.mktemp("king")
    variants, samples = _store.read_variants(store), _store.read_samples(store)
    autosomes = [k for k in _store.store_contigs(store) if k.removeprefix("chr").isdigit()]
    genotypes = np.concatenate([_store.read_genotypes(store / f"{k}.pgen") for k in autosomes])
    table = pd.concat([variants[variants["chrom"] == k] for k in autosomes])
    _store.write_plink(out / "all", genotypes, table, samples)
    subprocess.run(
        ["plink2", "--pfile", str(out / "all"), "--make-king-table", "--threads", "1",
         "--out", str(out / "king")],
        check=True, capture_output=True,
    )  # fmt: skip
    return pd.read_csv(out / "king.kin0", sep="\t")


def test_king_kinship__matches_plink2(all_pairs: pd.DataFrame, plink_king: pd.DataFrame) -> None:
    key = ["sample_id_1", "sample_id_2"]
    a = plink_king.rename(columns={"#IID1": "sample_id_1", "IID2": "sample_id_2"})
    b = plink_king.rename(columns={"#IID1": "sample_id_2", "IID2": "sample_id_1"})
    merged = pd.concat([all_pairs.merge(a, on=key), all_pairs.merge(b, on=key)])
    assert len(merged) == len(all_pairs) == len(plink_king)
    # plink2 prints 6 significant digits
    np.testing.assert_allclose(merged["pair_kinship"], merged["KINSHIP"], atol=2e-5)
    # plink2 2.00a3.5 counts a variant or two more for a few pairs without changing KINSHIP
    assert ((merged["pair_n_variants"] - merged["NSNP"]).abs() <= 0.001 * merged["NSNP"]).all()
    hethet = merged["pair_n_het_het"] / merged["pair_n_variants"]
    np.testing.assert_allclose(hethet, merged["HETHET"], rtol=1e-3, atol=1e-6)


def test_king_kinship__planted_relatives_found(all_pairs: pd.DataFrame, feed: Path) -> None:
    truth = pd.read_csv(feed / "truth" / "related_pairs.csv")
    pids = pd.concat(
        [all_pairs, all_pairs.rename(columns={"participant_id_1": "participant_id_2",
                                              "participant_id_2": "participant_id_1"})]
    )  # fmt: skip
    found = truth.merge(pids, on=["participant_id_1", "participant_id_2"])
    assert len(found) > 0
    assert len(found) == len(truth)
    want = king_degree(found["expected_kinship"].to_numpy())
    assert (found["pair_degree"].to_numpy() == want).all(), found


def test_king_kinship__random_pairs_unrelated(all_pairs: pd.DataFrame, feed: Path) -> None:
    truth = pd.read_csv(feed / "truth" / "related_pairs.csv")
    planted = set(zip(truth["participant_id_1"], truth["participant_id_2"], strict=True))
    planted |= {(b, a) for a, b in planted}
    pairs = zip(all_pairs["participant_id_1"], all_pairs["participant_id_2"], strict=True)
    random = ~np.array([p in planted or p[0] == p[1] for p in pairs])
    # 0.1 Mb regions carry few independent markers: only the centre is checked here, the
    # tails on 1 Mb regions in test_ancestry.py
    assert np.nanmedian(all_pairs.loc[random, "pair_kinship"]) < 0.05


def test_king_kinship__threshold_filters(all_pairs: pd.DataFrame, store: Path) -> None:
    related = king_kinship(store)
    assert (related["pair_kinship"] > 0.1).all()
    assert len(related) == int((all_pairs["pair_kinship"] > 0.1).sum())


def test_maximal_unrelated__no_related_pair_left(all_pairs: pd.DataFrame, store: Path) -> None:
    ids = _store.read_samples(store)["sample_id"].tolist()
    kept = maximal_unrelated(ids, all_pairs)
    inside = all_pairs["sample_id_1"].isin(kept) & all_pairs["sample_id_2"].isin(kept)
    assert (all_pairs.loc[inside, "pair_kinship"] <= 0.1).all()
    dropped = set(ids) - set(kept)
    assert dropped, "the store has related pairs, so some sample must go"
    for s in dropped:  # maximal: each dropped sample has a related kept partner
        mine = all_pairs[(all_pairs["sample_id_1"] == s) | (all_pairs["sample_id_2"] == s)]
        partners = set(mine.loc[mine["pair_kinship"] > 0.1, ["sample_id_1", "sample_id_2"]].stack())
        assert partners & set(kept)
    assert maximal_unrelated(ids, all_pairs) == kept


def test_maximal_unrelated__triangle_drops_hub() -> None:
    pairs = pd.DataFrame(
        {"sample_id_1": ["a", "a", "b"], "sample_id_2": ["b", "c", "d"],
         "pair_kinship": [0.25, 0.25, 0.05]}
    )  # fmt: skip
    assert maximal_unrelated(["a", "b", "c", "d"], pairs) == ["b", "c", "d"]


def test_king_degree__cutoffs() -> None:
    got = king_degree(np.array([0.5, 0.3, 0.15, 0.06, 0.01, np.nan]))
    assert got.tolist() == ["duplicate", "first", "second", "third", "unrelated", "unrelated"]
