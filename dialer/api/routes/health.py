"""Liveness and readiness."""

from __future__ import annotations

import redis
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ..deps import StoreDep
from ..schemas import Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process serves requests."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
def readyz(store: StoreDep) -> JSONResponse:
    """Redis answers, and a worker with beat ran the pacer recently (its lock is renewed every run)."""
    try:
        redis_ok = bool(store.redis.ping())
        pacer_ok = redis_ok and store.pacer_alive()
    except redis.exceptions.RedisError:
        redis_ok = pacer_ok = False
    ready = redis_ok and pacer_ok
    body = Readiness(status="ready" if ready else "not ready", redis=redis_ok, pacer=pacer_ok)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)
