"""Survey and wearable cleaning rules: duplicates, skip codes, branching, free text, consent, dates.

They run in the ``feeds`` stage, after the combined cleaning stage has removed withdrawn,
retracted and unconsented people from every person-keyed table (surveys and wearables among
them). The branching table is data, :data:`BRANCHES`, resolved against the survey codebook
by question text (like the reference program's PPI branching CSVs).
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd

from opencohort.curate._omop import SURVEY, WEARABLE_TABLES
from opencohort.curate.cleaning import _ExcludedPeople
from opencohort.curate.feeds import concept_code
from opencohort.curate.rules import Result, Rule, changing, dropping, register
from opencohort.vocab import survey_codebook
from opencohort.vocab.survey import PMI_SKIP

#: Concept written where a free-text answer was removed (the reference program's
#: "response removed" concept).
RESPONSE_REMOVED = 2000000010
_KEY = ["person_id", "module_concept_id", "question_concept_id"]
_BASICS, _LIFESTYLE, _HEALTH = "The Basics", "Lifestyle", "Overall Health"
_DRINKING = ("Monthly Or Less", "2 to 4 Per Month", "2 to 3 Per Week", "4 or More Per Week")
_DRUGS = {
    "Cocaine Use": "Cocaine",
    "Hallucinogens Use": "Hallucinogen",
    "Inhalants Use": "Inhalant",
    "Marijuana Use": "Marijuana",
    "Methamphetamine Use": "Other Stimulant",
    "Prescription Opioids Use": "Prescription Opioid",
    "Prescription Stimulants Use": "Prescription Stimulant",
    "Sedatives Use": "Sedative",
    "Street Opioids Use": "Street Opioid",
    "Other Specify": "Other",
}
_TOBACCO = {
    "Electronic Smoking: Electric Smoke": "Electronic Smoking: Electric Smoke Frequency",
    "Cigar Smoking: Cigar Smoke": "Cigar Smoking: Current Cigar Frequency",
    "Hookah Smoking: Hookah Smoke": "Hookah Smoking: Current Hookah Frequency",
    "Smokeless Tobacco: Smokeless Tobacco": "Smokeless Tobacco: Smokeless Tobacco Frequency",
}
#: (module, follow-up question, parent question, parent answers that lead to the follow-up).
BRANCHES: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    (_BASICS, "Gender: Closer Gender Description", "Gender: Gender Identity",
     ("Additional Options",)),
    (_BASICS, "Insurance: Insurance Type", "Insurance: Health Insurance", ("Yes",)),
    (_BASICS, "Living Situation: Current Living", "Living Situation: Stable House Concern",
     ("Yes",)),
    (_LIFESTYLE, "Smoking: Smoke Frequency", "Smoking: 100 Cigs Lifetime", ("Yes",)),
    (_LIFESTYLE, "Smoking: Serious Quit Attempt", "Smoking: Smoke Frequency",
     ("Every Day", "Some Days")),
    *((_LIFESTYLE, child, f"{stem} Participant", ("Yes",)) for stem, child in _TOBACCO.items()),
    (_LIFESTYLE, "Alcohol: Drink Frequency Past Year", "Alcohol: Alcohol Participant", ("Yes",)),
    (_LIFESTYLE, "Alcohol: Average Daily Drink Count", "Alcohol: Drink Frequency Past Year",
     _DRINKING),
    (_LIFESTYLE, "Alcohol: 6 or More Drinks Occurrence", "Alcohol: Drink Frequency Past Year",
     _DRINKING),
    *((_LIFESTYLE, f"Past 3 Month Use Frequency: {short} 3 Month Use",
       "Recreational Drug Use: Which Drugs Used", (drug,)) for drug, short in _DRUGS.items()),
    (_HEALTH, "Overall Health: Ovary Removal History", "Overall Health: Hysterectomy History",
     ("Yes",)),
)  # fmt: skip


@cache
def branching() -> pd.DataFrame:
    """:data:`BRANCHES` as concept ids: child question, parent question, leading answer.

    One row per leading answer (columns ``child``, ``parent``, ``answer``).

    Raises
    ------
    KeyError
        If a question or answer text is not in the codebook (a codebook change).
    """
    book = survey_codebook()
    book = book.assign(label=book["answer"].str.split(": ", n=1).str[1].fillna(book["answer"]))
    by_name = book.drop_duplicates(["mod_concept_name", "question_concept_name"]).set_index(
        ["mod_concept_name", "question_concept_name"]
    )["question_concept_id"]
    answers = book.drop_duplicates(["question_concept_id", "label"]).set_index(
        ["question_concept_id", "label"]
    )["answer_concept_id"]
    rows = []
    for module, child, parent, leading in BRANCHES:
        child_id, parent_id = int(by_name[(module, child)]), int(by_name[(module, parent)])
        rows += [(child_id, parent_id, int(answers[(parent_id, a)])) for a in leading]
    return pd.DataFrame(rows, columns=["child", "parent", "answer"])


def _with_codes(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(answer_concept_code=concept_code(frame["answer_concept_id"]))


@register
class SurveyDuplicates(Rule):
    """Keep only the latest authored answers to each question of a person's module."""

    id = "survey_duplicate_responses"
    purpose = "Remove repeated answers: per person, module and question keep the latest date."
    reads = writes = (SURVEY,)
    implements = "issue 4; AoU DropPpiDuplicateResponses, DropDuplicatePpiQuestionsAndAnswers"

    def apply(self, frames, ctx):
        s = frames[SURVEY]
        day = s["survey_date"].astype("float64")
        latest = day.groupby([s[c] for c in _KEY], dropna=False).transform("max")
        older = (day < latest).to_numpy(dtype=bool)
        same = s.duplicated(
            ["person_id", "question_concept_id", "answer_concept_id", "value_text",
             "value_as_number", "survey_date"]
        ).to_numpy()  # fmt: skip
        return dropping(frames, {SURVEY: older | same})

    def check(self, frames, ctx):
        s = frames[SURVEY]
        spread = s.groupby(_KEY)["survey_date"].nunique()
        return ["answers of more than one date left for a question"] if (spread > 1).any() else []


@register
class SurveySkipCodes(Rule):
    """Code empty answers as PMI skip; drop a skip beside a real answer to the same question."""

    id = "survey_skip_codes"
    purpose = "Normalise skips: blank answers become PMI_Skip; skips beside answers go."
    reads = writes = (SURVEY,)
    depends_on = ("survey_duplicate_responses",)
    implements = "issue 4; AoU Backfill* skip codes, UpdatePpiNegativePainLevel"
    introduces = frozenset({str(PMI_SKIP)})

    def apply(self, frames, ctx):
        s = frames[SURVEY]
        blank = (s["answer_concept_id"].isna() & s["value_text"].isna()
                 & s["value_as_number"].isna()).to_numpy()  # fmt: skip
        answer = s["answer_concept_id"].where(~blank, PMI_SKIP).astype("Int64")
        skip = (answer == PMI_SKIP).fillna(False).to_numpy(dtype=bool)
        answered = pd.Series(~skip, index=s.index).groupby([s[c] for c in _KEY], dropna=False)
        answered = answered.transform("any")
        extra = skip & answered.to_numpy(dtype=bool)
        normalised = _with_codes(s.assign(answer_concept_id=answer))
        changed = changing(frames, {SURVEY: normalised}).changed[SURVEY]
        return Result(
            {SURVEY: normalised[~extra].reset_index(drop=True)},
            removed={SURVEY: s[extra]},
            changed={SURVEY: changed[~extra[s.index.get_indexer(changed.index)]]},
        )

    def check(self, frames, ctx):
        s = frames[SURVEY]
        blank = s["answer_concept_id"].isna() & s["value_text"].isna() & s["value_as_number"].isna()
        return ["blank survey answers left"] if blank.any() else []


@register
class SurveyBranching(Rule):
    """Remove answers to a follow-up question its parent answer does not lead to."""

    id = "survey_branching"
    purpose = "Remove follow-up answers inconsistent with the parent question's answer."
    reads = writes = (SURVEY,)
    depends_on = ("survey_duplicate_responses", "survey_skip_codes")
    implements = "issue 4; AoU PpiBranching"

    def apply(self, frames, ctx):
        s = frames[SURVEY]
        rules = branching()
        person = s["person_id"].astype("float64")
        given = pd.MultiIndex.from_arrays(
            [person, s["question_concept_id"].astype("float64"),
             s["answer_concept_id"].astype("float64")]
        )  # fmt: skip
        bad = np.zeros(len(s), dtype=bool)
        for child, leads in rules.groupby("child"):
            rows = (s["question_concept_id"] == child).fillna(False).to_numpy(dtype=bool)
            if not rows.any():
                continue
            parent = given.get_level_values(1).isin(leads["parent"].astype("float64"))
            leading = given.get_level_values(2).isin(leads["answer"].astype("float64"))
            opened = given[parent & leading]
            bad |= rows & ~person.isin(opened.get_level_values(0)).to_numpy()
        return dropping(frames, {SURVEY: bad})


@register
class SurveyFreeText(Rule):
    """Remove free-text answers; an answer that was only text becomes "response removed"."""

    id = "survey_free_text"
    purpose = "Null free-text survey values; text-only answers get the response-removed concept."
    reads = writes = (SURVEY,)
    depends_on = ("survey_skip_codes",)
    implements = "issue 4; AoU FreeTextSurveyResponseSuppression"
    introduces = frozenset({str(RESPONSE_REMOVED)})

    def apply(self, frames, ctx):
        s = frames[SURVEY]
        text_only = s["answer_concept_id"].isna() & s["value_text"].notna()
        answer = s["answer_concept_id"].where(~text_only, RESPONSE_REMOVED).astype("Int64")
        out = _with_codes(s.assign(answer_concept_id=answer, value_text=None))
        return changing(frames, {SURVEY: out})

    def check(self, frames, ctx):
        return ["survey free text left"] if frames[SURVEY]["value_text"].notna().any() else []


@register
class WearablesConsent(_ExcludedPeople):
    """Remove wearable rows of participants without a current wearables consent."""

    id = "wearables_consent"
    purpose = "Remove wearable data of persons whose latest wearables consent is not a yes."
    reads = writes = WEARABLE_TABLES
    implements = "issue 4; AoU wearables consent (GenerateWearStudyTable, DropViaSurveyConduct)"
    fact, excluded_if = "wearables_consent", False


@register
class FeedDates(Rule):
    """Remove survey and wearable rows dated after the cut-off or before the person's birth."""

    id = "feed_dates"
    purpose = "Remove survey answers and wearable days after the cut-off or before birth."
    reads = writes = (SURVEY, *WEARABLE_TABLES)
    implements = "issue 4; AoU EhrSubmissionDataCutoff and NegativeAges for PPI/Fitbit"

    def apply(self, frames, ctx):
        birth = ctx.people["birth_date"].astype("float64")
        masks = {}
        for t, f in frames.items():
            day = f["survey_date" if t == SURVEY else "date"].astype("float64").to_numpy()
            born = birth.reindex(f["person_id"].astype("float64")).to_numpy()
            with np.errstate(invalid="ignore"):
                masks[t] = (day > ctx.cutoff) | (day < born)
        return dropping(frames, masks)


#: The feeds stage, run after the cleaning stages.
FEED_STAGES: dict[str, tuple[str, ...]] = {
    "feeds": (
        "survey_duplicate_responses",
        "survey_skip_codes",
        "survey_branching",
        "survey_free_text",
        "wearables_consent",
        "feed_dates",
    )
}
