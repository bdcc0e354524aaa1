"""Retraction: rebuild the latest release without some participants, as a new release."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from opencohort.config import Home
from opencohort.curate import Rule
from opencohort.errors import InputError, NotFound
from opencohort.release.build import Retraction, build_release
from opencohort.release.read import list_releases


def next_name(home: Home, release: str) -> str:
    """The first free name ``<release>.<k>`` (k = 1, 2, ...) for a rebuild of `release`."""
    taken = {r["name"] for r in list_releases(home)}
    k = 1
    while f"{release}.{k}" in taken or (home.releases / f"{release}.{k}").exists():
        k += 1
    return f"{release}.{k}"


def retract(
    home: Home,
    participant_ids: Sequence[str],
    *,
    reason: str,
    name: str | None = None,
    on_rule: Callable[[str, Rule], None] | None = None,
) -> dict:
    """Rebuild the latest release without `participant_ids`; return the new manifest.

    The rebuild uses the latest release's cut-off and site submissions; its manifest names
    the release it retracts, the reason and how many participants were named (never their
    ids). Published releases are immutable: the retracted one stays until an operator
    removes it, and ``release list`` shows what superseded it.

    Raises
    ------
    InputError
        If no participant is named, the reason is empty, or an id is not in the registry.
    NotFound
        If no release has been published.
    """
    if not participant_ids:
        raise InputError("name at least one participant to retract", field="participant_id")
    if not reason.strip():
        raise InputError("a retraction needs a reason", field="reason")
    published = list_releases(home)
    if not published:
        raise NotFound(f"no release in {home.releases} to retract from")
    latest = published[-1]["name"]
    retraction = Retraction(latest, tuple(participant_ids), reason.strip())
    return build_release(
        home, name or next_name(home, latest), on_rule=on_rule, retraction=retraction
    )
