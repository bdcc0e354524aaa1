"""Clinical code lists for synthetic EHR: background conditions, drugs, procedures, visits.

Every ICD-10-CM code here is in the FY2024 code list (``opencohort.vocab.icd10cm_codes``) and
none maps to a planted disease's phecode (tests check both). Weights are rough relative
frequencies of US primary-care coding, not measured rates.
"""

from __future__ import annotations

import numpy as np

#: (ICD-10-CM code, relative weight, sex restriction '', 'female' or 'male', chronic?)
BACKGROUND_CONDITIONS: tuple[tuple[str, float, str, bool], ...] = (
    ("I10", 10.0, "", True),
    ("E78.5", 6.0, "", True),
    ("K21.9", 4.0, "", True),
    ("F32.9", 3.0, "", True),
    ("F41.1", 2.0, "", True),
    ("F41.9", 2.0, "", True),
    ("G43.909", 1.5, "", True),
    ("M54.50", 3.0, "", False),
    ("M25.561", 1.5, "", False),
    ("M17.11", 1.2, "", True),
    ("J06.9", 5.0, "", False),
    ("J02.9", 2.0, "", False),
    ("J01.90", 1.5, "", False),
    ("J20.9", 1.5, "", False),
    ("N39.0", 2.0, "", False),
    ("R05.9", 2.0, "", False),
    ("R51.9", 1.5, "", False),
    ("R10.9", 2.0, "", False),
    ("R53.83", 1.5, "", False),
    ("R42", 1.0, "", False),
    ("R07.9", 1.5, "", False),
    ("Z00.00", 5.0, "", False),
    ("Z23", 4.0, "", False),
    ("Z79.899", 3.0, "", True),
    ("E66.9", 3.0, "", True),
    ("E55.9", 2.0, "", True),
    ("D64.9", 1.5, "", True),
    ("K59.00", 1.0, "", False),
    ("K58.9", 1.0, "", True),
    ("L30.9", 1.0, "", False),
    ("H10.9", 0.8, "", False),
    ("G47.33", 1.5, "", True),
    ("G47.00", 1.5, "", True),
    ("M79.7", 0.8, "", True),
    ("M81.0", 1.0, "female", True),
    ("B34.9", 1.0, "", False),
    ("U07.1", 1.0, "", False),
    ("Z87.891", 2.0, "", True),
    ("F17.210", 1.5, "", True),
    ("F10.10", 0.5, "", True),
    ("J30.9", 2.0, "", True),
    ("J44.9", 1.0, "", True),
    ("I48.91", 0.8, "", True),
    ("I50.9", 0.6, "", True),
    ("K76.0", 1.0, "", True),
    ("K57.30", 0.8, "", True),
    ("N40.0", 1.5, "male", True),
    ("N95.1", 1.0, "female", True),
    ("N92.0", 0.8, "female", False),
    ("R19.7", 1.0, "", False),
    ("R11.2", 0.8, "", False),
    ("S93.401A", 0.5, "", False),
    ("M54.2", 1.0, "", False),
    ("H66.90", 0.5, "", False),
    ("L03.90", 0.5, "", False),
    ("R50.9", 0.8, "", False),
)
#: Code used when a sampled background code does not fit the person's sex.
NEUTRAL_CONDITION = "J06.9"
#: Trait-driven chronic codes: obesity for BMI >= 30, hyperlipidaemia for LDL >= 160.
OBESITY, HYPERLIPIDEMIA = "E66.9", "E78.5"
#: Strings a site might send that are not ICD-10-CM codes (all checked absent from the list).
INVALID_ICD = ("E11.99X", "R69.XX", "ICD10:UNK", "Z99.999", "I25.1O", "M10.9Z", "J45.9090")
#: Background drugs (keys of ``opencohort.vocab.drugs()``) and relative weights.
BACKGROUND_DRUGS: tuple[tuple[str, float], ...] = (
    ("lisinopril", 6.0),
    ("amlodipine", 5.0),
    ("hydrochlorothiazide", 3.0),
    ("metoprolol", 3.0),
    ("omeprazole", 5.0),
    ("sertraline", 3.0),
    ("citalopram", 2.0),
    ("ibuprofen", 5.0),
    ("acetaminophen", 5.0),
    ("codeine", 1.0),
    ("ondansetron", 1.5),
    ("simvastatin", 2.0),
    ("warfarin", 0.8),
    ("clopidogrel", 0.8),
)
STATINS = ("atorvastatin", "simvastatin", "rosuvastatin")
#: (CPT/HCPCS code, relative weight): office visits, labs, ECG, imaging, vaccines.
PROCEDURES: tuple[tuple[str, float], ...] = (
    ("99213", 10.0),
    ("99214", 6.0),
    ("36415", 6.0),
    ("80053", 3.0),
    ("80061", 3.0),
    ("83036", 2.0),
    ("85025", 3.0),
    ("93000", 1.5),
    ("71046", 1.0),
    ("90471", 1.5),
    ("90686", 1.5),
    ("G0439", 1.0),
)
#: (visit concept id, source value, relative weight, typical length in days).
VISITS: tuple[tuple[int, str, float, int], ...] = (
    (9202, "OP", 0.85, 0),
    (9203, "ER", 0.10, 0),
    (9201, "IP", 0.05, 4),
)
#: Smoking-status observations: LOINC 72166-2 with these answer strings and weights.
SMOKING_LOINC = "72166-2"
SMOKING_STATUS: tuple[tuple[str, float], ...] = (
    ("Never smoker", 0.58),
    ("Former smoker", 0.28),
    ("Current every day smoker", 0.10),
    ("Current some day smoker", 0.04),
)
#: Measurement keys and weights for a visit's vitals and labs.
MEASUREMENT_MIX: tuple[tuple[str, float], ...] = (
    ("weight", 0.15),
    ("height", 0.04),
    ("bmi", 0.12),
    ("systolic_bp", 0.13),
    ("diastolic_bp", 0.13),
    ("heart_rate", 0.11),
    ("temperature", 0.06),
    ("glucose", 0.04),
    ("hba1c", 0.03),
    ("ldl", 0.03),
    ("hdl", 0.03),
    ("triglycerides", 0.03),
    ("total_cholesterol", 0.03),
    ("creatinine", 0.02),
    ("egfr", 0.02),
    ("hemoglobin", 0.03),
)


def weights(pairs: tuple[tuple, ...], column: int = 1) -> np.ndarray:
    """Normalised weights from one column of a code table."""
    w = np.array([p[column] for p in pairs], dtype=float)
    return w / w.sum()
