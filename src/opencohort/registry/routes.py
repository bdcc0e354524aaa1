"""HTTP routes of the registry (thin: each one checks its permission and calls one service).

``opencohort.web.create_app`` mounts ``router`` under ``/registry/v1``. Creating calls
(POST) accept an ``Idempotency-Key`` header: a retry with the same key and body replays the
first response. Changes to a participant (PATCH, withdrawal, suspension) need ``If-Match``
with the ETag of a GET: a stale one fails with 412, none with 428.

Routes are ``async`` and hand their whole database work to the thread pool in one hop
(``run_in_threadpool``): a plain ``def`` route costs FastAPI two hops (the call, then the
check of its response), and each hop costs more CPU than a small read.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import date
from typing import Annotated

import pandas as pd
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from opencohort.errors import OpencohortError
from opencohort.registry import audit, sequencing, service
from opencohort.registry import schemas as s
from opencohort.registry.auth import Action, Principal, RegistryDep, require
from opencohort.registry.service import StaleVersion
from opencohort.registry.status import Applicant, EnrolmentStatus

#: Every error has one body shape (``opencohort.web.errors``), whatever its 4xx status.
router = APIRouter(responses={"4XX": {"model": s.ErrorPublic, "description": "Refused request"}})


class PreconditionRequired(OpencohortError):
    """A change to a participant was sent without If-Match; GET it and send its ETag."""


CanCreateParticipant = Annotated[Principal, Depends(require(Action.PARTICIPANT_CREATE))]
CanReadParticipant = Annotated[Principal, Depends(require(Action.PARTICIPANT_READ))]
CanSearchParticipants = Annotated[Principal, Depends(require(Action.PARTICIPANT_SEARCH))]
CanUpdateParticipant = Annotated[Principal, Depends(require(Action.PARTICIPANT_UPDATE))]
CanWriteConsent = Annotated[Principal, Depends(require(Action.CONSENT_WRITE))]
CanWriteSurvey = Annotated[Principal, Depends(require(Action.SURVEY_WRITE))]
CanWriteMeasurement = Annotated[Principal, Depends(require(Action.MEASUREMENT_WRITE))]
CanWriteBiospecimen = Annotated[Principal, Depends(require(Action.BIOSPECIMEN_WRITE))]
CanWithdraw = Annotated[Principal, Depends(require(Action.WITHDRAWAL_WRITE))]
CanSuspend = Annotated[Principal, Depends(require(Action.SUSPENSION_WRITE))]
CanReadSummary = Annotated[Principal, Depends(require(Action.SUMMARY_READ))]
CanReadCounts = Annotated[Principal, Depends(require(Action.COUNTS_READ))]
CanReadGenomic = Annotated[Principal, Depends(require(Action.GENOMIC_READ))]
CanWriteGenomic = Annotated[Principal, Depends(require(Action.GENOMIC_WRITE))]
CanReadAudit = Annotated[Principal, Depends(require(Action.AUDIT_READ))]

IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", max_length=200, pattern=r"^[\x21-\x7e]+$",
           description="Retrying with the same key and body replays the first response."),
]  # fmt: skip
IfMatch = Annotated[
    str | None, Header(alias="If-Match", max_length=100, description="ETag of a GET.")
]
AsOf = Annotated[s.Day | None, Query(description="Day statuses are derived on (default today).")]


def _day(as_of: date | None) -> date:
    return as_of or date.today()


def _etag(version: int | None) -> str:
    return f'"{version}"'


def _expected_version(if_match: str | None) -> int | None:
    """Return the version an If-Match header names (None for ``*``)."""
    if if_match is None:
        raise PreconditionRequired("this change needs an If-Match header with the ETag of a GET")
    tag = if_match.strip()
    if tag == "*":
        return None
    tag = tag.removeprefix("W/").strip('"')
    if not tag.isdigit():
        raise StaleVersion(f"If-Match {if_match} is not an ETag of this API; GET it again")
    return int(tag)


async def _create(
    request: Request,
    principal: Principal,
    key: str | None,
    body: BaseModel,
    run: Callable[[], object],
    present: Callable[[object], BaseModel],
) -> BaseModel | Response:
    """Run `_create_once` on the thread pool."""
    return await run_in_threadpool(_create_once, request, principal, key, body, run, present)


def _create_once(
    request: Request,
    principal: Principal,
    key: str | None,
    body: BaseModel,
    run: Callable[[], object],
    present: Callable[[object], BaseModel],
) -> BaseModel | Response:
    """Return ``present(run())``, running `run` once per idempotency key: the change stores
    its response in its own transaction, and a retry replays it (the retry's own change is
    rolled back when it finds the key stored)."""
    if key is None:
        return present(run())
    registry = request.app.state.registry
    content = {"method": request.method, "path": request.url.path,
               "body": body.model_dump(mode="json")}  # fmt: skip
    fingerprint = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
    who = {"caller": principal.name, "key": key, "request_sha256": fingerprint}
    call = service.IdempotentCall(**who, render=lambda done: present(done).model_dump_json())
    try:
        with service.idempotent(call):
            run()
    except Exception:
        # a retry: the first request with the key committed (this change, now rolled back,
        # clashed with it or with the key's record), or this request is refused
        stored = service.idempotent_response(registry, **who)
        if stored is None:
            raise
    else:
        if call.body is None:
            raise RuntimeError(f"{request.url.path} stored no idempotent response")
        return Response(call.body, 201, media_type="application/json")
    status_code, text = stored
    return Response(text, status_code, {"Idempotent-Replayed": "true"}, "application/json")


# --- participants ------------------------------------------------------------------------------


@router.post("/participants", response_model=s.ParticipantPublic, status_code=201,
             operation_id="participants-create", tags=["participants"])  # fmt: skip
async def create_participant(
    body: s.ParticipantCreate,
    request: Request,
    registry: RegistryDep,
    caller: CanCreateParticipant,
    key: IdempotencyKey = None,
):
    """Enrol a participant; an ineligible applicant gets 422 with every reason."""

    def run() -> dict:
        applicant = Applicant(birth_date=body.birth_date, lives_in_us=body.lives_in_us,
                              incarcerated=body.incarcerated, able_to_consent=body.able_to_consent,
                              guardian_linked=body.guardian_linked,
                              guardian_consented=body.guardian_consented)  # fmt: skip
        pid = service.enrol(registry, applicant, participant_id=body.participant_id,
                            sign_up_date=body.sign_up_date, site_id=body.site_id,
                            origin=body.origin, answers=body.answers.model_dump(),
                            actor=caller.name)  # fmt: skip
        return service.participant_record(registry, pid, as_of=date.today())

    return await _create(request, caller, key, body, run, s.ParticipantPublic.model_validate)


@router.get("/participants", response_model=s.ParticipantSummaryList,
            operation_id="participants-search", tags=["participants"])  # fmt: skip
async def search_participants(
    registry: RegistryDep,
    caller: CanSearchParticipants,
    site_id: Annotated[str | None, Query(max_length=32)] = None,
    enrolment_status: s.EnrolmentLabel | None = None,
    withdrawn: bool | None = None,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    as_of: AsOf = None,
):
    """Search participant summaries by site, enrolment status and withdrawal, one page."""
    status = EnrolmentStatus[enrolment_status.name] if enrolment_status else None
    data, count = await run_in_threadpool(
        service.search_participants, registry, as_of=_day(as_of), site_id=site_id,
        enrolment_status=status, withdrawn=withdrawn, offset=offset, limit=limit)  # fmt: skip
    return {"data": data, "count": count}


@router.get("/participants/{participant_id}", response_model=s.ParticipantPublic,
            operation_id="participants-get", tags=["participants"])  # fmt: skip
async def get_participant(
    participant_id: s.ParticipantId,
    response: Response,
    registry: RegistryDep,
    caller: CanReadParticipant,
    as_of: AsOf = None,
):
    """Read a participant (limited to ids and statuses when withdrawn), with its ETag."""
    record = await run_in_threadpool(service.participant_record, registry, participant_id,
                                     as_of=_day(as_of))  # fmt: skip
    response.headers["ETag"] = _etag(record["version"])
    return record


@router.patch("/participants/{participant_id}", response_model=s.ParticipantPublic,
              operation_id="participants-update", tags=["participants"])  # fmt: skip
async def update_participant(
    participant_id: s.ParticipantId,
    body: s.ParticipantUpdate,
    response: Response,
    registry: RegistryDep,
    caller: CanUpdateParticipant,
    if_match: IfMatch = None,
):
    """Change the site pairing or The Basics answers (needs If-Match)."""
    changes, expected = body.model_dump(exclude_unset=True), _expected_version(if_match)

    def change() -> dict:
        service.update_participant(registry, participant_id, changes, expected_version=expected,
                                   actor=caller.name)  # fmt: skip
        return service.participant_record(registry, participant_id, as_of=date.today())

    record = await run_in_threadpool(change)
    response.headers["ETag"] = _etag(record["version"])
    return record


@router.get("/participants/{participant_id}/summary", response_model=s.ParticipantSummaryPublic,
            operation_id="summaries-get", tags=["summaries"])  # fmt: skip
async def get_summary(
    participant_id: s.ParticipantId,
    registry: RegistryDep,
    caller: CanReadSummary,
    as_of: AsOf = None,
):
    """Every derived status of a participant, with the reasons that decided them."""
    return await run_in_threadpool(service.participant_summary, registry, participant_id,
                                   as_of=_day(as_of))  # fmt: skip


@router.get("/summary", response_model=s.CountsPublic, operation_id="summaries-counts",
            tags=["summaries"])  # fmt: skip
async def get_counts(registry: RegistryDep, caller: CanReadCounts, as_of: AsOf = None):
    """Participants counted by enrolment status, site, consent, withdrawal and UBR."""
    return await run_in_threadpool(service.summary, registry, as_of=_day(as_of))


# --- facts about a participant -----------------------------------------------------------------


@router.post("/participants/{participant_id}/consents", response_model=s.ConsentPublic,
             status_code=201, operation_id="consents-create", tags=["consents"])  # fmt: skip
async def create_consent(
    participant_id: s.ParticipantId,
    body: s.ConsentCreate,
    request: Request,
    registry: RegistryDep,
    caller: CanWriteConsent,
    key: IdempotencyKey = None,
):
    """Append a signed consent form to the participant's history."""

    def run() -> dict:
        return service.record_consent(
            registry,
            participant_id,
            consent_type=body.consent_type,
            version=body.version,
            status=body.status,
            authored=body.authored,
            document_sha256=body.document_sha256,
            signer=body.signer,
            actor=caller.name,
        )

    return await _create(request, caller, key, body, run, s.ConsentPublic.model_validate)


@router.get("/participants/{participant_id}/consents", response_model=s.ConsentList,
            operation_id="consents-list", tags=["consents"])  # fmt: skip
async def list_consents(
    participant_id: s.ParticipantId, registry: RegistryDep, caller: CanReadSummary
):
    """The participant's whole consent history, oldest first."""
    data = await run_in_threadpool(service.list_consents, registry, participant_id)
    return {"data": data, "count": len(data)}


@router.post("/participants/{participant_id}/surveys", response_model=s.SurveyPublic,
             status_code=201, operation_id="surveys-create", tags=["surveys"])  # fmt: skip
async def create_survey(
    participant_id: s.ParticipantId,
    body: s.SurveyCreate,
    request: Request,
    registry: RegistryDep,
    caller: CanWriteSurvey,
    key: IdempotencyKey = None,
):
    """Record a completed survey module."""

    def run() -> dict:
        return service.record_survey(
            registry,
            participant_id,
            module=body.module,
            authored=body.authored,
            actor=caller.name,
        )

    return await _create(request, caller, key, body, run, s.SurveyPublic.model_validate)


@router.post("/participants/{participant_id}/physical-measurements",
             response_model=s.PhysicalMeasurementPublic, status_code=201,
             operation_id="measurements-create", tags=["measurements"])  # fmt: skip
async def create_measurement(
    participant_id: s.ParticipantId,
    body: s.PhysicalMeasurementCreate,
    request: Request,
    registry: RegistryDep,
    caller: CanWriteMeasurement,
    key: IdempotencyKey = None,
):
    """Record one visit's physical measurements."""
    values = body.model_dump(exclude={"measured"})

    def run() -> dict:
        return service.record_physical_measurement(
            registry, participant_id, measured=body.measured, values=values, actor=caller.name
        )

    return await _create(
        request, caller, key, body, run, s.PhysicalMeasurementPublic.model_validate
    )


@router.post("/participants/{participant_id}/biospecimen-orders",
             response_model=s.BiospecimenOrderPublic, status_code=201,
             operation_id="biospecimens-create", tags=["biospecimens"])  # fmt: skip
async def create_order(
    participant_id: s.ParticipantId,
    body: s.BiospecimenOrderCreate,
    request: Request,
    registry: RegistryDep,
    caller: CanWriteBiospecimen,
    key: IdempotencyKey = None,
):
    """Store a biospecimen order and its samples."""
    order = body.model_dump(exclude={"samples"})
    samples = [sample.model_dump() for sample in body.samples]

    def run() -> dict:
        return service.create_biospecimen_order(
            registry, participant_id, order=order, samples=samples, actor=caller.name
        )

    return await _create(request, caller, key, body, run, s.BiospecimenOrderPublic.model_validate)


@router.post("/participants/{participant_id}/withdrawal", response_model=s.DecisionPublic,
             operation_id="withdrawals-create", tags=["withdrawals"])  # fmt: skip
async def create_withdrawal(
    participant_id: s.ParticipantId,
    body: s.WithdrawalCreate,
    registry: RegistryDep,
    caller: CanWithdraw,
    if_match: IfMatch = None,
):
    """Withdraw a participant (no_use is irreversible) or reinstate one (needs If-Match)."""
    decided = await run_in_threadpool(
        service.withdraw, registry, participant_id, status=body.status, authored=body.authored,
        reason=body.reason, expected_version=_expected_version(if_match), actor=caller.name,
    )  # fmt: skip
    return {"status": decided.value.value, "reason": decided.reason, "since": decided.since}


@router.post("/participants/{participant_id}/suspension", response_model=s.SuspensionPublic,
             operation_id="suspensions-create", tags=["suspensions"])  # fmt: skip
async def create_suspension(
    participant_id: s.ParticipantId,
    body: s.SuspensionCreate,
    registry: RegistryDep,
    caller: CanSuspend,
    if_match: IfMatch = None,
):
    """Suspend contact with a participant or lift the suspension (needs If-Match)."""
    return await run_in_threadpool(
        service.suspend, registry, participant_id, status=body.status, day=body.day,
        expected_version=_expected_version(if_match), actor=caller.name,
    )  # fmt: skip


# --- genomic workflow and audit ------------------------------------------------------------------


@router.post("/samples/{sample_id}/genomic-events", response_model=s.GenomicStepPublic,
             status_code=201, operation_id="genomics-advance", tags=["genomics"])  # fmt: skip
async def advance_genomic(
    sample_id: s.Code,
    body: s.GenomicEventCreate,
    request: Request,
    registry: RegistryDep,
    caller: CanWriteGenomic,
    key: IdempotencyKey = None,
):
    """Move a sample one step along the sequencing workflow (illegal steps: 409)."""

    def run() -> dict:
        return service.advance_genomic(
            registry,
            sample_id,
            state=body.state,
            day=body.day,
            detail=body.detail,
            actor=caller.name,
        )

    return await _create(request, caller, key, body, run, s.GenomicStepPublic.model_validate)


@router.get("/samples/{sample_id}/genomic-state", response_model=s.GenomicStatePublic,
            operation_id="genomics-get", tags=["genomics"])  # fmt: skip
async def get_genomic_state(
    sample_id: s.Code,
    registry: RegistryDep,
    caller: CanReadGenomic,
    as_of: AsOf = None,
):
    """A sample's place in the sequencing workflow and its dated steps."""
    return await run_in_threadpool(service.genomic_sample_state, registry, sample_id,
                                   as_of=_day(as_of))  # fmt: skip


@router.get("/sequencing/plan", response_model=s.SequencingPlanPublic,
            operation_id="genomics-plan", tags=["genomics"])  # fmt: skip
async def get_sequencing_plan(
    registry: RegistryDep,
    caller: CanReadGenomic,
    capacity: Annotated[int, Query(ge=0, le=1_000_000)] = sequencing.DEFAULT_CAPACITY,
    as_of: AsOf = None,
):
    """Whom to send for sequencing next toward the diversity targets (nothing is recorded)."""
    day = _day(as_of)
    plan = await run_in_threadpool(sequencing.plan_sequencing, registry, as_of=day,
                                   capacity=capacity)  # fmt: skip
    return {"as_of": day, **plan.to_dict()}


@router.post("/sequencing/manifests", response_model=s.ManifestPublic, status_code=201,
             operation_id="genomics-send", tags=["genomics"])  # fmt: skip
async def create_manifest(
    body: s.ManifestCreate,
    request: Request,
    registry: RegistryDep,
    caller: CanWriteGenomic,
    key: IdempotencyKey = None,
):
    """Send one DNA sample of each participant for sequencing, all or nothing (refused: 409)."""

    def run() -> pd.DataFrame:
        return sequencing.send_for_sequencing(registry, body.participant_ids, day=body.day,
                                              actor=caller.name)  # fmt: skip

    def present(sent: pd.DataFrame) -> s.ManifestPublic:
        rows = sent.to_dict(orient="records")
        return s.ManifestPublic.model_validate({"data": rows, "count": len(rows)})

    return await _create(request, caller, key, body, run, present)


@router.get("/audit/verify", response_model=s.AuditReportPublic, operation_id="audit-verify",
            tags=["audit"])  # fmt: skip
async def verify_audit(registry: RegistryDep, caller: CanReadAudit):
    """Check the audit log's hash chain and name the first broken row."""
    report = await run_in_threadpool(audit.verify_audit_chain, registry)
    return {**report.__dict__, "ok": report.ok}
