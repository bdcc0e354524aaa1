"""What curation takes from the registry: ids, date shifts, consents, withdrawals, deactivations."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from sqlalchemy import select

from opencohort.errors import InputError
from opencohort.registry import models as m
from opencohort.registry.service import Registry

#: Files of an export, in the order they are written.
EXPORT_TABLES = ("participants", "sites", "consents", "withdrawals", "deactivations", "deaths")
_DATES = {
    "participants": ("sign_up_date", "birth_date"),
    "consents": ("authored_date",),
    "withdrawals": ("authored_date",),
    "deactivations": ("deactivated_date",),
    "deaths": ("death_date", "reported_date"),
}


@dataclass(frozen=True)
class CurationExport:
    """The registry facts curation needs, read in one snapshot."""

    created: str
    tables: dict[str, pd.DataFrame]

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.tables[name]


def _deactivations(suspensions: pd.DataFrame) -> pd.DataFrame:
    """Participants whose latest suspension event is ``no_contact``, from that event's date."""
    latest = suspensions.sort_values(["participant_id", "event_date", "suspension_event_id"])
    latest = latest.groupby("participant_id").tail(1)
    latest = latest[latest["status"] == "no_contact"]
    return pd.DataFrame(
        {
            "participant_id": latest["participant_id"].to_numpy(),
            "deactivated_date": latest["event_date"].to_numpy(),
        }
    )


def curation_export(registry: Registry) -> CurationExport:
    """Read everything curation takes from the registry in one read-only transaction.

    Returns
    -------
    CurationExport
        Tables ``participants`` (every stored participant field: research_id, biobank_id,
        date_shift_days, site_id, birth and sign-up dates and The Basics answers; never direct
        identifiers), ``sites`` (site_id, state), ``consents`` (the whole versioned history),
        ``withdrawals`` (every withdrawal event), ``deactivations`` (participant_id,
        deactivated_date: suspended with no contact, the latest suspension event deciding)
        and ``deaths`` (every deceased report with its review status). Dates are
        ``datetime.date``.
    """
    created = datetime.now(UTC).isoformat(timespec="seconds")
    statements = {
        "participants": select(m.Participant).order_by(m.Participant.participant_id),
        "sites": select(m.Site.site_id, m.Site.state).order_by(m.Site.site_id),
        "consents": select(
            m.Consent.participant_id,
            m.Consent.consent_type,
            m.Consent.version,
            m.Consent.status,
            m.Consent.signer,
            m.Consent.authored_date,
        ).order_by(m.Consent.consent_id),  # fmt: skip
        "withdrawals": select(
            m.WithdrawalEvent.participant_id,
            m.WithdrawalEvent.status,
            m.WithdrawalEvent.authored_date,
            m.WithdrawalEvent.reason,
        ).order_by(m.WithdrawalEvent.withdrawal_event_id),  # fmt: skip
        "suspensions": select(m.SuspensionEvent),
        "deaths": select(
            m.DeceasedReport.participant_id,
            m.DeceasedReport.death_date,
            m.DeceasedReport.reported_date,
            m.DeceasedReport.review_status,
        ).order_by(m.DeceasedReport.deceased_report_id),  # fmt: skip
    }
    with registry.engine.connect() as connection, connection.begin():
        frames = {name: pd.read_sql(s, connection) for name, s in statements.items()}
    frames["deactivations"] = _deactivations(frames.pop("suspensions"))
    for name, columns in _DATES.items():
        for column in columns:
            parsed = pd.to_datetime(frames[name][column])
            frames[name][column] = parsed.dt.date.astype(object).where(parsed.notna(), None)
    return CurationExport(created, {name: frames[name] for name in EXPORT_TABLES})


def write_export(export: CurationExport, out: Path) -> dict:
    """Write each export table as ``out/<name>.parquet`` plus ``out/manifest.json``.

    Returns
    -------
    dict
        The manifest: created, and per table its file, row count and sha256.

    Raises
    ------
    InputError
        If `out` exists and is not empty (an export is never written over another).
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise InputError(f"{out} is not empty; choose a new directory", file=str(out))
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for name in EXPORT_TABLES:
        path = out / f"{name}.parquet"
        export[name].to_parquet(path, index=False)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        files[name] = {"file": path.name, "rows": len(export[name]), "sha256": digest}
    manifest = {"created": export.created, "tables": files}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
