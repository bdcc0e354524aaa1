"""Raw-first storage: every submitted file kept exactly as received, with its checksum.

A submission lives in ``<home>/raw/<feed>/<site_id>/<submission_id>/``: the files, byte for
byte and read-only, and ``submission.json`` (site, received time, each file's size and sha256,
and the submission's content hash). The submission id is the first 16 hex digits of the content
hash (the sha256 of the sorted ``name sha256`` lines), so sending the same files again finds
the stored submission and writes nothing. Files are copied into a hidden temporary folder
(the bytes written must hash as listed) and published with one rename, so a crash never
leaves a half-stored submission.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from opencohort.config import Home
from opencohort.errors import InputError, NotFound

MANIFEST = "submission.json"
_CHUNK = 1 << 20
_ID_LENGTH = 16


@dataclass(frozen=True)
class StoredFile:
    """One stored file: its path relative to the submission, size in bytes and sha256."""

    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Submission:
    """One stored submission of one site."""

    site_id: str
    submission_id: str
    received: datetime
    content_sha256: str
    files: tuple[StoredFile, ...]
    path: Path
    new: bool = False

    def file(self, name: str) -> Path:
        """Path of stored file `name` (read it; never write it)."""
        return self.path / name

    def as_dict(self) -> dict:
        """The ``submission.json`` record."""
        return {
            "site_id": self.site_id,
            "submission_id": self.submission_id,
            "received": self.received.isoformat(),
            "content_sha256": self.content_sha256,
            "files": [{"name": f.name, "size": f.size, "sha256": f.sha256} for f in self.files],
        }


def _sha256(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _copy(source: Path, target: Path) -> tuple[str, int]:
    """Copy a file, hashing the bytes as they are written; return their sha256 and size."""
    digest, size = hashlib.sha256(), 0
    with source.open("rb") as src, target.open("xb") as out:
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _content_hash(files: list[StoredFile]) -> str:
    lines = "".join(f"{f.name} {f.sha256}\n" for f in sorted(files, key=lambda f: f.name))
    return hashlib.sha256(lines.encode()).hexdigest()


def _site_dir(home: Home, site_id: str, feed: str) -> Path:
    if not site_id or site_id.startswith(".") or "/" in site_id or "\\" in site_id:
        raise InputError(f"site id {site_id!r} is not a plain folder name", field="site_id")
    return home.raw / feed / site_id


def _load(path: Path) -> Submission:
    record = json.loads((path / MANIFEST).read_text())
    return Submission(
        site_id=record["site_id"],
        submission_id=record["submission_id"],
        received=datetime.fromisoformat(record["received"]),
        content_sha256=record["content_sha256"],
        files=tuple(StoredFile(**f) for f in record["files"]),
        path=path,
    )


def submissions(home: Home, site_id: str, *, feed: str = "ehr") -> list[Submission]:
    """Every stored submission of a site, oldest first (by received time, then id)."""
    site_dir = _site_dir(home, site_id, feed)
    if not site_dir.is_dir():
        return []
    found = [_load(p) for p in site_dir.iterdir() if (p / MANIFEST).is_file()]
    return sorted(found, key=lambda s: (s.received, s.submission_id))


def latest_submission(home: Home, site_id: str, *, feed: str = "ehr") -> Submission:
    """The newest stored submission of a site.

    Raises
    ------
    NotFound
        If the site has no stored submission.
    """
    stored = submissions(home, site_id, feed=feed)
    if not stored:
        raise NotFound(f"site {site_id} has no stored {feed} submission; run 'opencohort ingest'")
    return stored[-1]


def store_submission(
    home: Home,
    site_id: str,
    folder: Path,
    *,
    received: datetime | None = None,
    feed: str = "ehr",
    only: Collection[str] | None = None,
) -> Submission:
    """Copy every file of `folder` into the raw store before anything reads it.

    Parameters
    ----------
    home
        The program home.
    site_id
        The sending site (a plain folder name).
    folder
        The submission as received; every regular file below it is stored (names relative
        to it), hidden files included.
    received
        When the submission arrived (default: now, UTC).
    feed
        Kind of feed: ``ehr`` for site EHR submissions, or another feed's name
        (``survey``, ``physical_measurements``, ``wearables``).
    only
        Store only these files of `folder` (names relative to it); default: every file.

    Returns
    -------
    Submission
        The stored submission; ``new`` is False when identical files were stored before
        (nothing is written then).

    Raises
    ------
    InputError
        If `folder` is not a folder or holds no files, or a file changed while being copied.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("not a folder; expected a folder of submission files", file=str(folder))
    sources = sorted(p for p in folder.rglob("*") if p.is_file())
    if only is not None:
        sources = [p for p in sources if p.relative_to(folder).as_posix() in set(only)]
    if not sources:
        raise InputError("the folder holds no files", file=str(folder))
    if (folder / MANIFEST).is_file():
        raise InputError(
            f"a submitted file may not be named {MANIFEST}; rename it", file=str(folder / MANIFEST)
        )
    listed = []
    for path in sources:
        digest, size = _sha256(path)
        listed.append(StoredFile(path.relative_to(folder).as_posix(), size, digest))
    content = _content_hash(listed)
    submission_id = content[:_ID_LENGTH]
    site_dir = _site_dir(home, site_id, feed)
    final = site_dir / submission_id
    if (final / MANIFEST).is_file():
        return _load(final)
    when = received or datetime.now(UTC)
    staging = site_dir / f".incoming-{submission_id}-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    try:
        for source, stored in zip(sources, listed, strict=True):
            target = staging / stored.name
            target.parent.mkdir(parents=True, exist_ok=True)
            if _copy(source, target) != (stored.sha256, stored.size):
                raise InputError(
                    "file changed while it was being stored; send it again", file=str(source)
                )
            target.chmod(0o444)
        submission = Submission(site_id, submission_id, when, content, tuple(listed), final, True)
        (staging / MANIFEST).write_text(json.dumps(submission.as_dict(), indent=2) + "\n")
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return submission
