"""The reference program's survey codebook (questions and answers by module) as PPI concepts."""

from __future__ import annotations

import importlib.metadata as md
from functools import cache

import pandas as pd

from opencohort.vocab.models import concept_frame

#: The program's answers valid for any question (not in omopsurvey's codebook).
PMI_SKIP, PMI_PREFER_NOT_TO_ANSWER, PMI_DONT_KNOW = 903096, 903079, 903087
#: The Basics sexual-orientation question and answers, missing from omopsurvey's codebook.
SEXUAL_ORIENTATION = (1585899, (1585900, 1585901, 1585902, 1585903, 1585904))
_BASICS_ID = 1586134


@cache
def survey_codebook() -> pd.DataFrame:
    """Every survey question/answer concept: module, question and answer ids and text.

    Read from the ``omopsurvey`` package's ``survey_key.csv`` (MIT) without importing the
    package, whose import needs an undeclared IPython. Columns: ``mod_concept_id``,
    ``mod_concept_name``, ``question_concept_id``, ``question_concept_name``,
    ``answer_concept_id``, ``answer``, ``answer_numeric``, ``answer_text``, ``select_all``.
    """
    path = md.distribution("omopsurvey").locate_file("omopsurvey/survey_key.csv")
    return pd.read_csv(path, encoding="utf-8-sig")


def survey_concepts() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return PPI concepts (modules, questions, answers) and their relationships.

    Returns
    -------
    tuple of pandas.DataFrame
        Concept rows (vocabulary ``PPI``, domain ``Observation``, classes ``Module``,
        ``Question`` and ``Answer``, the program's real concept ids) and relationship rows
        ``concept_id_1``, ``concept_id_2``, ``relationship_id`` in the forward direction:
        module ``PPI parent code of`` question, question ``Has answer (PPI)`` answer.

    Notes
    -----
    ``omopsurvey`` ships ids and names but not PPI short codes, so ``concept_code`` is the
    concept id as text. An answer id listed under two names keeps the first by question id.
    """
    book = survey_codebook().sort_values(
        ["mod_concept_id", "question_concept_id", "answer_concept_id"]
    )
    answer_name = book["answer"].fillna(book["answer_text"])
    answer_name = answer_name.fillna("PPI answer " + book["answer_concept_id"].astype(str))
    parts = [
        book[["mod_concept_id", "mod_concept_name"]]
        .set_axis(["id", "name"], axis=1)
        .assign(cls="Module"),
        book[["question_concept_id", "question_concept_name"]]
        .set_axis(["id", "name"], axis=1)
        .assign(cls="Question"),
        pd.DataFrame({"id": book["answer_concept_id"], "name": answer_name, "cls": "Answer"}),
    ]
    rows = pd.concat(parts, ignore_index=True).drop_duplicates("id")
    concept = concept_frame(
        concept_id=rows["id"].to_numpy(),
        concept_name=rows["name"].to_numpy(),
        domain_id="Observation",
        vocabulary_id="PPI",
        concept_class_id=rows["cls"].to_numpy(),
        standard_concept="S",
        concept_code=rows["id"].astype(str).to_numpy(),
    )
    links = pd.concat(
        [
            book[["mod_concept_id", "question_concept_id"]]
            .set_axis(["concept_id_1", "concept_id_2"], axis=1)
            .assign(relationship_id="PPI parent code of"),
            book[["question_concept_id", "answer_concept_id"]]
            .set_axis(["concept_id_1", "concept_id_2"], axis=1)
            .assign(relationship_id="Has answer (PPI)"),
        ],
        ignore_index=True,
    ).drop_duplicates()
    return concept, links


@cache
def survey_answer_codes() -> pd.DataFrame:
    """Every valid (module, question, answer) concept-id triple of the program's surveys.

    The codebook's pairs, the sexual-orientation question of The Basics, and the three PMI
    answers (skip, prefer not to answer, don't know) for every question. Columns
    ``mod_concept_id``, ``question_concept_id``, ``answer_concept_id``.
    """
    book = survey_codebook()[["mod_concept_id", "question_concept_id", "answer_concept_id"]]
    question, answers = SEXUAL_ORIENTATION
    extra = pd.DataFrame(
        {
            "mod_concept_id": _BASICS_ID,
            "question_concept_id": question,
            "answer_concept_id": answers,
        }
    )
    pairs = pd.concat([book, extra], ignore_index=True)
    questions = pairs[["mod_concept_id", "question_concept_id"]].drop_duplicates()
    pmi = [
        questions.assign(answer_concept_id=code)
        for code in (PMI_SKIP, PMI_PREFER_NOT_TO_ANSWER, PMI_DONT_KNOW)
    ]
    return pd.concat([pairs, *pmi], ignore_index=True).drop_duplicates().reset_index(drop=True)
