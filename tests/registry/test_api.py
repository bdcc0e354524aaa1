"""Tests of the registry HTTP API (FastAPI TestClient) on SQLite and PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import date

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from opencohort.registry import audit_trail, service
from opencohort.registry import models as m
from opencohort.registry.auth import DEV_SECRET, Role, create_token, revoke_token
from opencohort.web import REGISTRY_PREFIX, Settings, create_app

SHA = "c" * 64
ADULT = {"sign_up_date": "2021-01-01", "birth_date": "1975-06-01", "site_id": "S1"}


@pytest.fixture
def api(db_url):
    """A client and one token per role (``api.tokens[role]``), on each engine."""
    app = create_app(Settings(registry_url=db_url))
    registry = app.state.registry
    with registry.engine.begin() as connection:
        connection.execute(text("INSERT INTO awardee VALUES ('A1', 'A1')"))
        connection.execute(text("INSERT INTO organization VALUES ('O1', 'A1', 'O1')"))
        for site in ("S1", "S2"):
            connection.execute(
                text("INSERT INTO site VALUES (:s, 'O1', :s, 'NY', false)"), {"s": site}
            )
    client = TestClient(app, base_url="http://testserver" + REGISTRY_PREFIX)
    client.tokens = {
        role: create_token(registry, name=role.value, role=role, secret=DEV_SECRET) for role in Role
    }
    client.registry = registry
    yield client
    registry.close()


def _as(api, role: Role, **headers) -> dict:
    return {"Authorization": f"Bearer {api.tokens[role]}", **headers}


def _enrol(api, pid: str, **fields) -> dict:
    done = api.post(
        "/participants",
        json={"participant_id": pid, **ADULT, **fields},
        headers=_as(api, Role.SITE_STAFF),
    )
    assert done.status_code == 201, done.text
    return done.json()


def _count(api, model) -> int:
    with api.registry.session() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_api__401_403_and_error_shape(api) -> None:
    missing = api.get("/participants/P1")
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert set(missing.json()) == {"code", "message", "loc", "detail"}
    assert missing.json()["code"] == "unauthenticated"
    bad = api.get("/participants/P1", headers={"Authorization": "Bearer oc_nope"})
    assert bad.status_code == 401
    wrong_role = api.get("/participants/P1", headers=_as(api, Role.WORKBENCH))
    assert wrong_role.status_code == 403 and wrong_role.json()["code"] == "forbidden"
    assert api.get("/participants/P1", headers=_as(api, Role.CURATION)).status_code == 404
    invalid = api.post(
        "/participants", json={"participant_id": "X1"}, headers=_as(api, Role.SITE_STAFF)
    )
    assert invalid.status_code == 422 and invalid.json()["code"] == "invalid_request"
    assert invalid.json()["loc"][0] == "body"


def test_create_participant__refused_with_reasons_and_duplicate(api) -> None:
    refused = api.post(
        "/participants",
        headers=_as(api, Role.SITE_STAFF),
        json={"participant_id": "P9", **ADULT, "birth_date": "2010-01-01", "incarcerated": True},
    )
    assert refused.status_code == 422
    assert refused.json()["code"] == "enrolment_refused"
    assert refused.json()["detail"]["reasons"] == [
        "age 11 is under the minimum age 13",
        "is incarcerated",
    ]
    first = _enrol(api, "P1", answers={"race_ethnicity": "black", "zip": "10001"})
    assert first["enrolment_status"] == "registered" and first["race_ethnicity"] == "black"
    assert "date_shift_days" not in first
    again = api.post(
        "/participants", json={"participant_id": "P1", **ADULT}, headers=_as(api, Role.SITE_STAFF)
    )
    assert again.status_code == 409 and again.json()["code"] == "already_exists"
    unknown_site = api.post(
        "/participants",
        json={"participant_id": "P2", **ADULT, "site_id": "S9"},
        headers=_as(api, Role.SITE_STAFF),
    )
    assert unknown_site.status_code == 422 and unknown_site.json()["loc"] == ["site_id"]


def test_create_participant__registry_assigns_ids_once_per_key(api) -> None:
    headers = _as(api, Role.SITE_STAFF, **{"Idempotency-Key": "enrol-1"})
    first = api.post("/participants", json=ADULT, headers=headers)
    retry = api.post("/participants", json=ADULT, headers=headers)
    other = api.post("/participants", json=ADULT, headers=_as(api, Role.SITE_STAFF))
    assert first.status_code == retry.status_code == other.status_code == 201
    pid = first.json()["participant_id"]
    assert retry.json()["participant_id"] == pid != other.json()["participant_id"]
    assert pid.startswith("P") and len(pid) == 10 and pid[1:].isdigit()
    assert _count(api, m.Participant) == 2
    read = api.get(f"/participants/{pid}", headers=_as(api, Role.CURATION))
    assert read.status_code == 200 and read.json()["biobank_id"] == first.json()["biobank_id"]


def test_idempotency_key__retry_replays_and_other_body_refused(api) -> None:
    _enrol(api, "P1")
    headers = _as(api, Role.PARTICIPANT_PORTAL, **{"Idempotency-Key": "k-1"})
    body = {
        "consent_type": "primary",
        "version": "v1",
        "status": "submitted",
        "authored": "2021-01-02",
        "document_sha256": SHA,
    }
    first = api.post("/participants/P1/consents", json=body, headers=headers)
    retry = api.post("/participants/P1/consents", json=body, headers=headers)
    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json() and retry.headers["idempotent-replayed"] == "true"
    assert _count(api, m.Consent) == 1
    other = api.post("/participants/P1/consents", json={**body, "version": "v2"}, headers=headers)
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    assert _count(api, m.Consent) == 1
    other_caller = api.post(
        "/participants",
        json={"participant_id": "P2", **ADULT},
        headers=_as(api, Role.SITE_STAFF, **{"Idempotency-Key": "k-1"}),
    )
    assert other_caller.status_code == 201  # keys are per token
    assert _count(api, m.Participant) == 2


def test_participant_etag__428_412_and_update(api) -> None:
    _enrol(api, "P1")
    got = api.get("/participants/P1", headers=_as(api, Role.SITE_STAFF))
    etag = got.headers["etag"]
    change = {"income": "lt_10k"}
    missing = api.patch("/participants/P1", json=change, headers=_as(api, Role.SITE_STAFF))
    assert missing.status_code == 428 and missing.json()["code"] == "precondition_required"
    done = api.patch(
        "/participants/P1", json=change, headers=_as(api, Role.SITE_STAFF, **{"If-Match": etag})
    )
    assert done.status_code == 200 and done.json()["income"] == "lt_10k"
    assert done.headers["etag"] != etag
    stale = api.patch(
        "/participants/P1",
        json={"income": "skip"},
        headers=_as(api, Role.SITE_STAFF, **{"If-Match": etag}),
    )
    assert stale.status_code == 412 and stale.json()["code"] == "stale_version"
    suspended = api.post(
        "/participants/P1/suspension",
        json={"status": "no_contact", "day": "2021-05-01"},
        headers=_as(api, Role.SITE_STAFF, **{"If-Match": etag}),
    )
    assert suspended.status_code == 412
    assert api.get("/participants/P1", headers=_as(api, Role.SITE_STAFF)).json()["income"] == (
        "lt_10k"
    )


def _post(api, path: str, body: dict, role: Role = Role.SITE_STAFF):
    done = api.post(path, json=body, headers=_as(api, role))
    assert done.status_code == 201, done.text
    return done.json()


def test_api__facts_to_core_and_genomic_workflow(api) -> None:
    _enrol(api, "P1")
    for kind in ("primary", "ehr", "gror"):
        _post(
            api,
            "/participants/P1/consents",
            {
                "consent_type": kind,
                "version": "v1",
                "status": "submitted",
                "authored": "2021-01-02",
                "document_sha256": SHA,
            },
        )
    for module in ("The Basics", "Lifestyle", "Overall Health"):
        _post(
            api,
            "/participants/P1/surveys",
            {"module": module, "authored": "2021-01-03"},
            Role.PARTICIPANT_PORTAL,
        )
    _post(
        api,
        "/participants/P1/biospecimen-orders",
        {
            "order_id": "O1",
            "collection_method": "on_site",
            "created_date": "2021-01-04",
            "samples": [{"sample_id": "X1", "test_code": "1ED10", "received_date": "2021-01-06"}],
        },
    )
    pm = _post(
        api,
        "/participants/P1/physical-measurements",
        {"measured": "2021-01-04", "height_cm": 170, "weight_kg": 70},
    )
    assert pm["height_cm"] == 170 and pm["waist_cm"] is None
    summary = api.get(
        "/participants/P1/summary", params={"as_of": "2021-02-01"}, headers=_as(api, Role.CURATION)
    ).json()
    assert summary["enrolment"]["status"] == "core" and summary["genomic"]["eligible"]
    consents = api.get("/participants/P1/consents", headers=_as(api, Role.SITE_STAFF)).json()
    assert consents["count"] == 3
    step = _post(
        api, "/samples/X1/genomic-events", {"state": "eligible", "day": "2021-02-01"}, Role.CURATION
    )
    assert step["previous"] is None and step["state"] == "eligible"
    illegal = api.post(
        "/samples/X1/genomic-events",
        json={"state": "sequenced", "day": "2021-02-02"},
        headers=_as(api, Role.CURATION),
    )
    assert illegal.status_code == 409 and illegal.json()["code"] == "illegal_transition"
    assert "allowed next: manifest_sent" in illegal.json()["message"]
    _post(
        api,
        "/samples/X1/genomic-events",
        {"state": "manifest_sent", "day": "2021-02-03"},
        Role.CURATION,
    )
    state = api.get("/samples/X1/genomic-state", headers=_as(api, Role.CURATION)).json()
    assert state["state"] == "manifest_sent" and len(state["history"]) == 2
    staff = api.post(
        "/samples/X1/genomic-events",
        json={"state": "received", "day": "2021-02-04"},
        headers=_as(api, Role.SITE_STAFF),
    )
    assert staff.status_code == 403
    trail = audit_trail(api.registry, entity_id="P1")
    assert len(trail) == 1 + 3 + 3 + 2 + 1 + 2
    assert {e["actor"] for e in trail} == {"site_staff", "participant_portal", "curation"}
    verified = api.get("/audit/verify", headers=_as(api, Role.ADMIN)).json()
    assert verified["ok"] and verified["rows"] == len(trail) + len(Role)


def test_withdrawal__writes_refused_reads_limited(api) -> None:
    _enrol(api, "P1", answers={"race_ethnicity": "asian"})
    etag = api.get("/participants/P1", headers=_as(api, Role.SITE_STAFF)).headers["etag"]
    gone = api.post(
        "/participants/P1/withdrawal",
        headers=_as(api, Role.PARTICIPANT_PORTAL, **{"If-Match": etag}),
        json={"status": "no_use", "authored": "2021-03-01", "reason": "asked"},
    )
    assert gone.status_code == 200 and gone.json()["status"] == "no_use"
    refused = api.post(
        "/participants/P1/surveys",
        json={"module": "Lifestyle", "authored": "2021-04-01"},
        headers=_as(api, Role.PARTICIPANT_PORTAL),
    )
    assert refused.status_code == 409 and refused.json()["code"] == "participant_withdrawn"
    read = api.get("/participants/P1", headers=_as(api, Role.SITE_STAFF)).json()
    assert read["limited"] and read["race_ethnicity"] is None and read["site_id"] is None
    assert read["withdrawal_status"] == "no_use" and read["birth_date"] == "1975-06-01"
    summary = api.get("/participants/P1/summary", headers=_as(api, Role.SITE_STAFF)).json()
    assert summary["limited"] and summary["ubr"] is None and summary["genomic"] is None
    etag = api.get("/participants/P1", headers=_as(api, Role.SITE_STAFF)).headers["etag"]
    back = api.post(
        "/participants/P1/withdrawal",
        headers=_as(api, Role.SITE_STAFF, **{"If-Match": etag}),
        json={"status": "not_withdrawn", "authored": "2021-05-01"},
    )
    assert back.status_code == 409 and "irreversible" in back.json()["message"]


def test_search__filters_and_paging(api) -> None:
    for i in range(7):
        _enrol(api, f"P{i + 1}", site_id="S1" if i < 5 else "S2")
    _post(
        api,
        "/participants/P2/consents",
        {
            "consent_type": "primary",
            "version": "v1",
            "status": "submitted",
            "authored": "2021-01-02",
            "document_sha256": SHA,
        },
    )
    etag = api.get("/participants/P3", headers=_as(api, Role.SITE_STAFF)).headers["etag"]
    api.post(
        "/participants/P3/withdrawal",
        json={"status": "early_out", "authored": "2021-01-05"},
        headers=_as(api, Role.SITE_STAFF, **{"If-Match": etag}),
    )

    def search(**params) -> dict:
        done = api.get("/participants", params=params, headers=_as(api, Role.CURATION))
        assert done.status_code == 200, done.text
        return done.json()

    page = search(site_id="S1", limit=2, offset=2)
    assert page["count"] == 5 and [p["participant_id"] for p in page["data"]] == ["P3", "P4"]
    assert search(enrolment_status="participant")["count"] == 1
    withdrawn = search(withdrawn=True)
    assert withdrawn["count"] == 1 and withdrawn["data"][0]["limited"]
    assert search(withdrawn=False, site_id="S2")["count"] == 2
    assert (
        api.get(
            "/participants", params={"enrolment_status": "vip"}, headers=_as(api, Role.CURATION)
        ).status_code
        == 422
    )
    portal = api.get("/participants", headers=_as(api, Role.PARTICIPANT_PORTAL))
    assert portal.status_code == 403
    counts = api.get("/summary", headers=_as(api, Role.WORKBENCH)).json()
    assert counts["participants"] == 7 and counts["site"] == {"S1": 5, "S2": 2}


def test_consents__concurrent_writes_all_kept(api) -> None:
    _enrol(api, "P1")

    def post(i: int) -> int:
        body = {
            "consent_type": "wearables",
            "version": f"v{i}",
            "status": "submitted",
            "authored": "2021-02-01",
            "document_sha256": SHA,
        }
        return api.post(
            "/participants/P1/consents", json=body, headers=_as(api, Role.SITE_STAFF)
        ).status_code

    with ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(post, range(12)))
    assert codes == [201] * 12 and _count(api, m.Consent) == 12
    assert api.get("/audit/verify", headers=_as(api, Role.ADMIN)).json()["ok"]


def test_days_out_of_range__422_not_500(api) -> None:
    """Days that status derivation cannot hold (pandas datetime64[ns]) are refused up front."""
    ancient = api.post(
        "/participants",
        json={"participant_id": "P1", **ADULT, "birth_date": "1381-08-19"},
        headers=_as(api, Role.SITE_STAFF),
    )
    assert ancient.status_code == 422 and ancient.json()["loc"] == ["body", "birth_date"]
    far = api.get("/participants", params={"as_of": "9999-01-01"}, headers=_as(api, Role.CURATION))
    assert far.status_code == 422 and far.json()["code"] == "invalid_request"
    _enrol(api, "P2")
    found = api.get("/participants", headers=_as(api, Role.CURATION))
    assert found.status_code == 200 and found.json()["count"] == 1


def test_revoked_token__refused_by_next_request_on_other_worker(api, db_url) -> None:
    """Each server process builds its own app; a revocation made through one (or the CLI)
    is refused by the very next request to another, with nothing to wait for."""
    other = create_app(Settings(registry_url=db_url), migrate=False)
    try:
        worker = TestClient(other, base_url="http://testserver" + REGISTRY_PREFIX)
        headers = _as(api, Role.WORKBENCH)
        assert worker.get("/summary", headers=headers).status_code == 200
        assert api.get("/summary", headers=headers).status_code == 200
        revoke_token(api.registry, name=Role.WORKBENCH.value)
        refused = worker.get("/summary", headers=headers)
        assert refused.status_code == 401 and refused.json()["code"] == "unauthenticated"
        assert api.get("/summary", headers=headers).status_code == 401
        assert worker.get("/summary", headers=_as(api, Role.CURATION)).status_code == 200
    finally:
        other.state.registry.close()


def test_idempotency_key__crash_before_key_stored_leaves_nothing_and_retry_stores_once(
    api,
) -> None:
    _enrol(api, "P1")
    body = {"consent_type": "ehr", "version": "v1", "status": "submitted",
            "authored": "2021-01-02", "document_sha256": SHA}  # fmt: skip
    before = (_count(api, m.Consent), _count(api, m.AuditEntry), _count(api, m.IdempotencyRecord))

    def crash(_row) -> str:
        raise RuntimeError("the server died after the change, before the key's record")

    call = service.IdempotentCall(caller=Role.SITE_STAFF.value, key="k-crash",
                                  request_sha256="0" * 64, render=crash)  # fmt: skip
    with pytest.raises(RuntimeError, match="server died"), service.idempotent(call):
        service.record_consent(api.registry, "P1", consent_type="ehr", version="v1",
                               status="submitted", authored=date(2021, 1, 2),
                               document_sha256=SHA)  # fmt: skip
    after = (_count(api, m.Consent), _count(api, m.AuditEntry), _count(api, m.IdempotencyRecord))
    assert after == before, "the change was kept without its key record"
    headers = _as(api, Role.SITE_STAFF, **{"Idempotency-Key": "k-crash"})
    first = api.post("/participants/P1/consents", json=body, headers=headers)
    retry = api.post("/participants/P1/consents", json=body, headers=headers)
    assert first.status_code == retry.status_code == 201, (first.text, retry.text)
    assert "idempotent-replayed" not in first.headers
    assert retry.headers["idempotent-replayed"] == "true" and retry.json() == first.json()
    assert _count(api, m.Consent) == before[0] + 1
    assert _count(api, m.IdempotencyRecord) == before[2] + 1
    with api.registry.session() as session:
        stored = session.scalars(select(m.IdempotencyRecord)).all()
    assert [(r.key, r.status_code) for r in stored if r.key == "k-crash"] == [("k-crash", 201)]
