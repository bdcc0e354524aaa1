"""Fuzz the registry HTTP API from its own OpenAPI schema (schemathesis) on SQLite and PostgreSQL.

Every operation gets valid and invalid requests, as an admin and as the participant portal,
against a registry holding a loaded feed. No response may be a 5xx, errors must be the one
JSON error shape, and no request may leave a partial write: a refused request changes nothing,
and afterwards every stored row and every participant version is accounted for by the audit log.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import func, select

from opencohort.registry import load_feed, verify_audit_chain
from opencohort.registry import models as m
from opencohort.registry.auth import DEV_SECRET, Role, create_token
from opencohort.web import Settings, create_app

#: Fact tables the API writes, each row audited under the table's name.
AUDITED = (m.Participant, m.Consent, m.SurveyCompletion, m.PhysicalMeasurement,
           m.BiospecimenOrder, m.Sample, m.WithdrawalEvent, m.SuspensionEvent,
           m.GenomicEvent)  # fmt: skip
#: Audit actions that are not a change transaction of an existing participant.
NOT_A_CHANGE = ("enrol", "create_sample", "load_feed")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]  # fmt: skip
ERROR_KEYS = {"code", "message", "loc", "detail"}


@pytest.fixture
def fuzzed(db_url, feed):
    """The app on a registry holding the 400-participant feed, and the ids worth aiming at."""
    feed_dir, people = feed
    app = create_app(Settings(registry_url=db_url))
    registry = app.state.registry
    load_feed(registry, feed_dir, seed=3)
    tokens = {role: create_token(registry, name=role.value, role=role, secret=DEV_SECRET)
              for role in (Role.ADMIN, Role.PARTICIPANT_PORTAL)}  # fmt: skip
    with registry.session() as session:
        samples = list(session.scalars(select(m.Sample.sample_id).limit(5)))
    targets = {"participant_id": list(people["participant_id"][:5]), "sample_id": samples}
    yield app, tokens, targets
    registry.close()


def _state(registry) -> tuple:
    """What any write changes: the audit log, participant versions and every fact table."""
    with registry.session() as session:
        versions = session.scalar(select(func.sum(m.Participant.version)))
        counts = [session.scalar(select(func.count()).select_from(t)) for t in AUDITED]
        audit = session.scalar(select(func.max(m.AuditEntry.audit_id)))
        pending = session.scalar(
            select(func.count())
            .select_from(m.IdempotencyRecord)
            .where(m.IdempotencyRecord.status_code.is_(None))
        )
    return audit, versions, pending, *counts


def _check_response(case, response, before: tuple, after: tuple) -> None:
    case.validate_response(response, checks=CHECKS)
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == ERROR_KEYS, body
        assert isinstance(body["code"], str) and body["message"], body
        assert after == before, f"refused {case.method} {case.formatted_path} wrote something"
    elif case.method == "GET" or response.headers.get("idempotent-replayed"):
        assert after == before, f"{case.method} {case.formatted_path} wrote something"
    else:
        assert after[0] > (before[0] or 0), f"{case.method} {case.formatted_path} not audited"
    assert after[2] == 0, "a claimed idempotency key was left without its response"


def _check_accounted_for(registry, start: tuple) -> None:
    """Every row and version bump since `start` has its audit entry; the chain verifies."""
    report = verify_audit_chain(registry)
    assert report.ok, report.problem
    first = start[0]
    a = m.AuditEntry
    with registry.session() as session:
        for table, before in zip(AUDITED, start[3:], strict=True):
            now = session.scalar(select(func.count()).select_from(table))
            audited = session.scalar(
                select(func.count()).where(
                    a.audit_id > first,
                    a.entity == table.__tablename__,
                    a.action != "update_participant",
                )
            )
            assert now - before == audited, table.__tablename__
        changes = dict(
            session.execute(
                select(a.entity_id, func.count())
                .where(a.action.not_in(NOT_A_CHANGE))
                .group_by(a.entity_id)
            ).all()
        )
        p = m.Participant
        for pid, version in session.execute(select(p.participant_id, p.version)):
            assert version == 1 + changes.get(pid, 0), pid


def _fuzz(app, operation, token: str, targets: dict, mode: GenerationMode) -> None:
    registry = app.state.registry
    names = {p.name for p in operation.iter_parameters()}
    aimed = {name: st.sampled_from(ids) | st.none() for name, ids in targets.items()
             if name in names}  # fmt: skip
    if_match = st.sampled_from(["*"]) | st.none() if "If-Match" in names else st.none()

    @given(data=st.data())
    @settings(max_examples=12, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    def run(data) -> None:
        path = {k: v for k, v in ((k, data.draw(s)) for k, s in aimed.items()) if v is not None}
        tag = data.draw(if_match)
        case = data.draw(
            operation.as_strategy(
                mode, path_parameters=path or None, headers={"If-Match": tag} if tag else None
            )
        )
        before = _state(registry)
        response = case.call(headers={"Authorization": f"Bearer {token}"})
        _check_response(case, response, before, _state(registry))

    run()


@pytest.mark.parametrize("role", [Role.ADMIN, Role.PARTICIPANT_PORTAL])
def test_fuzz__no_5xx_no_partial_writes(fuzzed, role) -> None:
    app, tokens, targets = fuzzed
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    start = _state(app.state.registry)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 18
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz(app, operation, tokens[role], targets, mode)
    _check_accounted_for(app.state.registry, start)
