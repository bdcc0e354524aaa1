"""The ``curate run`` and ``release list/show/verify`` commands (thin wrappers over services)."""

from __future__ import annotations

from typer.testing import CliRunner

from opencohort.release.cli import curate, release
from opencohort.release.manifest import load_manifest


def test_release_cli__run_list_show_verify(home, r1):
    runner = CliRunner()
    home_opt = ["--home", str(home.root)]
    built = runner.invoke(
        curate, ["run", "--release", "CLI1", "--cutoff", "2025-12-31", "--no-progress", *home_opt]
    )
    assert built.exit_code == 0, built.output
    assert "published release CLI1" in built.output
    listed = runner.invoke(release, ["list", "--json", *home_opt])
    assert listed.exit_code == 0 and "CLI1" in listed.output
    shown = runner.invoke(release, ["show", "R1", "--json", *home_opt])
    assert shown.exit_code == 0 and "row_counts" in shown.output
    table = runner.invoke(release, ["show", "R1", *home_opt], terminal_width=200)
    removed = next(e for e in load_manifest(home.releases / "R1")["rule_log"]
                   if e["id"] == "withdrawn_participants")  # fmt: skip
    line = next(x for x in table.output.splitlines() if "withdrawn_participants" in x)
    assert f"{sum(removed['removed'].values()):,}" in line
    verified = runner.invoke(release, ["check", "CLI1", *home_opt])
    assert verified.exit_code == 0 and "pass" in verified.output
