"""The program home: init, load, discovery."""

from pathlib import Path

import pytest

from opencohort.config import HOME_ENV, find_home, init_home, load_home
from opencohort.errors import ConfigError, NotFound


def test_init_home__creates_layout(tmp_path: Path) -> None:
    home = init_home(tmp_path / "prog", name="trial")
    assert (home.root / "opencohort.toml").is_file()
    assert home.raw.is_dir() and home.releases.is_dir()
    assert home.settings["program"]["name"] == "trial"
    assert home.registry_url == f"sqlite:///{home.root / 'registry.db'}"


def test_init_home__refuses_existing(tmp_path: Path) -> None:
    init_home(tmp_path)
    before = (tmp_path / "opencohort.toml").read_text()
    with pytest.raises(ConfigError, match="already a program home"):
        init_home(tmp_path)
    assert (tmp_path / "opencohort.toml").read_text() == before


def test_load_home__bad_toml_names_file(tmp_path: Path) -> None:
    (tmp_path / "opencohort.toml").write_text("[program\n")
    with pytest.raises(ConfigError, match="opencohort.toml"):
        load_home(tmp_path)


def test_find_home__explicit_env_and_parents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = init_home(tmp_path / "a"), init_home(tmp_path / "b")
    nested = a.root / "x" / "y"
    nested.mkdir(parents=True)
    monkeypatch.delenv(HOME_ENV, raising=False)
    assert find_home(cwd=nested).root == a.root
    monkeypatch.setenv(HOME_ENV, str(b.root))
    assert find_home(cwd=nested).root == b.root
    assert find_home(a.root, cwd=nested).root == a.root


def test_find_home__none_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(HOME_ENV, raising=False)
    with pytest.raises(NotFound, match="opencohort init"):
        find_home(cwd=tmp_path)
