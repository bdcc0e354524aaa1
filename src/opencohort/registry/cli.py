"""``opencohort registry``: load the participant feed and summarise the registry."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from opencohort.config import HOME_ENV, find_home
from opencohort.registry.audit import verify_audit_chain
from opencohort.registry.auth import DEV_SECRET, Role, create_token, revoke_token
from opencohort.registry.export import curation_export, write_export
from opencohort.registry.sequencing import (
    DEFAULT_CAPACITY,
    Selection,
    plan_sequencing,
    send_for_sequencing,
)
from opencohort.registry.service import load_feed, open_registry, summary, withdraw
from opencohort.registry.status import WithdrawalStatus

registry = typer.Typer(
    help="The participant registry: load feeds, summarise, audit, API tokens.",
    no_args_is_help=True,
)
tokens = typer.Typer(help="API tokens of the registry (stored hashed).", no_args_is_help=True)
registry.add_typer(tokens, name="token")
audit = typer.Typer(help="The registry's hash-chained audit log.", no_args_is_help=True)
registry.add_typer(audit, name="audit")
HomeOption = Annotated[
    Path | None,
    typer.Option("--home", envvar=HOME_ENV, help="Program home (default: nearest above cwd)."),
]
JsonOutput = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _open(home: Path | None):
    return open_registry(find_home(home).registry_url)


def _table(title: str, counts: dict, *, unit: str = "participants") -> Table:
    table = Table(title=title)
    table.add_column("value")
    table.add_column(unit, justify="right")
    for name, value in counts.items():
        table.add_row(str(name), str(value))
    return table


@registry.command("load")
def load(
    directory: Annotated[Path, typer.Argument(help="Feed directory (the synthetic registry/).")],
    home: HomeOption = None,
    as_json: JsonOutput = False,
) -> None:
    """Load a participant feed into the registry (all or nothing; re-loading is a no-op)."""
    opened = _open(home)
    try:
        added = load_feed(opened, directory)
    finally:
        opened.close()
    console = Console()
    if as_json:
        console.print_json(json.dumps(added))
    else:
        console.print(_table("new rows per table", added, unit="rows"))


@registry.command("summary")
def summary_command(
    home: HomeOption = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Day to count on, YYYY-MM-DD (default: today).")
    ] = None,
    as_json: JsonOutput = False,
) -> None:
    """Count participants by enrolment status, site, consent, withdrawal and UBR category."""
    day = _as_of(as_of)
    opened = _open(home)
    try:
        counts = summary(opened, as_of=day)
    finally:
        opened.close()
    console = Console()
    if as_json:
        console.print_json(json.dumps(counts))
        return
    console.print(f"{counts['participants']} participants on {counts['as_of']}; "
                  f"{counts['genomic_eligible']} eligible for sequencing")  # fmt: skip
    for key in ("enrolment", "site", "withdrawal", "ubr"):
        console.print(_table(key, counts[key]))
    for kind, statuses in counts["consent"].items():
        console.print(_table(f"consent: {kind}", statuses))


def _as_of(value: str | None) -> date:
    try:
        return date.fromisoformat(value) if value else date.today()
    except ValueError as exc:
        raise typer.BadParameter(f"'{value}' is not a date; expected YYYY-MM-DD") from exc


def _percent(share: float) -> str:
    return "" if share != share else f"{100 * share:.1f}%"


def _selection_table(plan: Selection) -> Table:
    table = Table(title=f"sequencing plan: {len(plan.participant_ids)} of {plan.pool} candidates")
    for name in ("attribute", "category", "target", "before", "selected", "after", "met"):
        table.add_column(name, justify="left" if name in ("attribute", "category") else "right")
    for row in plan.report.itertuples(index=False):
        target = _percent(row.target)
        table.add_row(
            row.attribute,
            row.category,
            f">= {target}" if target and row.at_least else target,
            _percent(row.share_before),
            _percent(row.share_selected),
            _percent(row.share_after),
            {True: "yes", False: "no", None: ""}[row.met],
        )
    return table


@registry.command("sequencing-plan")
def sequencing_plan(
    capacity: Annotated[
        int, typer.Option("--capacity", min=0, help="Samples to send for sequencing.")
    ] = DEFAULT_CAPACITY,
    home: HomeOption = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Day to plan on, YYYY-MM-DD (default: today).")
    ] = None,
    send: Annotated[
        bool, typer.Option("--send", help="Record the chosen samples as sent (needs --manifest).")
    ] = False,
    manifest: Annotated[
        Path | None, typer.Option("--manifest", help="New CSV file for the sent manifest.")
    ] = None,
    as_json: JsonOutput = False,
) -> None:
    """Choose whom to sequence next toward the diversity targets; show how targets are met.

    With --send, the chosen samples move to manifest_sent on the plan's day, all or nothing,
    and the manifest for the genome centre is written to --manifest.
    """
    if send != (manifest is not None):
        raise typer.BadParameter("--send and --manifest go together", param_hint="--manifest")
    day = _as_of(as_of)
    opened = _open(home)
    try:
        plan = plan_sequencing(opened, capacity=capacity, as_of=day)
        sent = None
        if send:
            sent = send_for_sequencing(opened, plan.participant_ids, day=day, manifest=manifest,
                                       actor="cli")  # fmt: skip
    finally:
        opened.close()
    console = Console()
    if as_json:
        done = None if sent is None else {"samples": len(sent), "manifest": str(manifest)}
        out = {"as_of": day.isoformat(), **plan.to_dict(), "sent": done}
        console.print_json(json.dumps(out))
        return
    console.print(_selection_table(plan))
    console.print(f"squared deficit {plan.deficit_before:.4f} -> {plan.deficit_after:.4f}; "
                  f"{plan.without_sample} eligible without a DNA sample to send")  # fmt: skip
    if sent is not None:
        console.print(f"sent {len(sent)} samples on {day}; manifest in {manifest}",
                      highlight=False)  # fmt: skip


@registry.command("send")
def send_command(
    participants: Annotated[
        Path, typer.Argument(help="CSV with a participant_id column (e.g. a past delivery's).")
    ],
    manifest: Annotated[Path, typer.Option("--manifest", help="New CSV file for the manifest.")],
    on: Annotated[str | None, typer.Option("--on", help="Day sent (default: today).")] = None,
    home: HomeOption = None,
) -> None:
    """Send one DNA sample of each listed participant for sequencing, all or nothing.

    For participants chosen outside ``sequencing-plan``, such as those a synthetic program's
    genome centres already sequenced.
    """
    import pandas as pd

    ids = pd.read_csv(participants, dtype=str, usecols=["participant_id"])["participant_id"]
    opened = _open(home)
    try:
        sent = send_for_sequencing(opened, list(dict.fromkeys(ids)), day=_as_of(on),
                                   manifest=manifest, actor="cli")  # fmt: skip
    finally:
        opened.close()
    Console().print(f"sent {len(sent)} samples; manifest in {manifest}", highlight=False)


@registry.command("withdraw")
def withdraw_command(
    participant_id: Annotated[str, typer.Argument(help="Participant id, e.g. P123456789.")],
    reason: Annotated[str, typer.Option(help="Why the participant withdrew.")],
    status: Annotated[
        WithdrawalStatus, typer.Option(help="no_use removes the data from later releases.")
    ] = WithdrawalStatus.NO_USE,
    on: Annotated[str | None, typer.Option("--on", help="Authored date (default: today).")] = None,
    home: HomeOption = None,
    as_json: JsonOutput = False,
) -> None:
    """Record a withdrawal (no_use is irreversible: later releases leave the person out)."""
    opened = _open(home)
    try:
        state = withdraw(
            opened, participant_id, status=status, authored=_as_of(on), reason=reason,
            actor="cli",
        )  # fmt: skip
    finally:
        opened.close()
    result = {"participant_id": participant_id, "withdrawal": str(state.value),
              "reason": state.reason}  # fmt: skip
    console = Console()
    if as_json:
        console.print_json(json.dumps(result))
    else:
        console.print(f"{participant_id}: {result['withdrawal']} ({state.reason})", highlight=False)


@audit.command("verify")
def audit_verify(home: HomeOption = None, as_json: JsonOutput = False) -> None:
    """Check the audit log's hash chain; exit 1 naming the first broken row."""
    opened = _open(home)
    try:
        report = verify_audit_chain(opened)
    finally:
        opened.close()
    console = Console()
    if as_json:
        console.print_json(json.dumps({**report.__dict__, "ok": report.ok}))
    else:
        console.print(f"{'ok' if report.ok else 'BROKEN'}: {report.problem}; "
                      f"last row hash {report.last_sha256}", highlight=False)  # fmt: skip
    if not report.ok:
        raise typer.Exit(1)


@registry.command("export")
def export_command(
    out: Annotated[Path, typer.Argument(help="New directory for the export's Parquet files.")],
    home: HomeOption = None,
    as_json: JsonOutput = False,
) -> None:
    """Export what curation needs: research ids, date shifts, consents, withdrawals,
    deactivations and deaths (Parquet files with a checksummed manifest)."""
    opened = _open(home)
    try:
        manifest = write_export(curation_export(opened), out)
    finally:
        opened.close()
    console = Console()
    if as_json:
        console.print_json(json.dumps(manifest))
    else:
        rows = {name: entry["rows"] for name, entry in manifest["tables"].items()}
        console.print(_table(f"registry export in {out}", rows, unit="rows"))


SecretOption = Annotated[
    str,
    typer.Option("--secret-key", envvar="OPENCOHORT_SECRET_KEY", show_default=False,
                 help="Secret the server keys token hashes with (as the server's setting)."),
]  # fmt: skip


@tokens.command("create")
def token_create(
    role: Annotated[Role, typer.Option("--role", help="Role the token acts in.")],
    name: Annotated[str, typer.Option("--name", help="Unique name (shown in the audit log).")],
    home: HomeOption = None,
    secret_key: SecretOption = DEV_SECRET,
) -> None:
    """Create an API token and print it once; only its hash is stored."""
    opened = _open(home)
    try:
        token = create_token(opened, name=name, role=role, secret=secret_key, actor="cli")
    finally:
        opened.close()
    Console(stderr=True).print(
        f"token '{name}' ({role.value}); store it now, it is not shown again"
    )
    typer.echo(token)


@tokens.command("revoke")
def token_revoke(
    name: Annotated[str, typer.Option("--name", help="Name of the token.")],
    home: HomeOption = None,
) -> None:
    """Revoke an API token at once."""
    opened = _open(home)
    try:
        revoke_token(opened, name=name, actor="cli")
    finally:
        opened.close()
    Console().print(f"token '{name}' revoked")
