"""Survey and wearable cleaning rules: duplicates, skip codes, branching, free text, consent, dates.

They run in the ``feeds`` stage, after the combined cleaning stage has removed withdrawn,
retracted and unconsented people from every person-keyed table (surveys and wearables among
them). The branching table is data, :data:`BRANCHES`, resolved against the survey codebook
by question text (like the reference program's PPI branching CSVs).
"""

from __future__ import annotations

from functools import cache

import ibis
import pandas as pd

from opencohort.curate._omop import SURVEY, WEARABLE_TABLES
from opencohort.curate.cleaning import _ExcludedPeople, _with_facts
from opencohort.curate.engine import ORDER
from opencohort.curate.rules import REMOVE, IbisRule, Plan, marking, register
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


def _code(answer: ibis.IntegerValue) -> ibis.StringValue:
    """The PPI concept code of an answer concept id (the id as text; missing stays missing)."""
    return answer.cast("string")


def _blank(s: ibis.Table) -> ibis.BooleanValue:
    return (
        s["answer_concept_id"].isnull() & s["value_text"].isnull() & s["value_as_number"].isnull()
    )


@register
class SurveyDuplicates(IbisRule):
    """Keep only the latest authored answers to each question of a person's module."""

    id = "survey_duplicate_responses"
    purpose = "Remove repeated answers: per person, module and question keep the latest date."
    reads = writes = (SURVEY,)
    implements = "issue 4; AoU DropPpiDuplicateResponses, DropDuplicatePpiQuestionsAndAnswers"

    def plan(self, tables, ctx, db):
        s = tables[SURVEY]
        latest = s["survey_date"].max().over(group_by=_KEY)
        same = ["person_id", "question_concept_id", "answer_concept_id", "value_text",
                "value_as_number", "survey_date"]  # fmt: skip
        repeat = ibis.row_number().over(group_by=same, order_by=ORDER) > 0
        return Plan(
            remove={SURVEY: marking(s, (s["survey_date"] < latest).fill_null(False) | repeat)}
        )

    def problems(self, tables, ctx, db):
        s = tables[SURVEY]
        spread = s.group_by(_KEY).agg(n=s["survey_date"].nunique())
        return (
            ["answers of more than one date left for a question"]
            if db.count(spread.filter(spread["n"] > 1))
            else []
        )


@register
class SurveySkipCodes(IbisRule):
    """Code empty answers as PMI skip; drop a skip beside a real answer to the same question."""

    id = "survey_skip_codes"
    purpose = "Normalise skips: blank answers become PMI_Skip; skips beside answers go."
    reads = writes = (SURVEY,)
    depends_on = ("survey_duplicate_responses",)
    implements = "issue 4; AoU Backfill* skip codes, UpdatePpiNegativePainLevel"
    introduces = frozenset({str(PMI_SKIP)})

    def plan(self, tables, ctx, db):
        s = tables[SURVEY]
        answer = _blank(s).ifelse(PMI_SKIP, s["answer_concept_id"])
        normalised = s.mutate(answer_concept_id=answer, answer_concept_code=_code(answer))
        skip = (normalised["answer_concept_id"] == PMI_SKIP).fill_null(False)
        answered = (~skip).cast("int64").max().over(group_by=_KEY) > 0
        # The flags become columns first: Spark cannot resolve a filter on a window over a
        # rewritten column (Ibis refers to the pre-window table there).
        flagged = normalised.mutate(_skip=skip, _answered=answered)
        kept = flagged.filter(~(flagged["_skip"] & flagged["_answered"]))
        return Plan(replace={SURVEY: kept.drop("_skip", "_answered")})

    def problems(self, tables, ctx, db):
        s = tables[SURVEY]
        return ["blank survey answers left"] if db.count(s.filter(_blank(s))) else []


def _branching_table() -> pd.DataFrame:
    rules = branching()
    return pd.DataFrame({"_b_child": rules["child"].astype("int64").to_numpy(),
                         "_b_parent": rules["parent"].astype("int64").to_numpy(),
                         "_b_answer": rules["answer"].astype("int64").to_numpy()})  # fmt: skip


@register
class SurveyBranching(IbisRule):
    """Remove answers to a follow-up question its parent answer does not lead to."""

    id = "survey_branching"
    purpose = "Remove follow-up answers inconsistent with the parent question's answer."
    reads = writes = (SURVEY,)
    depends_on = ("survey_duplicate_responses", "survey_skip_codes")
    implements = "issue 4; AoU PpiBranching"

    def plan(self, tables, ctx, db):
        s = tables[SURVEY]
        rules = db.lookup("branching", _branching_table(), key=branching())
        opened = s.inner_join(
            rules,
            [s["question_concept_id"] == rules["_b_parent"],
             s["answer_concept_id"] == rules["_b_answer"]],
        ).select(_o_person=s["person_id"], _o_child=rules["_b_child"]).distinct()  # fmt: skip
        children = rules.select(_c_child=rules["_b_child"]).distinct()
        joined = s.left_join(children, s["question_concept_id"] == children["_c_child"]).left_join(
            opened,
            [s["person_id"] == opened["_o_person"],
             s["question_concept_id"] == opened["_o_child"]],
        )  # fmt: skip
        bad = joined["_c_child"].notnull() & joined["_o_child"].isnull()
        return Plan(remove={SURVEY: joined.select(*s.columns, **{REMOVE: bad})})


@register
class SurveyFreeText(IbisRule):
    """Remove free-text answers; an answer that was only text becomes "response removed"."""

    id = "survey_free_text"
    purpose = "Null free-text survey values; text-only answers get the response-removed concept."
    reads = writes = (SURVEY,)
    depends_on = ("survey_skip_codes",)
    implements = "issue 4; AoU FreeTextSurveyResponseSuppression"
    introduces = frozenset({str(RESPONSE_REMOVED)})

    def plan(self, tables, ctx, db):
        s = tables[SURVEY]
        text_only = s["answer_concept_id"].isnull() & s["value_text"].notnull()
        answer = text_only.ifelse(RESPONSE_REMOVED, s["answer_concept_id"])
        return Plan(rewrite={SURVEY: {"answer_concept_id": answer,
                                      "answer_concept_code": _code(answer),
                                      "value_text": ibis.null("string")}})  # fmt: skip

    def problems(self, tables, ctx, db):
        s = tables[SURVEY]
        return ["survey free text left"] if db.count(s.filter(s["value_text"].notnull())) else []


@register
class WearablesConsent(_ExcludedPeople):
    """Remove wearable rows of participants without a current wearables consent."""

    id = "wearables_consent"
    purpose = "Remove wearable data of persons whose latest wearables consent is not a yes."
    reads = writes = WEARABLE_TABLES
    implements = "issue 4; AoU wearables consent (GenerateWearStudyTable, DropViaSurveyConduct)"
    fact, excluded_if = "wearables_consent", False


@register
class FeedDates(IbisRule):
    """Remove survey and wearable rows dated after the cut-off or before the person's birth."""

    id = "feed_dates"
    purpose = "Remove survey answers and wearable days after the cut-off or before birth."
    reads = writes = (SURVEY, *WEARABLE_TABLES)
    implements = "issue 4; AoU EhrSubmissionDataCutoff and NegativeAges for PPI/Fitbit"

    def plan(self, tables, ctx, db):
        remove = {}
        for name, t in tables.items():
            joined = _with_facts(t, ctx, db, "birth_date")
            day = joined["survey_date" if name == SURVEY else "date"]
            wrong = (day > ctx.cutoff).fill_null(False) | (day < joined["_f_birth_date"]).fill_null(
                False
            )
            remove[name] = joined.select(*t.columns, **{REMOVE: wrong})
        return Plan(remove=remove)


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
