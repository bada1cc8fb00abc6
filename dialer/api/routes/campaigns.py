"""Campaigns: upload, list, show, control, status, live events, reports and rejects."""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, StreamingResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from ... import control, reports, uploads
from ...celery import app as celery_app
from ...config import parse_config
from ...errors import ConfigError, IngestError, NotFoundError
from ...summary import draw_chart, summarise
from ...webhooks import check_endpoints
from ..deps import Reader, SettingsDep, StoreDep, Writer
from ..errors import responses
from ..schemas import (
    ActionResult,
    CampaignCreated,
    CampaignDetail,
    CampaignListItem,
    CampaignStatus,
    ContactDetail,
)

router = APIRouter(prefix="/v1/campaigns", tags=["campaigns"])

#: How often the event stream looks at a campaign, and how long it may stay silent.
EVENTS_POLL_S = 0.5
EVENTS_KEEPALIVE_S = 15.0
#: Form fields other than the file are small; a larger one is refused.
MAX_FIELD_BYTES = 1 << 20

MEDIA_TYPES = {
    reports.Format.CSV: "text/csv; charset=utf-8",
    reports.Format.XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    reports.Format.PARQUET: "application/vnd.apache.parquet",
    reports.Format.JSON: "application/json",
}

UPLOAD_BODY = {
    "required": True,
    "content": {"multipart/form-data": {"schema": {
        "type": "object",
        "required": ["file", "config"],
        "properties": {
            "file": {"type": "string", "format": "binary", "description": "The contacts CSV."},
            "config": {"type": "string", "description": "The campaign config, YAML or JSON text."},
            "phone_column": {"type": "array", "items": {"type": "string"},
                             "description": "A column holding phone numbers; repeat the field for several, "
                                            "the one to dial first first."},
            "region": {"type": "string", "description": "Default region for national numbers, e.g. US."},
        },
    }}},
}


def parse_config_text(text: str, region: str | None) -> dict[str, Any]:
    """The config form field, YAML or JSON (JSON is YAML), validated; ConfigError names each bad field."""
    try:
        data = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config is not valid YAML or JSON: {exc}") from None
    if data is None:
        data = {}
    if isinstance(data, dict) and region:
        data = {**data, "default_region": region}
    return parse_config(data, "config").model_dump(mode="json")


@router.post("", status_code=202, response_model=CampaignCreated, openapi_extra={"requestBody": UPLOAD_BODY},
             responses=responses(400, 401, 403, 413, 422))
async def create_campaign(request: Request, who: Writer, settings: SettingsDep, store: StoreDep) -> CampaignCreated:
    """Upload a CSV and a config: checked now (422), ingested by a worker; poll ``status_url``."""
    limit = settings.max_upload_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + MAX_FIELD_BYTES:
        raise uploads.UploadTooLarge(f"the upload is over the {limit / 2**20:.0f} MiB limit; "
                                     "split it or raise DIALER_MAX_UPLOAD_MB")
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise IngestError("send multipart/form-data with a `file` (the CSV) and a `config` field")
    async with request.form(max_files=1, max_fields=10, max_part_size=MAX_FIELD_BYTES) as form:
        file, config_text = form.get("file"), form.get("config")
        phone_columns, region = form.getlist("phone_column"), form.get("region")
        if file is None or isinstance(file, str):
            raise IngestError("the form has no `file` field with the contacts CSV")
        if not isinstance(config_text, str):
            raise ConfigError("the form has no `config` field (the campaign config as YAML or JSON text)")
        config = parse_config_text(config_text, region if isinstance(region, str) and region else None)
        await run_in_threadpool(check_endpoints, parse_config(config).webhooks, settings.dialer_webhook_allow_private,
                                settings.env_secret)
        phone = [name for name in phone_columns if isinstance(name, str) and name] or None
        upload = await run_in_threadpool(
            uploads.save, uploads.read_chunks(file.file), settings.dialer_upload_dir, file.filename, limit)
    try:
        await run_in_threadpool(uploads.check, upload, parse_config(config), phone, limit)
        uploads.mark_ingesting(store, upload)
        celery_app.send_task("dialer.tasks.ingest_upload", args=[str(upload.path.resolve()), config, phone],
                             kwargs={"campaign_id": upload.campaign_id}, queue="ingest")
    except BaseException:
        uploads.forget(store, upload)
        raise
    return CampaignCreated(campaign_id=upload.campaign_id, state="ingesting",
                           status_url=f"/v1/campaigns/{upload.campaign_id}")


@router.get("", response_model=list[CampaignListItem], responses=responses(401))
def list_campaigns(who: Reader, store: StoreDep) -> list[dict[str, Any]]:
    """Every campaign, oldest first (``dialer campaign list --json``)."""
    return control.list_campaigns(store)


@router.get("/{campaign_id}", response_model=CampaignDetail, response_model_exclude_unset=True,
            responses=responses(401, 404))
def get_campaign(campaign_id: str, who: Reader, store: StoreDep) -> dict[str, Any]:
    """A campaign (``dialer campaign show --json``), or its ingest's progress or failure."""
    try:
        return control.show(store, campaign_id)
    except NotFoundError:
        return uploads.ingest_record(store, campaign_id)


def _action(store: StoreDep, campaign_id: str, cancelled: int | None = None) -> ActionResult:
    return ActionResult(campaign_id=campaign_id, state=store.get_campaign(campaign_id).state.value,
                        cancelled_contacts=cancelled)


@router.post("/{campaign_id}/start", response_model=ActionResult, responses=responses(401, 403, 404, 409, 503))
def start(campaign_id: str, who: Writer, store: StoreDep, settings: SettingsDep) -> ActionResult:
    """Start dialing a draft campaign (409 from any other state)."""
    control.start(store, settings, campaign_id)
    return _action(store, campaign_id)


@router.post("/{campaign_id}/pause", response_model=ActionResult, responses=responses(401, 403, 404, 409))
def pause(campaign_id: str, who: Writer, store: StoreDep) -> ActionResult:
    """Stop placing new calls; calls in progress finish."""
    control.pause(store, campaign_id)
    return _action(store, campaign_id)


@router.post("/{campaign_id}/resume", response_model=ActionResult, responses=responses(401, 403, 404, 409))
def resume(campaign_id: str, who: Writer, store: StoreDep) -> ActionResult:
    control.resume(store, campaign_id)
    return _action(store, campaign_id)


@router.post("/{campaign_id}/cancel", response_model=ActionResult, responses=responses(401, 403, 404, 409))
def cancel(campaign_id: str, who: Writer, store: StoreDep, settings: SettingsDep) -> ActionResult:
    """Cancel for good: contacts not yet dialed get the outcome ``cancelled``."""
    cancelled = control.cancel(store, settings, campaign_id)
    return _action(store, campaign_id, cancelled)


@router.get("/{campaign_id}/status", response_model=CampaignStatus, responses=responses(401, 404))
def status(campaign_id: str, who: Reader, store: StoreDep, settings: SettingsDep) -> dict[str, Any]:
    """Progress (``dialer campaign status --json``)."""
    return control.status(store, campaign_id, settings.dialer_heartbeat_stale_s)


@router.get("/{campaign_id}/events", responses={200: {"content": {"text/event-stream": {}},
                                                      "description": "status snapshots"},
                                                **responses(401, 404)})
async def events(campaign_id: str, request: Request, who: Reader, store: StoreDep,
                 settings: SettingsDep) -> StreamingResponse:
    """Server-Sent Events: a ``status`` event (the status JSON) on each change, at most two a second,
    and a last ``end`` event once the campaign is completed, paused or cancelled with no call left."""
    stale_after_s = settings.dialer_heartbeat_stale_s
    first = await run_in_threadpool(control.status, store, campaign_id, stale_after_s)  # 404 before the stream
    return StreamingResponse(_event_stream(request, store, campaign_id, first, stale_after_s),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _event_stream(request: Request, store: StoreDep, campaign_id: str,
                        first: dict[str, Any], stale_after_s: float) -> AsyncIterator[str]:
    data: dict[str, Any] | None = first
    last_sent: dict[str, Any] | None = None
    quiet_s = 0.0
    while True:
        if data != last_sent and data is not None:
            yield f"event: status\ndata: {json.dumps(data)}\n\n"
            last_sent, quiet_s = data, 0.0
            if control.is_settled(data):
                yield "event: end\ndata: {}\n\n"
                return
        elif quiet_s >= EVENTS_KEEPALIVE_S:
            yield ": keep-alive\n\n"
            quiet_s = 0.0
        await asyncio.sleep(EVENTS_POLL_S)
        quiet_s += EVENTS_POLL_S
        if await request.is_disconnected():
            return
        try:
            data = await run_in_threadpool(control.status, store, campaign_id, stale_after_s)
        except NotFoundError:
            yield "event: end\ndata: {}\n\n"
            return


@router.get("/{campaign_id}/contacts/{contact_id}", response_model=ContactDetail, responses=responses(401, 404))
def contact(campaign_id: str, contact_id: int, who: Reader, store: StoreDep) -> dict[str, Any]:
    """One contact (by CSV row number): its status and every attempt with its result and transcript."""
    return control.contact(store, campaign_id, contact_id)


def _temp_path(suffix: str) -> Path:
    descriptor, name = tempfile.mkstemp(prefix="dialer-api-", suffix=suffix)
    os.close(descriptor)
    return Path(name)


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)


@router.get("/{campaign_id}/report", response_class=FileResponse,
            responses={200: {"content": {media: {} for media in MEDIA_TYPES.values()}, "description": "the report"},
                       **responses(400, 401, 404)})
def report(
    campaign_id: str,
    who: Reader,
    store: StoreDep,
    format: reports.Format = reports.Format.CSV,
    attempts: bool = False,
    tz: Annotated[str, Query(max_length=64, description="IANA time zone of the report's times")] = "UTC",
) -> FileResponse:
    """The outcome report (``dialer report export``), one row per contact or per attempt."""
    store.get_campaign(campaign_id)
    path = _temp_path(f".{format.value}")
    try:
        reports.export(store, campaign_id, format, path, attempts=attempts, timezone=tz, processes=1)
    except BaseException:
        _unlink(path)
        raise
    name = reports.default_path(campaign_id, format, attempts).name
    return FileResponse(path, media_type=MEDIA_TYPES[format], filename=name, background=BackgroundTask(_unlink, path))


@router.get("/{campaign_id}/summary", responses=responses(401, 404))
def summary(campaign_id: str, who: Reader, store: StoreDep) -> dict[str, Any]:
    """Counts and rates (``dialer report summary --json``)."""
    return summarise(store, campaign_id)


@router.get("/{campaign_id}/summary.png", response_class=FileResponse,
            responses={200: {"content": {"image/png": {}}, "description": "the chart"}, **responses(401, 404)})
def summary_png(campaign_id: str, who: Reader, store: StoreDep) -> FileResponse:
    """The outcome mix and calls per local hour, drawn."""
    data = summarise(store, campaign_id)
    path = _temp_path(".png")
    try:
        draw_chart(data, path)
    except BaseException:
        _unlink(path)
        raise
    return FileResponse(path, media_type="image/png", background=BackgroundTask(_unlink, path))


@router.get("/{campaign_id}/rejects", response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {}}, "description": "the skipped rows"}, **responses(401, 404)})
def rejects(campaign_id: str, who: Reader, store: StoreDep, all: bool = False) -> StreamingResponse:
    """Rejected rows with their row numbers and reasons (``all``: duplicates and DNC-suppressed too)."""
    chunks = control.iter_rejects_csv(store, campaign_id, include_all=all)
    return StreamingResponse(chunks, media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="rejects-{campaign_id}.csv"'})
