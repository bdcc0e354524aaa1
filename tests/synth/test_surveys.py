"""Tests of synthetic survey answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from opencohort.synth.models import SynthConfig
from opencohort.synth.participants import multiple_race_pairs, participant_batch
from opencohort.synth.surveys import (
    SEXUAL_ORIENTATION_ANSWERS,
    SEXUAL_ORIENTATION_QUESTION,
    SKIP_ANSWER,
    survey_answers,
)
from opencohort.vocab import survey_codebook

# Independent decoding: codebook answer text (after the colon) -> frame category.
DECODE = {
    "Race: What Race Ethnicity": {
        "White": "white",
        "Black": "black",
        "Hispanic": "hispanic",
        "Asian": "asian",
        "AIAN": "aian",
        "NHPI": "nhpi",
        "MENA": "mena",
        "Race Ethnicity None Of These": "none_of_these",
    },
    "Biological Sex At Birth: Sex At Birth": {
        "Female": "female",
        "Male": "male",
        "Intersex": "intersex",
        "Sex At Birth None Of These": "none_of_these",
    },
    "Gender: Gender Identity": {
        "Woman": "woman",
        "Man": "man",
        "Non Binary": "non_binary",
        "Transgender": "transgender",
        "Additional Options": "additional",
    },
    "Education Level: Highest Grade": {
        "Never Attended": "less_than_high_school",
        "One Through Four": "less_than_high_school",
        "Five Through Eight": "less_than_high_school",
        "Nine Through Eleven": "less_than_high_school",
        "Twelve Or GED": "high_school",
        "College One to Three": "some_college",
        "College Graduate": "college",
        "Advanced Degree": "advanced",
    },
    "Income: Annual Income": {
        "less 10k": "lt_10k",
        "10k 25k": "10k_25k",
        "25k 35k": "25k_35k",
        "35k 50k": "35k_50k",
        "50k 75k": "50k_75k",
        "75k 100k": "75k_100k",
        "100k 150k": "100k_150k",
        "150k 200k": "150k_200k",
        "more 200k": "gt_200k",
    },
    "Employment: Employment Status": {
        "Employed For Wages": "employed",
        "Self Employed": "self_employed",
        "Out Of Work One Or More": "unemployed",
        "Out Of Work Less Than One": "unemployed",
        "Student": "student",
        "Homemaker": "homemaker",
        "Retired": "retired",
        "Unable To Work": "unable_to_work",
    },
}
FRAME_COLUMN = {
    "Race: What Race Ethnicity": "race_ethnicity",
    "Biological Sex At Birth: Sex At Birth": "sex_at_birth",
    "Gender: Gender Identity": "gender_identity",
    "Education Level: Highest Grade": "education",
    "Income: Annual Income": "income",
    "Employment: Employment Status": "employment",
}


@pytest.fixture(scope="module")
def book() -> pd.DataFrame:
    codebook = survey_codebook().copy()
    codebook["label"] = codebook["answer"].str.split(": ", n=1).str[1]
    return codebook


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame, SynthConfig]:
    config = SynthConfig(participants=6000, genomes=0, sites=3, seed=13)
    people = participant_batch(config, 0)
    return people, survey_answers(people, config), config


def _decoded(answers: pd.DataFrame, book: pd.DataFrame, question: str) -> pd.Series:
    """Decode one Basics question per participant ("multiple" when several answers)."""
    rows = book[
        (book["mod_concept_name"] == "The Basics") & (book["question_concept_name"] == question)
    ]
    labels = rows.set_index("answer_concept_id")["label"].map(DECODE[question])
    mine = answers[answers["question_concept_id"] == rows["question_concept_id"].iloc[0]]
    category = mine["answer_concept_id"].map(labels)
    category[mine["answer_concept_id"] == SKIP_ANSWER] = "skip"
    assert category.notna().all(), question
    grouped = category.groupby(mine["participant_id"]).agg(
        lambda s: s.iloc[0] if len(s) == 1 else "multiple"
    )
    return grouped


@pytest.mark.parametrize("question", list(DECODE))
def test_survey_answers__basics_round_trip(data, book, question: str) -> None:
    people, answers, _ = data
    decoded = _decoded(answers, book, question)
    took = people[people["basics_date"].notna()].set_index("participant_id")
    assert set(decoded.index) == set(took.index)
    expected = took.loc[decoded.index, FRAME_COLUMN[question]]
    assert (decoded.to_numpy() == expected.to_numpy()).all()


def test_survey_answers__multiple_race_reports_the_pair(data, book) -> None:
    people, answers, config = data
    multi = people[(people["race_ethnicity"] == "multiple") & people["basics_date"].notna()]
    pairs = multiple_race_pairs(config.seed, multi["person_index"].to_numpy())
    race_q = 1586140
    mine = answers[answers["question_concept_id"] == race_q]
    labels = book[book["question_concept_id"] == race_q].set_index("answer_concept_id")["label"]
    reported = (
        mine.assign(label=mine["answer_concept_id"].map(labels))
        .groupby("participant_id")["label"]
        .agg(lambda s: frozenset(s.str.lower()))
    )
    for pid, pair in zip(multi["participant_id"], pairs, strict=True):
        assert reported[pid] == frozenset(pair)


def test_survey_answers__orientation_and_disability(data) -> None:
    people, answers, _ = data
    took = people[people["basics_date"].notna()].set_index("participant_id")
    orient = answers[answers["question_concept_id"] == SEXUAL_ORIENTATION_QUESTION]
    inverse = {v: k for k, v in SEXUAL_ORIENTATION_ANSWERS.items()} | {SKIP_ANSWER: "skip"}
    decoded = orient.set_index("participant_id")["answer_concept_id"].map(inverse)
    assert (decoded.to_numpy() == took.loc[decoded.index, "sexual_orientation"].to_numpy()).all()
    disability_questions = [903573, 903574, 903575, 903576, 903577, 903578]
    yes = {903587, 903504, 903599, 903602, 903605, 903608}
    rows = answers[answers["question_concept_id"].isin(disability_questions)]
    any_yes = rows["answer_concept_id"].isin(yes).groupby(rows["participant_id"]).any()
    assert (any_yes.to_numpy() == took.loc[any_yes.index, "disability"].to_numpy()).all()
    assert (rows.groupby("participant_id").size() == 6).all()


def test_survey_answers__codes_exist_in_codebook(data, book) -> None:
    _, answers, _ = data
    known = set(zip(book["question_concept_id"], book["answer_concept_id"], strict=True))
    pairs = answers[
        (answers["answer_concept_id"] != SKIP_ANSWER)
        & (answers["question_concept_id"] != SEXUAL_ORIENTATION_QUESTION)
    ]
    observed = set(zip(pairs["question_concept_id"], pairs["answer_concept_id"], strict=True))
    assert observed <= known
    modules = book.drop_duplicates("mod_concept_name").set_index("mod_concept_name")[
        "mod_concept_id"
    ]
    assert set(answers["module"]) == {"The Basics", "Lifestyle", "Overall Health"}
    assert (answers["module_concept_id"] == answers["module"].map(modules)).all()


def test_survey_answers__authored_on_module_date(data) -> None:
    people, answers, _ = data
    dates = people.set_index("participant_id")
    column = answers["module"].map(
        {
            "The Basics": "basics_date",
            "Lifestyle": "lifestyle_date",
            "Overall Health": "overall_health_date",
        }
    )
    for module_column in column.unique():
        rows = column == module_column
        expected = dates.loc[answers.loc[rows, "participant_id"], module_column].to_numpy()
        assert (answers.loc[rows, "authored_date"].to_numpy() == expected).all()


def test_survey_answers__branching(data) -> None:
    people, answers, _ = data
    by = answers.groupby("question_concept_id")
    smoked = by.get_group(1585857)
    ever = set(smoked.loc[smoked["answer_concept_id"] == 1585858, "participant_id"])
    asked_frequency = set(by.get_group(1585860)["participant_id"])
    assert asked_frequency == ever
    female = set(people.loc[people["sex_at_birth"] == "female", "participant_id"])
    assert set(by.get_group(1585784)["participant_id"]) <= female
    drinkers = by.get_group(1586198)
    yes = set(drinkers.loc[drinkers["answer_concept_id"] == 1586199, "participant_id"])
    assert set(by.get_group(1586201)["participant_id"]) == yes
    assert len(asked_frequency) > 0.2 * len(smoked)


def test_survey_answers__free_text_only_after_specify(data) -> None:
    _, answers, _ = data
    texts = answers[answers["value_text"].notna()]
    assert len(texts) > 0
    assert set(texts["question_concept_id"]) <= {1585704, 1585348}
    assert answers["value_number"].isna().all()


def test_survey_answers__health_tracks_disability(data) -> None:
    people, answers, _ = data
    general = answers[answers["question_concept_id"] == 1585711]
    score = general["answer_concept_id"].map(
        {1585712: 5, 1585713: 4, 1585714: 3, 1585715: 2, 1585716: 1}
    )
    disabled = general["participant_id"].map(people.set_index("participant_id")["disability"])
    assert score[disabled].mean() < score[~disabled].mean() - 0.3


def test_survey_answers__deterministic(data) -> None:
    people, answers, config = data
    again = survey_answers(people, config)
    pd.testing.assert_frame_equal(answers, again)
    assert np.isin(answers["participant_id"].unique(), people["participant_id"]).all()
