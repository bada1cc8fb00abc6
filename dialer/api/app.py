"""The FastAPI application: ``create_app(settings)``; ``dialer api serve`` runs it on uvicorn."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from prometheus_client import make_asgi_app

from ..metrics import make_registry
from ..settings import Settings
from ..store import Store
from . import errors
from .routes import campaigns, dashboard, dnc, health, webhooks

STATIC_DIR = Path(__file__).parent / "static"

DESCRIPTION = """The dialer's operations over HTTP: the same application layer as the `dialer` CLI.

Every `/v1` route needs `Authorization: Bearer <key>` (create one with `dialer api-key create NAME`);
read-only keys can read but not upload, control or change the do-not-call list. Errors are
`{"error": {"code", "message"}}`.
"""


def create_app(settings: Settings) -> FastAPI:
    store = Store.from_url(settings.redis_url, max_connections=100)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        store.redis.close()

    app = FastAPI(title="Outbound dialer", version="1", description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    app.state.store = store
    errors.install(app)
    app.include_router(health.router)
    app.include_router(campaigns.router)
    app.include_router(dnc.router)
    app.include_router(webhooks.router)
    app.include_router(dashboard.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    # Prometheus metrics, as `dialer metrics serve` has them (no key: no personal data in them).
    app.mount("/metrics", make_asgi_app(registry=make_registry(store)))
    return app
