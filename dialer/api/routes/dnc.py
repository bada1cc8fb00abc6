"""The do-not-call list."""

from __future__ import annotations

import tempfile
from pathlib import Path

from fastapi import APIRouter, File, Form, UploadFile
from starlette.concurrency import run_in_threadpool

from ... import control, uploads
from ..deps import Reader, SettingsDep, StoreDep, Writer
from ..errors import responses
from ..schemas import DncChange, DncImport, DncList, Numbers

router = APIRouter(prefix="/v1/dnc", tags=["dnc"])


@router.get("", response_model=DncList, responses=responses(401))
def list_numbers(who: Reader, store: StoreDep) -> DncList:
    numbers = control.dnc_list(store)
    return DncList(count=len(numbers), numbers=numbers)


@router.post("", response_model=DncChange, responses=responses(400, 401, 403, 422))
def add_numbers(body: Numbers, who: Writer, store: StoreDep) -> DncChange:
    """Add numbers (any format; national ones read in ``region``); invalid ones are listed, not added."""
    added, checked = control.dnc_add(store, body.numbers, body.region)
    return DncChange(added=added, invalid=checked.invalid_json())  # type: ignore[arg-type]


@router.delete("", response_model=DncChange, responses=responses(400, 401, 403, 422))
def remove_numbers(body: Numbers, who: Writer, store: StoreDep) -> DncChange:
    removed, checked = control.dnc_remove(store, body.numbers, body.region)
    return DncChange(removed=removed, invalid=checked.invalid_json())  # type: ignore[arg-type]


@router.post("/import", response_model=DncImport, responses=responses(400, 401, 403, 413, 422))
async def import_numbers(who: Writer, store: StoreDep, settings: SettingsDep,
                         file: UploadFile = File(description="A CSV with a phone column, or one number a line"),
                         region: str = Form("US", min_length=2, max_length=2)) -> DncImport:
    """Import numbers from a file (``dialer dnc import --json``)."""
    with tempfile.TemporaryDirectory(prefix="dialer-dnc-") as folder:
        upload = await run_in_threadpool(uploads.save, uploads.read_chunks(file.file), Path(folder),
                                         file.filename, settings.max_upload_bytes)
        result = await run_in_threadpool(control.dnc_import, store, upload.path, region, settings.max_upload_bytes)
    return DncImport(**result)
