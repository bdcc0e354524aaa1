"""Raw-first storage: bytes kept, checksums right, re-submission a no-op, newest found."""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from opencohort.errors import InputError, NotFound
from opencohort.ingest import latest_submission, store_submission, submissions


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _folder(tmp_path: Path, files: dict[str, bytes]) -> Path:
    folder = tmp_path / "incoming"
    shutil.rmtree(folder, ignore_errors=True)
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


FILES = {"person.csv": b"person_id\r\n1\r\n", "odd name.txt": b"\xff\x00raw", "sub/x.csv": b""}


def test_store_submission__bytes_and_checksums(home, tmp_path):
    folder = _folder(tmp_path, FILES)
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    stored = store_submission(home, "site_001", folder, received=when)
    assert stored.new and stored.path.parent == home.raw / "ehr" / "site_001"
    record = json.loads((stored.path / "submission.json").read_text())
    assert record["received"] == when.isoformat() and record["site_id"] == "site_001"
    for entry in record["files"]:
        data = (stored.path / entry["name"]).read_bytes()
        assert data == FILES[entry["name"]]
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["size"] == len(data)
    assert sorted(f["name"] for f in record["files"]) == sorted(FILES)


def test_store_submission__identical_resubmission_is_a_no_op(home, tmp_path):
    folder = _folder(tmp_path, FILES)
    first = store_submission(home, "site_001", folder)
    before = {p: p.stat().st_mtime_ns for p in home.raw.rglob("*")}
    again = store_submission(home, "site_001", folder, received=datetime(2030, 1, 1, tzinfo=UTC))
    assert not again.new
    assert again.submission_id == first.submission_id
    assert again.received == first.received
    assert {p: p.stat().st_mtime_ns for p in home.raw.rglob("*")} == before


def test_latest_submission__new_submission_kept_beside_old(home, tmp_path):
    old = store_submission(
        home, "site_001", _folder(tmp_path, FILES), received=datetime(2026, 1, 1, tzinfo=UTC)
    )
    changed = {**FILES, "person.csv": b"person_id\n1\n2\n"}
    new = store_submission(
        home, "site_001", _folder(tmp_path, changed), received=datetime(2026, 2, 1, tzinfo=UTC)
    )
    assert new.submission_id != old.submission_id
    assert [s.submission_id for s in submissions(home, "site_001")] == [
        old.submission_id,
        new.submission_id,
    ]
    assert latest_submission(home, "site_001").submission_id == new.submission_id
    assert _tree(old.path)["person.csv"] == FILES["person.csv"]


def test_latest_submission__none_stored(home):
    with pytest.raises(NotFound, match="site_009"):
        latest_submission(home, "site_009")


@pytest.mark.parametrize("site_id", ["", "../x", ".hidden", "a/b"])
def test_store_submission__bad_site_id(home, tmp_path, site_id):
    with pytest.raises(InputError):
        store_submission(home, site_id, _folder(tmp_path, FILES))


def test_store_submission__empty_folder(home, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no files"):
        store_submission(home, "site_001", tmp_path / "empty")
    assert not (home.raw / "ehr" / "site_001").exists() or not any(
        (home.raw / "ehr" / "site_001").iterdir()
    )
