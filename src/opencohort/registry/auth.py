"""Roles, API tokens and the permission matrix of the registry API.

A token is a random string shown once when it is created; the registry stores only its
HMAC-SHA256 under the server's secret key, so a copy of the database does not let anyone
call the API. Each token has one role, and ``PERMISSIONS`` says which actions a role may do.
The FastAPI dependencies read the open registry and the secret from ``app.state.registry``
and ``app.state.token_secret`` (set by ``opencohort.web.create_app``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import bindparam, select, update

from opencohort.errors import InputError, NotFound, OpencohortError, PermissionDenied
from opencohort.registry import audit
from opencohort.registry import models as m
from opencohort.registry.service import SYSTEM_ACTOR, Registry

#: Secret used when none is configured; ``web.Settings`` refuses it outside development.
DEV_SECRET = "opencohort-development-secret"
TOKEN_PREFIX = "oc_"


class Unauthenticated(OpencohortError):
    """No valid API token was sent; send ``Authorization: Bearer <token>`` with a live token."""


class Role(StrEnum):
    """Who calls the API (the reference program's ptc, healthpro, curation, workbench roles)."""

    PARTICIPANT_PORTAL = "participant_portal"
    SITE_STAFF = "site_staff"
    CURATION = "curation"
    WORKBENCH = "workbench"
    ADMIN = "admin"


class Action(StrEnum):
    """Everything the API lets a caller do."""

    PARTICIPANT_CREATE = "participant_create"
    PARTICIPANT_READ = "participant_read"
    PARTICIPANT_SEARCH = "participant_search"
    PARTICIPANT_UPDATE = "participant_update"
    CONSENT_WRITE = "consent_write"
    SURVEY_WRITE = "survey_write"
    MEASUREMENT_WRITE = "measurement_write"
    BIOSPECIMEN_WRITE = "biospecimen_write"
    WITHDRAWAL_WRITE = "withdrawal_write"
    SUSPENSION_WRITE = "suspension_write"
    SUMMARY_READ = "summary_read"
    COUNTS_READ = "counts_read"
    GENOMIC_READ = "genomic_read"
    GENOMIC_WRITE = "genomic_write"
    AUDIT_READ = "audit_read"


_A = Action
#: The permission matrix: role -> actions it may do.
PERMISSIONS: Mapping[Role, frozenset[Action]] = {
    Role.PARTICIPANT_PORTAL: frozenset({_A.PARTICIPANT_CREATE, _A.PARTICIPANT_READ,
                                        _A.CONSENT_WRITE, _A.SURVEY_WRITE, _A.WITHDRAWAL_WRITE,
                                        _A.SUMMARY_READ}),
    Role.SITE_STAFF: frozenset({_A.PARTICIPANT_CREATE, _A.PARTICIPANT_READ, _A.PARTICIPANT_SEARCH,
                                _A.PARTICIPANT_UPDATE, _A.CONSENT_WRITE, _A.MEASUREMENT_WRITE,
                                _A.BIOSPECIMEN_WRITE, _A.WITHDRAWAL_WRITE, _A.SUSPENSION_WRITE,
                                _A.SUMMARY_READ}),
    Role.CURATION: frozenset({_A.PARTICIPANT_READ, _A.PARTICIPANT_SEARCH, _A.SUMMARY_READ,
                              _A.COUNTS_READ, _A.GENOMIC_READ, _A.GENOMIC_WRITE}),
    Role.WORKBENCH: frozenset({_A.COUNTS_READ}),
    Role.ADMIN: frozenset(Action),
}  # fmt: skip


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: the token's name and its role."""

    name: str
    role: Role


def hash_token(token: str, *, secret: str) -> str:
    """Return the hex HMAC-SHA256 of `token` under `secret` (what the registry stores)."""
    return hmac.new(secret.encode(), token.encode(), hashlib.sha256).hexdigest()


def create_token(
    registry: Registry, *, name: str, role: Role, secret: str, actor: str = SYSTEM_ACTOR
) -> str:
    """Create an API token for `role` and return it; only its hash is stored.

    Raises
    ------
    InputError
        If a token called `name` exists or `role` is unknown.
    """
    try:
        role = Role(role)
    except ValueError as exc:
        roles = ", ".join(r.value for r in Role)
        raise InputError(f"unknown role '{role}'; expected one of {roles}", field="role") from exc
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with registry.session() as session, session.begin():
        if session.scalar(select(m.ApiToken).where(m.ApiToken.name == name)) is not None:
            raise InputError(f"a token called '{name}' exists; pick another name", field="name")
        row = m.ApiToken(name=name, role=role.value, token_sha256=hash_token(token, secret=secret),
                         created_at=datetime.now(UTC).replace(tzinfo=None))  # fmt: skip
        session.add(row)
        session.flush()
        audit.record(session.connection(), actor=actor, action="create_token", entity="api_token",
                     entity_id=name, after={"name": name, "role": role.value})  # fmt: skip
    return token


def revoke_token(registry: Registry, *, name: str, actor: str = SYSTEM_ACTOR) -> None:
    """Revoke the token called `name` (it stops working at once).

    Raises
    ------
    NotFound
        If no live token has that name.
    """
    t = m.ApiToken
    with registry.session() as session, session.begin():
        done = session.execute(
            update(t)
            .where(t.name == name, t.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC).replace(tzinfo=None))
        )
        if done.rowcount == 0:
            raise NotFound(f"no live token called '{name}'")
        audit.record(session.connection(), actor=actor, action="revoke_token", entity="api_token",
                     entity_id=name, after={"revoked": True})  # fmt: skip


_T = m.ApiToken.__table__
#: The one lookup a request's authentication costs (an index probe on the token's hash):
#: name, role, revoked_at.
_BY_DIGEST = select(_T.c.name, _T.c.role, _T.c.revoked_at).where(
    _T.c.token_sha256 == bindparam("digest")
)


def authenticate(registry: Registry, token: str | None, *, secret: str) -> Principal:
    """Return who holds `token`.

    Raises
    ------
    Unauthenticated
        If `token` is missing, unknown or revoked.
    """
    if not token:
        raise Unauthenticated("no API token; send 'Authorization: Bearer <token>'")
    reader = registry.reader("api_token", _BY_DIGEST)
    row = reader.one(digest=hash_token(token, secret=secret))
    if row is None or row[2] is not None:
        raise Unauthenticated("the API token is unknown or revoked")
    return Principal(row[0], Role(row[1]))


def authorize(principal: Principal, action: Action) -> Principal:
    """Return `principal` if its role may do `action`.

    Raises
    ------
    PermissionDenied
        If the permission matrix does not give the role that action.
    """
    if action not in PERMISSIONS[principal.role]:
        raise PermissionDenied(f"role {principal.role.value} may not {action.value}")
    return principal


# --- FastAPI dependencies ----------------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, description="An API token from `registry token create`.")


async def current_registry(request: Request) -> Registry:
    """Return the registry the app opened (``app.state.registry``).

    The cheap dependencies are ``async`` so that they run on the event loop: a plain ``def``
    dependency costs a hop to the thread pool and back on every request.
    """
    return request.app.state.registry


RegistryDep = Annotated[Registry, Depends(current_registry)]


async def current_principal(
    request: Request,
    registry: RegistryDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """Authenticate the caller's bearer token (401 when missing or invalid).

    It runs on the event loop: the lookup is one index probe on a connection of its own
    (``_db.OneRowReader``, microseconds), cheaper than the hop to a thread, and it reads the
    database on every request, so a revoked token is refused by the next request in every
    server process (nothing is cached).
    """
    token = credentials.credentials if credentials else None
    return authenticate(registry, token, secret=request.app.state.token_secret)


def require(action: Action) -> Callable[[Principal], Principal]:
    """Return a dependency that lets through callers whose role may do `action` (else 403)."""

    async def check(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        return authorize(principal, action)

    return check
