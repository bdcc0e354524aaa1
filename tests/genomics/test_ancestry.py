"""Ancestry: site selection, PCA kernels, and labels against the synthetic truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from opencohort.config import Home, init_home
from opencohort.errors import ConfigError
from opencohort.genomics import (
    AncestryConfig,
    AncestryResult,
    ReferencePanel,
    fit_ancestry,
    infer_ancestry,
    ingest,
    king_kinship,
    plot_ancestry,
)
from opencohort.genomics._ancestry_kernels import (
    hwe_normalize,
    ld_prune,
    pca_fit,
    shrinkage_factors,
    standardize,
)
from opencohort.genomics.cli import genomics
from opencohort.synth.models import SynthConfig
from opencohort.synth.program import generate_program

# the session feed's panel (4 per group, 0.1 Mb) is too small for 16 PCs to separate groups
PANEL_FEED = SynthConfig(
    participants=300, genomes=300, sites=1, seed=11, batch_size=300,
    region_megabases=1.0, reference_per_group=60,
)  # fmt: skip


@pytest.fixture(scope="module")
def panel_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Home]:
    """A synthetic program with a 360-sample reference panel, and its ingested home."""
    out = tmp_path_factory.mktemp("ancestry") / "feeds"
    generate_program(PANEL_FEED, out)
    home = init_home(out.parent / "home")
    ingest(out / "genomes", home, check_registry=False)
    return out, home


@pytest.fixture(scope="module")
def result(panel_home: tuple[Path, Home]) -> AncestryResult:
    out, home = panel_home
    return infer_ancestry(home.root / "genomics" / "store", out / "genomes" / "reference_panel")


@pytest.fixture(scope="module")
def with_truth(result: AncestryResult, panel_home: tuple[Path, Home]) -> pd.DataFrame:
    truth = pd.read_csv(panel_home[0] / "truth" / "ancestry.csv")
    merged = result.samples.merge(truth, on="participant_id")
    shares = merged.filter(like="anc_").rename(columns={"anc_nat": "anc_amr"})
    merged["true_group"] = shares.idxmax(axis=1).str.removeprefix("anc_")
    merged["true_share"] = shares.max(axis=1)
    return merged


def test_infer_ancestry__pure_samples_get_their_group(with_truth: pd.DataFrame) -> None:
    pure = with_truth[with_truth["true_share"] >= 0.9]
    assert len(pure) >= 30
    assert (pure["sample_ancestry_top"] == pure["true_group"]).mean() >= 0.9
    labelled = pure[pure["sample_ancestry"] != "oth"]
    assert len(labelled) >= 0.6 * len(pure)
    assert (labelled["sample_ancestry"] == labelled["true_group"]).mean() >= 0.95


def test_infer_ancestry__admixed_more_often_oth_or_amr(with_truth: pd.DataFrame) -> None:
    other = with_truth["sample_ancestry"].isin(["oth", "amr"])
    admixed = with_truth["true_share"] < 0.6
    assert admixed.sum() >= 10
    assert other[admixed].mean() > other[with_truth["true_share"] >= 0.9].mean() + 0.2


def test_infer_ancestry__pc1_tracks_african_share(with_truth: pd.DataFrame) -> None:
    assert abs(np.corrcoef(with_truth["sample_pc1"], with_truth["anc_afr"])[0, 1]) > 0.9


def test_infer_ancestry__table_shape_and_cutoff(result: AncestryResult) -> None:
    table = result.samples
    assert table["sample_id"].is_unique
    assert [f"sample_pc{i}" for i in range(1, 17)] == [k for k in table if "_pc" in k]
    prob = table.filter(like="sample_ancestry_prob_")
    assert set(prob.columns) == {f"sample_ancestry_prob_{g}" for g in
                                 ("afr", "amr", "eas", "eur", "mid", "sas")}  # fmt: skip
    np.testing.assert_allclose(prob.sum(axis=1), 1.0)
    oth = prob.max(axis=1) <= 0.75
    assert (table.loc[oth, "sample_ancestry"] == "oth").all()
    assert (table.loc[~oth, "sample_ancestry"] == table.loc[~oth, "sample_ancestry_top"]).all()
    assert len(result.model.sites) > 500
    assert np.all(np.diff(result.model.eigenvalues) <= 0)


def test_plot_ancestry__png(result: AncestryResult, tmp_path: Path) -> None:
    path = plot_ancestry(result, tmp_path / "plots" / "pcs.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_ld_prune__kept_pairs_below_threshold() -> None:
    rng = np.random.default_rng([5, 1])
    base = rng.integers(0, 3, size=(40, 200))
    # each base variant repeated with a few flips: strong LD inside each group of 3
    g = np.repeat(base, 3, axis=0)
    flips = rng.random(g.shape) < 0.05
    g = np.where(flips, rng.integers(0, 3, size=g.shape), g).astype(np.int8)
    pos = np.arange(len(g)) * 1000
    kept = ld_prune(g, pos, r2=0.1, window=500_000, chunk=16)
    x = standardize(g[kept])
    r2 = ((x @ x.T) / g.shape[1]) ** 2
    near = np.abs(pos[kept][:, None] - pos[kept][None, :]) <= 500_000
    np.fill_diagonal(near, False)
    assert (r2[near] < 0.1).all()
    assert 20 <= len(kept) <= 60  # about one per LD group
    far = ld_prune(g, pos * 10_000, r2=0.1, window=500_000)
    assert len(far) == len(g)  # nothing within the window: all kept


def test_pca_fit__matches_numpy_svd() -> None:
    rng = np.random.default_rng([5, 2])
    g = rng.integers(0, 3, size=(300, 40)).astype(np.int8)
    af = g.mean(axis=1) / 2
    x = hwe_normalize(g, af, len(g))
    values, scores, loadings = pca_fit(x, 5)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    np.testing.assert_allclose(values, s[:5] ** 2, rtol=1e-8)
    np.testing.assert_allclose(np.abs(scores), np.abs(vt[:5].T * s[:5]), atol=1e-8)
    np.testing.assert_allclose(scores, x.T @ loadings, atol=1e-10)


def test_fit_ancestry__too_many_pcs() -> None:
    rng = np.random.default_rng([5, 3])
    panel = ReferencePanel(
        variants=pd.DataFrame({"variant_id": [f"v{i}" for i in range(50)],
                               "panel_af": np.full(50, 0.3)}),
        genotypes=rng.integers(0, 3, size=(50, 12)).astype(np.int8),
        sample_ids=[f"s{i}" for i in range(12)],
        labels=np.array(["afr", "eur"] * 6),
    )  # fmt: skip
    with pytest.raises(ConfigError, match="n_pcs=16"):
        fit_ancestry(panel)
    model = fit_ancestry(panel, config=AncestryConfig(n_pcs=4, n_estimators=5))
    assert model.panel.shape == (12, 2 + 4)


def test_infer_ancestry__bad_option_fails_first(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="other_cutoff"):
        infer_ancestry(tmp_path, tmp_path, config=AncestryConfig(other_cutoff=1.5))


def test_genomics_cli__ancestry_and_kinship(panel_home: tuple[Path, Home]) -> None:
    out, home = panel_home
    runner = CliRunner()
    panel = out / "genomes" / "reference_panel"
    result = runner.invoke(genomics, ["ancestry", "--panel", str(panel), "--home", str(home.root)])
    assert result.exit_code == 0, result.output
    ancestry = pd.read_parquet(home.root / "genomics" / "ancestry.parquet")
    frequencies = pd.read_parquet(home.root / "genomics" / "frequencies.parquet")
    assert "variant_af_eur" in frequencies and ancestry["sample_id"].is_unique
    groups = set(ancestry["sample_ancestry"])
    assert {f"variant_ac_{g}" for g in groups} <= set(frequencies.columns)
    png = home.root / "genomics" / "plots" / "ancestry_pc1_pc2.png"
    assert png.read_bytes()[:4] == b"\x89PNG"
    result = runner.invoke(genomics, ["kinship", "--home", str(home.root)])
    assert result.exit_code == 0, result.output
    pairs = pd.read_parquet(home.root / "genomics" / "kinship.parquet")
    assert (pairs["pair_kinship"] > 0.1).all()
    unrelated = pd.read_parquet(home.root / "genomics" / "unrelated.parquet")
    assert unrelated["sample_unrelated"].any()


def test_king_kinship__random_pairs_below_005_on_1mb_regions(
    panel_home: tuple[Path, Home],
) -> None:
    out, home = panel_home
    pairs = king_kinship(home.root / "genomics" / "store", min_kinship=None)
    truth = pd.read_csv(out / "truth" / "related_pairs.csv")
    planted = set(zip(truth["participant_id_1"], truth["participant_id_2"], strict=True))
    planted |= {(b, a) for a, b in planted}
    ids = zip(pairs["participant_id_1"], pairs["participant_id_2"], strict=True)
    random = ~np.array([p in planted or p[0] == p[1] for p in ids])
    kinship = pairs.loc[random, "pair_kinship"]
    assert np.mean(kinship < 0.05) >= 0.9
    assert np.mean(kinship > 0.1) <= 0.01
    related = pairs.loc[~random & (pairs["participant_id_1"] != pairs["participant_id_2"])]
    assert len(related) and (related["pair_degree"] == "first").all()


def _naive_shrinkage(x: np.ndarray, k: int, folds: int, seed: int) -> np.ndarray:
    """Refit the PCA without each fold from the genotypes, project the fold, compare scales."""
    fold = np.random.default_rng(seed).permutation(x.shape[1]) % folds
    held, fitted = np.zeros(k), np.zeros(k)
    for f in range(folds):
        train, test = fold != f, fold == f
        _, scores, loadings = pca_fit(x[:, train], k)
        held += ((x[:, test].T @ loadings) ** 2).sum(axis=0)
        fitted += (scores**2).sum(axis=0) * test.sum() / train.sum()
    return np.sqrt(held / fitted)


def test_shrinkage_factors__match_refitting_and_theory() -> None:
    rng = np.random.default_rng([5, 4])
    n, m = 200, 2000
    # two groups 0.3 apart in frequency: one strong component, the rest noise
    p = np.clip(rng.uniform(0.1, 0.9, m)[:, None] + np.where(np.arange(n) < n // 2, 0.15, -0.15),
                0.02, 0.98)  # fmt: skip
    g = rng.binomial(2, p).astype(np.int8)
    af = g.mean(axis=1) / 2
    x = hwe_normalize(g, af, m)
    factors = shrinkage_factors(x, 4, folds=5, seed=3)
    np.testing.assert_allclose(factors, _naive_shrinkage(x, 4, 5, 3), rtol=1e-8)
    assert factors[0] > 0.9  # a strong axis barely shrinks
    # pure-noise axes shrink to about 1 / (1 + sqrt(m / n_train)) (Lee, Zou & Wright 2010)
    noise = 1 / (1 + np.sqrt(m / (0.8 * n)))
    assert np.all(np.abs(factors[1:] - noise) < 0.35 * noise)


def test_pca_fit__lanczos_path_matches_numpy_svd() -> None:
    rng = np.random.default_rng([5, 5])
    g = rng.integers(0, 3, size=(150, 1200)).astype(np.int8)  # 1,200 samples: eigsh path
    g[:, :600] = np.minimum(g[:, :600] + (rng.random((150, 1)) < 0.5), 2)
    x = hwe_normalize(g, g.mean(axis=1) / 2, len(g))
    values, scores, _ = pca_fit(x, 6)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    np.testing.assert_allclose(values, s[:6] ** 2, rtol=1e-8)
    np.testing.assert_allclose(np.abs(scores), np.abs(vt[:6].T * s[:6]), atol=1e-8)
