"""Concepts: ICD-10-CM, ICD-9-CM, LOINC, RxNorm, survey codes and phecode maps."""

from opencohort.vocab.curated import drugs, measurements
from opencohort.vocab.survey import survey_codebook

__all__ = ["drugs", "measurements", "survey_codebook"]
