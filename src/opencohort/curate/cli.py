"""``opencohort curate``: the command group; its ``run`` command is added by ``release.cli``.

Building a release is the release area's use case, and curate may not import areas to its right,
so ``opencohort.release.cli`` registers ``curate run`` on this group (import the group from
there when wiring the app).
"""

from __future__ import annotations

import typer

curate = typer.Typer(help="Curate: clean, de-identify and publish a release.", no_args_is_help=True)


@curate.callback()
def _group() -> None:
    """Curate: clean, de-identify and publish a release."""
