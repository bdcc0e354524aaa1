"""Exports read back by their peers: VCF by bcftools, PLINK 1 bed by plink2, equal to the store."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from opencohort.config import Home
from opencohort.errors import ConfigError
from opencohort.genomics._store import read_genotypes, read_pvar, read_samples
from opencohort.genomics.cli import genomics
from opencohort.genomics.export import export_store

_DOSAGE = {"0/0": 0, "0/1": 1, "1/1": 2, "./.": -9, "0": 0, "1": 2, ".": -9}


def _run(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


@pytest.mark.parametrize("contig", ["chr2", "chrX"])
def test_export_store__vcf_read_by_bcftools_equals_store(home: Home, store: Path, tmp_path, contig):
    export_store(home, "vcf", out=tmp_path)
    vcf = str(tmp_path / f"{contig}.vcf.gz")
    assert (tmp_path / f"{contig}.vcf.gz.tbi").is_file()
    assert _run("bcftools", "query", "-l", vcf).split() == read_samples(store)["sample_id"].tolist()
    rows = _run("bcftools", "query", "-f", "%CHROM\t%POS\t%REF\t%ALT[\t%GT]\n", vcf).splitlines()
    pvar = read_pvar(store / f"{contig}.pvar")
    assert [r.split("\t")[:4] for r in rows] == pvar[["chrom", "pos", "ref", "alt"]].astype(
        str
    ).values.tolist()
    got = np.array([[_DOSAGE[gt] for gt in r.split("\t")[4:]] for r in rows], dtype=np.int8)
    expected = read_genotypes(store / f"{contig}.pgen")
    np.testing.assert_array_equal(got, expected)
    if contig == "chrX":
        assert any("\t1\t" in r or "\t0\t" in r for r in rows)  # haploid calls written as such


@pytest.mark.parametrize("contig", ["chr2", "chrX"])
def test_export_store__bed_read_by_plink2_equals_store(home: Home, store: Path, tmp_path, contig):
    export_store(home, "bed", out=tmp_path)
    prefix = str(tmp_path / contig)
    _run("plink2", "--bfile", prefix, "--make-pgen", "--threads", "1", "--out", f"{prefix}_back")
    back = read_genotypes(Path(f"{prefix}_back.pgen"))
    np.testing.assert_array_equal(back, read_genotypes(store / f"{contig}.pgen"))
    psam = pd.read_csv(f"{prefix}_back.psam", sep="\t", dtype=str)
    samples = read_samples(store)
    assert psam["#IID"].tolist() == samples["sample_id"].tolist()
    sex = samples["sex_at_birth"].map({"male": "1", "female": "2"}).fillna("NA").tolist()
    assert psam["SEX"].fillna("NA").tolist() == sex


def test_export_store__unknown_format_refused(home: Home, tmp_path):
    with pytest.raises(ConfigError, match="vcf, bed"):
        export_store(home, "bgen", out=tmp_path / "x")
    assert not (tmp_path / "x").exists()
    result = CliRunner().invoke(genomics, ["export", "--format", "bgen", "--home", str(home.root)])
    assert result.exit_code == 2
