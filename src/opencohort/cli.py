"""The ``opencohort`` command: one typer app; each area adds its own commands."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from opencohort import __version__
from opencohort.config import HOME_ENV, find_home, init_home
from opencohort.errors import OpencohortError

app = typer.Typer(
    name="opencohort",
    help="Run a precision-medicine research cohort: enrol, curate, release, analyse.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", envvar=HOME_ENV, help="Program home (default: nearest above cwd)."),
]
NoProgress = Annotated[bool, typer.Option("--no-progress", help="Hide progress bars.")]
JsonOutput = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False,
) -> None:
    if version:
        out.print(__version__)
        raise typer.Exit()
    _State.debug = debug


class _State:
    debug = False


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Directory to make a program home.")],
    name: Annotated[str | None, typer.Option(help="Program name.")] = None,
) -> None:
    """Create a program home: opencohort.toml, raw/, releases/ and the registry path."""
    home = init_home(directory, name=name)
    out.print(f"initialised program home {home.root}")


@app.command()
def where(home: HomeOption = None, as_json: JsonOutput = False) -> None:
    """Show which program home commands will use."""
    found = find_home(home)
    info = {"home": str(found.root), "registry": found.registry_url}
    out.print_json(json.dumps(info)) if as_json else out.print(info)


#: Each area's top-level command: (module, object, whether it is a group of commands).
_AREAS = {
    "synth": ("opencohort.synth.cli", "synth", False),
    "gwas": ("opencohort.analysis.cli", "gwas", False),
    "phenotype": ("opencohort.analysis.phewas_cli", "phenotype", False),
    "phewas": ("opencohort.analysis.phewas_cli", "phewas", False),
    "vocab": ("opencohort.vocab.cli", "vocab", True),
    "registry": ("opencohort.registry.cli", "registry", True),
    "ingest": ("opencohort.ingest.cli", "ingest", False),
    "genomics": ("opencohort.genomics.cli", "genomics", True),
    "curate": ("opencohort.release.cli", "curate", True),
    "release": ("opencohort.release.cli", "release", True),
    "retract": ("opencohort.release.cli", "retract", False),
}


def _register_areas(args: list[str]) -> None:
    """Add the area command `args` names (importing only its area), or every one (help)."""
    named = next((a for a in args if not a.startswith("-")), None)
    for name, (module, attr, group) in _AREAS.items():
        if named in _AREAS and name != named:
            continue
        command = getattr(importlib.import_module(module), attr)
        if name == "registry":
            command.command("serve")(importlib.import_module("opencohort.web.cli").serve)
        if group:
            app.add_typer(command, name=name)
        else:
            app.command(name=name)(command)


def main() -> None:
    """Entry point: opencohort errors become one line on stderr and exit code 1."""
    _register_areas(sys.argv[1:])
    try:
        app()
    except OpencohortError as exc:
        if _State.debug:
            raise
        err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(0)
