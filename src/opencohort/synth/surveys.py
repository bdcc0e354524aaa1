"""Survey answers (The Basics, Lifestyle, Overall Health) coded with the program codebook.

Questions and answers are found in ``opencohort.vocab.survey_codebook()`` by their text; the
mapping tables below say which answer each frame category gives. The Basics answers agree
with the participant frame; other answers are drawn plausibly from age, sex, income and
disability, with the codebook's obvious branching (follow-ups only after a "yes").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import numpy as np
import pandas as pd

from opencohort.synth._random import batch_index, batch_rng, categorical, day_numbers, to_dates
from opencohort.synth.models import SynthConfig
from opencohort.synth.participants import multiple_race_pairs
from opencohort.vocab import survey_codebook

_STREAM_SURVEYS = 31

BASICS = "The Basics"
LIFESTYLE = "Lifestyle"
OVERALL_HEALTH = "Overall Health"
#: PMI_Skip, the program's answer concept for a skipped question (not in omopsurvey's codebook).
SKIP_ANSWER = 903096
#: Share of optional questions skipped.
QUESTION_SKIP = 0.015

#: The Basics sexual-orientation question is missing from omopsurvey's codebook; these are the
#: program's PPI concepts (TheBasics_SexualOrientation and SexualOrientation_* answers).
SEXUAL_ORIENTATION_QUESTION = 1585899
SEXUAL_ORIENTATION_ANSWERS = {
    "straight": 1585900,
    "gay": 1585901,
    "lesbian": 1585902,
    "bisexual": 1585903,
    "none_of_these": 1585904,
}

#: Frame column -> (Basics question text, {category: answer text or (texts, weights)}).
BASICS_MAPPING: dict[str, tuple[str, dict[str, str | tuple[tuple[str, ...], tuple[float, ...]]]]]
BASICS_MAPPING = {
    "race_ethnicity": (
        "Race: What Race Ethnicity",
        {
            "white": "White",
            "black": "Black",
            "hispanic": "Hispanic",
            "asian": "Asian",
            "aian": "AIAN",
            "nhpi": "NHPI",
            "mena": "MENA",
            "none_of_these": "Race Ethnicity None Of These",
        },
    ),
    "sex_at_birth": (
        "Biological Sex At Birth: Sex At Birth",
        {
            "female": "Female",
            "male": "Male",
            "intersex": "Intersex",
            "none_of_these": "Sex At Birth None Of These",
        },
    ),
    "gender_identity": (
        "Gender: Gender Identity",
        {
            "woman": "Woman",
            "man": "Man",
            "non_binary": "Non Binary",
            "transgender": "Transgender",
            "additional": "Additional Options",
        },
    ),
    "education": (
        "Education Level: Highest Grade",
        {
            "less_than_high_school": (
                ("Never Attended", "One Through Four", "Five Through Eight", "Nine Through Eleven"),
                (0.03, 0.07, 0.25, 0.65),
            ),
            "high_school": "Twelve Or GED",
            "some_college": "College One to Three",
            "college": "College Graduate",
            "advanced": "Advanced Degree",
        },
    ),
    "income": (
        "Income: Annual Income",
        {
            "lt_10k": "less 10k",
            "10k_25k": "10k 25k",
            "25k_35k": "25k 35k",
            "35k_50k": "35k 50k",
            "50k_75k": "50k 75k",
            "75k_100k": "75k 100k",
            "100k_150k": "100k 150k",
            "150k_200k": "150k 200k",
            "gt_200k": "more 200k",
        },
    ),
    "employment": (
        "Employment: Employment Status",
        {
            "employed": "Employed For Wages",
            "self_employed": "Self Employed",
            "unemployed": (("Out Of Work One Or More", "Out Of Work Less Than One"), (0.5, 0.5)),
            "student": "Student",
            "homemaker": "Homemaker",
            "retired": "Retired",
            "unable_to_work": "Unable To Work",
        },
    ),
}
#: The six Basics disability questions; a disabled person answers Yes to at least one.
DISABILITY_QUESTIONS = [
    "Disability: Deaf",
    "Disability: Blind",
    "Disability: Difficulty Concentrating",
    "Disability: Walking Climbing",
    "Disability: Dressing Bathing",
    "Disability: Errands Alone",
]
#: Lifestyle recreational drugs and the follow-up question asking how often, in 3 months.
DRUG_FOLLOW_UPS = {
    "Cocaine Use": "Past 3 Month Use Frequency: Cocaine 3 Month Use",
    "Hallucinogens Use": "Past 3 Month Use Frequency: Hallucinogen 3 Month Use",
    "Inhalants Use": "Past 3 Month Use Frequency: Inhalant 3 Month Use",
    "Marijuana Use": "Past 3 Month Use Frequency: Marijuana 3 Month Use",
    "Methamphetamine Use": "Past 3 Month Use Frequency: Other Stimulant 3 Month Use",
    "Prescription Opioids Use": "Past 3 Month Use Frequency: Prescription Opioid 3 Month Use",
    "Prescription Stimulants Use": (
        "Past 3 Month Use Frequency: Prescription Stimulant 3 Month Use"
    ),
    "Sedatives Use": "Past 3 Month Use Frequency: Sedative 3 Month Use",
    "Street Opioids Use": "Past 3 Month Use Frequency: Street Opioid 3 Month Use",
    "Other Specify": "Past 3 Month Use Frequency: Other 3 Month Use",
}
_DRUG_WEIGHTS = (0.05, 0.06, 0.01, 0.62, 0.02, 0.08, 0.04, 0.05, 0.02, 0.05)
_OTHER_DRUG_TEXT = np.array(["kratom", "ketamine", "salvia", "poppers", "DMT"], dtype=object)
_OTHER_GENDER_TEXT = np.array(["demigender", "agender", "bigender", "questioning"], dtype=object)

SURVEY_COLUMNS = [
    "participant_id",
    "module_concept_id",
    "module",
    "question_concept_id",
    "answer_concept_id",
    "value_text",
    "value_number",
    "authored_date",
]


@dataclass(frozen=True)
class _Question:
    """One codebook question: its id and its answers ordered by answer_numeric."""

    module_id: int
    question_id: int
    labels: tuple[str, ...]
    answer_ids: np.ndarray

    def answer(self, label: str) -> int:
        """Return the answer concept id whose label (text after the colon) is `label`."""
        return int(self.answer_ids[self.labels.index(label)])


@cache
def _questions() -> dict[tuple[str, str], _Question]:
    """Index the three modules' questions by (module name, question text)."""
    book = survey_codebook()
    book = book[book["mod_concept_name"].isin([BASICS, LIFESTYLE, OVERALL_HEALTH])].copy()
    book["label"] = book["answer"].str.split(": ", n=1).str[1]
    book = book.sort_values(["question_concept_id", "answer_numeric", "answer_concept_id"])
    book = book.drop_duplicates(["question_concept_id", "answer_numeric"])
    out = {}
    for (module, name), rows in book.groupby(["mod_concept_name", "question_concept_name"]):
        out[(module, name)] = _Question(
            module_id=int(rows["mod_concept_id"].iloc[0]),
            question_id=int(rows["question_concept_id"].iloc[0]),
            labels=tuple(rows["label"]),
            answer_ids=rows["answer_concept_id"].to_numpy(dtype=np.int64),
        )
    return out


@cache
def module_ids() -> dict[str, int]:
    """Return the module concept id of The Basics, Lifestyle and Overall Health."""
    return {module: q.module_id for (module, _), q in _questions().items()}


def _question(module: str, name: str) -> _Question:
    return _questions()[(module, name)]


@dataclass
class _Block:
    """Answers collected for one module, as parallel arrays."""

    module: str
    rows: list[np.ndarray] = field(default_factory=list)
    questions: list[np.ndarray] = field(default_factory=list)
    answers: list[np.ndarray] = field(default_factory=list)
    texts: list[np.ndarray] = field(default_factory=list)

    def add(
        self,
        rows: np.ndarray,
        question_id: int,
        answers: np.ndarray,
        text: np.ndarray | None = None,
    ) -> None:
        """Record one answer per row (rows are positions in the batch)."""
        self.rows.append(rows)
        self.questions.append(np.full(len(rows), question_id, dtype=np.int64))
        self.answers.append(np.asarray(answers, dtype=np.int64))
        self.texts.append(np.full(len(rows), None, dtype=object) if text is None else text)


class _Survey:
    """Draws answers for one module, with random question skips."""

    def __init__(self, rng: np.random.Generator, module: str, respondents: np.ndarray) -> None:
        self.rng, self.block, self.respondents = rng, _Block(module), respondents

    def draw(
        self,
        name: str,
        rows: np.ndarray,
        labels: list[str] | tuple[str, ...],
        probs: np.ndarray | list[float],
        *,
        skippable: bool = True,
    ) -> np.ndarray:
        """Answer question `name` for `rows` with the given label probabilities.

        Returns the chosen label per row ("skip" where skipped).
        """
        question = _question(self.block.module, name)
        probs = np.asarray(probs, dtype=np.float64)
        codes = categorical(self.rng.random(len(rows)), probs)
        chosen = np.array(labels, dtype=object)[codes]
        ids = np.array([question.answer(label) for label in labels])[codes]
        if skippable:
            skipped = self.rng.random(len(rows)) < QUESTION_SKIP
            ids[skipped], chosen[skipped] = SKIP_ANSWER, "skip"
        self.block.add(rows, question.question_id, ids)
        return chosen

    def ordinal(self, name: str, rows: np.ndarray, score: np.ndarray) -> np.ndarray:
        """Answer an ordered question (low answer_numeric = low score) from a latent score."""
        question = _question(self.block.module, name)
        cuts = np.array([-1.6, -0.7, 0.3, 1.2, 2.0])[: len(question.labels) - 1]
        level = np.searchsorted(cuts, score[rows] + self.rng.normal(0, 0.6, len(rows)))
        ids = question.answer_ids[level]
        ids[self.rng.random(len(rows)) < QUESTION_SKIP] = SKIP_ANSWER
        self.block.add(rows, question.question_id, ids)
        return level


def _label_table(question: _Question, mapping: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Resolve a category -> label(s) mapping into category -> (answer ids, weights)."""
    table = {}
    for category, target in mapping.items():
        labels, weights = ((target,), (1.0,)) if isinstance(target, str) else target
        table[category] = (np.array([question.answer(t) for t in labels]), np.array(weights))
    return table


def _mapped(survey: _Survey, column: str, frame: pd.DataFrame, rows: np.ndarray) -> None:
    """Answer a Basics question from the frame column via ``BASICS_MAPPING``."""
    name, mapping = BASICS_MAPPING[column]
    question = _question(BASICS, name)
    table = _label_table(question, mapping)
    values = frame[column].to_numpy()[rows]
    ids = np.full(len(rows), SKIP_ANSWER, dtype=np.int64)
    for category, (answer_ids, weights) in table.items():
        hit = values == category
        ids[hit] = answer_ids[categorical(survey.rng.random(int(hit.sum())), weights)]
    survey.block.add(rows, question.question_id, ids)


def _basics(survey: _Survey, frame: pd.DataFrame, seed: int) -> None:
    rng, rows = survey.rng, survey.respondents
    race = frame["race_ethnicity"].to_numpy()[rows]
    multiple = race == "multiple"
    single_rows = rows[~multiple]
    _mapped(survey, "race_ethnicity", frame, single_rows)
    race_question = _question(BASICS, BASICS_MAPPING["race_ethnicity"][0])
    race_ids = _label_table(race_question, BASICS_MAPPING["race_ethnicity"][1])
    pairs = multiple_race_pairs(seed, frame["person_index"].to_numpy()[rows[multiple]])
    for side in (0, 1):
        ids = pd.Series({k: v[0][0] for k, v in race_ids.items()})[pairs[:, side]].to_numpy()
        survey.block.add(rows[multiple], race_question.question_id, ids)

    for column in ("sex_at_birth", "gender_identity", "education", "income", "employment"):
        _mapped(survey, column, frame, rows)
    orientation = frame["sexual_orientation"].to_numpy()[rows]
    ids = pd.Series(SEXUAL_ORIENTATION_ANSWERS).reindex(orientation).fillna(SKIP_ANSWER)
    survey.block.add(rows, SEXUAL_ORIENTATION_QUESTION, ids.to_numpy(dtype=np.int64))

    additional = rows[frame["gender_identity"].to_numpy()[rows] == "additional"]
    labels = ("Two Spirit", "Genderqueer", "Genderfluid", "Gender Variant", "Specified Gender")
    chosen = survey.draw(
        "Gender: Closer Gender Description", additional, labels, [0.1, 0.35, 0.25, 0.1, 0.2]
    )
    texts = np.full(len(additional), None, dtype=object)
    specified = chosen == "Specified Gender"
    texts[specified] = _OTHER_GENDER_TEXT[rng.integers(0, 4, int(specified.sum()))]
    survey.block.texts[-1] = texts

    disabled = frame["disability"].to_numpy()[rows]
    yes = rng.random((len(rows), len(DISABILITY_QUESTIONS))) < 0.25
    yes[np.arange(len(rows)), rng.integers(0, len(DISABILITY_QUESTIONS), len(rows))] = True
    yes &= disabled[:, None]
    refuse = ~disabled[:, None] & (rng.random(yes.shape) < 0.01)
    for k, name in enumerate(DISABILITY_QUESTIONS):
        question = _question(BASICS, name)
        label = np.where(yes[:, k], "Yes", np.where(refuse[:, k], "Prefer Not To Answer", "No"))
        ids = pd.Series(dict(zip(question.labels, question.answer_ids, strict=True)))[label]
        survey.block.add(rows, question.question_id, ids.to_numpy())

    age = _age(frame)[rows]
    low_income = np.isin(frame["income"].to_numpy()[rows], ["lt_10k", "10k_25k", "25k_35k"])
    limited = frame["limited_access_to_care"].to_numpy()[rows]
    p_uninsured = np.where(limited, 0.4, 0.03)
    insured = survey.draw(
        "Insurance: Health Insurance",
        rows,
        ["Yes", "No"],
        np.column_stack([1 - p_uninsured, p_uninsured]),
    )
    covered = rows[insured == "Yes"]
    age_c, low_c = (
        _age(frame)[covered],
        np.isin(frame["income"].to_numpy()[covered], ["lt_10k", "10k_25k", "25k_35k"]),
    )
    labels = (
        "Employer Or Union",
        "Medicare",
        "Government Assistance Plan",
        "Purchased Insurance",
        "Veteran Administration",
        "Tricare Or Military",
        "Indian Health Service",
        "Other Insurance Type",
    )
    old, aian = age_c >= 65, frame["race_ethnicity"].to_numpy()[covered] == "aian"
    probs = np.column_stack(
        [
            np.where(old, 0.15, np.where(low_c, 0.2, 0.65)),
            np.where(old, 0.7, 0.02),
            np.where(low_c, 0.5, 0.08),
            np.full(len(covered), 0.12),
            np.full(len(covered), 0.03),
            np.full(len(covered), 0.02),
            np.where(aian, 0.3, 0.0),
            np.full(len(covered), 0.02),
        ]
    )
    survey.draw("Insurance: Insurance Type", covered, labels, probs)

    marital = (
        "Married",
        "Living With Partner",
        "Separated",
        "Divorced",
        "Widowed",
        "Never Married",
    )
    young, elderly = age < 30, age >= 70
    probs = np.column_stack(
        [
            np.where(young, 0.2, 0.5),
            np.where(young, 0.15, 0.07),
            np.full(len(rows), 0.03),
            np.where(young, 0.02, 0.14),
            np.where(elderly, 0.25, 0.03),
            np.where(young, 0.6, 0.13),
        ]
    )
    survey.draw("Marital Status: Current Marital Status", rows, marital, probs)
    own = np.where(low_income, 0.3, 0.65)
    survey.draw(
        "Home Own: Current Home Own",
        rows,
        ["Own", "Rent", "Other Arrangement"],
        np.column_stack([own, 0.92 - own, np.full(len(rows), 0.08)]),
    )
    concern_p = np.where(low_income, 0.2, 0.05)
    concern = survey.draw(
        "Living Situation: Stable House Concern",
        rows,
        ["Yes", "No"],
        np.column_stack([concern_p, 1 - concern_p]),
    )
    unstable = rows[concern == "Yes"]
    survey.draw(
        "Living Situation: Current Living",
        unstable,
        ["Family", "Friend", "Shelter", "Transitional", "Motel Hotel", "Outside"],
        [0.45, 0.2, 0.1, 0.1, 0.1, 0.05],
    )
    survey.draw(
        "Living Situation: How Many Living Years",
        rows,
        ["less 1", "1 to 2", "3 to 5", "6 to 10", "11 to 20", "more 20"],
        [0.1, 0.15, 0.2, 0.2, 0.2, 0.15],
    )
    survey.draw("Active Duty: Active Duty Serve Status", rows, ["Yes", "No"], [0.08, 0.92])


def _age(frame: pd.DataFrame) -> np.ndarray:
    days = day_numbers(frame["sign_up_date"].to_numpy()) - day_numbers(
        frame["birth_date"].to_numpy()
    )
    return days / 365.25


def _frequency(survey: _Survey, name: str, rows: np.ndarray, regular: np.ndarray) -> np.ndarray:
    """Ask an "every day / some days / not at all" follow-up; regular users use more."""
    p_daily = np.where(regular, 0.5, 0.15)
    probs = np.column_stack([p_daily, np.full(len(rows), 0.2), 0.8 - p_daily])
    return survey.draw(name, rows, ["Every Day", "Some Days", "Not At All"], probs)


def _lifestyle(survey: _Survey, frame: pd.DataFrame) -> None:
    rng, rows = survey.rng, survey.respondents
    male = frame["sex_at_birth"].to_numpy()[rows] == "male"
    age = _age(frame)[rows]
    p_smoked = 0.28 + 0.1 * male + 0.08 * (age > 50)
    smoked = survey.draw(
        "Smoking: 100 Cigs Lifetime", rows, ["Yes", "No"], np.column_stack([p_smoked, 1 - p_smoked])
    )
    smokers = rows[smoked == "Yes"]
    frequency = _frequency(
        survey, "Smoking: Smoke Frequency", smokers, rng.random(len(smokers)) < 0.35
    )
    current = smokers[np.isin(frequency, ["Every Day", "Some Days"])]
    survey.draw(
        "Smoking: Serious Quit Attempt",
        current,
        ["Attempt Quit Smoking", "No Attempt Quit Smoking"],
        [0.55, 0.45],
    )
    others = [
        ("Electronic Smoking: Electric Smoke", np.where(age < 35, 0.3, 0.1)),
        ("Cigar Smoking: Cigar Smoke", np.where(male, 0.2, 0.05)),
        ("Hookah Smoking: Hookah Smoke", np.where(age < 35, 0.15, 0.03)),
        ("Smokeless Tobacco: Smokeless Tobacco", np.where(male, 0.09, 0.01)),
    ]
    follow_up_names = {
        "Electronic Smoking: Electric Smoke": "Electronic Smoking: Electric Smoke Frequency",
        "Cigar Smoking: Cigar Smoke": "Cigar Smoking: Current Cigar Frequency",
        "Hookah Smoking: Hookah Smoke": "Hookah Smoking: Current Hookah Frequency",
        "Smokeless Tobacco: Smokeless Tobacco": ("Smokeless Tobacco: Smokeless Tobacco Frequency"),
    }
    for stem, p_yes in others:
        answered = survey.draw(
            f"{stem} Participant", rows, ["Yes", "No"], np.column_stack([p_yes, 1 - p_yes])
        )
        users = rows[answered == "Yes"]
        _frequency(survey, follow_up_names[stem], users, rng.random(len(users)) < 0.2)

    drinks = survey.draw("Alcohol: Alcohol Participant", rows, ["Yes", "No"], [0.8, 0.2])
    drinkers = rows[drinks == "Yes"]
    how_often = survey.draw(
        "Alcohol: Drink Frequency Past Year",
        drinkers,
        ["Never", "Monthly Or Less", "2 to 4 Per Month", "2 to 3 Per Week", "4 or More Per Week"],
        [0.08, 0.32, 0.25, 0.2, 0.15],
    )
    current = drinkers[~np.isin(how_often, ["Never", "skip"])]
    survey.draw(
        "Alcohol: Average Daily Drink Count",
        current,
        ["1 or 2", "3 or 4", "5 or 6", "7 to 9", "10 or More"],
        [0.68, 0.2, 0.07, 0.03, 0.02],
    )
    survey.draw(
        "Alcohol: 6 or More Drinks Occurrence",
        current,
        ["Never In Last Year", "Less Than Monthly", "Monthly", "Weekly", "Daily"],
        [0.5, 0.28, 0.12, 0.08, 0.02],
    )
    _drugs(survey, rows, age)


def _drugs(survey: _Survey, rows: np.ndarray, age: np.ndarray) -> None:
    """Ask which drugs were ever used (select all) and follow up on each one."""
    rng = survey.rng
    question = _question(LIFESTYLE, "Recreational Drug Use: Which Drugs Used")
    users = rng.random(len(rows)) < np.where(age < 40, 0.4, 0.25)
    first = categorical(rng.random(len(rows)), np.array(_DRUG_WEIGHTS))
    second = categorical(rng.random(len(rows)), np.array(_DRUG_WEIGHTS))
    has_second = users & (rng.random(len(rows)) < 0.3) & (second != first)
    none_id = question.answer("None Of These Drugs")
    drug_names = list(DRUG_FOLLOW_UPS)
    drug_ids = np.array([question.answer(name) for name in drug_names])
    survey.block.add(rows, question.question_id, np.where(users, drug_ids[first], none_id))
    survey.block.add(rows[has_second], question.question_id, drug_ids[second[has_second]])
    taken = np.concatenate([rows[users], rows[has_second]])
    drug = np.concatenate([first[users], second[has_second]])
    for code, name in enumerate(drug_names):
        who = taken[drug == code]
        chosen = survey.draw(
            DRUG_FOLLOW_UPS[name],
            who,
            [
                "Never",
                "Once Or Twice" if name != "Marijuana Use" else "One Or Twice",
                "Monthly",
                "Weekly",
                "Daily",
            ],
            [0.6, 0.2, 0.08, 0.07, 0.05],
        )
        if name == "Other Specify":
            texts = np.full(len(who), None, dtype=object)
            named = chosen != "skip"
            texts[named] = _OTHER_DRUG_TEXT[rng.integers(0, 5, int(named.sum()))]
            survey.block.texts[-1] = texts


def _overall_health(survey: _Survey, frame: pd.DataFrame) -> None:
    rng, rows = survey.rng, survey.respondents
    n = len(frame)
    age = _age(frame)
    low_income = np.isin(frame["income"].to_numpy(), ["lt_10k", "10k_25k", "25k_35k"])
    health = (
        rng.normal(0.6, 0.9, n)
        - 0.015 * (age - 50)
        - 0.9 * frame["disability"].to_numpy()
        - 0.35 * low_income
    )
    literacy = rng.normal(1.0, 0.9, n) - 0.8 * np.isin(
        frame["education"].to_numpy(), ["less_than_high_school", "high_school"]
    )
    for name in (
        "General Health",
        "General Quality",
        "General Physical Health",
        "General Mental Health",
        "Social Satisfaction",
        "General Social",
        "Everyday Activities",
    ):
        survey.ordinal(f"Overall Health: {name}", rows, health)
    for name in ("Average Fatigue 7 Days", "Emotional Problem 7 Days"):
        survey.ordinal(f"Overall Health: {name}", rows, -health)
    survey.ordinal("Overall Health: Medical Form Confidence", rows, literacy)
    for name in ("Health Material Assistance", "Difficult Understand Info"):
        survey.ordinal(f"Overall Health: {name}", rows, -literacy - 1.0)

    female = rows[frame["sex_at_birth"].to_numpy()[rows] == "female"]
    age_f = age[female]
    stopped = np.clip((age_f - 42) / 14, 0, 1)
    survey.draw(
        "Overall Health: Menstrual Stopped",
        female,
        ["Periods Havent Stopped", "Yes None", "Yes But Hormone", "Not Sure Menstrual Stopped"],
        np.column_stack(
            [0.98 * (1 - stopped), 0.85 * stopped, 0.13 * stopped, np.full(len(female), 0.02)]
        ),
    )
    p_hyst = np.clip(0.01 + 0.006 * (age_f - 30), 0.01, 0.35)
    hysterectomy = survey.draw(
        "Overall Health: Hysterectomy History",
        female,
        ["Yes", "No", "Not Sure"],
        np.column_stack([p_hyst, 0.99 - p_hyst, np.full(len(female), 0.01)]),
    )
    survey.draw(
        "Overall Health: Ovary Removal History",
        female[hysterectomy == "Yes"],
        ["No", "Yes Both", "Yes Sectioned", "Yes Unsure", "Not Sure"],
        [0.45, 0.35, 0.1, 0.05, 0.05],
    )
    survey.draw("Overall Health: Organ Transplant", rows, ["Yes", "No"], [0.01, 0.99])
    survey.draw(
        "Overall Health: Outside Travel 6 Month",
        rows,
        ["Yes", "No", "Dont Know"],
        [0.2, 0.78, 0.02],
    )


def survey_answers(batch: pd.DataFrame, config: SynthConfig) -> pd.DataFrame:
    """Return the survey answers of a participant batch in long format.

    Parameters
    ----------
    batch
        A participant batch frame (``participant_batch``).
    config
        Program options (seed, batch size).

    Returns
    -------
    pandas.DataFrame
        One row per answer: participant_id, module_concept_id, module (name),
        question_concept_id, answer_concept_id, value_text (free text after "Other
        Specify"-style answers, else missing), value_number (missing: no numeric free-form
        question in these modules) and authored_date (the module's completion date).

    Notes
    -----
    1. The Basics answers restate the frame: race (two rows for "multiple"), sex at birth,
       gender identity, sexual orientation, education, income, employment and disability
       (at least one "Yes" among six questions when disabled); "skip" gives PMI_Skip.
    2. Other answers depend on age, sex at birth, income, education and disability; follow-up
       questions are asked only after the answer that opens them.
    """
    index = batch_index(batch["person_index"].to_numpy(), config)
    rng = batch_rng(config, _STREAM_SURVEYS, index)
    frame = batch.reset_index(drop=True)
    modules = [
        (BASICS, "basics_date", lambda s: _basics(s, frame, config.seed)),
        (LIFESTYLE, "lifestyle_date", lambda s: _lifestyle(s, frame)),
        (OVERALL_HEALTH, "overall_health_date", lambda s: _overall_health(s, frame)),
    ]
    rows, order, questions, answers, texts, authored = [], [], [], [], [], []
    for number, (module, date_column, fill) in enumerate(modules):
        dates = day_numbers(frame[date_column].to_numpy())
        survey = _Survey(rng, module, np.flatnonzero(~np.isnan(dates)))
        fill(survey)
        block_rows = _concat(survey.block.rows, np.int64)
        rows.append(block_rows)
        order.append(np.full(len(block_rows), number, dtype=np.int64))
        questions.append(_concat(survey.block.questions, np.int64))
        answers.append(_concat(survey.block.answers, np.int64))
        texts.append(_concat(survey.block.texts, object))
        authored.append(dates[block_rows])
    row, module_code = np.concatenate(rows), np.concatenate(order)
    sort = np.lexsort((module_code, row))
    names = np.array([m[0] for m in modules], dtype=object)
    ids = np.array([module_ids()[m[0]] for m in modules], dtype=np.int64)
    return pd.DataFrame(
        {
            "participant_id": frame["participant_id"].to_numpy()[row[sort]],
            "module_concept_id": ids[module_code[sort]],
            "module": names[module_code[sort]],
            "question_concept_id": np.concatenate(questions)[sort],
            "answer_concept_id": np.concatenate(answers)[sort],
            "value_text": np.concatenate(texts)[sort],
            "value_number": np.full(len(sort), np.nan),
            "authored_date": to_dates(np.concatenate(authored)[sort]),
        }
    )


def _concat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(parts).astype(dtype) if parts else np.empty(0, dtype=dtype)
