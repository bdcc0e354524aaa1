"""The ``curate run`` and ``release list/show/verify`` commands (thin wrappers over services)."""

from __future__ import annotations

from typer.testing import CliRunner

from opencohort.release.cli import curate, release


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
    verified = runner.invoke(release, ["check", "CLI1", *home_opt])
    assert verified.exit_code == 0 and "pass" in verified.output
