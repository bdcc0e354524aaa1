"""The registry feed of the synthetic program: CSV files under ``out/registry/``.

These are the files a program's participant portal, consent system, survey app and biobank
would deliver: participants (with direct identifiers), consents, survey answers, biospecimen
orders, withdrawals, suspensions, deaths and the site list.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from opencohort.synth._csv import write_csv
from opencohort.synth._random import batch_index, batch_rng, day_numbers, digits, to_dates
from opencohort.synth.identifiers import PARTICIPANT_ID_DIGITS, scramble
from opencohort.synth.models import SynthConfig
from opencohort.synth.participants import site_table
from opencohort.synth.surveys import survey_answers

_STREAM_FEED = 41
_ORDER_KEY = 7_000_003

REGISTRY_DIR = "registry"
PARTICIPANT_COLUMNS = [
    "participant_id",
    "site_id",
    "origin",
    "sign_up_date",
    "birth_date",
    "guardian_consent",
    "sex_at_birth",
    "gender_identity",
    "sexual_orientation",
    "race_ethnicity",
    "education",
    "income",
    "employment",
    "disability",
    "limited_access_to_care",
    "first_name",
    "middle_name",
    "last_name",
    "street_address",
    "city",
    "state",
    "zip",
    "phone",
    "email",
    "ssn",
    "mrn",
]
#: Consent versions and the fraction of the program's span after which each is current.
CONSENT_VERSIONS = {
    "primary": (("v1", 0.0), ("v2", 0.35), ("v3", 0.7)),
    "ehr": (("v1", 0.0), ("v2", 0.5)),
    "gror": (("v1", 0.0), ("v2", 0.6)),
    "wearables": (("v1", 0.0),),
}
#: Share of signers of an older version who re-consent to the next one.
RECONSENT = {"primary": 0.25, "ehr": 0.1, "gror": 0.1, "wearables": 0.0}
#: Among consenters who did not give this consent: share answering "no" and "not sure".
DECLINED = {"ehr": (0.5, 0.15), "gror": (0.4, 0.2)}
_CONSENT_DATE = {
    "primary": "primary_consent_date",
    "ehr": "ehr_consent_date",
    "gror": "gror_consent_date",
    "wearables": "wearables_consent_date",
}
#: Biobank tests of an on-site order (code, share ordered, carries DNA); mail kits send 1SAL2.
ON_SITE_TESTS = (
    ("1ED10", 1.0, True),
    ("2ED10", 0.7, True),
    ("1ED04", 0.3, True),
    ("1SST8", 0.9, False),
    ("1PST8", 0.6, False),
    ("1UR10", 0.85, False),
)
MAIL_KIT_TEST = "1SAL2"
#: Per-sample shares disposed and flagged with a quality issue (never the first DNA sample).
SAMPLE_DISPOSED = 0.015
SAMPLE_QUALITY_ISSUE = 0.015
BIOSPECIMEN_COLUMNS = [
    "participant_id",
    "order_id",
    "sample_id",
    "test_code",
    "collection_method",
    "order_status",
    "created_date",
    "collected_date",
    "processed_date",
    "finalized_date",
    "received_date",
    "sample_status",
    "status_date",
]


def write_sites(config: SynthConfig, out: Path) -> int:
    """Write ``out/registry/sites.csv`` and return the number of sites written."""
    sites = site_table(config)
    write_csv(sites, Path(out) / REGISTRY_DIR / "sites.csv", append=False)
    return len(sites)


def write_feed(
    batch: pd.DataFrame, config: SynthConfig, out: Path, *, append: bool
) -> dict[str, int]:
    """Write (or append) one participant batch's registry feed under ``out/registry/``.

    Parameters
    ----------
    batch
        A participant batch frame (``participant_batch``).
    config
        Program options (seed, dates, batch size).
    out
        Output directory of the synthetic program.
    append
        Append rows without a header; otherwise create each file with a header.

    Returns
    -------
    dict[str, int]
        Rows written per file name: participants.csv, consents.csv, surveys.csv,
        biospecimens.csv, withdrawals.csv, suspensions.csv and deaths.csv.

    Notes
    -----
    Consents carry versions ("v1", "v2", ...) by date, with some re-consents to newer versions,
    statuses submitted / no / not_sure and the sha256 of a fake signed PDF. Biospecimen orders
    go created -> collected -> processed -> finalized before the biobank receives samples.
    """
    rng = batch_rng(config, _STREAM_FEED, batch_index(batch["person_index"].to_numpy(), config))
    frame = batch.reset_index(drop=True)
    tables = {
        "participants.csv": frame[PARTICIPANT_COLUMNS],
        "consents.csv": _consents(frame, config, rng),
        "surveys.csv": survey_answers(frame, config),
        "biospecimens.csv": _biospecimens(frame, config, rng),
        "withdrawals.csv": _withdrawals(frame, rng),
        "suspensions.csv": _suspensions(frame),
        "deaths.csv": _deaths(frame, config, rng),
    }
    directory = Path(out) / REGISTRY_DIR
    for name, table in tables.items():
        write_csv(table, directory / name, append=append)
    return {name: len(table) for name, table in tables.items()}


def _version_thresholds(config: SynthConfig, kind: str) -> tuple[list[str], np.ndarray]:
    start, cutoff = day_numbers(np.array([config.start, config.cutoff], dtype="datetime64[D]"))
    names = [name for name, _ in CONSENT_VERSIONS[kind]]
    days = np.array([start + share * (cutoff - start) for _, share in CONSENT_VERSIONS[kind]])
    return names, np.floor(days)


def _consents(frame: pd.DataFrame, config: SynthConfig, rng: np.random.Generator) -> pd.DataFrame:
    """Return consent rows: submissions, refusals and re-consents to newer versions."""
    cutoff = day_numbers(np.array([config.cutoff], dtype="datetime64[D]"))[0]
    primary = day_numbers(frame["primary_consent_date"].to_numpy())
    end = np.fmin(
        day_numbers(frame["withdrawal_date"].to_numpy()),
        day_numbers(frame["death_date"].to_numpy()),
    )
    end = np.where(np.isnan(end), cutoff + 1, end)
    n = len(frame)
    parts = []
    for kind, column in _CONSENT_DATE.items():
        names, thresholds = _version_thresholds(config, kind)
        signed = day_numbers(frame[column].to_numpy())
        rows = np.flatnonzero(~np.isnan(signed))
        version = np.searchsorted(thresholds, signed[rows], side="right") - 1
        parts.append((rows, kind, version, "submitted", signed[rows]))
        if kind in DECLINED:
            no, unsure = DECLINED[kind]
            u = rng.random(n)
            open_ = np.isnan(signed) & ~np.isnan(primary)
            if kind == "gror":
                open_ &= ~frame["guardian_consent"].to_numpy(dtype=bool)
            for status, hit in (("no", u < no), ("not_sure", (u >= no) & (u < no + unsure))):
                who = np.flatnonzero(open_ & hit)
                when = np.searchsorted(thresholds, primary[who], side="right") - 1
                parts.append((who, kind, when, status, primary[who]))
        older = version < len(names) - 1
        pick = older & (rng.random(len(rows)) < RECONSENT[kind])
        again, next_version = rows[pick], version[pick] + 1
        when = np.maximum(thresholds[next_version], signed[again]) + np.floor(
            rng.exponential(60, len(again))
        )
        ok = when < np.minimum(end[again], cutoff + 1)
        parts.append((again[ok], kind, next_version[ok], "submitted", when[ok]))

    rows = np.concatenate([p[0] for p in parts]).astype(np.int64)
    kinds = np.concatenate([np.full(len(p[0]), p[1], dtype=object) for p in parts])
    versions = np.concatenate(
        [np.array([n for n, _ in CONSENT_VERSIONS[p[1]]], dtype=object)[p[2]] for p in parts]
    )
    statuses = np.concatenate([np.full(len(p[0]), p[3], dtype=object) for p in parts])
    dates = np.concatenate([p[4] for p in parts])
    order = np.lexsort((dates, rows))
    rows, kinds, versions, statuses, dates = (
        rows[order],
        kinds[order],
        versions[order],
        statuses[order],
        dates[order],
    )
    ids = frame["participant_id"].to_numpy()[rows]
    signer = np.where(frame["guardian_consent"].to_numpy()[rows], "guardian", "participant")
    authored = to_dates(dates)
    text = np.datetime_as_string(authored.astype("datetime64[D]"))
    names = (frame["first_name"] + " " + frame["last_name"]).to_numpy()[rows]
    sha = [
        hashlib.sha256(
            f"%PDF-1.7 opencohort {k} consent {v}\n{p}\n{s}\n{d}\n/Sig {w}\n".encode()
        ).hexdigest()
        for p, k, v, s, d, w in zip(ids, kinds, versions, statuses, text, names, strict=True)
    ]
    return pd.DataFrame(
        {
            "participant_id": ids,
            "consent_type": kinds,
            "version": versions,
            "status": statuses,
            "signer": signer.astype(object),
            "authored_date": authored,
            "document_sha256": np.array(sha, dtype=object),
        }
    )


def _biospecimens(
    frame: pd.DataFrame, config: SynthConfig, rng: np.random.Generator
) -> pd.DataFrame:
    """Return one row per ordered sample: orders for DNA donors and some uncollected orders."""
    n = len(frame)
    primary = day_numbers(frame["primary_consent_date"].to_numpy())
    received = day_numbers(frame["dna_received_date"].to_numpy())
    pm = day_numbers(frame["pm_date"].to_numpy())
    on_site = (frame["origin"] == "site").to_numpy() & ~np.isnan(pm)
    donor = ~np.isnan(received)
    open_order = ~donor & on_site & (rng.random(n) < 0.3)
    transit = np.where(on_site, rng.integers(1, 6, n), rng.integers(3, 15, n))
    collected = np.where(donor, np.maximum(received - transit, primary), np.nan)
    kit_wait = np.where(on_site, 0, rng.integers(5, 21, n))
    created = np.where(donor, np.maximum(collected - kit_wait, primary), pm)
    finalized = np.where(
        on_site, np.minimum(collected + rng.integers(0, 2, n), received), collected
    )

    people, tests, dna, first = [], [], [], []
    for code, share, carries_dna in ON_SITE_TESTS:
        ordered = on_site & (donor | open_order) & (rng.random(n) < share)
        who = np.flatnonzero(ordered)
        people.append(who)
        tests.append(np.full(len(who), code, dtype=object))
        dna.append(np.full(len(who), carries_dna))
        first.append(np.full(len(who), code == ON_SITE_TESTS[0][0]))
    kit = np.flatnonzero(donor & ~on_site)
    people.append(kit)
    tests.append(np.full(len(kit), MAIL_KIT_TEST, dtype=object))
    dna.append(np.ones(len(kit), dtype=bool))
    first.append(np.ones(len(kit), dtype=bool))
    rows = np.concatenate(people)
    order = np.argsort(rows, kind="stable")
    rows, test = rows[order], np.concatenate(tests)[order]
    first_dna = np.concatenate(first)[order]
    sequence = np.arange(len(rows)) - np.searchsorted(rows, rows)

    is_donor = donor[rows]
    u = rng.random(len(rows))
    status = np.where(is_donor, "received", "").astype(object)
    disposed = is_donor & ~first_dna & (u < SAMPLE_DISPOSED)
    quality = (
        is_donor
        & ~first_dna
        & (u >= SAMPLE_DISPOSED)
        & (u < SAMPLE_DISPOSED + SAMPLE_QUALITY_ISSUE)
    )
    status[disposed], status[quality] = "disposed", "quality_issue"
    cutoff = day_numbers(np.array([config.cutoff], dtype="datetime64[D]"))[0]
    status_day = np.where(is_donor, received[rows], np.nan)
    later = np.minimum(received[rows] + rng.integers(30, 400, len(rows)), cutoff)
    status_day = np.where(disposed, later, status_day)
    order_status = np.where(is_donor, "finalized", "created").astype(object)

    number = scramble(frame["person_index"].to_numpy()[rows], key=config.seed + _ORDER_KEY)
    order_id = "BO" + digits(number, PARTICIPANT_ID_DIGITS)
    return pd.DataFrame(
        {
            "participant_id": frame["participant_id"].to_numpy()[rows],
            "order_id": order_id,
            "sample_id": "SM" + digits(number, PARTICIPANT_ID_DIGITS) + digits(sequence, 2),
            "test_code": test,
            "collection_method": np.where(on_site[rows], "on_site", "mail_kit").astype(object),
            "order_status": order_status,
            "created_date": to_dates(created[rows]),
            "collected_date": to_dates(collected[rows]),
            "processed_date": to_dates(collected[rows]),
            "finalized_date": to_dates(np.where(is_donor, finalized[rows], np.nan)),
            "received_date": to_dates(np.where(is_donor, received[rows], np.nan)),
            "sample_status": status,
            "status_date": to_dates(status_day),
        }
    )[BIOSPECIMEN_COLUMNS]


def _withdrawals(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Return withdrawal rows with a reason and, for AIAN no-use withdrawals, a ceremony choice."""
    rows = np.flatnonzero(frame["withdrawal_date"].notna().to_numpy())
    reason = np.array(["unset", "duplicate", "test", "fraudulent"], dtype=object)[
        np.searchsorted([0.95, 0.97, 0.98], rng.random(len(rows)), side="right")
    ]
    status = frame["withdrawal_status"].to_numpy()[rows]
    aian = (frame["race_ethnicity"].to_numpy()[rows] == "aian") & (status == "no_use")
    ceremony = np.where(rng.random(len(rows)) < 0.5, "requested", "declined")
    return pd.DataFrame(
        {
            "participant_id": frame["participant_id"].to_numpy()[rows],
            "withdrawal_date": frame["withdrawal_date"].to_numpy()[rows],
            "withdrawal_status": status,
            "withdrawal_reason": reason,
            "aian_ceremony": np.where(aian, ceremony, "").astype(object),
        }
    )


def _suspensions(frame: pd.DataFrame) -> pd.DataFrame:
    """Return suspension (no contact) rows."""
    rows = np.flatnonzero(frame["suspension_date"].notna().to_numpy())
    return pd.DataFrame(
        {
            "participant_id": frame["participant_id"].to_numpy()[rows],
            "suspension_date": frame["suspension_date"].to_numpy()[rows],
            "suspension_status": np.full(len(rows), "no_contact", dtype=object),
        }
    )


def _deaths(frame: pd.DataFrame, config: SynthConfig, rng: np.random.Generator) -> pd.DataFrame:
    """Return deceased-report rows: date of death, report date, source and review status."""
    rows = np.flatnonzero(frame["death_date"].notna().to_numpy())
    died = day_numbers(frame["death_date"].to_numpy()[rows])
    cutoff = day_numbers(np.array([config.cutoff], dtype="datetime64[D]"))[0]
    reported = np.minimum(died + np.floor(rng.exponential(45, len(rows))), cutoff)
    source = np.array(["ehr", "next_kin_hpo", "attempted_contact"], dtype=object)[
        np.searchsorted([0.5, 0.8], rng.random(len(rows)), side="right")
    ]
    review = np.where(rng.random(len(rows)) < 0.85, "approved", "pending").astype(object)
    return pd.DataFrame(
        {
            "participant_id": frame["participant_id"].to_numpy()[rows],
            "death_date": to_dates(died),
            "reported_date": to_dates(reported),
            "report_source": source,
            "report_status": review,
        }
    )
