"""Phenotypes from releases: the 2-date rule, exclusion ranges, sex restriction, unit checks,
covariates, the plink2 files and the planted diseases of the synthetic program."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom

from opencohort.analysis import PhenotypeOptions, build_phenotypes, write_phenotypes
from opencohort.analysis.cli import read_plink_table, split_traits
from opencohort.analysis.phenotypes import covariate_columns
from opencohort.errors import ConfigError
from opencohort.synth.traits import diseases

from ._releases import hand_release


@pytest.fixture(scope="module")
def hand(tmp_path_factory) -> pd.DataFrame:
    release = hand_release(tmp_path_factory.mktemp("hand"))
    table, summary = build_phenotypes(release, tier="registered")
    return table.set_index("research_id"), summary


def test_build_phenotypes__two_date_rule(hand) -> None:
    table, summary = hand
    assert table.loc[1, "phe_250.2"] == 1  # two dates
    assert pd.isna(table.loc[2, "phe_250.2"])  # one date, coded twice: not a control either
    assert table.loc[4, "phe_250.2"] == 0
    assert summary["cases"]["250.2"] == 2  # persons 1 and 5 (bare ICD-9 value)


def test_build_phenotypes__min_dates_configurable(tmp_path) -> None:
    options = PhenotypeOptions(min_dates=1)
    table, _ = build_phenotypes(hand_release(tmp_path), options=options)
    assert table.set_index("research_id").loc[2, "phe_250.2"] == 1


def test_build_phenotypes__exclusion_range_drops_controls(hand, tmp_path) -> None:
    table, _ = hand
    assert table.loc[3, "phe_250.1"] == 1
    assert pd.isna(table.loc[3, "phe_250.2"])  # 250.1 lies in 250.2's exclusion range
    plain, _ = build_phenotypes(
        hand_release(tmp_path), options=PhenotypeOptions(use_exclusion=False)
    )
    assert plain.set_index("research_id").loc[3, "phe_250.2"] == 0


def test_build_phenotypes__sex_specific_phecodes(hand) -> None:
    table, _ = hand
    assert table.loc[5, "phe_174.11"] == 1 and table.loc[3, "phe_174.11"] == 0
    assert table.loc[[1, 4, 6, 7], "phe_174.11"].isna().all()  # men and unknown sex
    assert table.loc[6, "phe_185"] == 1 and table.loc[1, "phe_185"] == 0
    assert table.loc[[2, 3, 5, 7], "phe_185"].isna().all()


def test_build_phenotypes__bare_icd9_source_value(hand) -> None:
    table, _ = hand
    assert table.loc[5, "phe_250.2"] == 1  # '25000' in 2014 is ICD-9-CM 250.00


def test_build_phenotypes__no_ehr_means_missing(hand) -> None:
    table, _ = hand
    phecodes = [c for c in table.columns if c.startswith("phe_")]
    assert table.loc[8, phecodes].isna().all()
    assert np.isnan(table.loc[8, "age_at_last_event"])
    assert table.loc[8, "bmi_median"] == 22.0  # the program's own measurements make traits


def test_build_phenotypes__units_checked_and_counted(hand) -> None:
    table, summary = hand
    assert table.loc[1, "bmi_median"] == 32.0  # the kg row is dropped
    assert table.loc[4, "bmi_median"] == 26.0  # the implausible 500 is dropped
    assert table.loc[4, "ldl_max"] == 160.0
    report = {r["trait"]: r for r in summary["measurements"]}
    assert report["bmi_median"]["rows_wrong_unit"] == 1
    assert report["bmi_median"]["rows_implausible"] == 1
    assert report["ldl_max"]["rows_no_value"] == 1
    assert report["bmi_median"]["persons"] == 3  # persons 1, 4 and 8


def test_build_phenotypes__covariates(hand) -> None:
    table, _ = hand
    year = 365.25
    birth, first, last = pd.Timestamp("1970-01-01"), pd.Timestamp("2020-01-01"), "2021-01-01"
    assert table.loc[1, "age_at_last_event"] == pytest.approx(
        (pd.Timestamp(last) - birth).days / year
    )
    assert table.loc[1, "ehr_length"] == pytest.approx((pd.Timestamp(last) - first).days / year)
    assert table.loc[1, "sex_male"] == 1.0 and table.loc[2, "sex_male"] == 0.0
    assert np.isnan(table.loc[7, "sex_male"])
    assert "pc1" not in table.columns


def test_build_phenotypes__ancestry_when_the_release_has_it(tmp_path) -> None:
    ancestry = pd.DataFrame(
        {"research_id": [1, 2, 3], "sample_ancestry": ["eur", "afr", "oth"],
         "sample_pc1": [0.1, -0.2, 0.3], "sample_pc2": [1.0, 2.0, 3.0]}
    )  # fmt: skip
    release = hand_release(tmp_path, ancestry=ancestry)
    table, summary = build_phenotypes(release, tier="controlled")
    table = table.set_index("research_id")
    assert summary["ancestry"]
    assert table.loc[2, "ancestry"] == "afr" and table.loc[3, "pc2"] == 3.0
    assert np.isnan(table.loc[4, "pc1"])
    assert covariate_columns(table) == ["age_at_last_event", "sex_male", "ehr_length", "pc1", "pc2"]
    registered, summary = build_phenotypes(release, tier="registered")
    assert not summary["ancestry"] and "pc1" not in registered.columns


def test_write_phenotypes__plink_files_read_back(hand, tmp_path) -> None:
    table, summary = hand
    paths = write_phenotypes(table.reset_index(), summary, tmp_path)
    traits = read_plink_table(paths["pheno.tsv"])
    _, binary = split_traits(traits, "auto")
    expected = table["phe_250.2"].astype("float64")
    got = binary["phe_250.2"].set_axis(binary.index.astype(int))
    pd.testing.assert_series_equal(got, expected, check_names=False, check_index_type=False)
    covar = read_plink_table(paths["covar.tsv"])
    assert list(covar.columns) == ["age_at_last_event", "sex_male", "ehr_length"]
    assert pd.read_parquet(paths["phenotypes.parquet"]).shape == table.reset_index().shape


def test_phenotype_options__bad_values() -> None:
    with pytest.raises(ConfigError, match="min_dates"):
        PhenotypeOptions(min_dates=0)
    with pytest.raises(ConfigError, match="version"):
        PhenotypeOptions(version="2")


def test_build_phenotypes__planted_diseases(synthetic) -> None:
    """Each planted disease's phecode has the true cases that reached the EHR, and no others.

    The generator codes a case on one visit with probability 0.15 and on 2 or more visits
    otherwise, from the onset on, and never codes a planted disease's phecode for others.
    """
    table, summary = build_phenotypes(synthetic["release"], tier="controlled")
    table = table.set_index("research_id")
    truth = pd.read_csv(synthetic["program"] / "truth" / "phenotypes.csv")
    rid = synthetic["ids"].set_index("participant_id")["research_id"]
    truth.index = truth["participant_id"].map(rid)
    truth = truth[truth.index.isin(table.index)]
    last = table.loc[truth.index, "last_event_date"]
    for disease in diseases():
        status = table.loc[truth.index, f"phe_{disease.phecode}"]
        onset = pd.to_datetime(truth[f"{disease.name}_onset"])
        reached = truth[disease.name].astype(bool) & (onset <= last)
        cases = status == 1
        assert not (cases & ~truth[disease.name].astype(bool)).any(), disease.name
        assert summary["cases"][disease.phecode] == int(cases.sum())
        n = int(reached.sum())
        low = binom.ppf(0.001, n, 0.8)
        assert low <= cases.sum() <= n, (disease.name, int(cases.sum()), n)
        if disease.sex != "both":
            other = table.loc[truth.index, "sex_at_birth"] != disease.sex
            assert status[other].isna().all(), disease.name


def test_phenotype_cli__writes_the_table_and_plink_files(synthetic, tmp_path) -> None:
    import subprocess
    import sys

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", "from opencohort.cli import main; main()", "phenotype",
             "--home", str(synthetic["home"].root), *args],
            capture_output=True, text=True,
        )  # fmt: skip

    done = run("--release", "R1", "--tier", "controlled", "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    table = pd.read_parquet(tmp_path / "out" / "phenotypes.parquet")
    expected, _ = build_phenotypes(synthetic["release"], tier="controlled")
    pd.testing.assert_frame_equal(table.drop(columns="sex_at_birth"),
                                  expected.drop(columns="sex_at_birth"))  # fmt: skip
    assert table["sex_at_birth"].fillna("?").equals(expected["sex_at_birth"].fillna("?"))
    traits = read_plink_table(tmp_path / "out" / "pheno.tsv")
    assert len(traits) == len(table) and "phe_495" in traits.columns
    missing = run("--release", "NOPE", "--out", str(tmp_path / "none"))
    assert missing.returncode == 1 and "no release 'NOPE'" in missing.stderr
    assert "Traceback" not in missing.stderr and not (tmp_path / "none").exists()
