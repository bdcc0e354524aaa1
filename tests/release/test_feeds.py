"""Survey, wearable and physical-measurement tables in releases: layout, de-id, checks."""

from __future__ import annotations

import re
import shutil
from datetime import date

import numpy as np
import pandas as pd
import pytest

from opencohort.curate import read_facts, read_identifiers
from opencohort.curate.feeds import PHYSICAL_EXAM_TYPE
from opencohort.curate.surveys import RESPONSE_REMOVED
from opencohort.ingest import find_feeds, ingest_feed
from opencohort.registry import WithdrawalStatus, open_registry, withdraw
from opencohort.release import build_release, read_release, sandbox_dir, scan_frames
from opencohort.release.check import check_release
from opencohort.release.manifest import write_manifest

CUTOFF = date(2025, 12, 31)
FEED_TABLES = ("survey", "steps_daily", "heart_rate_daily", "sleep_daily")
TIERS = ("registered", "controlled")


def _days(values: pd.Series) -> np.ndarray:
    return pd.to_datetime(values).to_numpy(dtype="datetime64[D]").astype("int64")


def test_build_release__feeds_in_both_tiers(home, r1):
    release = read_release(home, "R1")
    for tier in TIERS:
        assert (release.path / tier / "survey" / "survey.parquet").is_file()
        for table in FEED_TABLES[1:]:
            assert (release.path / tier / "wearables" / f"{table}.parquet").is_file()
        for table in FEED_TABLES:
            assert r1["row_counts"][tier][table] == len(release.table(tier, table)) > 0
        pm = release.table(tier, "measurement")
        assert (pm["measurement_type_concept_id"] == PHYSICAL_EXAM_TYPE).sum() > 0
    assert {f["feed"] for f in r1["source"]["feeds"]} == {
        "survey", "physical_measurements", "wearables"
    }  # fmt: skip
    logged = {(e["id"], e["tier"]) for e in r1["rule_log"]}
    assert {("survey_branching", "both"), ("wearables_consent", "both")} <= logged
    age = next(e for e in r1["rule_log"] if e["id"] == "age_89_removal")
    assert {"survey", "steps_daily"} <= set(age["rows_in"])
    survey = release.table("registered", "survey")
    assert survey["value_text"].isna().all()
    assert (survey["question_concept_code"] == survey["question_concept_id"].astype(str)).all()
    assert check_release(home, "R1") == []


def test_build_release__registered_feed_dates_are_shifted(home, r1):
    release = read_release(home, "R1")
    facts, _ = read_facts(home, as_of=CUTOFF)
    shift = facts.set_index("research_id")["date_shift_days"].astype("int64")
    registered_ids = set(release.table("registered", "person")["person_id"])
    for table, column in (("survey", "survey_date"), ("steps_daily", "date")):
        r = release.table("registered", table)
        c = release.table("controlled", table)
        c = c[c["person_id"].isin(registered_ids)]
        expected = pd.DataFrame(
            {
                "p": c["person_id"].to_numpy(),
                "d": _days(c[column]) - shift.reindex(c["person_id"]).to_numpy(),
            }
        )
        found = pd.DataFrame({"p": r["person_id"].to_numpy(), "d": _days(r[column])})
        key = ["p", "d"]
        pd.testing.assert_frame_equal(expected.sort_values(key).reset_index(drop=True),
                                      found.sort_values(key).reset_index(drop=True))  # fmt: skip
        assert (shift.reindex(r["person_id"]) > 0).all()
    assert len(set(release.table("controlled", "survey")["person_id"]) - registered_ids) > 0


def test_check_release__feed_date_and_consent_tampering_found(home, r1):
    source = home.releases / "R1"
    copy = home.releases / "R1-tampered"
    shutil.copytree(source, copy)
    try:
        for path in copy.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        path = copy / "registered" / "survey" / "survey.parquet"
        survey = pd.read_parquet(path)
        dates = pd.to_datetime(survey["survey_date"])
        dates.iloc[:5] += pd.Timedelta(days=1)
        survey["survey_date"] = dates.dt.date
        survey.to_parquet(path, index=False)
        steps_path = copy / "controlled" / "wearables" / "steps_daily.parquet"
        steps = pd.read_parquet(steps_path)
        person = read_release(home, "R1").table("controlled", "person")["person_id"]
        facts, _ = read_facts(home, as_of=CUTOFF)
        unconsented = facts.loc[~facts["wearables_consent"], "research_id"]
        outsider = sorted(set(person) & set(unconsented))[0]
        steps = pd.concat([steps, steps.iloc[:1].assign(person_id=outsider)], ignore_index=True)
        steps.to_parquet(steps_path, index=False)
        manifest = read_release(home, "R1").manifest
        write_manifest(copy, {k: v for k, v in manifest.items() if k != "files"})
        problems = "\n".join(check_release(home, "R1-tampered"))
        assert re.search(
            r"registered/survey.survey_date: \d+ dates are not the controlled", problems
        )
        assert "controlled/steps_daily: 1 persons without a wearables consent" in problems
    finally:
        shutil.rmtree(copy)


def test_build_release__withdrawn_participant_feeds_absent(home, r1, registry_ids):
    first = read_release(home, "R1")
    in_both = set(first.table("controlled", "survey")["person_id"]) & set(
        first.table("controlled", "steps_daily")["person_id"]
    )
    ids = registry_ids()
    chosen = ids[ids["research_id"].isin(in_both)].iloc[0]
    registry = open_registry(home.registry_url)
    try:
        withdraw(registry, chosen["participant_id"], status=WithdrawalStatus.NO_USE,
                 authored=date(2026, 1, 5))  # fmt: skip
    finally:
        registry.close()
    build_release(home, "R2", cutoff=CUTOFF)
    second = read_release(home, "R2")
    rid = int(chosen["research_id"])
    for tier in TIERS:
        for table in FEED_TABLES:
            assert rid not in set(second.table(tier, table)["person_id"]), (tier, table)
    removed = pd.read_parquet(sandbox_dir(home, "R2") / "withdrawn_participants" / "survey.parquet")
    number = int(chosen["participant_id"][1:])
    assert number in set(removed["person_id"]) and (removed["sandbox_action"] == "removed").all()


@pytest.mark.parametrize("text_only", [False, True], ids=["with-answer", "text-only"])
def test_build_release__planted_survey_free_text_never_published(
    home, r1, release_program, tmp_path, text_only
):
    identity = read_identifiers(home)
    facts, _ = read_facts(home, as_of=CUTOFF)
    released = set(read_release(home, "R1").table("registered", "survey")["person_id"])
    rid = facts.set_index("participant_id")["research_id"]
    eligible = identity[identity["participant_id"].map(rid).isin(released)]
    who = eligible.iloc[-1]
    planted = f"my name is {who['first_name']} {who['last_name']}, phone {who['phone']}"
    folder = tmp_path / "registry"
    folder.mkdir()
    surveys = pd.read_csv(release_program / "registry" / "surveys.csv", dtype=str,
                          keep_default_na=False)  # fmt: skip
    row = surveys.index[surveys["participant_id"] == who["participant_id"]][0]
    surveys.loc[row, "value_text"] = planted
    if text_only:
        surveys.loc[row, "answer_concept_id"] = ""
    surveys.to_csv(folder / "surveys.csv", index=False)
    [source] = [s for s in find_feeds(tmp_path) if s.feed == "survey"]
    stored = ingest_feed(home, source, participants=set(identity["participant_id"]))
    assert stored.files_failed == []
    name = f"R-text-{int(text_only)}"
    manifest = build_release(home, name, cutoff=CUTOFF)
    feeds = {f["feed"]: f["submission_id"] for f in manifest["source"]["feeds"]}
    assert feeds["survey"] == stored.submission.submission_id
    release = read_release(home, name)
    frames = {f"{t}/{n}": release.table(t, n) for t in TIERS for n in release.tables(t)}
    assert scan_frames(frames, identity) == []
    for frame in frames.values():
        for column in frame.columns:
            assert not frame[column].astype(str).str.contains(who["last_name"], regex=False).any()
    changed = pd.read_parquet(sandbox_dir(home, name) / "survey_free_text" / "survey.parquet")
    assert planted in set(changed["value_text"])
    if text_only:
        controlled = release.table("controlled", "survey")
        mine = controlled[controlled["person_id"] == rid[who["participant_id"]]]
        assert (mine["answer_concept_id"] == RESPONSE_REMOVED).sum() == 1
    assert check_release(home, name) == []
