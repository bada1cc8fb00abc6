"""The application layer the CLI and the HTTP API both call.

Campaign control (start, pause, resume, cancel), status and waiting, listing, rejected rows and
the do-not-call list. Neither face builds a Redis key or repeats this logic; they parse input,
call these functions and present the result.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from . import csvfile, liveness, webhook_sender
from .dialing import BREAKER_REASONS
from .errors import NotFoundError, SettingsError, UserError
from .models import CampaignState, Outcome, contact_numbers
from .pacer import pace_factor
from .phones import PhoneNormalizer, PhoneRejected
from .reports import safe_cell
from .settings import Settings
from .store import Store

log = logging.getLogger(__name__)

#: How often ``wait`` looks at a campaign's status.
WAIT_POLL_S = 0.5


def start(store: Store, settings: Settings, cid: str) -> None:
    """draft -> running, after checking everything a dial will need (nothing is placed on error)."""
    record = store.get_campaign(cid)
    settings.require("livekit_url", "livekit_api_key", "livekit_api_secret")
    trunk = record.config.trunk_id or settings.sip_outbound_trunk_id
    if not trunk:
        raise SettingsError("no outbound SIP trunk: set SIP_OUTBOUND_TRUNK_ID or the campaign's trunk_id")
    # The trunk is written with the state change, never before it: a second `start` of a running
    # campaign must not move the calls in flight to another trunk's slots.
    store.set_state(cid, [CampaignState.DRAFT], CampaignState.RUNNING, fields={"trunk": trunk})
    pace_now(settings)


def pace_now(settings: Settings) -> None:
    """Ask the workers for a pacer run now rather than at beat's next tick (up to a second away),
    so a campaign's first calls leave as soon as it starts. Only a hint: the worker that holds
    the pacer's lock acts on it, beat paces anyway, and a broker that cannot take it is ignored."""
    from .celery import app  # the Celery app only when a campaign starts (the CLI starts faster)
    from .pacer import PACER_PERIOD_S

    try:
        with app.connection_for_write(settings.redis_url) as connection:
            app.send_task("dialer.tasks.pace", queue="control", expires=PACER_PERIOD_S * 2, connection=connection,
                          retry=False)
    except Exception as exc:  # whatever the broker raised: the pacer runs anyway
        log.warning("could not ask for a pacer run now (%s); the next one is at most %gs away", exc, PACER_PERIOD_S)


def pause(store: Store, cid: str, reason: str = "paused by operator") -> None:
    store.set_state(cid, [CampaignState.RUNNING], CampaignState.PAUSED, reason)


def resume(store: Store, cid: str) -> None:
    store.set_state(cid, [CampaignState.PAUSED], CampaignState.RUNNING)
    # The operator says the cause is fixed: the breaker starts counting afresh.
    store.reset_breaker(cid, BREAKER_REASONS)


def cancel(store: Store, settings: Settings, cid: str) -> int:
    """Stop for good: waiting contacts are cancelled now, calls in progress finish."""
    store.set_state(cid, [CampaignState.DRAFT, CampaignState.RUNNING, CampaignState.PAUSED],
                    CampaignState.CANCELLED)
    return store.cancel_waiting(cid, settings.now())


def status(store: Store, cid: str, stale_after_s: float = liveness.STALE_AFTER_S) -> dict[str, Any]:
    """The documented ``campaign status --json`` object."""
    record = store.get_campaign(cid)
    progress = store.progress(cid)
    contacts = record.counts["accepted"]
    final = progress.get("final", 0)
    in_flight = store.in_flight(cid)
    factor = pace_factor(store, store.trunk_of(cid))
    return {
        "campaign_id": cid,
        "name": record.name,
        "state": record.state.value,
        "pause_reason": record.pause_reason or None,
        "contacts": contacts,
        "final": final,
        "in_flight": in_flight,
        "pending": max(0, contacts - final - in_flight),
        "attempts": store.attempt_count(cid),
        "outcomes": {outcome.value: progress.get(f"outcome:{outcome.value}", 0) for outcome in Outcome},
        # Below the configured rate while the trunk backs off after capacity refusals.
        "effective_calls_per_second": round(record.config.calls_per_second * factor, 3),
        "trunk_pace_factor": round(factor, 3),
        # Why a running campaign is not moving: no dial worker, no beat, no pacer run.
        "problems": liveness.problems(store, stale_after_s) if record.state is CampaignState.RUNNING else [],
        # Delivery counts of the campaign's webhooks (null without webhooks).
        "webhooks": webhook_sender.counts(store, cid) if record.config.webhooks else None,
    }


def list_campaigns(store: Store) -> list[dict[str, Any]]:
    """The documented ``campaign list --json`` objects, oldest first."""
    return [
        {"campaign_id": r.id, "name": r.name, "state": r.state.value, "created_at": r.created_at, **r.counts}
        for r in store.list_campaigns()
    ]


def show(store: Store, cid: str) -> dict[str, Any]:
    """The documented ``campaign show --json`` object."""
    return store.get_campaign(cid).to_json_dict()


def wait(store: Store, cid: str, timeout_s: float | None, on_status: Callable[[dict[str, Any]], None] | None = None,
         poll_s: float = WAIT_POLL_S, stale_after_s: float = liveness.STALE_AFTER_S) -> dict[str, Any]:
    """Poll the status until the campaign ends, pauses or ``timeout_s`` passes; returns the last status."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        data = status(store, cid, stale_after_s)
        if on_status:
            on_status(data)
        if is_settled(data):
            return data
        if deadline is not None and time.monotonic() > deadline:
            return data
        time.sleep(poll_s)


def is_settled(data: dict[str, Any]) -> bool:
    """Nothing more will happen without an operator: completed, paused, or cancelled with no call left."""
    return data["state"] in ("completed", "cancelled", "paused") and not (
        data["state"] == "cancelled" and data["in_flight"]
    )


# -- rejected rows -----------------------------------------------------------------------


def _rejects_writer(store: Store, cid: str, handle: TextIO) -> csv.DictWriter[str]:
    record = store.get_campaign(cid)
    writer = csv.DictWriter(handle, fieldnames=["row", "bucket", "reason", "detail", *record.columns],
                            extrasaction="ignore")
    writer.writeheader()
    return writer


def _reject_rows(store: Store, cid: str, include_all: bool) -> Iterator[dict[str, str]]:
    for entry in store.iter_skipped_rows(cid):
        if entry["bucket"] != "rejected" and not include_all:
            continue
        row = {**entry["values"], **{k: entry[k] for k in ("row", "bucket", "reason", "detail")}}
        yield {key: safe_cell(str(value)) for key, value in row.items()}


def write_rejects(store: Store, cid: str, handle: TextIO, include_all: bool = False) -> int:
    """Write the skipped rows as CSV (row, bucket, reason, detail, then the file's columns); returns rows."""
    writer = _rejects_writer(store, cid, handle)
    written = 0
    for row in _reject_rows(store, cid, include_all):
        writer.writerow(row)
        written += 1
    return written


def iter_rejects_csv(store: Store, cid: str, include_all: bool = False, rows_per_chunk: int = 1000) -> Iterator[str]:
    """The same CSV in text chunks, for a streamed response (NotFoundError before the first chunk)."""
    buffer = io.StringIO()
    writer = _rejects_writer(store, cid, buffer)
    return _chunks(buffer, writer, _reject_rows(store, cid, include_all), rows_per_chunk)


def _chunks(buffer: io.StringIO, writer: csv.DictWriter[str], rows: Iterator[dict[str, str]],
            rows_per_chunk: int) -> Iterator[str]:
    for index, row in enumerate(rows, 1):
        writer.writerow(row)
        if index % rows_per_chunk == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


# -- the do-not-call list -----------------------------------------------------------------


@dataclass
class NumberCheck:
    """Numbers normalised to E.164, and those that could not be, with why."""

    valid: list[str] = field(default_factory=list)
    invalid: list[tuple[str, str]] = field(default_factory=list)

    def invalid_json(self) -> list[dict[str, str]]:
        return [{"value": raw, "reason": why} for raw, why in self.invalid]


def normalize_numbers(numbers: Iterable[str], region: str) -> NumberCheck:
    try:
        normalizer = PhoneNormalizer(region)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    checked = NumberCheck()
    for raw in numbers:
        try:
            checked.valid.append(normalizer.normalize(raw).e164)
        except PhoneRejected as exc:
            checked.invalid.append((raw, exc.detail))
    return checked


def dnc_add(store: Store, numbers: Iterable[str], region: str) -> tuple[int, NumberCheck]:
    """Add numbers; returns how many were new, and the check (with the invalid ones)."""
    checked = normalize_numbers(numbers, region)
    return store.dnc_add(checked.valid), checked


def dnc_remove(store: Store, numbers: Iterable[str], region: str) -> tuple[int, NumberCheck]:
    checked = normalize_numbers(numbers, region)
    return store.dnc_remove(checked.valid), checked


def dnc_list(store: Store) -> list[str]:
    return sorted(store.iter_dnc())


def dnc_check(store: Store, number: str, region: str) -> tuple[str, bool]:
    checked = normalize_numbers([number], region)
    if checked.invalid:
        raise UserError(f"{number!r}: {checked.invalid[0][1]}")
    return checked.valid[0], store.dnc_contains(checked.valid[0])


def dnc_import(store: Store, file: Path, region: str, max_bytes: int) -> dict[str, Any]:
    """Import a CSV (a phone column) or a text file (one number a line): the ``dnc import --json`` object."""
    numbers = read_number_file(file, max_bytes)
    added, checked = dnc_add(store, numbers, region)
    return {"read": len(numbers), "valid": len(checked.valid), "added": added, "invalid": checked.invalid_json()}


def read_number_file(file: Path, max_bytes: int) -> list[str]:
    fmt = csvfile.inspect(file, max_bytes)
    columns = csvfile.find_phone_columns(fmt.columns)
    if not columns and len(fmt.columns) == 1:
        # A plain list: the first line is a number, not a header.
        text = file.read_text(encoding=fmt.encoding)
        return [line.strip() for line in text.splitlines() if line.strip()]
    if not columns:
        raise UserError(f"{file}: no phone column among {', '.join(fmt.columns)}")
    numbers: list[str] = []
    for chunk in csvfile.read_chunks(file, fmt):
        # Every phone column of a CRM export, and every number of a " ::: " cell.
        for column in columns:
            numbers.extend(number for value in chunk[column].tolist() if value
                           for number in csvfile.split_numbers(value))
    return numbers


# -- one contact -----------------------------------------------------------------------------


def contact(store: Store, cid: str, contact_id: int) -> dict[str, Any]:
    """One contact: its row, its status, and every attempt with the call's result and transcript."""
    store.get_campaign(cid)
    row = store.get_contact_json(cid, contact_id)
    if row is None:
        raise NotFoundError(f"campaign {cid} has no contact {contact_id} (contacts are numbered by CSV row)")
    state = store.contact_status(cid, contact_id) or {}
    attempts = []
    for seq in range(1, int(state.get("seq") or 0) + 1):
        member = f"{contact_id}:{seq}"
        attempt = store.attempt(cid, member)
        if attempt is not None:
            attempts.append({**attempt, "seq": seq, "result": store.result(cid, member)})
    return {
        "campaign_id": cid,
        "contact_id": contact_id,
        "phone_e164": row.get("phone_e164", ""),
        "phones": [e164 + (f"x{extension}" if extension else "") for e164, extension in contact_numbers(row)],
        "variables": row.get("variables", {}),
        "time_zones": list(row.get("time_zones", [])),
        "outcome": state.get("outcome") or state.get("state") or "pending",
        "status": state,
        "attempts": attempts,
    }
