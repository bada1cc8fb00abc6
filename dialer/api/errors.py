"""Every error the API returns, mapped to its status code in one place: ``{"error": {code, message}}``."""

from __future__ import annotations

import logging

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..auth import AuthError, ForbiddenError
from ..errors import ConfigError, IngestError, NotFoundError, SettingsError, StateError, UserError
from ..uploads import UploadTooLarge

log = logging.getLogger(__name__)

#: The most specific class wins: (error class, HTTP status, error code).
STATUS_OF: list[tuple[type[Exception], int, str]] = [
    (AuthError, 401, "unauthorized"),
    (ForbiddenError, 403, "forbidden"),
    (NotFoundError, 404, "not_found"),
    (StateError, 409, "wrong_state"),
    (UploadTooLarge, 413, "too_large"),
    (ConfigError, 422, "invalid_config"),
    (IngestError, 422, "invalid_file"),
    (SettingsError, 503, "not_configured"),
    (UserError, 400, "bad_request"),
]

CODE_OF_STATUS = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                  405: "method_not_allowed", 409: "conflict", 413: "too_large", 422: "invalid_request"}


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    """What every error response carries."""

    error: ErrorDetail


def error_response(status: int, code: str, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def _user_error(_: Request, exc: Exception) -> JSONResponse:
    for cls, status, code in STATUS_OF:
        if isinstance(exc, cls):
            return error_response(status, code, str(exc))
    return error_response(400, "bad_request", str(exc))


def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for err in exc.errors():
        where = ".".join(str(part) for part in err.get("loc", ()))
        problems.append(f"{where}: {err.get('msg', 'invalid')}")
    return error_response(422, "invalid_request", "; ".join(problems) or "invalid request")


def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return error_response(exc.status_code, CODE_OF_STATUS.get(exc.status_code, "error"), str(exc.detail))


def _redis_down(_: Request, exc: Exception) -> JSONResponse:
    log.warning("Redis unreachable: %s", type(exc).__name__)
    return error_response(503, "redis_unavailable", "the dialer cannot reach Redis; try again shortly")


def install(app: FastAPI) -> None:
    app.add_exception_handler(UserError, _user_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(redis.exceptions.ConnectionError, _redis_down)


#: For route decorators: the error responses a route documents.
def responses(*statuses: int) -> dict[int | str, dict[str, object]]:
    return {status: {"model": ErrorBody} for status in statuses}
