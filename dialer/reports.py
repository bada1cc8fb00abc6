"""Outcome reports: one row per contact (or per attempt), streamed from a consistent snapshot.

Rows are built in batches of ``BATCH`` contacts so memory stays bounded by the
batch, not the campaign. Spreadsheet formats (CSV, XLSX) neutralise cells a
spreadsheet would run as a formula; E.164 numbers stay readable as text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

import pandas as pd

from .dialing import room_name
from .errors import UserError
from .store import CampaignRecord, Snapshot, Store
from .window import zone

#: Contacts read from Redis and written per step.
BATCH = 20_000
#: Longest transcript kept in a CSV or XLSX cell (JSON and Parquet keep it all).
TRANSCRIPT_CELL_CHARS = 1_000
#: A cell starting with one of these is a formula to a spreadsheet.
FORMULA_START = re.compile(r"^[=+\-@\t\r]")
E164 = re.compile(r"^\+[1-9]\d{6,14}$")

TIME_COLUMNS = ("first_attempt_at", "last_attempt_at", "answered_at")
ATTEMPT_TIME_COLUMNS = ("queued_at", "dial_started_at", "answered_at", "ended_at")


class Format(StrEnum):
    CSV = "csv"
    XLSX = "xlsx"
    PARQUET = "parquet"
    JSON = "json"


def safe_cell(value: str) -> str:
    """Neutralise a spreadsheet formula (OWASP CSV injection): prefix it with an apostrophe."""
    if value and FORMULA_START.match(value) and not E164.match(value):
        return "'" + value
    return value


@dataclass(frozen=True)
class ReportSpec:
    """What a report contains, fixed before the first row is read."""

    record: CampaignRecord
    timezone: str
    attempts: bool
    full_transcript: bool

    @property
    def source_columns(self) -> list[str]:
        return list(self.record.columns)

    @property
    def captured_columns(self) -> list[str]:
        return [f"captured_{name}" for name in self.record.config.capture_fields]

    def columns(self) -> list[str]:
        if self.attempts:
            return ["contact_id", *self.source_columns, "phone_e164", "attempt", "state", "result",
                    "counted", "sip_status", "sip_reason", "reason", "disposition", *ATTEMPT_TIME_COLUMNS,
                    "talk_s", "room"]
        return ["contact_id", *self.source_columns, "phone_e164", "number_type", "time_zones", "outcome",
                "attempts", "dials", "last_sip_status", "last_sip_reason", "disposition", "notes",
                *self.captured_columns, "callback_at", *TIME_COLUMNS, "talk_s", "sip_call_id", "transcript"]


def _source_values(spec: ReportSpec, contact: dict[str, Any]) -> dict[str, Any]:
    values = dict(contact.get("variables", {}))
    values[spec.record.phone_column] = contact.get("phone_raw", "")
    return {name: values.get(name, "") for name in spec.source_columns}


def _transcript_text(turns: list[dict[str, str]]) -> str:
    return "\n".join(f"{turn.get('role', '')}: {turn.get('text', '')}" for turn in turns)


def _contact_row(spec: ReportSpec, contact: dict[str, Any], status: dict[str, Any] | None,
                 result: dict[str, Any] | None) -> dict[str, Any]:
    status = status or {}
    result = result or {}
    captured = result.get("captured") or {}
    turns = result.get("transcript") or []
    sip_code = status.get("last_sip_code")
    return {
        "contact_id": contact["id"],
        **_source_values(spec, contact),
        "phone_e164": contact["phone_e164"],
        "number_type": contact.get("number_type", ""),
        "time_zones": " ".join(contact.get("time_zones", [])),
        "outcome": status.get("outcome") or status.get("state") or "pending",
        "attempts": int(status.get("attempts", 0)),
        "dials": int(status.get("dials", 0)),
        "last_sip_status": int(sip_code) if sip_code is not None else None,
        "last_sip_reason": status.get("last_sip_status") or status.get("last_reason") or "",
        "disposition": result.get("disposition") or "",
        "notes": result.get("notes") or "",
        **{f"captured_{name}": str(captured.get(name, "")) for name in spec.record.config.capture_fields},
        "callback_at": result.get("callback_at") or "",
        "first_attempt_at": status.get("first_attempt_at"),
        "last_attempt_at": status.get("last_attempt_at"),
        "answered_at": status.get("answered_at") or result.get("answered_at"),
        "talk_s": float(status.get("talk_s") or result.get("talk_s") or 0.0),
        "sip_call_id": status.get("sip_call_id") or result.get("sip_call_id") or "",
        "transcript": turns if spec.full_transcript else _transcript_text(turns)[:TRANSCRIPT_CELL_CHARS],
    }


def iter_contact_batches(store: Store, snapshot: Snapshot, spec: ReportSpec) -> Iterator[list[dict[str, Any]]]:
    ids = store.contact_ids(spec.record.id)
    for start in range(0, len(ids), BATCH):
        batch = ids[start : start + BATCH]
        contacts = store.contacts(spec.record.id, batch)
        statuses = snapshot.statuses(batch)
        wanted = [status["result"] for status in statuses if status and status.get("result")]
        results = dict(zip(wanted, snapshot.results(wanted), strict=True))
        yield [
            _contact_row(spec, contact, status, results.get((status or {}).get("result", "")))
            for contact, status in zip(contacts, statuses, strict=True)
            if contact
        ]


def iter_attempt_batches(store: Store, snapshot: Snapshot, spec: ReportSpec) -> Iterator[list[dict[str, Any]]]:
    rows: list[tuple[int, int, dict[str, Any]]] = []
    for member, attempt in snapshot.iter_attempts():
        contact_text, _, seq = member.partition(":")
        rows.append((int(contact_text), int(seq), attempt))
    rows.sort(key=lambda row: (row[0], row[1]))
    for start in range(0, len(rows), BATCH):
        batch = rows[start : start + BATCH]
        ids = sorted({contact_id for contact_id, _, _ in batch})
        contacts = dict(zip(ids, store.contacts(spec.record.id, ids), strict=True))
        out = []
        for contact_id, seq_number, attempt in batch:
            contact = contacts.get(contact_id) or {"id": contact_id, "phone_e164": ""}
            sip_code = attempt.get("sip_code")
            out.append({
                "contact_id": contact_id,
                **_source_values(spec, contact),
                "phone_e164": contact.get("phone_e164", ""),
                "attempt": seq_number,
                "state": attempt.get("state", ""),
                "result": attempt.get("sip_class") or ("answered" if attempt.get("answered_at") else ""),
                "counted": bool(attempt.get("counted", False)),
                "sip_status": int(sip_code) if sip_code is not None else None,
                "sip_reason": attempt.get("sip_status") or "",
                "reason": attempt.get("reason") or "",
                "disposition": attempt.get("disposition") or "",
                **{name: attempt.get(name) for name in ATTEMPT_TIME_COLUMNS},
                "talk_s": float(attempt.get("talk_s") or 0.0),
                "room": room_name(spec.record.id, contact_id, seq_number),
            })
        yield out


def _frame(spec: ReportSpec, rows: list[dict[str, Any]], *, iso_times: bool) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(rows, columns=spec.columns())
    time_columns = ATTEMPT_TIME_COLUMNS if spec.attempts else TIME_COLUMNS
    for column in time_columns:
        stamps = pd.to_datetime(pd.to_numeric(frame[column], errors="coerce"), unit="s", utc=True)
        stamps = stamps.dt.tz_convert(spec.timezone)
        if iso_times:
            text = stamps.dt.strftime("%Y-%m-%dT%H:%M:%S%z").str.replace(r"(\d\d)(\d\d)$", r"\1:\2", regex=True)
            frame[column] = text.fillna("")
        else:
            frame[column] = stamps
    sip_column = "sip_status" if spec.attempts else "last_sip_status"
    frame[sip_column] = frame[sip_column].astype("Int64")
    return frame


def _neutralise(frame: pd.DataFrame) -> pd.DataFrame:
    for column in frame.columns:
        if frame[column].dtype == object or pd.api.types.is_string_dtype(frame[column]):
            values = frame[column].astype(str)
            risky = values.str.match(FORMULA_START.pattern) & ~values.str.match(E164.pattern)
            if risky.any():
                frame[column] = values.where(~risky, "'" + values)
    return frame


class _Writer:
    def __init__(self, spec: ReportSpec, path: Path) -> None:
        self.spec = spec
        self.path = path

    def write(self, rows: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _CsvWriter(_Writer):
    def __init__(self, spec: ReportSpec, path: Path) -> None:
        super().__init__(spec, path)
        self.handle: IO[str] = path.open("w", newline="", encoding="utf-8-sig")
        self.header = True

    def write(self, rows: list[dict[str, Any]]) -> None:
        frame = _neutralise(_frame(self.spec, rows, iso_times=True))
        frame.to_csv(self.handle, index=False, header=self.header)
        self.header = False

    def close(self) -> None:
        if self.header:
            pd.DataFrame(columns=self.spec.columns()).to_csv(self.handle, index=False)
        self.handle.close()


class _ParquetWriter(_Writer):
    def __init__(self, spec: ReportSpec, path: Path) -> None:
        super().__init__(spec, path)
        self.writer: Any = None

    def write(self, rows: list[dict[str, Any]]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        frame = _frame(self.spec, rows, iso_times=False)
        if not self.spec.attempts:
            frame["transcript"] = frame["transcript"].map(json.dumps)
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self.writer is None:
            metadata = {b"dialer.report_timezone": self.spec.timezone.encode(),
                        b"dialer.campaign_id": self.spec.record.id.encode()}
            table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
            self.writer = pq.ParquetWriter(self.path, table.schema)
        self.writer.write_table(table.cast(self.writer.schema))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        else:
            _frame(self.spec, [], iso_times=False).to_parquet(self.path, index=False)


class _XlsxWriter(_Writer):
    def __init__(self, spec: ReportSpec, path: Path) -> None:
        from openpyxl import Workbook

        super().__init__(spec, path)
        self.book = Workbook(write_only=True)
        self.sheet = self.book.create_sheet("attempts" if spec.attempts else "contacts")
        self.sheet.append(spec.columns())

    def write(self, rows: list[dict[str, Any]]) -> None:
        from openpyxl.cell import WriteOnlyCell

        frame = _neutralise(_frame(self.spec, rows, iso_times=True))
        for values in frame.itertuples(index=False, name=None):
            cells: list[Any] = []
            for value in values:
                if value is None or value is pd.NA or (isinstance(value, float) and value != value):
                    cells.append(None)
                    continue
                cell = WriteOnlyCell(self.sheet, value=value)
                if isinstance(value, str):
                    cell.data_type = "s"  # text, never a formula
                cells.append(cell)
            self.sheet.append(cells)

    def close(self) -> None:
        about = self.book.create_sheet("about")
        for row in _about(self.spec):
            about.append(row)
        self.book.save(self.path)


class _JsonWriter(_Writer):
    def __init__(self, spec: ReportSpec, path: Path) -> None:
        super().__init__(spec, path)
        self.handle: IO[str] = path.open("w", encoding="utf-8")
        head = {key: value for key, value in _about(spec)}
        self.handle.write(json.dumps(head, ensure_ascii=False)[:-1] + ', "rows": [\n')
        self.first = True

    def write(self, rows: list[dict[str, Any]]) -> None:
        frame = _frame(self.spec, rows, iso_times=True)
        records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
        for record in records:
            self.handle.write(("" if self.first else ",\n") + json.dumps(record, ensure_ascii=False))
            self.first = False

    def close(self) -> None:
        self.handle.write("\n]}\n")
        self.handle.close()


WRITERS: dict[Format, type[_Writer]] = {
    Format.CSV: _CsvWriter,
    Format.XLSX: _XlsxWriter,
    Format.PARQUET: _ParquetWriter,
    Format.JSON: _JsonWriter,
}


def _about(spec: ReportSpec) -> list[tuple[str, str]]:
    return [
        ("campaign_id", spec.record.id),
        ("campaign_name", spec.record.name),
        ("generated_at", datetime.now(UTC).astimezone(zone(spec.timezone)).isoformat(timespec="seconds")),
        ("report_timezone", spec.timezone),
        ("rows", "attempts" if spec.attempts else "contacts"),
    ]


def default_path(cid: str, fmt: Format, attempts: bool) -> Path:
    return Path(f"report-{cid}{'-attempts' if attempts else ''}.{fmt.value}")


def export(store: Store, cid: str, fmt: Format, path: Path, *, attempts: bool = False,
           timezone: str = "UTC", progress: Any = None) -> int:
    """Write a campaign's report; returns the number of rows."""
    try:
        zone(timezone)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    record = store.get_campaign(cid)
    spec = ReportSpec(record, timezone, attempts, full_transcript=fmt in (Format.JSON, Format.PARQUET))
    if path.is_dir():
        raise UserError(f"{path} is a directory; give a file name with -o")
    try:
        writer = WRITERS[fmt](spec, path)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
    written = 0
    with store.snapshot(cid) as snapshot:
        batches = iter_attempt_batches if attempts else iter_contact_batches
        for rows in batches(store, snapshot, spec):
            writer.write(rows)
            written += len(rows)
            if progress:
                progress(len(rows))
    writer.close()
    return written
