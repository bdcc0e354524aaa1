"""Releases for the phenotype and PheWAS tests: a hand-made one and a synthetic program's."""

from __future__ import annotations

import shutil
import subprocess
from datetime import date
from pathlib import Path

import pandas as pd

from opencohort.release import Release
from opencohort.vocab import local_concept_id, measurements

MALE, FEMALE = 8507, 8532
# person: (research id, gender concept, birth date)
PEOPLE = [
    (1, MALE, "1970-01-01"),  # E11.9 on two dates: a 250.2 case
    (2, FEMALE, "1980-05-05"),  # E11.9 twice on one date: neither case nor control
    (3, FEMALE, "1960-03-03"),  # E10.9 (250.1) on two dates: 250.2 excluded from controls
    (4, MALE, "1975-07-07"),  # I10 on two dates: a 250.2 control
    (5, FEMALE, "1950-02-02"),  # C50.911 on two dates; bare ICD-9 '25000' on two dates
    (6, MALE, "1965-06-06"),  # C61 on two dates: a 185 case
    (7, 0, "1990-09-09"),  # unknown sex, I10 on two dates
    (8, FEMALE, "1985-08-08"),  # no EHR row: only a physical measurement
]
CONDITIONS = [
    (1, "ICD10CM", "E11.9", "2020-01-01"), (1, "ICD10CM", "E11.9", "2021-01-01"),
    (2, "ICD10CM", "E11.9", "2020-02-02"), (2, "ICD10CM", "E11.9", "2020-02-02"),
    (3, "ICD10CM", "E10.9", "2019-01-01"), (3, "ICD10CM", "E10.9", "2019-03-01"),
    (4, "ICD10CM", "I10", "2018-01-01"), (4, "ICD10CM", "I10", "2018-02-01"),
    (5, "ICD10CM", "C50.911", "2022-01-01"), (5, "ICD10CM", "C50.911", "2022-04-01"),
    (5, None, "25000", "2014-01-01"), (5, None, "25000", "2014-06-01"),
    (6, "ICD10CM", "C61", "2023-01-01"), (6, "ICD10CM", "C61", "2023-05-01"),
    (7, "ICD10CM", "I10", "2021-01-01"), (7, "ICD10CM", "I10", "2021-07-01"),
]  # fmt: skip


def _measurements() -> pd.DataFrame:
    spec = measurements().set_index("key")
    bmi, ldl, weight = spec.loc["bmi"], spec.loc["ldl"], spec.loc["weight"]
    rows = [  # person, concept, value, unit, date, type
        (1, bmi.concept_id, 30.0, bmi.unit_concept_id, "2020-01-01", 32817),
        (1, bmi.concept_id, 34.0, bmi.unit_concept_id, "2020-06-01", 32817),
        (1, bmi.concept_id, 90.0, weight.unit_concept_id, "2020-07-01", 32817),  # kg: wrong unit
        (4, bmi.concept_id, 25.0, bmi.unit_concept_id, "2018-01-01", 32817),
        (4, bmi.concept_id, 27.0, bmi.unit_concept_id, "2018-02-01", 32817),
        (4, bmi.concept_id, 26.0, bmi.unit_concept_id, "2018-03-01", 32817),
        (4, bmi.concept_id, 500.0, bmi.unit_concept_id, "2018-04-01", 32817),  # implausible
        (4, ldl.concept_id, 120.0, ldl.unit_concept_id, "2018-01-01", 32817),
        (4, ldl.concept_id, 160.0, ldl.unit_concept_id, "2018-02-01", 32817),
        (4, ldl.concept_id, None, ldl.unit_concept_id, "2018-03-01", 32817),  # no value
        (8, bmi.concept_id, 22.0, bmi.unit_concept_id, "2024-01-01", 44818701),  # program PM
    ]
    return pd.DataFrame(
        rows,
        columns=["person_id", "measurement_concept_id", "value_as_number", "unit_concept_id",
                 "measurement_date", "measurement_type_concept_id"],
    ).astype({"measurement_concept_id": "int64", "unit_concept_id": "int64"})  # fmt: skip


def _tables() -> dict[str, pd.DataFrame]:
    person = pd.DataFrame(PEOPLE, columns=["person_id", "gender_concept_id", "birth"])
    person["year_of_birth"] = person["birth"].str[:4].astype(int)
    person["birth_datetime"] = pd.to_datetime(person.pop("birth"))
    cond = pd.DataFrame(CONDITIONS, columns=["person_id", "vocab", "code", "date"])
    cond["condition_source_concept_id"] = [
        local_concept_id(v, c) if v else 0 for v, c in zip(cond["vocab"], cond["code"], strict=True)
    ]
    cond["condition_source_value"] = None
    cond.loc[cond["vocab"].isna(), "condition_source_value"] = cond["code"]
    cond["condition_start_date"] = [date.fromisoformat(d) for d in cond["date"]]
    cond = cond.drop(columns=["vocab", "code", "date"])
    return {"person": person, "condition_occurrence": cond, "measurement": _measurements()}


def hand_release(root: Path, *, ancestry: pd.DataFrame | None = None) -> Release:
    """Write the hand-made release (both tiers hold the same rows) and open it."""
    counts: dict[str, dict[str, int]] = {}
    for tier in ("registered", "controlled"):
        counts[tier] = {}
        for name, frame in _tables().items():
            path = root / tier / "omop" / f"{name}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            frame.to_parquet(path, index=False)
            counts[tier][name] = len(frame)
    if ancestry is not None:
        path = root / "controlled" / "genomics" / "ancestry.parquet"
        path.parent.mkdir(parents=True)
        ancestry.to_parquet(path, index=False)
        counts["controlled"]["ancestry"] = len(ancestry)
    return Release("HAND", root, {"name": "HAND", "row_counts": counts})


def variant_pfile(program: Path, variant_id: str, ids: pd.DataFrame, out: Path) -> Path:
    """A PLINK 2 fileset of one variant of the synthetic genomes, with research ids as IIDs.

    The batch VCFs are merged with bcftools and converted with plink2; samples whose
    participant has no research id, or repeat one, get placeholder ids.
    """
    chrom, pos, _, _ = variant_id.split(":")
    vcfs = sorted(str(p) for p in (program / "genomes").glob(f"batch_*/{chrom}.vcf.gz"))
    merged = out / "variant.vcf.gz"
    subprocess.run(
        [shutil.which("bcftools"), "merge", "-r", f"{chrom}:{pos}", *vcfs, "-Oz", "-o",
         str(merged)], check=True, capture_output=True,
    )  # fmt: skip
    prefix = out / "variant"
    subprocess.run(
        [shutil.which("plink2"), "--vcf", str(merged), "--set-all-var-ids", "@:#:$r:$a",
         "--output-chr", "chr26", "--make-pgen", "--out", str(prefix), "--silent"],
        check=True, capture_output=True,
    )  # fmt: skip
    manifest = pd.read_csv(program / "genomes" / "manifest.csv", dtype=str)
    to_research = dict(zip(ids["participant_id"], ids["research_id"].astype(str), strict=True))
    sample = pd.Series(manifest["participant_id"].map(to_research).to_numpy(),
                       index=manifest["sample_id"].to_numpy())  # fmt: skip
    psam = pd.read_csv(f"{prefix}.psam", sep="\t", dtype=str)
    iid = psam["#IID"].map(sample)
    bad = iid.isna() | iid.duplicated()
    psam["#IID"] = iid.where(~bad, "unmatched_" + psam.index.astype(str))
    psam.to_csv(f"{prefix}.psam", sep="\t", index=False, na_rep="NA")
    return prefix
