"""Outcome reports: one row per contact (or per attempt), streamed from a consistent snapshot.

Rows are built in batches of ``BATCH`` contacts so memory stays bounded by the
batch, not the campaign. Spreadsheet formats (CSV, XLSX) neutralise cells a
spreadsheet would run as a formula; E.164 numbers stay readable as text.
"""

from __future__ import annotations

import codecs
import gc
import json
import multiprocessing
import os
import queue
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.ipc as pa_ipc
import pyarrow.parquet as pq

from . import report_arrow, xlsx
from .errors import DialerError, UserError
from .models import contact_numbers
from .store import CampaignRecord, Snapshot, Store
from .window import zone

#: Contacts read from Redis and written per step.
BATCH = 20_000
#: Longest transcript kept in a CSV or XLSX cell (JSON and Parquet keep it all).
TRANSCRIPT_CELL_CHARS = 1_000
#: A cell starting with one of these is a formula to a spreadsheet.
FORMULA_START = re.compile(r"^[=+\-@\t\r]")
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
#: Data rows per XLSX sheet (Excel's limit less the header); a longer report continues on more sheets.
XLSX_SHEET_ROWS = xlsx.SHEET_DATA_ROWS

#: Callbacks the callee asked for: how many were scheduled, how many dialed, why one was not kept.
CALLBACK_COLUMNS = ("callbacks_scheduled", "callbacks_done", "callback_skipped")
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
            return ["contact_id", *self.source_columns, "phone_e164", "attempt", "number_index", "phone_used",
                    "state", "result",
                    "counted", "caller_id", "sip_status", "sip_reason", "reason", "disposition",
                    *ATTEMPT_TIME_COLUMNS,
                    "talk_s", "room"]
        return ["contact_id", *self.source_columns, "phone_e164", "extension", "phones", "numbers_dropped",
                "number_type", "time_zones", "outcome", "number_index", "phone_used",
                "attempts", "dials", "caller_id", "last_sip_status", "last_sip_reason", "disposition", "notes",
                *self.captured_columns, "callback_at", *CALLBACK_COLUMNS, *TIME_COLUMNS, "talk_s", "sip_call_id",
                "transcript"]


#: A batch of report rows, column by column: Python lists, or Arrow arrays (``iter_contact_batches(arrow=True)``).
Columns = dict[str, Any]


def _transcript_text(turns: list[dict[str, str]]) -> str:
    return "\n".join(f"{turn.get('role', '')}: {turn.get('text', '')}" for turn in turns)


def _phones(contact: dict[str, Any]) -> str:
    """Every number of a contact in dialing order, space separated, "+12025550101x204" for an extension."""
    return " ".join(e164 + (f"x{ext}" if ext else "") for e164, ext in contact_numbers(contact))


def _dropped(contact: dict[str, Any]) -> str:
    """The numbers of the row left out at ingest, with why: "12345 (invalid_number); ..."."""
    return "; ".join(f"{entry.get('raw', '')} ({entry.get('reason', '')})" for entry in contact.get("dropped", ()))


def _phone_used(contact: dict[str, Any], index: int | None, number: str | None) -> str:
    """The number an attempt dialed: as the ledger recorded it, else the contact's number at ``index``."""
    if number:
        return number
    numbers = contact_numbers(contact)
    return numbers[min(int(index or 0), len(numbers) - 1)][0] if contact.get("phone_e164") else ""


def _last_used(contact: dict[str, Any], status: dict[str, Any]) -> str:
    """The number a contact's last attempt dialed ("" before its first)."""
    return _phone_used(contact, status.get("number_index"), status.get("last_number")) if status.get("dials") else ""


def _number_position(contact: dict[str, Any], number: str) -> int | None:
    """1 for the contact's first number, 2 for its second...; None for a number it does not have."""
    positions = [e164 for e164, _ in contact_numbers(contact)]
    return positions.index(number) + 1 if number in positions else None


def _source_columns(spec: ReportSpec, contacts: list[dict[str, Any]]) -> Columns:
    phone = spec.record.phone_column
    columns: Columns = {}
    for name in spec.source_columns:
        if name == phone:
            columns[name] = [contact.get("phone_raw", "") for contact in contacts]
        else:
            columns[name] = [contact.get("variables", {}).get(name, "") for contact in contacts]
    return columns


def _contact_columns(spec: ReportSpec, contacts: list[dict[str, Any]], statuses: list[dict[str, Any]],
                     results: list[dict[str, Any]]) -> Columns:
    """One batch of the per-contact report, column by column."""
    captured = list(spec.record.config.capture_fields)
    used = [_last_used(contact, st) for contact, st in zip(contacts, statuses, strict=True)]
    columns: Columns = {
        "contact_id": [contact["id"] for contact in contacts],
        **_source_columns(spec, contacts),
        "phone_e164": [contact["phone_e164"] for contact in contacts],
        "extension": [contact.get("extension", "") for contact in contacts],
        "phones": [_phones(contact) for contact in contacts],
        "numbers_dropped": [_dropped(contact) for contact in contacts],
        "number_type": [contact.get("number_type", "") for contact in contacts],
        "time_zones": [" ".join(contact.get("time_zones", ())) for contact in contacts],
        "outcome": [st.get("outcome") or st.get("state") or "pending" for st in statuses],
        # The position of the number last dialed (the status's own index may already point at the next).
        "number_index": [_number_position(contact, number) for contact, number in zip(contacts, used, strict=True)],
        "phone_used": used,
        "attempts": [int(st.get("attempts", 0)) for st in statuses],
        "dials": [int(st.get("dials", 0)) for st in statuses],
        "caller_id": [st.get("last_caller_id") or "" for st in statuses],
        "last_sip_status": [st.get("last_sip_code") for st in statuses],
        "last_sip_reason": [st.get("last_sip_status") or st.get("last_reason") or "" for st in statuses],
        "disposition": [r.get("disposition") or "" for r in results],
        "notes": [r.get("notes") or "" for r in results],
    }
    for name in captured:
        columns[f"captured_{name}"] = [str((r.get("captured") or {}).get(name, "")) for r in results]
    columns["callback_at"] = [r.get("callback_at") or "" for r in results]
    columns["callbacks_scheduled"] = [int(st.get("callbacks", 0)) for st in statuses]
    columns["callbacks_done"] = [int(st.get("callbacks_done", 0)) for st in statuses]
    columns["callback_skipped"] = [st.get("callback_skipped") or "" for st in statuses]
    columns["first_attempt_at"] = [st.get("first_attempt_at") for st in statuses]
    columns["last_attempt_at"] = [st.get("last_attempt_at") for st in statuses]
    columns["answered_at"] = [st.get("answered_at") or r.get("answered_at")
                              for st, r in zip(statuses, results, strict=True)]
    columns["talk_s"] = [float(st.get("talk_s") or r.get("talk_s") or 0.0)
                         for st, r in zip(statuses, results, strict=True)]
    columns["sip_call_id"] = [st.get("sip_call_id") or r.get("sip_call_id") or ""
                              for st, r in zip(statuses, results, strict=True)]
    turns = [r.get("transcript") or [] for r in results]
    columns["transcript"] = turns if spec.full_transcript else [
        _transcript_text(t)[:TRANSCRIPT_CELL_CHARS] if t else "" for t in turns]
    return columns


def _fetch_contacts(store: Store, snapshot: Snapshot, cid: str, batch: list[int]) -> tuple[list[Any], ...]:
    pairs = [(c, st or {}) for c, st in zip(store.contacts(cid, batch), snapshot.statuses(batch), strict=True) if c]
    contacts = [contact for contact, _ in pairs]
    statuses = [status for _, status in pairs]
    wanted = [status["result"] for status in statuses if status.get("result")]
    found = dict(zip(wanted, snapshot.results(wanted), strict=True))
    results = [found.get(status.get("result", "")) or {} for status in statuses]
    return contacts, statuses, results


def _arrow_contact_columns(store: Store, snapshot: Snapshot, spec: ReportSpec, batch: list[int]) -> Columns:
    """One batch decoded by Arrow (``dialer.report_arrow``); the Python way if a record does not fit."""
    raw_contacts = store.contact_records(spec.record.id, batch)
    raw_statuses = snapshot.status_records(batch)
    kept: Sequence[int]
    if all(raw_contacts):
        kept = range(len(raw_contacts))
        contacts: list[bytes] = raw_contacts  # type: ignore[assignment]  # none is None
        statuses = raw_statuses
    else:
        kept = [index for index, raw in enumerate(raw_contacts) if raw]
        contacts = [raw_contacts[index] or b"" for index in kept]
        statuses = [raw_statuses[index] for index in kept]
    try:
        status = report_arrow.read_statuses(statuses)
        contact = report_arrow.read_contacts(contacts, spec.source_columns, spec.record.phone_column)
        members, result_index = report_arrow.result_rows(status)
        columns = report_arrow.contact_columns(
            source_columns=spec.source_columns, phone_column=spec.record.phone_column,
            captured=list(spec.record.config.capture_fields), contact=contact,
            status=status, results=snapshot.result_records(members), result_index=result_index,
            full_transcript=spec.full_transcript, transcript_chars=TRANSCRIPT_CELL_CHARS)
    except (pa.ArrowInvalid, pa.ArrowTypeError, KeyError):
        return _contact_columns(spec, *_fetch_contacts(store, snapshot, spec.record.id, batch))
    several = report_arrow.several_numbers(contact)
    if several:
        _several_numbers(columns, several, [contacts[row] for row in several],
                         [raw_statuses[kept[row]] for row in several])
    return columns


_NUMBER_COLUMNS = ("phones", "numbers_dropped", "number_index", "phone_used")


def _several_numbers(columns: Columns, rows: list[int], raw_contacts: list[bytes],
                     raw_statuses: list[bytes | None]) -> None:
    """Recompute the number columns of an Arrow batch's contacts with several numbers (or numbers
    left out at ingest) the way ``_contact_columns`` does; the Arrow kernels assume one number."""
    values = {name: columns[name].to_pylist() for name in _NUMBER_COLUMNS}
    for row, raw_contact, raw_status in zip(rows, raw_contacts, raw_statuses, strict=True):
        contact, st = orjson.loads(raw_contact), orjson.loads(raw_status) if raw_status else {}
        used = _last_used(contact, st)
        values["phones"][row] = _phones(contact)
        values["numbers_dropped"][row] = _dropped(contact)
        values["number_index"][row] = _number_position(contact, used)
        values["phone_used"][row] = used
    for name in _NUMBER_COLUMNS:
        columns[name] = pa.array(values[name], columns[name].type)


def iter_contact_batches(store: Store, snapshot: Snapshot, spec: ReportSpec, *,
                         arrow: bool = False) -> Iterator[Columns]:
    """Column batches of every contact, in order.

    With ``arrow`` the values are Arrow arrays decoded in bulk (for the Arrow-based writers),
    else Python lists.
    """
    ids = store.contact_ids(spec.record.id)
    for start in range(0, len(ids), BATCH):
        batch = ids[start : start + BATCH]
        if arrow:
            yield _arrow_contact_columns(store, snapshot, spec, batch)
        else:
            yield _contact_columns(spec, *_fetch_contacts(store, snapshot, spec.record.id, batch))


def iter_attempt_batches(store: Store, snapshot: Snapshot, spec: ReportSpec) -> Iterator[Columns]:
    from .dialing import room_name  # here, not at the top: dialing imports the LiveKit client

    rows: list[tuple[int, int, dict[str, Any]]] = []
    for member, attempt in snapshot.iter_attempts():
        contact_text, _, seq = member.partition(":")
        rows.append((int(contact_text), int(seq), attempt))
    rows.sort(key=lambda row: (row[0], row[1]))
    for start in range(0, len(rows), BATCH):
        batch = rows[start : start + BATCH]
        ids = sorted({contact_id for contact_id, _, _ in batch})
        by_id = dict(zip(ids, store.contacts(spec.record.id, ids), strict=True))
        contacts = [by_id.get(contact_id) or {"id": contact_id, "phone_e164": ""} for contact_id, _, _ in batch]
        attempts = [attempt for _, _, attempt in batch]
        columns: Columns = {
            "contact_id": [contact_id for contact_id, _, _ in batch],
            **_source_columns(spec, contacts),
            "phone_e164": [contact.get("phone_e164", "") for contact in contacts],
            "attempt": [seq for _, seq, _ in batch],
            "number_index": [int(a.get("number_index") or 0) + 1 for a in attempts],
            "phone_used": [_phone_used(contact, a.get("number_index"), a.get("number"))
                           for contact, a in zip(contacts, attempts, strict=True)],
            "state": [a.get("state", "") for a in attempts],
            "result": [a.get("sip_class") or ("answered" if a.get("answered_at") else "") for a in attempts],
            "counted": [bool(a.get("counted", False)) for a in attempts],
            "caller_id": [a.get("caller_id") or "" for a in attempts],
            "sip_status": [a.get("sip_code") for a in attempts],
            "sip_reason": [a.get("sip_status") or "" for a in attempts],
            "reason": [a.get("reason") or "" for a in attempts],
            "disposition": [a.get("disposition") or "" for a in attempts],
            **{name: [a.get(name) for a in attempts] for name in ATTEMPT_TIME_COLUMNS},
            "talk_s": [float(a.get("talk_s") or 0.0) for a in attempts],
            "room": [room_name(spec.record.id, contact_id, seq) for contact_id, seq, _ in batch],
        }
        yield columns


def iso_time_array(seconds: list[Any] | pa.Array, timezone: str) -> pa.Array:
    """Unix seconds as ISO 8601 text with the zone's offset ("2026-11-21T14:03:09-05:00"); None stays None.

    Seconds are cut to the whole second below, as pandas' ``to_datetime(unit="s")`` and
    ``floor("s")`` do; the text is Arrow's cast of the local time, with the offset appended.
    """
    if isinstance(seconds, pa.Array):
        values = seconds.cast(pa.float64()).to_numpy(zero_copy_only=False)
    else:
        import pandas as pd  # imported where needed: an Arrow batch in UTC needs none of its 0.4 s start-up

        values = pd.to_numeric(pd.Series(seconds, dtype=object), errors="coerce").to_numpy(np.float64, na_value=np.nan)
    missing = np.isnan(values)
    values = np.where(missing, 0.0, values)
    base = values.astype(np.int64)
    fraction = np.round(values - base, 9)  # pandas' rounding of the fraction, then the floor
    whole = base + (fraction >= 1) - (fraction < 0)
    if timezone == "UTC":
        local, offsets = whole, None
    else:
        import pandas as pd

        utc = pd.to_datetime(whole, unit="s", utc=True)
        local = utc.tz_convert(timezone).tz_localize(None).as_unit("s").asi8
        offsets = local - whole
    text = pc.binary_replace_slice(pa.array(local, pa.timestamp("s")).cast(pa.string()), 10, 11, "T")
    if offsets is None:
        labelled = pc.binary_join_element_wise(text, "+00:00", "")
    else:
        unique, index = np.unique(offsets, return_inverse=True)
        labels = pa.array([("+" if offset >= 0 else "-") + "{:02d}:{:02d}".format(*divmod(abs(int(offset)) // 60, 60))
                           for offset in unique], pa.string())
        labelled = pc.binary_join_element_wise(text, labels.take(pa.array(index.ravel())), "")
    return pc.if_else(pa.array(missing), pa.scalar(None, pa.string()), labelled)


def iso_times(seconds: list[Any] | pa.Array, timezone: str) -> list[str | None]:
    """``iso_time_array`` as a list."""
    return iso_time_array(seconds, timezone).to_pylist()


def _time_columns(spec: ReportSpec) -> tuple[str, ...]:
    return ATTEMPT_TIME_COLUMNS if spec.attempts else TIME_COLUMNS


def _sip_column(spec: ReportSpec) -> str:
    return "sip_status" if spec.attempts else "last_sip_status"


#: Report columns that are not text (times and the SIP status have their own rules).
_INT_COLUMNS = ("contact_id", "attempts", "dials", "attempt", "number_index", "callbacks_scheduled", "callbacks_done")
_ARROW_TYPES = {**dict.fromkeys(_INT_COLUMNS, pa.int64()), "talk_s": pa.float64(), "counted": pa.bool_()}


def _arrow(spec: ReportSpec, columns: Columns, *, text_times: bool) -> pa.Table:
    """A batch as an Arrow table: times as ISO text or as timestamps in the report's zone."""
    arrays: dict[str, pa.Array] = {}
    for name, values in columns.items():
        if isinstance(values, pa.Array) and name not in _time_columns(spec):
            arrays[name] = values.cast(_ARROW_TYPES.get(name, pa.string()) if name != _sip_column(spec) else pa.int32())
        elif name in _time_columns(spec):
            if text_times:
                arrays[name] = iso_time_array(values, spec.timezone)
            else:
                seconds = values.cast(pa.float64()) if isinstance(values, pa.Array) else \
                    pa.array(values, type=pa.float64())
                micros = pc.round(pc.multiply(seconds, 1_000_000)).cast(pa.int64())
                arrays[name] = micros.cast(pa.timestamp("us", tz="UTC")).cast(pa.timestamp("us", tz=spec.timezone))
        elif name == _sip_column(spec):
            arrays[name] = pa.array([None if v is None else int(v) for v in values], type=pa.int32())
        elif name == "transcript" and spec.full_transcript:
            arrays[name] = pa.array([orjson.dumps(v).decode() for v in values], type=pa.string())
        elif name in _INT_COLUMNS:
            arrays[name] = pa.array(values, type=pa.int64())
        elif name == "talk_s":
            arrays[name] = pa.array(values, type=pa.float64())
        elif name == "counted":
            arrays[name] = pa.array(values, type=pa.bool_())
        else:
            try:
                arrays[name] = pa.array(values, type=pa.string())
            except (pa.ArrowTypeError, pa.ArrowInvalid):  # a number where text was expected
                arrays[name] = pa.array([None if v is None else str(v) for v in values], type=pa.string())
    return pa.table(arrays)


#: The first bytes of ``FORMULA_START`` (all ASCII, so a UTF-8 string starts with one exactly when it matches).
_FORMULA_FIRST_BYTES = np.frombuffer(b"=+-@\t\r", np.uint8)


def _may_start_a_formula(column: pa.ChunkedArray) -> bool:
    """Whether any cell of a string column starts with a ``FORMULA_START`` byte, read off Arrow's
    buffers (a regex over every cell of every column cost a tenth of the CSV export)."""
    for chunk in column.chunks:
        _, offsets_buffer, data_buffer = chunk.buffers()
        if data_buffer is None or len(chunk) == 0:
            continue
        width = np.dtype(np.int64 if pa.types.is_large_string(chunk.type) else np.int32)
        offsets: np.ndarray[Any, np.dtype[np.int64]] = np.frombuffer(
            offsets_buffer, width, len(chunk) + 1, chunk.offset * width.itemsize)
        data = np.frombuffer(data_buffer, np.uint8)
        starts = offsets[:-1][offsets[1:] > offsets[:-1]]  # non-empty cells (null cells are left as they are)
        if len(starts) and np.isin(data[starts], _FORMULA_FIRST_BYTES).any():
            return True
    return False


def neutralise(table: pa.Table) -> pa.Table:
    """Prefix cells a spreadsheet would run as a formula with an apostrophe; E.164 numbers stay as they are."""
    for index, field in enumerate(table.schema):
        if not (pa.types.is_string(field.type) or pa.types.is_large_string(field.type)):
            continue
        column = table.column(index)
        if not _may_start_a_formula(column):
            continue
        risky = pc.and_(pc.match_substring_regex(column, FORMULA_START.pattern),
                        pc.invert(pc.match_substring_regex(column, E164.pattern)))
        if pc.any(risky).as_py():
            fixed = pc.if_else(risky, pc.binary_join_element_wise("'", column, ""), column)
            table = table.set_column(index, field, fixed)
    return table


class _Writer:
    #: Whether the writer takes batches of Arrow arrays (``iter_contact_batches(arrow=True)``).
    arrow_batches = True

    def __init__(self, spec: ReportSpec, path: Path) -> None:
        self.spec = spec
        self.path = path

    def write(self, columns: Columns) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _CsvWriter(_Writer):
    def __init__(self, spec: ReportSpec, path: Path, head: bool = True) -> None:
        super().__init__(spec, path)
        self.head = head
        self.handle: IO[bytes] = path.open("wb")
        if head:
            self.handle.write(codecs.BOM_UTF8)  # so spreadsheets read the file as UTF-8
        self.writer: Any = None

    def write(self, columns: Columns) -> None:
        table = neutralise(_arrow(self.spec, columns, text_times=True))
        if self.writer is None:
            options = pa_csv.WriteOptions(quoting_style="needed", include_header=self.head)
            self.writer = pa_csv.CSVWriter(self.handle, table.schema, write_options=options)
        self.writer.write_table(table)

    def _finish_table(self) -> None:
        """End the Arrow writer (or write the bare header); later rows get no header."""
        if self.writer is not None:
            self.writer.close()  # leaves the file open
        elif self.head:
            self.handle.write((",".join(self.spec.columns()) + "\n").encode())
        self.writer = None
        self.head = False

    def append_file(self, part_path: Path) -> None:
        """Append a headerless part written by another process."""
        self._finish_table()
        with part_path.open("rb") as part:
            shutil.copyfileobj(part, self.handle, 4 << 20)

    def close(self) -> None:
        self._finish_table()
        self.handle.close()


#: Report columns with about one value per row: a dictionary page for them is built, then dropped
#: (profile of the 1M Parquet export: encoding 11%; without these dictionaries a third less).
_PARQUET_PLAIN_COLUMNS = frozenset({"contact_id", "phone_e164", "phones", "phone_used", *TIME_COLUMNS,
                                    *ATTEMPT_TIME_COLUMNS, "talk_s", "sip_call_id", "transcript", "room"})


class _ParquetWriter(_Writer):
    def __init__(self, spec: ReportSpec, path: Path) -> None:
        super().__init__(spec, path)
        self.writer: Any = None

    def write(self, columns: Columns) -> None:
        self.write_table(_arrow(self.spec, columns, text_times=False))

    def write_table(self, table: pa.Table) -> None:
        if self.writer is None:
            metadata = {b"dialer.report_timezone": self.spec.timezone.encode(),
                        b"dialer.campaign_id": self.spec.record.id.encode()}
            table = table.replace_schema_metadata(metadata)
            plain = _PARQUET_PLAIN_COLUMNS | {self.spec.record.phone_column}
            self.writer = pq.ParquetWriter(self.path, table.schema,
                                           use_dictionary=[name for name in table.column_names if name not in plain])
        self.writer.write_table(table.cast(self.writer.schema))

    def close(self) -> None:
        if self.writer is None:
            empty: Columns = {name: [] for name in self.spec.columns()}
            self.write(empty)
        self.writer.close()


class _ArrowPartWriter(_Writer):
    """A helper process's share of a Parquet report, as an Arrow IPC stream: the parent then
    encodes Parquet once, instead of decoding a Parquet part and encoding it again."""

    def __init__(self, spec: ReportSpec, path: Path) -> None:
        super().__init__(spec, path)
        self.sink = pa.OSFile(str(path), "wb")
        self.writer: Any = None
        self.schema: pa.Schema | None = None

    def write(self, columns: Columns) -> None:
        table = _arrow(self.spec, columns, text_times=False)
        if self.schema is None:
            self.schema = table.schema
            self.writer = pa_ipc.new_stream(self.sink, table.schema)
        self.writer.write_table(table.cast(self.schema))

    def close(self) -> None:
        if self.writer is None:
            self.write({name: [] for name in self.spec.columns()})
        self.writer.close()
        self.sink.close()


class _XlsxWriter(_Writer):
    """Rows past one sheet's capacity continue on "contacts (2)"... (see ``dialer.xlsx``)."""

    def __init__(self, spec: ReportSpec, path: Path) -> None:
        super().__init__(spec, path)
        self.book = xlsx.Workbook(path)
        self.book.start_table("attempts" if spec.attempts else "contacts", spec.columns(),
                              max_rows=XLSX_SHEET_ROWS)

    def write(self, columns: Columns) -> None:
        # The header is spec.columns(): cells go in that order whatever order the batch built them in.
        self.book.append(neutralise(_arrow(self.spec, columns, text_times=True)).select(self.spec.columns()))

    def close(self) -> None:
        self.book.add_sheet("about", _about(self.spec))
        self.book.close()


class _JsonWriter(_Writer):
    arrow_batches = False

    def __init__(self, spec: ReportSpec, path: Path) -> None:
        super().__init__(spec, path)
        self.handle: IO[str] = path.open("w", encoding="utf-8")
        head = dict(_about(spec))
        self.handle.write(json.dumps(head, ensure_ascii=False)[:-1] + ', "rows": [\n')
        self.first = True

    def write(self, columns: Columns) -> None:
        for name in _time_columns(self.spec):
            columns[name] = iso_times(columns[name], self.spec.timezone)
        names = list(columns)
        for values in zip(*columns.values(), strict=True):
            record = dict(zip(names, values, strict=True))
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


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while millions of short-lived acyclic dicts are made.

    Each collection would walk the whole growing heap; with it paused, decoding a batch
    is several times faster. Reference counting still frees everything.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def default_path(cid: str, fmt: Format, attempts: bool) -> Path:
    return Path(f"report-{cid}{'-attempts' if attempts else ''}.{fmt.value}")


#: Formats whose contact report is written by several processes at once: each takes the next
#: batch of contacts from the same snapshot, and this process writes them all in order.
PARALLEL_FORMATS = frozenset({Format.CSV, Format.PARQUET})
#: Below this many contacts one process is faster than starting others.
PARALLEL_MIN_CONTACTS = 4 * BATCH
#: Batches this process computes ahead while the batch due next in the file is still a helper's
#: (memory stays bounded by a few batches).
AHEAD_BATCHES = 2
#: How often a wait for a helper's batch checks that the helpers are still alive.
HELPER_POLL_S = 1.0


def export(store: Store, cid: str, fmt: Format, path: Path, *, attempts: bool = False,
           timezone: str = "UTC", progress: Any = None, processes: int | None = None) -> int:
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
    processes = processes or min(2, os.cpu_count() or 1)
    parts = ("attempts",) if attempts else ("status", "results")
    with store.snapshot(cid, parts) as snapshot, gc_paused():
        if attempts or fmt not in PARALLEL_FORMATS or processes < 2:
            written = _write_batches(store, snapshot, spec, writer, progress)
        else:
            if store.contact_count(cid) < PARALLEL_MIN_CONTACTS:
                written = _write_batches(store, snapshot, spec, writer, progress)
            else:
                written = _write_in_parallel(store, snapshot, spec, fmt, writer, processes, progress)
    writer.close()
    return written


def _write_batches(store: Store, snapshot: Snapshot, spec: ReportSpec, writer: _Writer, progress: Any) -> int:
    written = 0
    batches = iter_attempt_batches(store, snapshot, spec) if spec.attempts else \
        iter_contact_batches(store, snapshot, spec, arrow=writer.arrow_batches)
    for columns in batches:
        rows = len(columns["contact_id"])
        writer.write(columns)
        written += rows
        if progress:
            progress(rows)
    return written


def _write_in_parallel(store: Store, snapshot: Snapshot, spec: ReportSpec, fmt: Format, writer: _Writer,
                       processes: int, progress: Any) -> int:
    """This process and ``processes - 1`` forked helpers each take the next batch of contacts as
    they become free; a helper writes its batch to a part file, and this process writes its own
    batches and the helpers' parts into the report in order, each as soon as its turn comes.

    Taking batches as they go (not a fixed share each) ends the processes together whatever else
    runs on the machine, and stitching a part in when its turn comes (not after the helpers end)
    leaves only the last batch to stitch at the end. The helpers start first and are sent the
    contact ids once this process has read them: their start-up (pyarrow's import of pandas)
    overlaps that read instead of following it.
    """
    context = multiprocessing.get_context("fork")
    done = context.Queue()  # per part a helper has written, (batch index, rows); or why it failed
    claims = context.Value("q", 1)  # the next batch to take: this process takes the first itself
    with tempfile.TemporaryDirectory(prefix="dialer-report-", dir=writer.path.parent) as scratch:
        id_queues = [context.Queue() for _ in range(1, processes)]
        children = [context.Process(target=_write_parts, args=(store, snapshot, spec, fmt, ids_queue, claims,
                                                                 Path(scratch), done))
                    for ids_queue in id_queues]
        for child in children:
            child.start()
        try:
            ids = store.contact_ids(spec.record.id)
            for ids_queue in id_queues:
                ids_queue.put(ids)
            written = _write_in_turn(store, snapshot, spec, fmt, writer, ids, claims, Path(scratch), done,
                                     children, progress)
        except BaseException:
            for child in children:
                child.terminate()
                child.join()
            raise
        for child in children:
            child.join()
        if any(child.exitcode for child in children):
            raise DialerError("writing the report failed in a helper process: it died")
    return written


def _claim(claims: Any) -> int:
    """The index of the next batch nobody has taken (it may be past the last)."""
    with claims.get_lock():
        index = int(claims.value)
        claims.value = index + 1
    return index


def _part_path(scratch: Path, fmt: Format, index: int) -> Path:
    return scratch / f"part-{index}.{'csv' if fmt is Format.CSV else 'arrows'}"


def _batch(store: Store, snapshot: Snapshot, spec: ReportSpec, ids: list[int], index: int) -> Columns:
    return _arrow_contact_columns(store, snapshot, spec, ids[index * BATCH : (index + 1) * BATCH])


def _write_in_turn(store: Store, snapshot: Snapshot, spec: ReportSpec, fmt: Format, writer: _Writer,
                   ids: list[int], claims: Any, scratch: Path, done: Any, children: list[Any],
                   progress: Any) -> int:
    """Write every batch in order: this process's own as computed, the helpers' parts as reported."""
    count = -(-len(ids) // BATCH)
    own: dict[int, Columns] = {0: _batch(store, snapshot, spec, ids, 0)} if count else {}
    parts: dict[int, int] = {}  # batch index -> rows, of parts written and not yet stitched in
    written = due = 0
    while due < count:
        _collect_parts(done, parts, children, wait=False)
        if due in own:
            columns = own.pop(due)
            rows = len(columns["contact_id"])
            writer.write(columns)
        elif due in parts:
            rows = parts.pop(due)
            _append_part(writer, fmt, _part_path(scratch, fmt, due))
        else:
            index = _claim(claims) if len(own) < AHEAD_BATCHES else count
            if index < count:
                own[index] = _batch(store, snapshot, spec, ids, index)
            else:
                _collect_parts(done, parts, children, wait=True)
            continue
        written += rows
        due += 1
        if progress:
            progress(rows)
    return written


def _collect_parts(done: Any, parts: dict[int, int], children: list[Any], *, wait: bool) -> None:
    """Add the parts the helpers have reported to ``parts``; with ``wait``, at least one.

    Raises ``DialerError`` for a helper that failed, or died without saying why.
    """
    while True:
        try:
            outcome = done.get(timeout=HELPER_POLL_S) if wait else done.get_nowait()
        except queue.Empty:
            if not wait:
                return
            if any(child.exitcode for child in children):
                raise DialerError("writing the report failed in a helper process: it died") from None
            continue
        if isinstance(outcome, str):
            raise DialerError(f"writing the report failed in a helper process: {outcome}")
        index, rows = outcome
        parts[index] = rows
        wait = False


def _write_parts(store: Store, snapshot: Snapshot, spec: ReportSpec, fmt: Format, ids_queue: Any, claims: Any,
                 scratch: Path, done: Any) -> None:
    """A helper: take batches until none is left, each written to its own part file."""
    try:
        import pandas  # noqa: F401  # pyarrow's first conversion imports it: here, while the ids are read

        ids = ids_queue.get()
        while (index := _claim(claims)) * BATCH < len(ids):
            path = _part_path(scratch, fmt, index)
            writer: _Writer = _CsvWriter(spec, path, head=False) if fmt is Format.CSV else \
                _ArrowPartWriter(spec, path)
            columns = _batch(store, snapshot, spec, ids, index)
            writer.write(columns)
            writer.close()
            done.put((index, len(columns["contact_id"])))
    except BaseException as exc:  # reported to the parent, which raises it
        done.put(f"{type(exc).__name__}: {exc}")


def _append_part(writer: _Writer, fmt: Format, part_path: Path) -> None:
    """Stitch a helper's part into the report, then remove it (the scratch space stays a few batches)."""
    if fmt is Format.CSV:
        assert isinstance(writer, _CsvWriter)
        writer.append_file(part_path)
    else:
        assert isinstance(writer, _ParquetWriter)
        with pa.memory_map(str(part_path)) as source, pa_ipc.open_stream(source) as reader:
            writer.write_table(reader.read_all())  # one report batch
    part_path.unlink()
