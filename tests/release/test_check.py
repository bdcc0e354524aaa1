"""``release check``: a clean release passes; each kind of breakage is found and named."""

from __future__ import annotations

import shutil
from datetime import date

import pandas as pd
from typer.testing import CliRunner

from opencohort.ingest import latest_submission, read_submission
from opencohort.registry import WithdrawalStatus, open_registry, withdraw
from opencohort.release.check import check_release
from opencohort.release.cli import release
from opencohort.release.manifest import MANIFEST, load_manifest, write_manifest

from .conftest import CUTOFF


def _copy(home, name: str, change) -> str:
    """Publish a copy of R1 as `name` with `change(label, frame)` applied, manifest rewritten."""
    target = home.releases / name
    shutil.copytree(home.releases / "R1", target)
    for path in [target, *target.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    for path in sorted(target.rglob("*.parquet")):
        label = f"{path.relative_to(target).parts[0]}/{path.stem}"
        changed = change(label, pd.read_parquet(path))
        if changed is not None:
            changed.to_parquet(path, index=False)
    manifest = load_manifest(target)
    (target / MANIFEST).unlink()
    write_manifest(target, {k: v for k, v in manifest.items() if k != "files"} | {"name": name})
    return name


def _only(label: str, edit):
    return lambda at, frame: edit(frame.copy()) if at == label else None


def test_check_release__clean_release_passes(home, r1):
    assert check_release(home, "R1") == []


def test_check_release__unshifted_registered_dates_found(home, r1):
    controlled = pd.read_parquet(home.releases / "R1/controlled/omop/condition_occurrence.parquet")
    name = _copy(home, "T-dates", _only("registered/condition_occurrence", lambda f: controlled))
    problems = check_release(home, name)
    assert any("condition_start_date" in p and "shift" in p for p in problems), problems


def test_check_release__missing_registered_person_found(home, r1):
    def drop_young(frame):
        young = pd.to_datetime(frame["birth_datetime"]).dt.year > 1960
        return frame.drop(frame.index[young][:1])

    name = _copy(home, "T-person", _only("registered/person", drop_young))
    problems = check_release(home, name)
    assert any("under 89 are not registered" in p for p in problems), problems


def test_check_release__registered_person_aged_89_found(home, r1):
    def make_old(frame):  # 91 years before the cut-off, minus a shift of at most 364 days
        frame = frame.copy()
        frame.loc[frame.index[0], "birth_datetime"] = pd.Timestamp(CUTOFF.year - 91, 1, 1)
        return frame

    problems = check_release(home, _copy(home, "T-old", _only("registered/person", make_old)))
    assert any("registered persons are 89+" in p for p in problems), problems


def test_check_release__controlled_only_person_of_the_89th_birth_year_allowed(home, r1):
    """Year of birth alone cannot tell 88 from 89: such a person may be left out of Registered."""
    first = pd.read_parquet(home.releases / "R1/registered/omop/person.parquet")["person_id"][0]

    def edit(years):
        def change(label, frame):
            if label == "registered/person":
                return frame[frame["person_id"] != first]
            if label == "controlled/person":
                at = frame["person_id"] == first
                return frame.assign(year_of_birth=frame["year_of_birth"].where(~at, years))
            return None

        return change

    ambiguous = check_release(home, _copy(home, "T-89", edit(CUTOFF.year - 89)))
    young = check_release(home, _copy(home, "T-88", edit(CUTOFF.year - 88)))
    assert not any("under 89" in p for p in ambiguous), ambiguous
    assert any("1 controlled persons under 89 are not registered" in p for p in young), young


def test_check_release__birth_dates_and_raw_pii_found(home, r1):
    site = sorted(p.name for p in (home.raw / "ehr").iterdir())[0]
    _, tables = read_submission(latest_submission(home, site))
    names = tables["pii_name"].frame
    planted = f"seen {names['first_name'].iloc[0]} {names['last_name'].iloc[0]} today"
    zip5 = tables["location"].frame["zip"].dropna().astype(str).iloc[0][:5]

    def plant(label, frame):
        if label == "registered/person":
            return frame.assign(month_of_birth=1, day_of_birth=2)
        if label == "controlled/observation" and len(frame):
            frame = frame.copy()
            frame["observation_source_value"] = frame["observation_source_value"].astype(object)
            frame.loc[frame.index[0], "observation_source_value"] = planted
            frame.loc[frame.index[-1], "observation_source_value"] = f"zip {zip5}"
            return frame
        return None

    problems = check_release(home, _copy(home, "T-pii", plant))
    assert any("month or day of birth" in p for p in problems), problems
    assert any("direct identifier" in p and "observation" in p for p in problems), problems
    assert any("five-digit ZIP" in p for p in problems), problems
    assert not any(planted in p or zip5 in p for p in problems)


def test_check_release__phone_digits_in_a_number_column_found(home, r1):
    site = sorted(p.name for p in (home.raw / "ehr").iterdir())[0]
    _, tables = read_submission(latest_submission(home, site), only=["pii_phone_number"])
    phone = tables["pii_phone_number"].frame["phone_number"].dropna().iloc[0]
    digits = float("".join(c for c in phone if c.isdigit())[-10:])

    def plant(frame):
        frame["value_as_number"] = frame["value_as_number"].astype("float64")
        frame.loc[frame.index[:3], "value_as_number"] = [digits, -digits, digits]
        return frame

    problems = check_release(home, _copy(home, "T-phone", _only("controlled/measurement", plant)))
    assert "controlled/measurement.value_as_number: 2 values hold a direct identifier" in problems
    assert len([p for p in problems if "direct identifier" in p]) == 1, problems


def test_release_cli__check_exit_codes_and_tampering(home, r1):
    runner = CliRunner()
    ok = runner.invoke(release, ["check", "R1", "--home", str(home.root)])
    assert ok.exit_code == 0 and "pass" in ok.output, ok.output
    name = _copy(home, "T-tamper", lambda label, frame: None)
    death = home.releases / name / "controlled" / "omop" / "death.parquet"
    death.write_bytes(death.read_bytes() + b"x")
    bad = runner.invoke(release, ["check", name, "--home", str(home.root)])
    assert bad.exit_code == 1 and "death.parquet" in bad.output


def test_check_release__withdrawal_after_release_found(home, r1, registry_ids):
    person = pd.read_parquet(home.releases / "R1/controlled/omop/person.parquet")
    ids = registry_ids()
    pid = ids.loc[ids["research_id"] == person["person_id"].iloc[0], "participant_id"].iloc[0]
    registry = open_registry(home.registry_url)
    try:
        withdraw(registry, pid, status=WithdrawalStatus.NO_USE, authored=date(2026, 1, 5))
    finally:
        registry.close()
    problems = check_release(home, "R1")
    assert problems and all("withdrawn participants" in p for p in problems)
    assert any(p.startswith("controlled/person:") for p in problems)
