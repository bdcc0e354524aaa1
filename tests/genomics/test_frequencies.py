"""Per-group allele counts and frequencies against naive counts and plink2 --freq."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from opencohort.genomics import _store, allele_frequencies


@pytest.fixture(scope="module")
def groups(store: Path) -> pd.Series:
    """A fixed arbitrary grouping of the store's samples (a, b, oth; a few left out)."""
    ids = _store.read_samples(store)["sample_id"]
    labels = np.array(["a", "b", "oth", None], dtype=object)[np.arange(len(ids)) % 4]
    return pd.Series(labels, index=ids.to_numpy()).dropna()


@pytest.fixture(scope="module")
def table(store: Path, groups: pd.Series) -> pd.DataFrame:
    return allele_frequencies(store, groups=groups)


def test_allele_frequencies__naive_counts(
    table: pd.DataFrame, store: Path, groups: pd.Series
) -> None:
    samples = _store.read_samples(store)
    variants = _store.read_variants(store)
    contig = "chr1"
    g = _store.read_genotypes(store / f"{contig}.pgen").astype(int)
    ids = variants.loc[variants["chrom"] == contig, "variant_id"]
    got = table.set_index("variant_id").loc[ids]
    for name in ("all", "a", "b", "oth"):
        pick = np.ones(len(samples), bool) if name == "all" else (
            samples["sample_id"].map(groups) == name
        ).to_numpy()  # fmt: skip
        sub = g[:, pick]
        called = sub >= 0
        ac = np.where(called, sub, 0).sum(axis=1)
        an = 2 * called.sum(axis=1)
        assert (got[f"variant_ac_{name}"].to_numpy() == ac).all()
        assert (got[f"variant_an_{name}"].to_numpy() == an).all()
        assert (got[f"variant_n_hom_alt_{name}"].to_numpy() == (sub == 2).sum(axis=1)).all()
        with np.errstate(invalid="ignore"):
            np.testing.assert_allclose(got[f"variant_af_{name}"], ac / an)


def test_allele_frequencies__popmax(table: pd.DataFrame) -> None:
    af = table[["variant_af_a", "variant_af_b"]]
    best = np.where(af["variant_af_b"] > af["variant_af_a"], "b", "a")
    assert (table["variant_popmax_group"].to_numpy() == best).all()
    np.testing.assert_allclose(table["variant_popmax_af"], af.max(axis=1))
    assert "oth" not in set(table["variant_popmax_group"])


def test_allele_frequencies__matches_plink2_per_group(
    table: pd.DataFrame, store: Path, groups: pd.Series, tmp_path: Path
) -> None:
    for name in ("all", "a"):
        cmd = ["plink2", "--pfile", str(store / "chr2"), "--freq", "counts", "--threads", "1",
               "--out", str(tmp_path / name)]  # fmt: skip
        if name != "all":
            keep = tmp_path / f"{name}.keep"
            keep.write_text("\n".join(groups[groups == name].index) + "\n")
            cmd += ["--keep", str(keep)]
        subprocess.run(cmd, check=True, capture_output=True)
        peer = pd.read_csv(tmp_path / f"{name}.acount", sep="\t")
        ours = table.set_index("variant_id").loc[peer["ID"]]
        assert (ours[f"variant_ac_{name}"].to_numpy() == peer["ALT_CTS"].to_numpy()).all()
        assert (ours[f"variant_an_{name}"].to_numpy() == peer["OBS_CT"].to_numpy()).all()


def test_allele_frequencies__no_groups(store: Path, table: pd.DataFrame) -> None:
    plain = allele_frequencies(store)
    assert [k for k in plain.columns if k.endswith("_a")] == []
    assert (plain["variant_ac_all"] == table["variant_ac_all"]).all()
    assert plain["variant_popmax_group"].isna().all()
