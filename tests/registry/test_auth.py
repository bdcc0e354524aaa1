"""Tests of roles, API tokens and the permission matrix."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from opencohort.config import init_home
from opencohort.errors import InputError, PermissionDenied
from opencohort.registry import models as m
from opencohort.registry import open_registry
from opencohort.registry.auth import (
    DEV_SECRET,
    PERMISSIONS,
    Action,
    Principal,
    Role,
    Unauthenticated,
    authenticate,
    authorize,
    create_token,
    hash_token,
    revoke_token,
)
from opencohort.registry.cli import registry as registry_cli


def test_authorize__matrix() -> None:
    assert PERMISSIONS[Role.ADMIN] == frozenset(Action)
    assert authorize(Principal("s", Role.SITE_STAFF), Action.MEASUREMENT_WRITE).name == "s"
    with pytest.raises(PermissionDenied, match="role workbench may not participant_read"):
        authorize(Principal("w", Role.WORKBENCH), Action.PARTICIPANT_READ)
    assert all(Action.AUDIT_READ not in PERMISSIONS[r] for r in Role if r != Role.ADMIN)


def test_create_token__hashed_at_rest_and_revocable(registry) -> None:
    token = create_token(registry, name="desk", role=Role.SITE_STAFF, secret="s1")
    with registry.session() as session:
        stored = session.scalars(select(m.ApiToken.token_sha256)).all()
    assert stored == [hash_token(token, secret="s1")] and token not in stored
    assert authenticate(registry, token, secret="s1") == Principal("desk", Role.SITE_STAFF)
    with pytest.raises(Unauthenticated):
        authenticate(registry, token, secret="another secret")
    with pytest.raises(InputError, match="exists"):
        create_token(registry, name="desk", role=Role.ADMIN, secret="s1")
    revoke_token(registry, name="desk")
    with pytest.raises(Unauthenticated, match="revoked"):
        authenticate(registry, token, secret="s1")
    with pytest.raises(Unauthenticated, match="no API token"):
        authenticate(registry, None, secret="s1")


def test_token_cli__create_prints_token_once(tmp_path) -> None:
    home = init_home(tmp_path / "home")
    done = CliRunner().invoke(
        registry_cli,
        ["token", "create", "--role", "curation", "--name", "drc", "--home", str(home.root)],
    )
    assert done.exit_code == 0, done.output
    token = done.output.strip().splitlines()[-1]
    opened = open_registry(home.registry_url)
    assert authenticate(opened, token, secret=DEV_SECRET).role == Role.CURATION
    opened.close()
    wrong = CliRunner().invoke(
        registry_cli, ["token", "create", "--role", "boss", "--name", "x", "--home", str(home.root)]
    )
    assert wrong.exit_code == 2


def test_authenticate__reconnects_after_connection_lost(registry) -> None:
    token = create_token(registry, name="desk", role=Role.CURATION, secret="s1")
    assert authenticate(registry, token, secret="s1").role == Role.CURATION
    reader = registry.readers["api_token"]
    reader._connection.driver_connection.close()  # as a server restart would
    assert authenticate(registry, token, secret="s1") == Principal("desk", Role.CURATION)
    revoke_token(registry, name="desk")
    with pytest.raises(Unauthenticated, match="revoked"):
        authenticate(registry, token, secret="s1")
