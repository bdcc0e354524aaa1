"""One place that turns exceptions into HTTP errors, all with the body ``{code, message, loc,
detail}``: a stable code, a human message, the field path (or null) and extra facts (or null).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException

from opencohort.errors import InputError, NotFound, OpencohortError, PermissionDenied
from opencohort.registry import EnrolmentRefused, TransitionError
from opencohort.registry.auth import Unauthenticated
from opencohort.registry.routes import PreconditionRequired
from opencohort.registry.service import (
    AlreadyExists,
    IdempotencyConflict,
    ParticipantWithdrawn,
    StaleVersion,
)

logger = logging.getLogger(__name__)

#: Domain exception -> (HTTP status, code); the most specific class of an exception wins.
STATUSES: dict[type[Exception], tuple[int, str]] = {
    EnrolmentRefused: (422, "enrolment_refused"),
    AlreadyExists: (409, "already_exists"),
    InputError: (422, "invalid_input"),
    NotFound: (404, "not_found"),
    Unauthenticated: (401, "unauthenticated"),
    ParticipantWithdrawn: (409, "participant_withdrawn"),
    PermissionDenied: (403, "forbidden"),
    TransitionError: (409, "illegal_transition"),
    StaleVersion: (412, "stale_version"),
    PreconditionRequired: (428, "precondition_required"),
    IdempotencyConflict: (422, "idempotency_key_reused"),
    OpencohortError: (400, "bad_request"),
}
_HTTP_CODES = {401: "unauthenticated", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed"}  # fmt: skip


def error_body(code: str, message: str, loc: list | None = None, detail: object = None) -> dict:
    """Return the one error body shape."""
    return {"code": code, "message": message, "loc": loc, "detail": detail}


def _domain(request: Request, exc: OpencohortError) -> JSONResponse:
    status, code = next(STATUSES[c] for c in type(exc).__mro__ if c in STATUSES)
    loc, detail, headers = None, None, None
    if isinstance(exc, InputError) and exc.field:
        loc = [exc.field]
    if isinstance(exc, EnrolmentRefused):
        detail = {"reasons": list(exc.reasons)}
    if isinstance(exc, Unauthenticated):
        headers = {"WWW-Authenticate": "Bearer"}
    return JSONResponse(error_body(code, str(exc), loc, detail), status, headers)


def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = jsonable_encoder(exc.errors(), exclude={"input", "url"})
    first = errors[0] if errors else {"msg": "invalid request", "loc": None}
    where = ".".join(str(p) for p in first["loc"] or ())
    message = f"{where}: {first['msg']}" if where else first["msg"]
    return JSONResponse(error_body("invalid_request", message, first["loc"], errors), 422)


def _http(request: Request, exc: HTTPException) -> JSONResponse:
    code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    return JSONResponse(error_body(code, str(exc.detail)), exc.status_code, exc.headers)


def _integrity(request: Request, exc: IntegrityError) -> JSONResponse:
    logger.info("integrity error on %s: %s", request.url.path, exc.orig)
    message = "the request clashes with stored data (a duplicate or a missing reference)"
    return JSONResponse(error_body("conflict", message), 409)


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse(error_body("internal_error", "internal error; see the server log"), 500)


def install_error_handlers(app: FastAPI) -> None:
    """Make `app` answer every error with the one body shape."""
    app.add_exception_handler(OpencohortError, _domain)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(IntegrityError, _integrity)
    app.add_exception_handler(Exception, _unexpected)
