"""Campaigns created from an upload: the file kept for the ingest task, and what became of it.

The HTTP API hands out a campaign id before the ``ingest`` task has read a row. Until the task
publishes the campaign, this module's record says whether the ingest is still running or why it
failed; the campaign itself stays invisible (``Store``) and a failed ingest leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from .config import CampaignConfig
from .errors import IngestError, NotFoundError, UserError
from .ingest import IngestSummary, PhoneColumns, ingest_file, prepare
from .store import PREFIX, Store

#: How long the record of an upload's ingest outlives it (a failed one says why for this long).
RECORD_TTL_S = 7 * 24 * 3600
#: Bytes read from the request and written to disk at a time.
CHUNK_BYTES = 1 << 20


class UploadKeys:
    """The Redis keys this module owns."""

    @staticmethod
    def record(cid: str) -> str:
        return f"{PREFIX}:upload:{cid}"  #: hash state/error/source/created_at of one upload's ingest


class UploadTooLarge(UserError):
    """An upload over DIALER_MAX_UPLOAD_MB; nothing of it is kept."""


@dataclass(frozen=True)
class Upload:
    campaign_id: str
    path: Path


def safe_name(filename: str | None) -> str:
    """A file name safe to join to a directory: the last path part, plain characters only."""
    base = re.split(r"[\\/]", filename or "")[-1]
    base = re.sub(r"[^A-Za-z0-9._ -]", "_", base).strip(" .")
    return base[:120] or "upload.csv"


def save(chunks: Iterable[bytes], directory: Path, filename: str | None, max_bytes: int) -> Upload:
    """Write an upload to ``directory/<new campaign id>/<name>`` chunk by chunk, capped at ``max_bytes``."""
    cid = Store.new_campaign_id()
    folder = directory / cid
    folder.mkdir(parents=True, exist_ok=False)
    path = folder / safe_name(filename)
    written = 0
    try:
        with path.open("wb") as out:
            for chunk in chunks:
                written += len(chunk)
                if written > max_bytes:
                    raise UploadTooLarge(
                        f"the file is over the {max_bytes / 2**20:.0f} MiB limit; "
                        "split it or raise DIALER_MAX_UPLOAD_MB"
                    )
                out.write(chunk)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return Upload(cid, path)


def read_chunks(handle: BinaryIO) -> Iterable[bytes]:
    while chunk := handle.read(CHUNK_BYTES):
        yield chunk


def discard(upload: Upload) -> None:
    shutil.rmtree(upload.path.parent, ignore_errors=True)


def check(upload: Upload, config: CampaignConfig, phone_column: PhoneColumns, max_bytes: int) -> None:
    """The checks the ingest runs first, with messages naming the uploaded file, not our copy of it."""
    try:
        prepare(upload.path, config, phone_column=phone_column, max_bytes=max_bytes)
    except UserError as exc:
        raise type(exc)(str(exc).replace(str(upload.path), upload.path.name)) from None


def mark_ingesting(store: Store, upload: Upload) -> None:
    store.redis.hset(UploadKeys.record(upload.campaign_id), mapping={
        "state": "ingesting", "source": upload.path.name, "created_at": repr(time.time())})
    store.redis.expire(UploadKeys.record(upload.campaign_id), RECORD_TTL_S)


def ingest(store: Store, upload: Upload, config: CampaignConfig, phone_column: PhoneColumns,
           max_bytes: int) -> IngestSummary | None:
    """Run the ingest of an upload (in the ``ingest`` task); a bad file is recorded, not raised."""
    key = UploadKeys.record(upload.campaign_id)
    try:
        summary = ingest_file(store, upload.path, config, phone_column=phone_column, max_bytes=max_bytes,
                              campaign_id=upload.campaign_id)
    except UserError as exc:
        message = str(exc).replace(str(upload.path), upload.path.name)
        store.redis.hset(key, mapping={"state": "failed", "error": message})
        return None
    finally:
        discard(upload)
    store.redis.delete(key)
    return summary


def ingest_record(store: Store, cid: str) -> dict[str, Any]:
    """What the API shows for a campaign that is not (yet) published; NotFoundError if none."""
    raw = {_text(k): _text(v) for k, v in store.redis.hgetall(UploadKeys.record(cid)).items()}
    if not raw:
        raise NotFoundError(f"no campaign with id {cid!r}")
    return {"campaign_id": cid, "state": raw["state"], "source": raw.get("source", ""),
            "created_at": float(raw.get("created_at") or 0), "error": raw.get("error") or None}


def upload_exists(store: Store, cid: str) -> bool:
    return bool(store.redis.exists(UploadKeys.record(cid)))


def upload_dir_ready(directory: Path) -> None:
    with contextlib.suppress(FileExistsError):
        directory.mkdir(parents=True, exist_ok=True)
    if not directory.is_dir():
        raise IngestError(f"DIALER_UPLOAD_DIR {directory} is not a directory")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def forget(store: Store, upload: Upload) -> None:
    """Undo an upload that was refused: its file and its record."""
    discard(upload)
    store.redis.delete(UploadKeys.record(upload.campaign_id))
