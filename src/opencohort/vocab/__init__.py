"""Concepts: ICD-10-CM, ICD-9-CM, LOINC, RxNorm, survey (PPI) codes and phecode maps."""

from opencohort.vocab._ids import ConceptIdCollision, local_concept_id
from opencohort.vocab.build import build_vocabulary, concept_ids, write_vocabulary
from opencohort.vocab.curated import drugs, measurements
from opencohort.vocab.icd import icd9cm_codes, icd10cm_codes
from opencohort.vocab.models import Vocabulary
from opencohort.vocab.phecode import phecode_definitions, phecode_map
from opencohort.vocab.survey import survey_answer_codes, survey_codebook

__all__ = [
    "ConceptIdCollision",
    "Vocabulary",
    "build_vocabulary",
    "concept_ids",
    "drugs",
    "icd10cm_codes",
    "icd9cm_codes",
    "local_concept_id",
    "measurements",
    "phecode_definitions",
    "phecode_map",
    "survey_answer_codes",
    "survey_codebook",
    "write_vocabulary",
]
