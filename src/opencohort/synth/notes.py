"""Templated free-text clinical notes, some of which quote a direct identifier.

Notes are the one place where free text reaches the program; curation must strip them from every
tier. A configurable share quotes the patient's name, phone number or medical record number, the
identifiers a de-identification step has to catch.
"""

from __future__ import annotations

import numpy as np

IDENTIFIER_KINDS = ("name", "phone", "mrn")
_TITLES = {"OP": "Progress note", "ER": "Emergency department note", "IP": "Discharge summary"}
_COMPLAINTS = np.array(
    [
        "follow-up of chronic conditions",
        "medication refill",
        "fatigue",
        "cough and congestion",
        "joint pain",
        "abdominal discomfort",
        "routine check-up",
        "shortness of breath on exertion",
        "headache",
        "review of lab results",
    ],
    dtype=object,
)
_PLANS = np.array(
    [
        "continue current medications",
        "start new medication as discussed",
        "order labs and review at next visit",
        "lifestyle counselling on diet and exercise",
        "refer to specialist",
        "no change to treatment",
    ],
    dtype=object,
)


def build_notes(
    visit_source: np.ndarray,
    assessment: np.ndarray,
    first_name: np.ndarray,
    last_name: np.ndarray,
    phone: np.ndarray,
    mrn: np.ndarray,
    rng: np.random.Generator,
    *,
    identifier_rate: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Write one templated note per visit, quoting an identifier in a share of them.

    Parameters
    ----------
    visit_source
        Visit kind per note ('OP', 'ER' or 'IP').
    assessment
        Text of the visit's main diagnosis per note.
    first_name, last_name, phone, mrn
        The person's identifiers as the site knows them, per note.
    rng
        Random generator.
    identifier_rate
        Probability that a note quotes one identifier (name, phone or MRN, equally likely).

    Returns
    -------
    tuple of numpy.ndarray
        Titles, texts and the quoted identifier kind per note ('' when none), as object arrays.
    """
    n = len(visit_source)
    kinds_seen, which = np.unique(np.asarray(visit_source).astype(str), return_inverse=True)
    title = np.array([_TITLES.get(v, "Clinical note") for v in kinds_seen], dtype=object)[which]
    quote = rng.random(n) < identifier_rate
    kind_code = rng.integers(0, len(IDENTIFIER_KINDS), n)
    kinds = np.where(quote, np.array(IDENTIFIER_KINDS, dtype=object)[kind_code], "").astype(object)
    opener = np.full(n, "Patient seen today.", dtype=object)
    name = quote & (kind_code == 0)
    opener[name] = "Patient " + first_name[name] + " " + last_name[name] + " seen today."
    tel = quote & (kind_code == 1)
    opener[tel] = "Patient seen today; callback number " + phone[tel] + "."
    rec = quote & (kind_code == 2)
    opener[rec] = "Patient seen today (MRN " + mrn[rec] + ")."
    weeks = rng.integers(2, 13, n).astype(str).astype(object)
    text = (
        title
        + ". "
        + opener
        + " Chief complaint: "
        + _COMPLAINTS[rng.integers(0, len(_COMPLAINTS), n)]
        + ". Assessment: "
        + np.asarray(assessment, dtype=object)
        + ". Vitals reviewed. Plan: "
        + _PLANS[rng.integers(0, len(_PLANS), n)]
        + ". Follow up in "
        + weeks
        + " weeks."
    )
    return title.astype(object), text.astype(object), kinds
