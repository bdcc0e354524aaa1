"""The ``genomics`` command group: ingest a folder of deliveries, then QC with a report."""

from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from opencohort.config import init_home
from opencohort.genomics.cli import genomics

from .conftest import registry_home


def test_genomics_cli__ingest_then_qc(feed: Path, tmp_path: Path) -> None:
    home = registry_home(tmp_path / "home", feed)
    runner = CliRunner()
    result = runner.invoke(genomics, ["ingest", str(feed), "--home", str(home.root)])
    assert result.exit_code == 0, result.output
    assert "genomes:" in result.output and "left out" not in result.output
    result = runner.invoke(genomics, ["qc", "--home", str(home.root)])
    assert result.exit_code == 0, result.output
    report = home.root / "genomics" / "reports" / "qc"
    html = (report / "report.html").read_text()
    for image in ("call_rate.png", "het_vs_call_rate.png"):
        assert (report / image).read_bytes()[:4] == b"\x89PNG"
        assert image in html
    variants = pd.read_parquet(home.root / "genomics" / "store" / "variants.parquet")
    assert {"variant_hwe_p_value", "variant_qc_pass"} <= set(variants.columns)
    samples = pd.read_parquet(home.root / "genomics" / "store" / "sample_qc.parquet")
    assert samples["sample_id"].is_unique


def test_genomics_cli__qc_without_store_fails(tmp_path: Path) -> None:
    home = init_home(tmp_path / "home")
    result = CliRunner().invoke(genomics, ["qc", "--home", str(home.root)])
    assert result.exit_code != 0
    assert "genomics ingest" in str(result.exception)
