"""The ``genomics`` command group: ingest a folder of deliveries, then QC with a report."""

from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from opencohort.config import init_home
from opencohort.genomics.cli import genomics
from opencohort.registry.cli import registry


def test_genomics_cli__send_ingest_then_qc(feed: Path, tmp_path: Path) -> None:
    home = init_home(tmp_path / "home")
    runner = CliRunner()
    where = ["--home", str(home.root)]
    result = runner.invoke(registry, ["load", str(feed / "registry"), *where])
    assert result.exit_code == 0, result.output
    sent = tmp_path / "sent.csv"
    genomes = feed / "genomes" / "manifest.csv"
    result = runner.invoke(registry, ["send", str(genomes), "--manifest", str(sent), *where])
    assert result.exit_code == 0, result.output
    delivered = pd.read_csv(genomes, dtype=str)
    assert set(pd.read_csv(sent, dtype=str)["sample_id"]) <= set(delivered["sample_id"])
    result = runner.invoke(genomics, ["ingest", str(feed), *where])
    assert result.exit_code == 0, result.output
    assert "genomes:" in result.output and "left out" not in result.output
    # only second (duplicate) samples were never sent, so only they keep no workflow state
    n_second = int(delivered["participant_id"].duplicated().sum())
    assert f"{n_second} problems" in result.output
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
