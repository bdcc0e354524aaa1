"""The ``vocab build`` command."""

from __future__ import annotations

import pyarrow.parquet as pq
from typer.testing import CliRunner

from opencohort.errors import NotFound
from opencohort.vocab.cli import vocab


def test_build__writes_tables_and_prints_counts(tmp_path):
    result = CliRunner().invoke(vocab, ["build", "--out", str(tmp_path / "v")])
    assert result.exit_code == 0, result.output
    for name in ("concept", "concept_relationship", "concept_ancestor"):
        assert (tmp_path / "v" / f"{name}.parquet").exists()
    assert "ICD10CM" in result.output
    rows = pq.read_metadata(tmp_path / "v" / "concept.parquet").num_rows
    assert f"{rows:,}" in result.output


def test_build__without_out_or_home_is_an_error(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENCOHORT_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(vocab, ["build"])
    assert result.exit_code != 0
    assert isinstance(result.exception, NotFound)
    assert not any(tmp_path.iterdir())
