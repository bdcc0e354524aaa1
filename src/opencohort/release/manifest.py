"""The release manifest: what a release holds, where it came from and each file's checksum."""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from opencohort.errors import ReleaseError

MANIFEST = "manifest.json"
_CHUNK = 1 << 20
_THREADS = 2


def sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def checksums(root: Path) -> dict[str, str]:
    """sha256 of every file below `root` except the manifest, by posix relative path.

    Two files are hashed at a time (hashlib lets go of the GIL on large buffers).
    """
    paths = [p for p in sorted(root.rglob("*")) if p.is_file() and p.name != MANIFEST]
    with ThreadPoolExecutor(max_workers=_THREADS) as pool:
        digests = pool.map(sha256, paths)
        return {p.relative_to(root).as_posix(): d for p, d in zip(paths, digests, strict=True)}


def write_manifest(root: Path, record: dict) -> dict:
    """Add the checksums of every file below `root` to `record` and write ``manifest.json``."""
    manifest = {**record, "files": checksums(root)}
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    return manifest


def load_manifest(root: Path) -> dict:
    """Read a release's manifest.

    Raises
    ------
    ReleaseError
        If the manifest is missing or not valid JSON.
    """
    path = root / MANIFEST
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ReleaseError(f"{path} is missing; the release is incomplete, rebuild it") from exc
    except json.JSONDecodeError as exc:
        raise ReleaseError(f"{path} is not valid JSON ({exc}); the release is damaged") from exc


def verify(root: Path, manifest: dict) -> list[str]:
    """Problems found comparing the files below `root` with the manifest (empty when intact)."""
    recorded = manifest.get("files", {})
    found = checksums(root)
    problems = [f"{name}: missing" for name in sorted(set(recorded) - set(found))]
    problems += [f"{name}: not in the manifest" for name in sorted(set(found) - set(recorded))]
    problems += [
        f"{name}: sha256 {found[name][:12]}... differs from the manifest's {digest[:12]}..."
        for name, digest in recorded.items()
        if name in found and found[name] != digest
    ]
    return problems
