"""The reference program's survey codebook (questions and answers by module)."""

from __future__ import annotations

import importlib.metadata as md
from functools import cache

import pandas as pd


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
