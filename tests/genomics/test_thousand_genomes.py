"""Ancestry on real 1000 Genomes genotypes (peddy): train on part of 2,504, predict the rest."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest

from opencohort.errors import ConfigError
from opencohort.genomics import (
    ThousandGenomes,
    classify,
    fit_ancestry,
    project_genotypes,
    read_thousand_genomes,
    thousand_genomes_panel,
)

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("peddy") is None, reason="needs the peddy package (1000 Genomes data)"
)


@pytest.fixture(scope="module")
def data() -> ThousandGenomes:
    return read_thousand_genomes()


@pytest.fixture(scope="module")
def split(data: ThousandGenomes) -> tuple[np.ndarray, np.ndarray]:
    """A third of each super-population held out (seeded)."""
    rng = np.random.default_rng(2504)
    held = np.zeros(len(data.labels), dtype=bool)
    for group in np.unique(data.labels):
        members = np.flatnonzero(data.labels == group)
        held[rng.choice(members, len(members) // 3, replace=False)] = True
    return np.flatnonzero(~held), np.flatnonzero(held)


@pytest.fixture(scope="module")
def predicted(data: ThousandGenomes, split: tuple[np.ndarray, np.ndarray]) -> pd.DataFrame:
    """Our pipeline: sites, PCA and random forest on the training samples; the rest projected."""
    train, held = split
    model = fit_ancestry(thousand_genomes_panel(data, samples=train))
    row = pd.Series(np.arange(len(data.variants)), index=data.variants["variant_id"])
    genotypes = data.genotypes[np.ix_(row[model.sites["variant_id"]].to_numpy(), held)]
    out = classify(project_genotypes(genotypes, model), model)
    out["truth"] = data.labels[held]
    return out


def test_read_thousand_genomes__shape_and_labels(data: ThousandGenomes) -> None:
    assert data.genotypes.shape == (23_770, 2_504)
    assert set(np.unique(data.genotypes)) == {0, 1, 2}
    counts = pd.Series(data.labels).value_counts().to_dict()
    # the 1000 Genomes phase 3 super-population sizes
    assert counts == {"afr": 661, "eas": 504, "eur": 503, "sas": 489, "amr": 347}
    assert data.variants["variant_id"].iloc[0] == "chr1:69761:A:T"


def test_thousand_genomes__held_out_superpopulation_accuracy(predicted: pd.DataFrame) -> None:
    assert len(predicted) == 833
    assert (predicted["sample_ancestry_top"] == predicted["truth"]).mean() >= 0.97
    labelled = predicted[predicted["sample_ancestry"] != "oth"]
    assert len(labelled) >= 0.9 * len(predicted)
    assert (labelled["sample_ancestry"] == labelled["truth"]).mean() >= 0.98


def test_thousand_genomes_panel__sites_chosen_on_the_training_samples(
    data: ThousandGenomes, split: tuple[np.ndarray, np.ndarray]
) -> None:
    train, _ = split
    panel = thousand_genomes_panel(data, samples=train[:300])
    assert panel.genotypes.shape == (len(panel.variants), 300)
    assert panel.labels.tolist() == data.labels[train[:300]].tolist()
    row = pd.Series(np.arange(len(data.variants)), index=data.variants["variant_id"])
    g = data.genotypes[np.ix_(row[panel.variants["variant_id"]].to_numpy(), train[:300])]
    np.testing.assert_array_equal(panel.genotypes, g)
    np.testing.assert_allclose(panel.variants["panel_af"], g.mean(axis=1) / 2)
    assert panel.variants["chrom"].str.match(r"^chr\d+$").all()


def test_read_thousand_genomes__unknown_build() -> None:
    with pytest.raises(ConfigError, match="GRCh36"):
        read_thousand_genomes("GRCh36")
