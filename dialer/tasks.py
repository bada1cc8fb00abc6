"""Celery tasks. Each one loads ids, calls a plain function and records the result."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from .celery import app
from .config import parse_config
from .ingest import ingest_file
from .settings import get_settings
from .store import Store


@cache
def store() -> Store:
    """One Store per worker process, shared by its threads."""
    settings = get_settings()
    return Store.from_url(settings.redis_url, max_connections=settings.dialer_worker_concurrency + 20)


@app.task(name="dialer.tasks.ingest_upload")
def ingest_upload(path: str, config: dict[str, Any], phone_column: str | None = None) -> dict[str, Any]:
    """Ingest a stored upload into a draft campaign; returns the ingest summary."""
    summary = ingest_file(
        store(),
        Path(path),
        parse_config(config, source="uploaded config"),
        phone_column=phone_column,
        max_bytes=get_settings().max_upload_bytes,
    )
    return summary.to_json_dict()
