"""The command line: exit codes, one-line errors, home discovery."""

import json
import subprocess
import sys
from pathlib import Path


def _run(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from opencohort.cli import main; main()", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
    )


def test_init__then_where_finds_it(tmp_path: Path) -> None:
    done = _run("init", "prog", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    where = _run("where", "--json", cwd=tmp_path / "prog")
    assert where.returncode == 0, where.stderr
    assert json.loads(where.stdout)["home"] == str((tmp_path / "prog").resolve())


def test_init__twice_is_one_line_error_exit_1(tmp_path: Path) -> None:
    _run("init", "prog", cwd=tmp_path)
    again = _run("init", "prog", cwd=tmp_path)
    assert again.returncode == 1
    assert "already a program home" in again.stderr
    assert "Traceback" not in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1


def test_where__without_home_exit_1(tmp_path: Path) -> None:
    env = {k: v for k, v in __import__("os").environ.items() if k != "OPENCOHORT_HOME"}
    done = _run("where", cwd=tmp_path, env=env)
    assert done.returncode == 1
    assert "no program home" in done.stderr


def test_unknown_option__usage_exit_2(tmp_path: Path) -> None:
    done = _run("init", "--bogus", cwd=tmp_path)
    assert done.returncode == 2
