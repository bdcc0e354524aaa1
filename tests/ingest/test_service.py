"""Ingest end to end: raw store, checks, identity and reports for whole site folders."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import opencohort.ingest as ingest_area
from opencohort.config import init_home
from opencohort.ingest import ingest_ehr_dir, ingest_site, participant_number
from opencohort.ingest.cli import ingest

from .conftest import RECEIVED


def _break(folder: Path) -> dict[str, bytes]:
    """Damage three files of a site folder; return the damaged bytes by name."""
    lines = (folder / "measurement.csv").read_bytes().split(b"\n")
    lines[16] = b",".join(lines[16].split(b",")[:5])  # line 17: too few fields
    (folder / "measurement.csv").write_bytes(b"\n".join(lines))
    note = (folder / "note.csv").read_bytes().split(b"\n")
    note[3] = note[3].replace(b"Patient", b"Pati\xe9nt", 1)
    (folder / "note.csv").write_bytes(b"\n".join(note))
    obs = (folder / "observation.csv").read_bytes().split(b"\n")
    fields = obs[5].split(b",")
    fields[3] = b"not-a-date"
    obs[5] = b",".join(fields)
    (folder / "observation.csv").write_bytes(b"\n".join(obs))
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_ingest_site__malformed_files_fail_alone_and_raw_is_untouched(
    home, feed, participants, tmp_path
):
    folder = tmp_path / "site_001"
    shutil.copytree(feed / "ehr" / "site_001", folder)
    sent = _break(folder)
    result = ingest_site(home, "site_001", folder, participants=participants, received=RECEIVED)
    assert sorted(result.files_failed) == ["measurement.csv", "note.csv", "observation.csv"]
    files = {f["name"]: f for f in result.report["files"]}
    assert files["measurement.csv"]["problems"][0]["line"] == 17
    assert files["measurement.csv"]["problems"][0]["field"] == "measurement_time"
    assert (
        files["note.csv"]["problems"][0]["line"],
        files["note.csv"]["problems"][0]["field"],
    ) == (4, "note_text")
    assert files["observation.csv"]["problems"] == [
        {
            "line": 6,
            "field": "observation_date",
            "message": "'not-a-date' is not a date; expected YYYY-MM-DD",
        }
    ]
    assert all(f["status"] == "ok" for n, f in files.items() if n not in result.files_failed)
    assert files["person.csv"]["rows"] > 0
    for name, data in sent.items():
        stored = result.submission.file(name).read_bytes()
        assert stored == data
        assert files[name]["sha256"] == hashlib.sha256(data).hexdigest()


def test_ingest_site__reingesting_changes_nothing(home, feed, participants):
    folder = feed / "ehr" / "site_002"
    first = ingest_site(home, "site_002", folder, participants=participants, received=RECEIVED)
    stamps = {p: p.stat().st_mtime_ns for p in home.root.rglob("*")}
    again = ingest_site(home, "site_002", folder, participants=participants)
    assert first.new and not again.new
    assert again.report == first.report
    assert {p: p.stat().st_mtime_ns for p in home.root.rglob("*")} == stamps


def test_ingest_ehr_dir__reports_per_site(home, feed, participants, truth):
    results = ingest_ehr_dir(home, feed / "ehr", participants=participants, received=RECEIVED)
    assert [r.site_id for r in results] == ["site_001", "site_002", "site_003"]
    mismatched = truth[truth["kind"] == "identity_mismatch"]
    for r in results:
        assert r.json_path == home.root / "reports/ingest" / r.site_id / (
            r.submission.submission_id + ".json"
        )
        assert json.loads(r.json_path.read_text()) == r.report
        page = r.html_path.read_text()
        assert page.startswith("<!DOCTYPE html>") and "isPrimaryKey" in page
        assert not r.files_failed
        assert "isPrimaryKey.measurement.measurement_id" in r.checks_failed
        for check in r.report["checks"]:
            assert len(check["examples"]) == min(5, check["n_failed"])
            assert all(e["line"] >= 2 for e in check["examples"])
        expected = participant_number(
            mismatched.loc[mismatched["site_id"] == r.site_id, "participant_id"]
        )
        assert sorted(r.dropped_person_ids) == sorted(expected.tolist())


def test_ingest_ehr_dir__html_escapes_submitted_text(home, tmp_path, participants):
    site = tmp_path / "ehr" / "site_x"
    site.mkdir(parents=True)
    (site / "person.csv").write_text(
        "person_id,gender_concept_id,year_of_birth,race_concept_id,ethnicity_concept_id\n"
        "<script>,0,1980,0,0\n"
    )
    (site / "notes <b>.txt").write_text("hello")
    [result] = ingest_ehr_dir(home, tmp_path / "ehr", participants=participants)
    page = result.html_path.read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "notes &lt;b&gt;.txt" in page


def test_ingest_cli__ehr_json(home, feed, tmp_path):
    app = typer.Typer()
    app.callback()(lambda: None)  # a group, as the real app is
    app.command("ingest")(ingest)
    shutil.copytree(feed / "ehr", tmp_path / "feeds" / "ehr")
    runner = CliRunner()
    done = runner.invoke(
        app,
        [
            "ingest",
            str(tmp_path / "feeds"),
            "--site",
            "site_003",
            "--home",
            str(home.root),
            "--json",
            "--no-progress",
        ],
    )
    assert done.exit_code == 0, done.output
    [row] = json.loads(done.output)
    assert row["feed"] == "ehr" and row["source"] == "site_003" and row["new"] is True
    assert Path(row["report"]).is_file()


def test_import_star__all_matches_public_names():
    namespace: dict = {}
    exec("from opencohort.ingest import *", namespace)
    public = {n for n in namespace if not n.startswith("_")}
    assert public == set(ingest_area.__all__)


def _mangle(data: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    """`data` with each (line, cut, insert) edit: the line cut at `cut` bytes, `insert` added."""
    lines = data.split(b"\n")
    for line, cut, insert in edits:
        at = line % len(lines)
        lines[at] = lines[at][:cut] + insert
    return b"\n".join(lines)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    table=st.sampled_from(
        ["person.csv", "measurement.csv", "visit_occurrence.csv", "pii_name.csv"]
    ),
    edits=st.lists(
        st.tuples(
            st.integers(0, 400),
            st.integers(0, 60),
            st.sampled_from([b"", b",", b'"', b"\xff\xfe", b",,,,", b"x", b"\r", b"2020-13-45"]),
        ),
        min_size=1,
        max_size=6,
    ),
)
def test_ingest_site__malformed_csv_never_crashes_nor_alters_stored_data(
    tmp_path_factory, feed, participants, table, edits
):
    home = init_home(tmp_path_factory.mktemp("prop") / "home")
    good = feed / "ehr" / "site_003"
    ingest_site(home, "site_003", good, participants=participants, received=RECEIVED)
    before = {p: p.read_bytes() for p in home.raw.rglob("*") if p.is_file()}
    folder = tmp_path_factory.mktemp("sent") / "site_003"
    shutil.copytree(good, folder)
    (folder / table).write_bytes(_mangle((good / table).read_bytes(), edits))
    result = ingest_site(home, "site_003", folder, participants=participants)
    assert {p: p.read_bytes() for p in before} == before
    for path in folder.iterdir():
        assert result.submission.file(path.name).read_bytes() == path.read_bytes()
    files = {f["name"]: f for f in result.report["files"]}
    if files[table]["status"] == "failed":
        assert all(p["line"] is not None for p in files[table]["problems"])
