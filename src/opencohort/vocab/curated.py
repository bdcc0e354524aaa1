"""Curated real LOINC measurements and RxNorm ingredients used across the program."""

from __future__ import annotations

from functools import cache
from importlib import resources

import pandas as pd


def _read(name: str) -> pd.DataFrame:
    with resources.files("opencohort.vocab").joinpath("curated", name).open("rb") as fh:
        return pd.read_csv(fh, dtype={"loinc": str, "rxnorm": str, "pgx_genes": str})


@cache
def measurements() -> pd.DataFrame:
    """Measurements we simulate and curate: key, LOINC code, OMOP concept id, UCUM unit, ranges.

    ``low``/``high`` bound typical values; ``plausible_low``/``plausible_high`` bound what a
    human can have (outside them a value is implausible).
    """
    return _read("measurements.csv")


@cache
def drugs() -> pd.DataFrame:
    """Drug ingredients we simulate: key, RxNorm code, OMOP concept id, pharmacogenes."""
    return _read("drugs.csv").fillna({"pgx_genes": ""})
