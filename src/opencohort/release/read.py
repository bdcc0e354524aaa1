"""Reading releases: list them, open one (checksums verified), read its tables."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from opencohort.config import Home
from opencohort.errors import NotFound, ReleaseError
from opencohort.release.manifest import MANIFEST, load_manifest, verify


@dataclass(frozen=True)
class Release:
    """An opened, verified release."""

    name: str
    path: Path
    manifest: dict

    def tables(self, tier: str) -> list[str]:
        """Table names of a tier (``registered`` or ``controlled``)."""
        return sorted(self.manifest["row_counts"][tier])

    def table(self, tier: str, name: str, columns: list[str] | None = None) -> pd.DataFrame:
        """Read one table of one tier (only `columns` when given).

        Raises
        ------
        NotFound
            If the tier has no such table.
        """
        for path in sorted((self.path / tier).glob(f"*/{name}.parquet")):
            return pd.read_parquet(path, columns=columns)
        raise NotFound(f"release {self.name} has no table {name} in tier {tier}")


def list_releases(home: Home) -> list[dict]:
    """Name, created time, person counts and retractions of every release, oldest first.

    ``retracts`` names the release a retraction rebuilt; ``superseded_by`` the rebuild that
    retracted this one (None when neither).
    """
    out = []
    if not home.releases.is_dir():
        return out
    for path in sorted(home.releases.iterdir()):
        if path.name.startswith(".") or not (path / MANIFEST).is_file():
            continue
        manifest = load_manifest(path)
        out.append(
            {
                "name": manifest["name"],
                "created": manifest["created"],
                "persons": {t: c.get("person", 0) for t, c in manifest["row_counts"].items()},
                "retracts": manifest.get("retraction", {}).get("release"),
            }
        )
    superseded = {r["retracts"]: r["name"] for r in out if r["retracts"]}
    for r in out:
        r["superseded_by"] = superseded.get(r["name"])
    return sorted(out, key=lambda r: r["created"])


def read_release(home: Home, name: str) -> Release:
    """Open release `name`, verifying every file against the manifest's sha256.

    Raises
    ------
    NotFound
        If there is no release of that name.
    ReleaseError
        If a file is missing, added or changed since the release was built.
    """
    path = home.releases / name
    if name.startswith(".") or not path.is_dir():
        raise NotFound(f"no release {name!r} in {home.releases}; see 'opencohort release list'")
    manifest = load_manifest(path)
    problems = verify(path, manifest)
    if problems:
        raise ReleaseError(f"release {name} fails verification: " + "; ".join(problems))
    return Release(name, path, manifest)
