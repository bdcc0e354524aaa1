"""Survey and wearable rules remove exactly the planted rows, and nothing of clean input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from opencohort.curate.surveys import (
    RESPONSE_REMOVED,
    SurveyBranching,
    SurveyDuplicates,
    SurveyFreeText,
    SurveySkipCodes,
    WearablesConsent,
    branching,
)
from opencohort.vocab.survey import PMI_SKIP

_NA = pd.array([pd.NA], dtype="Int64")


@pytest.fixture(scope="module")
def survey(sources) -> pd.DataFrame:
    frame = sources.frames["survey"]
    assert len(frame) > 1000
    return frame


def _planted(base: pd.DataFrame, *extra: pd.DataFrame) -> tuple[pd.DataFrame, list[int]]:
    out = pd.concat([base, *extra], ignore_index=True)
    return out, list(range(len(base), len(out)))


def test_survey_duplicates__removes_older_and_repeated_answers(survey, sources):
    assert len(SurveyDuplicates().apply({"survey": survey}, sources.context).removed["survey"]) == 0
    person = survey["person_id"].iloc[0]
    mine = survey[(survey["person_id"] == person)]
    mine = mine[mine["module_concept_id"] == mine["module_concept_id"].iloc[0]]
    older = mine.assign(survey_date=mine["survey_date"] - 30, answer_concept_id=PMI_SKIP)
    frame, planted = _planted(survey, older, mine.iloc[:2])
    result = SurveyDuplicates().apply({"survey": frame}, sources.context)
    assert sorted(result.removed["survey"].index) == planted
    pd.testing.assert_frame_equal(result.frames["survey"], survey.reset_index(drop=True))


def _answered(survey: pd.DataFrame, question: int) -> pd.DataFrame:
    return survey[survey["question_concept_id"] == question]


def test_survey_branching__removes_follow_ups_not_opened(survey, sources):
    rule = SurveyBranching()
    assert len(rule.apply({"survey": survey}, sources.context).removed["survey"]) == 0
    plants = []
    for child, leads in list(branching().groupby("child"))[:4]:
        parent = int(leads["parent"].iloc[0])
        asked = _answered(survey, parent)
        closed = asked[~asked["answer_concept_id"].isin(leads["answer"])]
        closed = closed[~closed["person_id"].isin(asked.loc[asked["answer_concept_id"].isin(
            leads["answer"]), "person_id"])]  # fmt: skip
        assert len(closed), f"no one closed question {parent}"
        plants.append(closed.iloc[:1].assign(question_concept_id=child, answer_concept_id=1))
    child = int(branching()["child"].iloc[0])
    parent = int(branching()["parent"].iloc[0])
    unasked = survey[~survey["person_id"].isin(_answered(survey, parent)["person_id"])]
    plants.append(unasked.iloc[:1].assign(question_concept_id=child))
    opened = branching().iloc[0]
    keep = _answered(survey, int(opened["parent"]))
    keep = keep[keep["answer_concept_id"] == opened["answer"]].iloc[:1]
    allowed = keep.assign(question_concept_id=int(opened["child"]))
    frame, planted = _planted(survey, *plants)
    frame = pd.concat([frame, allowed], ignore_index=True)
    result = rule.apply({"survey": frame}, sources.context)
    assert sorted(result.removed["survey"].index) == planted
    assert len(result.frames["survey"]) == len(survey) + 1


def test_survey_skip_codes__blank_becomes_skip_and_extra_skips_go(survey, sources):
    rule = SurveySkipCodes()
    clean = rule.apply({"survey": survey}, sources.context)
    assert len(clean.removed["survey"]) == 0 and len(clean.changed["survey"]) == 0
    real = survey[survey["answer_concept_id"] != PMI_SKIP].iloc[[0, 5]]
    beside = real.assign(answer_concept_id=PMI_SKIP, answer_concept_code=str(PMI_SKIP))
    person = real["person_id"].iloc[0]
    mine = set(survey.loc[survey["person_id"] == person, "question_concept_id"])
    unanswered = min(set(survey["question_concept_id"]) - mine)
    blank = real.iloc[:1].assign(question_concept_id=unanswered, answer_concept_id=_NA,
                                 answer_concept_code=None, value_text=None)  # fmt: skip
    frame, planted = _planted(survey, beside, blank)
    result = rule.apply({"survey": frame}, sources.context)
    assert sorted(result.removed["survey"].index) == planted[:2]
    assert list(result.changed["survey"].index) == planted[2:]
    out = result.frames["survey"]
    assert len(out) == len(survey) + 1
    assert out.iloc[-1]["answer_concept_id"] == PMI_SKIP
    assert out.iloc[-1]["answer_concept_code"] == str(PMI_SKIP)
    rule.validate({"survey": out}, sources.context)


def test_survey_free_text__no_text_left_text_only_answer_removed(survey, sources):
    with_text = survey["value_text"].notna()
    assert with_text.any()
    text_only = survey.iloc[:1].assign(answer_concept_id=_NA, value_text="call me at home")
    frame, planted = _planted(survey, text_only)
    result = SurveyFreeText().apply({"survey": frame}, sources.context)
    out = result.frames["survey"]
    assert out["value_text"].isna().all()
    assert out.loc[planted[0], "answer_concept_id"] == RESPONSE_REMOVED
    assert out.loc[planted[0], "answer_concept_code"] == str(RESPONSE_REMOVED)
    kept = np.flatnonzero(with_text.to_numpy())
    assert (out.loc[kept, "answer_concept_id"] == survey.loc[kept, "answer_concept_id"]).all()
    assert sorted(result.changed["survey"].index) == [*kept, planted[0]]


def test_wearables_consent__removes_unconsented_rows(sources):
    steps = sources.frames["steps_daily"]
    people = sources.context.people
    assert steps["person_id"].isin(people.index[people["wearables_consent"]]).all()
    outsider = people.index[~people["wearables_consent"]][0]
    extra = steps.iloc[:3].assign(person_id=outsider)
    frame, planted = _planted(steps, extra)
    frames = {"steps_daily": frame, **{t: sources.frames[t] for t in ("heart_rate_daily",
                                                                       "sleep_daily")}}  # fmt: skip
    result = WearablesConsent().apply(frames, sources.context)
    assert sorted(result.removed["steps_daily"].index) == planted
    assert len(result.removed["sleep_daily"]) == 0
