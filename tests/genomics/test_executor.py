"""QC, frequencies and kinship on a Dask distributed LocalCluster equal the in-process results."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from opencohort.errors import ConfigError
from opencohort.genomics import (
    DaskExecutor,
    allele_frequencies,
    dask_cluster,
    executor_for,
    king_kinship,
    sample_qc,
    variant_qc,
)

pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster() -> Iterator[DaskExecutor]:
    with dask_cluster(2, memory_limit="1GiB") as executor:
        yield executor


@pytest.fixture(scope="module")
def groups(store: Path) -> pd.Series:
    """Three arbitrary groups, so per-group counts and tests run."""
    ids = pd.read_parquet(store / "samples.parquet")["sample_id"]
    return pd.Series(["afr", "eur", "sas"] * (len(ids) // 3 + 1), dtype=object)[
        : len(ids)
    ].set_axis(ids)


def test_dask_cluster__two_workers(cluster: DaskExecutor) -> None:
    assert len(cluster.client.scheduler_info()["workers"]) == 2
    assert list(cluster.map(abs, [-3, 2, -1])) == [3, 2, 1]


def test_sample_qc__dask_equals_local(store: Path, cluster: DaskExecutor) -> None:
    local = sample_qc(store)
    assert local["sample_call_rate"].notna().all()
    pd.testing.assert_frame_equal(sample_qc(store, executor=cluster), local)


def test_variant_qc__dask_equals_local(
    store: Path, cluster: DaskExecutor, groups: pd.Series
) -> None:
    local = variant_qc(store, groups=groups)
    assert "variant_hwe_p_value_sas" in local
    pd.testing.assert_frame_equal(variant_qc(store, groups=groups, executor=cluster), local)


def test_allele_frequencies__dask_equals_local(
    store: Path, cluster: DaskExecutor, groups: pd.Series
) -> None:
    local = allele_frequencies(store, groups=groups)
    assert (local["variant_an_all"] > 0).all()
    pd.testing.assert_frame_equal(allele_frequencies(store, groups=groups, executor=cluster), local)


def test_king_kinship__dask_equals_local(store: Path, cluster: DaskExecutor) -> None:
    # a small budget: several sample tiles, so several tasks
    local = king_kinship(store, min_kinship=None, memory=1 << 22)
    n = len(pd.read_parquet(store / "samples.parquet"))
    assert len(local) == n * (n - 1) // 2
    pd.testing.assert_frame_equal(
        king_kinship(store, min_kinship=None, memory=1 << 22, executor=cluster), local
    )


def test_executor_for__zero_is_local_and_bad_count_fails() -> None:
    with executor_for(0) as executor:
        assert list(executor.map(str, [1, 2])) == ["1", "2"]
    with pytest.raises(ConfigError, match="n_workers=0"), dask_cluster(0):
        pass
