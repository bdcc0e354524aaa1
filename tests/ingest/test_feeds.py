"""Survey, physical-measurement and wearable feeds: raw-first storage, validation, FHIR, CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from opencohort.ingest import (
    FEEDS,
    PROGRAM,
    FeedSource,
    find_feeds,
    ingest_dir,
    ingest_feed,
    latest_feed,
    read_feed,
    submissions,
)
from opencohort.ingest._csv import MalformedFile
from opencohort.ingest._fhir import COLUMNS, read_questionnaire_responses
from opencohort.ingest.cli import ingest

from .conftest import RECEIVED


@pytest.fixture(scope="module")
def known(participants) -> set[str]:
    return set(participants["participant_id"])


def _raw_files(home) -> dict[str, bytes]:
    return {p.relative_to(home.raw).as_posix(): p.read_bytes()
            for p in sorted(home.raw.rglob("*")) if p.is_file()}  # fmt: skip


def test_ingest_feed__raw_first_report_and_noop(home, feed, known):
    sources = find_feeds(feed)
    assert sorted(s.feed for s in sources) == sorted(FEEDS)
    for source in sources:
        result = ingest_feed(home, source, participants=known, received=RECEIVED)
        assert result.new and result.files_failed == [], result.problems
        for name in source.names:
            stored = result.submission.file(name)
            assert stored.read_bytes() == (source.folder / name).read_bytes()
        assert result.json_path.is_file() and result.html_path.is_file()
        report = json.loads(result.json_path.read_text())
        assert report["feed"] == source.feed and report["summary"]["files_failed"] == 0
        assert report["summary"]["rows"] == sum(
            len(pd.read_csv(source.folder / n)) for n in source.names
        )
        assert source.feed in result.html_path.read_text()
    before = _raw_files(home)
    again = [ingest_feed(home, s, participants=known, received=RECEIVED) for s in sources]
    assert not any(r.new for r in again)
    assert _raw_files(home) == before


def _bad_copy(src: Path, dst: Path, name: str, edits: dict[tuple[int, str], str]) -> FeedSource:
    """Copy feed file `name` to `dst`, setting (data row index, column) cells to new text."""
    dst.mkdir(parents=True, exist_ok=True)
    frame = pd.read_csv(src / name, dtype=str, keep_default_na=False)
    for (row, column), value in edits.items():
        frame.loc[row, column] = value
    frame.to_csv(dst / name, index=False)
    return FeedSource("survey" if name == "surveys.csv" else "wearables", dst, (name,))


@pytest.mark.parametrize(
    ("folder", "name", "edits", "expected"),
    [
        ("registry", "surveys.csv", {(3, "authored_date"): "2024-13-40"},
         "surveys.csv, line 5, field authored_date: '2024-13-40' is not a date"),
        ("registry", "surveys.csv", {(6, "question_concept_id"): "12"},
         "surveys.csv, line 8, field question_concept_id: 12 is not a question of module"),
        ("registry", "surveys.csv", {(2, "answer_concept_id"): "1"},
         "surveys.csv, line 4, field answer_concept_id: 1 is not an answer of question"),
        ("wearables", "steps_daily.csv", {(1, "steps"): "many"},
         "steps_daily.csv, line 3, field steps: 'many' is not an integer"),
        ("wearables", "steps_daily.csv", {(4, "participant_id"): "P000000001"},
         "steps_daily.csv, line 6, field participant_id: 'P000000001' is not a registry"),
        ("wearables", "steps_daily.csv", {(0, "date"): ""},
         "steps_daily.csv, line 2, field date: missing; this field is required"),
    ],
    ids=["bad-date", "unknown-question", "unknown-answer", "bad-int", "unknown-person",
         "missing-date"],
)  # fmt: skip
def test_ingest_feed__malformed_names_line_field_changes_nothing(
    home, feed, known, tmp_path, folder, name, edits, expected
):
    [good] = [s for s in find_feeds(feed) if name in s.names]
    first = ingest_feed(home, FeedSource(good.feed, good.folder, (name,)), participants=known,
                        received=RECEIVED)  # fmt: skip
    _, valid = latest_feed(home, good.feed, known)
    stored = _raw_files(home)
    bad = ingest_feed(home, _bad_copy(feed / folder, tmp_path / "bad", name, edits),
                      participants=known, received=RECEIVED)  # fmt: skip
    assert bad.files_failed == [name]
    assert any(p.startswith(f"{good.feed}/{expected}") for p in bad.problems), bad.problems
    assert expected.split(": ")[0].split(", ", 1)[1] in bad.html_path.read_text()
    after = _raw_files(home)
    assert {k: v for k, v in after.items() if k in stored} == stored
    submission, tables = latest_feed(home, good.feed, known)
    assert submission.submission_id == first.submission.submission_id
    for table, frame in valid.items():
        pd.testing.assert_frame_equal(tables[table], frame)
    assert len(submissions(home, PROGRAM, feed=good.feed)) == 2


def _fhir_resources(answers: pd.DataFrame) -> list[dict]:
    """One QuestionnaireResponse per participant, module and date, from survey CSV rows."""
    out = []
    keys = ["participant_id", "module_concept_id", "authored_date"]
    for (pid, module, authored), rows in answers.groupby(keys, sort=False):
        items = []
        for question, group in rows.groupby("question_concept_id", sort=False):
            entries = []
            for _, row in group.iterrows():
                if pd.notna(row["answer_concept_id"]):
                    code = str(int(row["answer_concept_id"]))
                    entries.append({"valueCoding": {"system": "http://terminology.pmi-ops.org/"
                                                    "CodeSystem/ppi", "code": code}})  # fmt: skip
                if pd.notna(row["value_text"]):
                    entries.append({"valueString": row["value_text"]})
            items.append({"linkId": str(question), "answer": entries})
        out.append({
            "resourceType": "QuestionnaireResponse",
            "status": "completed",
            "questionnaire": f"Questionnaire/{module}",
            "subject": {"reference": f"Patient/{pid}"},
            "authored": f"{authored}T10:00:00Z",
            "item": items,
        })  # fmt: skip
    return out


@pytest.mark.parametrize("form", ["ndjson", "bundle"])
def test_read_feed__fhir_gives_the_csv_rows(home, feed, known, tmp_path, form):
    csv = pd.read_csv(feed / "registry" / "surveys.csv", dtype={"value_text": object})
    resources = _fhir_resources(csv)
    folder = tmp_path / "surveys"
    folder.mkdir()
    if form == "ndjson":
        text = "".join(json.dumps(r) + "\n" for r in resources)
        (folder / "responses.ndjson").write_text(text)
    else:
        bundle = {"resourceType": "Bundle", "type": "collection",
                  "entry": [{"resource": r} for r in resources]}  # fmt: skip
        (folder / "responses.json").write_text(json.dumps(bundle, indent=1))
    [fhir_source] = find_feeds(tmp_path)
    fhir = ingest_feed(home, fhir_source, participants=known, received=RECEIVED)
    [csv_source] = [s for s in find_feeds(feed) if s.feed == "survey"]
    from_csv = ingest_feed(home, csv_source, participants=known, received=RECEIVED)
    assert fhir.files_failed == [] and from_csv.files_failed == []
    _, a = read_feed(fhir.submission, "survey", known)
    _, b = read_feed(from_csv.submission, "survey", known)
    columns = [c for c in a["survey"].columns if c not in ("line", "module")]
    order = columns[:1] + ["module_concept_id", "question_concept_id", "answer_concept_id",
                           "value_text"]  # fmt: skip
    left = a["survey"][columns].sort_values(order).reset_index(drop=True)
    right = b["survey"][columns].sort_values(order).reset_index(drop=True)
    assert len(left) == len(csv) and left["value_text"].notna().any()
    pd.testing.assert_frame_equal(left, right)


def test_read_feed__fhir_problems_name_line_and_path(home, known, tmp_path):
    pid = sorted(known)[0]
    answer = {"valueCoding": {"code": "1585846"}}
    good = {"resourceType": "QuestionnaireResponse", "questionnaire": "Questionnaire/1586134",
            "subject": {"reference": f"Patient/{pid}"}, "authored": "2024-02-03",
            "item": [{"linkId": "1585845", "answer": [answer]}]}  # fmt: skip
    no_subject = {k: v for k, v in good.items() if k != "subject"}
    no_code = {**good, "item": [{"linkId": "1585845", "answer": [{"valueCoding": {}}]}]}
    folder = tmp_path / "surveys"
    folder.mkdir()
    lines = [json.dumps(r) for r in (good, no_subject, {"resourceType": "Patient"}, no_code)]
    (folder / "a.ndjson").write_text("\n".join([*lines, "{not json"]) + "\n")
    [source] = find_feeds(tmp_path)
    result = ingest_feed(home, source, participants=known, received=RECEIVED)
    assert result.files_failed == ["a.ndjson"]
    problems = "\n".join(result.problems)
    assert "a.ndjson, line 5" in problems and "not JSON" in problems
    (folder / "a.ndjson").write_text("\n".join(lines) + "\n")
    result = ingest_feed(home, find_feeds(tmp_path)[0], participants=known, received=RECEIVED)
    problems = "\n".join(result.problems)
    assert "line 2, field subject.reference: missing" in problems
    assert "line 3, field resourceType: resourceType 'Patient'" in problems
    assert "line 4, field item[0].answer[0].valueCoding.code" in problems


def test_ingest_dir__every_feed_and_cli(home, feed, participants, tmp_path):
    results = ingest_dir(home, feed, participants=participants, received=RECEIVED)
    sites = sorted(p.name for p in (feed / "ehr").iterdir() if p.is_dir())
    assert [getattr(r, "site_id", None) for r in results[: len(sites)]] == sites
    assert sorted(r.feed for r in results[len(sites) :]) == sorted(FEEDS)
    app = typer.Typer()
    app.callback()(lambda: None)  # a group, as the real app is
    app.command("ingest")(ingest)
    runner = CliRunner()
    out = runner.invoke(app, ["ingest", "--home", str(home.root), str(feed), "--no-progress"])
    assert out.exit_code == 0, out.output
    for result in results:
        assert str(result.html_path) in out.output.replace("\n", "")
    assert "seen before" in out.output and "(new)" not in out.output
    bad = tmp_path / "feeds"
    shutil.copytree(feed / "wearables", bad / "wearables")
    (bad / "wearables" / "sleep_daily.csv").write_text("participant_id,date,minutes_asleep\nx,,5\n")
    out = runner.invoke(app, ["ingest", "--home", str(home.root), str(bad), "--no-progress"])
    assert out.exit_code == 1
    assert "sleep_daily.csv, line 2, field date" in out.output.replace("\n", "")
    empty = tmp_path / "nothing"
    empty.mkdir()
    out = runner.invoke(app, ["ingest", "--home", str(home.root), str(empty)])
    assert out.exit_code != 0 and "no feeds found" in str(out.exception)


_KEYS = st.sampled_from(
    [
        "subject",
        "reference",
        "authored",
        "questionnaire",
        "item",
        "linkId",
        "answer",
        "valueCoding",
        "code",
        "valueString",
        "valueInteger",
    ]
)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=16,
)
_RESPONSE = st.dictionaries(_KEYS, _JSON, max_size=5).map(
    lambda d: {**d, "resourceType": "QuestionnaireResponse"}
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(
    st.binary(max_size=300),
    _JSON.map(lambda v: json.dumps(v).encode()),
    st.lists(_RESPONSE, max_size=3).map(lambda rs: "\n".join(map(json.dumps, rs)).encode()),
))  # fmt: skip
def test_read_questionnaire_responses__any_bytes_rows_or_error_naming_a_line(data):
    try:
        table = read_questionnaire_responses(data, file="x.json")
    except MalformedFile as exc:
        assert all(p.file == "x.json" and p.line is not None for p in exc.problems)
    else:
        assert table.columns == list(COLUMNS) and len(table.lines) == table.data.num_rows
