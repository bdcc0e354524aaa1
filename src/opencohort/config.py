"""The program home: where it is, how it is made, and its settings."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from opencohort.errors import ConfigError, NotFound

HOME_FILE = "opencohort.toml"
HOME_ENV = "OPENCOHORT_HOME"

_DEFAULT_TOML = """\
# opencohort program home
[program]
name = "{name}"

[registry]
# SQLAlchemy URL; a relative sqlite path is resolved inside the home.
url = "sqlite:///registry.db"

[privacy]
# Public counts: 1..min_count-1 shown as min_count, others rounded up to a multiple of bin_width.
min_count = 20
bin_width = 20
"""


@dataclass(frozen=True)
class Home:
    """A program home directory and its parsed settings."""

    root: Path
    settings: dict

    @property
    def raw(self) -> Path:
        """Every submission exactly as received."""
        return self.root / "raw"

    @property
    def releases(self) -> Path:
        """Immutable, versioned releases."""
        return self.root / "releases"

    @property
    def registry_url(self) -> str:
        """SQLAlchemy URL of the registry database, sqlite paths made absolute."""
        url = self.settings.get("registry", {}).get("url", "sqlite:///registry.db")
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url[len(prefix) :].startswith("/"):
            return prefix + str(self.root / url[len(prefix) :])
        return url


def init_home(path: Path, *, name: str | None = None) -> Home:
    """Create a program home at `path` (like ``git init``) and return it.

    Raises
    ------
    ConfigError
        If `path` already holds a program home.
    """
    path = Path(path).resolve()
    if (path / HOME_FILE).exists():
        raise ConfigError(f"{path} is already a program home; use it, or pick another directory")
    for sub in ("raw", "releases"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    (path / HOME_FILE).write_text(_DEFAULT_TOML.format(name=name or path.name))
    return load_home(path)


def load_home(path: Path) -> Home:
    """Read the program home at `path`.

    Raises
    ------
    NotFound
        If `path` has no ``opencohort.toml``.
    ConfigError
        If the settings file is not valid TOML.
    """
    path = Path(path).resolve()
    toml = path / HOME_FILE
    if not toml.exists():
        raise NotFound(f"{path} is not a program home (no {HOME_FILE}); run 'opencohort init'")
    try:
        settings = tomllib.loads(toml.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{toml}: {exc}") from exc
    return Home(root=path, settings=settings)


def find_home(explicit: Path | None = None, *, cwd: Path | None = None) -> Home:
    """Locate the home: `explicit`, then ``$OPENCOHORT_HOME``, then the nearest parent with one."""
    if explicit is not None:
        return load_home(explicit)
    if env := os.environ.get(HOME_ENV):
        return load_home(Path(env))
    start = (cwd or Path.cwd()).resolve()
    for candidate in (start, *start.parents):
        if (candidate / HOME_FILE).exists():
            return load_home(candidate)
    raise NotFound(
        f"no program home in {start} or its parents; run 'opencohort init DIR' or set {HOME_ENV}"
    )
