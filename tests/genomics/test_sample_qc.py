"""Sample QC: planted duplicates, swaps and contamination found; metrics against plink2."""

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from opencohort.errors import ConfigError
from opencohort.genomics import SampleQcConfig, sample_qc
from opencohort.genomics._qc_kernels import pairwise_concordance, robust_z
from opencohort.genomics._store import read_samples


@pytest.fixture(scope="module")
def qc(store: Path) -> pd.DataFrame:
    return sample_qc(store)


@pytest.fixture(scope="module")
def issues(feed: Path) -> pd.DataFrame:
    return pd.read_csv(feed / "truth" / "sample_issues.csv")


ISSUE_FLAGS = [
    "sample_sex_mismatch_flag",
    "sample_contamination_flag",
    "sample_duplicate_flag",
    "sample_swap_flag",
]


def test_sample_qc__duplicates_linked(qc: pd.DataFrame, issues: pd.DataFrame) -> None:
    dups = issues[issues["issue"] == "duplicate"]
    assert len(dups)
    by_id = qc.set_index("sample_id")
    for sample, person in zip(dups["sample_id"], dups["participant_id"], strict=True):
        pair = qc[qc["participant_id"] == person]
        assert len(pair) == 2 and sample in set(pair["sample_id"])
        assert pair["sample_duplicate_flag"].sum() == 1
        flagged = pair[pair["sample_duplicate_flag"]].iloc[0]
        assert by_id.loc[flagged["sample_duplicate_of"], "participant_id"] == person


def test_sample_qc__swaps_across_sexes_flagged(
    qc: pd.DataFrame, issues: pd.DataFrame, feed: Path
) -> None:
    sex = pd.read_csv(feed / "truth" / "genetic_sex.csv").set_index("participant_id")
    swaps = issues[issues["issue"] == "swap"].merge(qc, on=["sample_id", "participant_id"])
    assert len(swaps) == 2
    # the feed's seed plants a swap between a man and a woman
    assert sex.loc[swaps["participant_id"], "genetic_sex"].nunique() == 2
    assert swaps["sample_swap_flag"].all()
    assert swaps["sample_sex_mismatch_flag"].all()


def test_sample_qc__contaminated_flagged(qc: pd.DataFrame, issues: pd.DataFrame) -> None:
    planted = issues.loc[issues["issue"] == "contaminated", "sample_id"]
    assert len(planted)
    assert qc.set_index("sample_id").loc[planted, "sample_contamination_flag"].all()


def test_sample_qc__few_false_positives(qc: pd.DataFrame, issues: pd.DataFrame) -> None:
    planted = set(issues["sample_id"])
    dups = issues.loc[issues["issue"] == "duplicate", "participant_id"]
    planted |= set(qc.loc[qc["participant_id"].isin(dups), "sample_id"])
    clean = qc[~qc["sample_id"].isin(planted)]
    assert clean[ISSUE_FLAGS].any(axis=1).sum() <= 2


def test_sample_qc__males_have_no_chrx_heterozygosity(qc: pd.DataFrame, feed: Path) -> None:
    sex = pd.read_csv(feed / "truth" / "genetic_sex.csv")
    swapped = pd.read_csv(feed / "truth" / "sample_issues.csv")["sample_id"]
    frame = qc[~qc["sample_id"].isin(swapped)].merge(sex[["participant_id", "genetic_sex"]])
    male = frame["genetic_sex"] == "male"
    assert frame.loc[male, "sample_chrx_het_rate"].max() < 0.005
    assert frame.loc[~male, "sample_chrx_het_rate"].median() > 0.01
    assert (frame.loc[male, "sample_genetic_sex"] == "male").all()


def test_sample_qc__call_rate_matches_plink2_missing(
    qc: pd.DataFrame, store: Path, tmp_path: Path
) -> None:
    lines = [str(store / p.stem) for p in sorted(store.glob("chr*.pgen")) if p.stem != "chrX"]
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")
    subprocess.run(
        f"plink2 --pmerge-list {tmp_path / 'list.txt'} pfile --threads 1 --out {tmp_path / 'all'}"
        f" && plink2 --pfile {tmp_path / 'all'} --missing --threads 1 --out {tmp_path / 'm'}",
        shell=True, check=True, capture_output=True,
    )  # fmt: skip
    peer = pd.read_csv(tmp_path / "m.smiss", sep="\t").set_index("#IID")
    mine = qc.set_index("sample_id").loc[peer.index, "sample_call_rate"]
    np.testing.assert_allclose(mine.to_numpy(), 1 - peer["F_MISS"].to_numpy(), atol=1e-12)


def test_sample_qc__table_keyed_by_sample(qc: pd.DataFrame, store: Path) -> None:
    assert qc["sample_id"].is_unique
    assert qc["sample_id"].tolist() == read_samples(store)["sample_id"].tolist()
    assert (qc["sample_qc_pass"] == ~qc.filter(like="_flag").any(axis=1)).all()


def test_sample_qc__groups_stratify_outliers(store: Path) -> None:
    samples = read_samples(store)
    groups = pd.Series(np.where(np.arange(len(samples)) % 2, "a", "b"), index=samples["sample_id"])
    out = sample_qc(store, groups=groups)
    assert set(out["sample_qc_group"]) == {"a", "b"}


def test_sample_qc__bad_config_fails_before_work(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="female_f"):
        sample_qc(tmp_path, config=SampleQcConfig(female_f=0.9, male_f=0.5))


def test_pairwise_concordance__matches_naive_with_tiles() -> None:
    rng = np.random.default_rng(3)
    g = rng.integers(-1, 3, size=(60, 9)).astype(np.int8)
    g[g < 0] = -9
    g[:, 5] = g[:, 1]
    g[:3, 5] = -9
    i, j, conc, both = pairwise_concordance(g, block=4, min_sites=1, min_concordance=0.0)
    for a, b, value, n in zip(i, j, conc, both, strict=True):
        called = (g[:, a] >= 0) & (g[:, b] >= 0)
        assert n == called.sum()
        assert value == pytest.approx((g[called, a] == g[called, b]).mean())
    assert len(i) == 9 * 8 // 2
    top = pairwise_concordance(g, block=4, min_sites=1, min_concordance=0.99)
    assert (top[0].tolist(), top[1].tolist()) == ([1], [5])


def test_robust_z__within_groups() -> None:
    values = np.array([1.0, 2, 3, 4, 100, 10, 20, 30, 40, 50])
    groups = np.array(["a"] * 5 + ["b"] * 5)
    z = robust_z(values, groups)
    assert z[4] > 8 and abs(z[9]) < 3
    assert z[2] == 0 and z[7] == 0
