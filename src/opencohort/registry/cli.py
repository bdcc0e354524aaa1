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
from opencohort.registry.service import load_feed, open_registry, summary

registry = typer.Typer(
    help="The participant registry: load feeds, summarise, audit, API tokens.",
    no_args_is_help=True,
)
tokens = typer.Typer(help="API tokens of the registry (stored hashed).", no_args_is_help=True)
registry.add_typer(tokens, name="token")
HomeOption = Annotated[
    Path | None,
    typer.Option("--home", envvar=HOME_ENV, help="Program home (default: nearest above cwd)."),
]
JsonOutput = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _open(home: Path | None):
    return open_registry(find_home(home).registry_url)


def _table(title: str, counts: dict) -> Table:
    table = Table(title=title)
    table.add_column("value")
    table.add_column("participants", justify="right")
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
        console.print(_table("new rows per table", added))


@registry.command("summary")
def summary_command(
    home: HomeOption = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Day to count on, YYYY-MM-DD (default: today).")
    ] = None,
    as_json: JsonOutput = False,
) -> None:
    """Count participants by enrolment status, site, consent, withdrawal and UBR category."""
    try:
        day = date.fromisoformat(as_of) if as_of else date.today()
    except ValueError as exc:
        raise typer.BadParameter(f"'{as_of}' is not a date; expected YYYY-MM-DD") from exc
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


@registry.command("audit-verify")
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
