"""Retraction rebuilds the latest release without named participants; diff compares releases."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from opencohort.errors import InputError
from opencohort.ingest import ingest_site
from opencohort.release import diff_releases, list_releases, read_release, retract
from opencohort.release.build import retracted_ids
from opencohort.release.cli import release
from opencohort.release.cli import retract as retract_command
from opencohort.release.diff import concept_columns
from opencohort.release.manifest import verify

TIERS = ("registered", "controlled")


@pytest.fixture(scope="module")
def retracted(home, r1, release_program, tmp_path_factory, registry_ids):
    """R1.1: R1 retracted for two persons in both tiers, after a site sent a new submission."""
    registered = set(read_release(home, "R1").table("registered", "person")["person_id"])
    ids = registry_ids()
    chosen = ids[ids["research_id"].isin(registered)].head(2)
    site = sorted(p.name for p in (release_program / "ehr").iterdir())[0]
    folder = tmp_path_factory.mktemp("resent") / site
    shutil.copytree(release_program / "ehr" / site, folder)
    visits = pd.read_csv(folder / "visit_occurrence.csv", dtype=str, keep_default_na=False)
    visits.iloc[: len(visits) // 2].to_csv(folder / "visit_occurrence.csv", index=False)
    ingest_site(home, site, folder)
    manifest = retract(home, list(chosen["participant_id"]), reason="consent form error")
    return manifest, chosen


def test_retract__named_people_gone_everyone_else_kept(home, r1, retracted):
    manifest, chosen = retracted
    assert manifest["name"] == "R1.1"
    assert manifest["retraction"] == {"release": "R1", "reason": "consent form error",
                                      "participants": 2}  # fmt: skip
    assert manifest["cutoff"] == r1["cutoff"]
    assert manifest["source"]["submissions"] == r1["source"]["submissions"]
    old, new = read_release(home, "R1"), read_release(home, "R1.1")
    gone = set(chosen["research_id"])
    for tier in TIERS:
        for table in old.tables(tier):
            before, after = old.table(tier, table), new.table(tier, table)
            if "person_id" not in before:
                assert len(after) == len(before), (tier, table)
                continue
            assert not after["person_id"].isin(gone).any(), (tier, table)
            kept = before[~before["person_id"].isin(gone)]
            assert len(after) == len(kept), (tier, table)
    text = (new.path / "manifest.json").read_text()
    assert not any(pid in text for pid in chosen["participant_id"])
    removed = [e for e in manifest["rule_log"] if e["id"] == "retracted_participants"]
    assert removed and sum(sum(e["removed"].values()) for e in removed) > 0
    assert verify(old.path, old.manifest) == []
    listed = {r["name"]: r for r in list_releases(home)}
    assert listed["R1"]["superseded_by"] == "R1.1" and listed["R1.1"]["retracts"] == "R1"


def test_retract__refuses_unknown_ids_and_empty_reason(home, retracted):
    before = [r["name"] for r in list_releases(home)]
    with pytest.raises(InputError, match="P000000001"):
        retract(home, ["P000000001"], reason="mistake")
    with pytest.raises(InputError, match="reason"):
        retract(home, list(retracted[1]["participant_id"]), reason="  ")
    assert [r["name"] for r in list_releases(home)] == before
    assert not any(p.name.startswith(".building") for p in home.releases.iterdir())


def test_diff_releases__counts_people_rows_and_concepts(home, retracted):
    old, new = read_release(home, "R1"), read_release(home, "R1.1")
    change = diff_releases(old, new)
    assert set(change["tiers"]) == set(TIERS)
    for tier in TIERS:
        part = change["tiers"][tier]
        persons = len(old.table(tier, "person"))
        assert part["persons"] == {"added": 0, "removed": 2, "kept": persons - 2}
        for table, entry in part["tables"].items():
            assert entry["rows"] == [len(old.table(tier, table)), len(new.table(tier, table))]
            for column in concept_columns(table):
                a = set(old.table(tier, table)[column].dropna().astype(int))
                b = set(new.table(tier, table)[column].dropna().astype(int))
                assert entry["concepts"][column] == {"added": sorted(b - a),
                                                     "removed": sorted(a - b)}  # fmt: skip
    survey = change["tiers"]["controlled"]["tables"]["survey"]
    assert survey["rows"][0] > survey["rows"][1] and "answer_concept_id" in survey["concepts"]
    back = diff_releases(new, old)["tiers"]["controlled"]["persons"]
    assert back["added"] == 2 and back["removed"] == 0


def test_release_cli__diff_json_and_table(home, retracted):
    runner = CliRunner()
    shown = runner.invoke(release, ["diff", "R1", "R1.1", "--json", "--home", str(home.root)])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["tiers"]["registered"]["persons"]["removed"] == 2
    table = runner.invoke(release, ["diff", "R1", "R1.1", "--home", str(home.root)])
    assert table.exit_code == 0 and "persons +0 -2" in table.output


def test_retract_cli__rebuilds_latest_keeping_earlier_retractions(home, retracted, registry_ids):
    app = typer.Typer()
    app.command()(retract_command)
    person = read_release(home, "R1.1").table("controlled", "person")["person_id"]
    ids = registry_ids()
    pid = ids.loc[ids["research_id"] == person.iloc[-1], "participant_id"].iloc[0]
    done = CliRunner().invoke(app, [pid, "--reason", "duplicate enrolment", "--release", "R1.2",
                                    "--no-progress", "--home", str(home.root)])  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "published release R1.2" in done.output
    manifest = read_release(home, "R1.2").manifest
    assert manifest["retraction"] == {"release": "R1.1", "reason": "duplicate enrolment",
                                      "participants": 3}  # fmt: skip
    assert set(retracted_ids(home, "R1.2")) == {pid, *retracted[1]["participant_id"]}
    assert manifest["row_counts"]["controlled"]["person"] == len(person) - 1
