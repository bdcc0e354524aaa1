"""Variant QC: the HWE exact test against a naive version and plink2, call rates, flags."""

import subprocess
from math import exp, lgamma, log
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from opencohort.errors import ConfigError
from opencohort.genomics import VariantQcConfig, genotype_counts, variant_qc
from opencohort.genomics._qc_kernels import hwe_exact
from opencohort.genomics._store import read_genotypes, read_samples


def _naive_hwe(het: int, hom1: int, hom2: int) -> tuple[float, float]:
    """Exact HWE p and P(het >= observed) by enumerating the Levene distribution."""
    n = het + hom1 + hom2
    rare = min(2 * hom1 + het, 2 * hom2 + het)
    if n == 0:
        return float("nan"), float("nan")

    def logp(h: int) -> float:
        r = (rare - h) // 2
        c = n - h - r
        return (
            lgamma(n + 1) - lgamma(r + 1) - lgamma(c + 1) - lgamma(h + 1) + h * log(2)
            + lgamma(rare + 1) + lgamma(2 * n - rare + 1) - lgamma(2 * n + 1)
        )  # fmt: skip

    support = [h for h in range(rare % 2, min(rare, n) + 1, 2)]
    probs = {h: exp(logp(h)) for h in support}
    total = sum(probs.values())
    obs = probs[het]
    p = sum(v for v in probs.values() if v <= obs * (1 + 1e-7)) / total
    excess = sum(v for h, v in probs.items() if h >= het) / total
    return min(p, 1.0), min(excess, 1.0)


def test_hwe_exact__matches_naive_enumeration() -> None:
    rng = np.random.default_rng(5)
    n = rng.integers(1, 300, 400)
    af = rng.uniform(0, 1, 400)
    hom2 = rng.binomial(n, af**2)
    het = rng.binomial(n - hom2, np.clip(2 * af * (1 - af) / np.maximum(1 - af**2, 1e-9), 0, 1))
    hom1 = n - hom2 - het
    cases = np.array([*zip(het, hom1, hom2, strict=True), (0, 50, 0), (1, 0, 0), (30, 0, 0)])
    p, excess = hwe_exact(cases[:, 0], cases[:, 1], cases[:, 2])
    expected = np.array([_naive_hwe(*map(int, row)) for row in cases])
    np.testing.assert_allclose(p, expected[:, 0], rtol=1e-9, atol=1e-300)
    np.testing.assert_allclose(excess, expected[:, 1], rtol=1e-9, atol=1e-300)


def test_hwe_exact__no_calls_is_nan() -> None:
    p, excess = hwe_exact(np.array([0]), np.array([0]), np.array([0]))
    assert np.isnan(p[0]) and np.isnan(excess[0])


@pytest.fixture(scope="module")
def qc(store: Path) -> pd.DataFrame:
    groups = read_samples(store).set_index("sample_id")["batch"]
    return variant_qc(store, groups=groups)


def _plink2(store: Path, contig: str, flags: str, out: Path) -> None:
    subprocess.run(
        f"plink2 --pfile {store / contig} {flags} --threads 1 --out {out}",
        shell=True, check=True, capture_output=True,
    )  # fmt: skip


def test_variant_qc__hwe_matches_plink2_hardy(
    qc: pd.DataFrame, store: Path, tmp_path: Path
) -> None:
    _plink2(store, "chr1", "--hardy", tmp_path / "h")
    peer = pd.read_csv(tmp_path / "h.hardy", sep="\t").set_index("ID")
    mine = qc.set_index("variant_id").loc[peer.index, "variant_hwe_p_value"]
    # plink2 prints 6 significant digits: agreement within half a unit of the last digit
    np.testing.assert_allclose(mine.to_numpy(), peer["P"].to_numpy(), rtol=5.01e-6)
    assert (peer["P"] < 1e-3).any()


def test_variant_qc__call_rate_matches_plink2_missing(
    qc: pd.DataFrame, store: Path, tmp_path: Path
) -> None:
    _plink2(store, "chr2", "--missing", tmp_path / "m")
    peer = pd.read_csv(tmp_path / "m.vmiss", sep="\t").set_index("ID")
    mine = qc.set_index("variant_id").loc[peer.index, "variant_call_rate"]
    np.testing.assert_allclose(mine.to_numpy(), 1 - peer["F_MISS"].to_numpy(), atol=1e-12)


def test_variant_qc__group_hwe_uses_group_counts(qc: pd.DataFrame, store: Path) -> None:
    samples = read_samples(store)
    g = read_genotypes(store / "chr1.pgen")
    onehot = (samples["batch"] == "batch_002").to_numpy(np.float32)[:, None]
    hom_ref, het, hom_alt = genotype_counts(g, onehot)
    expected, _ = hwe_exact(het[:, 0], hom_ref[:, 0], hom_alt[:, 0])
    mine = qc[qc["chrom"] == "chr1"]["variant_hwe_p_value_batch_002"].to_numpy()
    np.testing.assert_allclose(mine, expected, rtol=1e-12)


def test_variant_qc__flags_follow_thresholds(qc: pd.DataFrame) -> None:
    assert (qc["variant_low_ac_flag"] == (qc["variant_ac"] < 1)).all()
    assert (qc["variant_excess_het_flag"] == (qc["variant_excess_het_phred"] > 54.69)).all()
    flags = qc.filter(like="_flag")
    assert (qc["variant_qc_pass"] == ~flags.any(axis=1)).all()
    assert qc["variant_qc_pass"].mean() > 0.9


def test_variant_qc__males_left_out_of_chrx_hwe(qc: pd.DataFrame, store: Path) -> None:
    samples = read_samples(store)
    female = ~samples["sample_haploid_contigs"].str.contains("chrX").to_numpy()
    g = read_genotypes(store / "chrX.pgen")
    hom_ref, het, hom_alt = genotype_counts(g, female.astype(np.float32)[:, None])
    expected, _ = hwe_exact(het[:, 0], hom_ref[:, 0], hom_alt[:, 0])
    mine = qc[qc["chrom"] == "chrX"]["variant_hwe_p_value"].to_numpy()
    np.testing.assert_allclose(mine, expected, rtol=1e-12)


def test_variant_qc__bad_config_fails_before_work(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="min_call_rate"):
        variant_qc(tmp_path, config=VariantQcConfig(min_call_rate=2))
