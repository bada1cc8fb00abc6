"""Campaign ingest: a CSV of contacts plus a config becomes a stored draft campaign.

Every data row ends in exactly one bucket: accepted, rejected (with its row
number and reason), duplicate or suppressed (DNC). Nothing is stored unless
the whole file is read; a failure part-way removes what was written.
"""

from __future__ import annotations

import math
import threading
from collections import Counter, deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from . import csvfile
from . import store as store_module
from .config import CampaignConfig
from .errors import ConfigError, IngestError
from .models import Contact, ContactNumber
from .phones import PhoneInfo, PhoneNormalizer, PhoneRejected, RejectReason, split_extension
from .store import Store
from .window import can_call_together, zone

#: Reject reasons the ingest adds to those of ``dialer.phones.RejectReason``.
REASON_NO_COMMON_WINDOW = "no_common_window"
REASON_TOO_MANY_FIELDS = "too_many_fields"

#: Redis writes sent to the writer thread and not yet finished, at most (each up to
#: ``store.WRITE_BATCH`` rows): the reading and normalising waits rather than run further ahead.
WRITE_DEPTH = 2

Progress = Callable[[int], None]
#: A number left out of a contact: {"raw", "reason", "detail"}.
Dropped = dict[str, str]


@dataclass
class IngestSummary:
    campaign_id: str
    name: str
    rows: int = 0
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    suppressed: int = 0
    reject_reasons: Counter[str] = field(default_factory=Counter)
    #: Numbers left out of accepted contacts, by reason (invalid_number, dnc, duplicate...).
    numbers_dropped: Counter[str] = field(default_factory=Counter)
    phone_column: str = ""
    phone_columns: list[str] = field(default_factory=list)
    encoding: str = ""
    delimiter: str = ""

    def counts(self) -> dict[str, int]:
        return {
            "rows": self.rows,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "duplicates": self.duplicates,
            "suppressed": self.suppressed,
        }

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "campaign_id": self.campaign_id,
            "name": self.name,
            **self.counts(),
            "reject_reasons": dict(sorted(self.reject_reasons.items())),
            "numbers_dropped": dict(sorted(self.numbers_dropped.items())),
            "phone_column": self.phone_column,
            "phone_columns": self.phone_columns,
            "encoding": self.encoding,
            "delimiter": self.delimiter,
        }


class _ZoneResolver:
    """Chooses the time zones a contact is called in, caching per distinct input."""

    def __init__(self, config: CampaignConfig, now: datetime) -> None:
        self._config = config
        self._now = now
        self._callable: dict[tuple[str, ...], bool] = {}
        self._valid_zone: dict[str, bool] = {}

    def column_zone(self, value: str) -> str | None:
        value = value.strip()
        if not value:
            return None
        known = self._valid_zone.get(value)
        if known is None:
            try:
                zone(value)
                known = True
            except ValueError:
                known = False
            self._valid_zone[value] = known
        return value if known else None

    def can_call(self, zones: tuple[str, ...]) -> bool:
        known = self._callable.get(zones)
        if known is None:
            known = can_call_together(self._config.calling_window, zones, self._now)
            self._callable[zones] = known
        return known

    def resolve(self, number_zones: tuple[str, ...], column_value: str) -> tuple[str, ...] | None:
        explicit = self.column_zone(column_value)
        if explicit:
            return (explicit,)
        if self.can_call(number_zones):
            return number_zones
        if self._config.default_timezone:
            return (self._config.default_timezone,)
        return None


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def _reject(
    summary: IngestSummary,
    skipped: list[dict[str, Any]],
    row: int,
    values: dict[str, str],
    reason: str,
    detail: str,
) -> None:
    summary.rejected += 1
    summary.reject_reasons[reason] += 1
    skipped.append({"row": row, "bucket": "rejected", "reason": reason, "detail": detail, "values": values})


def check_templates(config: CampaignConfig, columns: list[str]) -> None:
    """Fail when a template names a variable the CSV does not have."""
    missing = sorted(config.template_fields() - set(columns))
    if missing:
        raise ConfigError(
            "the config's templates use "
            + ", ".join(f"{{{name}}}" for name in missing)
            + f" but the CSV has no such column (columns: {', '.join(columns)})"
        )


@dataclass(frozen=True)
class Prepared:
    """What the checks before an ingest found out about a file."""

    fmt: csvfile.CsvFormat
    #: The columns holding a contact's numbers, the one dialed first first.
    phone_columns: list[str]
    timezone_column: str | None

    @property
    def phone_column(self) -> str:
        return self.phone_columns[0]


PhoneColumns = str | Sequence[str] | None


def wanted_phone_columns(phone_column: PhoneColumns, config: CampaignConfig) -> list[str]:
    """The phone columns asked for: ``--phone-column`` (once or more), else the config's."""
    if isinstance(phone_column, str):
        return [phone_column] if phone_column else []
    return [name for name in phone_column or () if name] or list(config.phone_columns)


def prepare(path: Path, config: CampaignConfig, *, phone_column: PhoneColumns, max_bytes: int) -> Prepared:
    """Every check that needs no Redis: size, binary, encoding, header, phone columns, templates.

    The CLI runs it inside ``ingest_file``; the HTTP API runs it before it accepts an upload,
    so both refuse a bad file with the same message.
    """
    fmt = csvfile.inspect(path, max_bytes)
    wanted = wanted_phone_columns(phone_column, config)
    phone_cols = csvfile.find_phone_columns(fmt.columns, wanted)
    keys = {csvfile.header_key(name) for name in fmt.columns}
    missing = [name for name in wanted if csvfile.header_key(name) not in keys]
    if missing or not phone_cols:
        what = ", ".join(repr(name) for name in missing)
        wanted_text = (f"named {what}" if missing
                       else "(phone, phone_number, mobile, tel, Phone 1 - Value, Mobile Phone Number...)")
        raise IngestError(
            f"{path}: no phone column {wanted_text}; columns found: {', '.join(fmt.columns)}. "
            "Rename the column or pass --phone-column."
        )
    check_templates(config, fmt.columns)
    return Prepared(fmt, phone_cols, csvfile.find_column(fmt.columns, csvfile.TIMEZONE_COLUMN_NAMES))


def ingest_file(
    store: Store,
    path: Path,
    config: CampaignConfig,
    *,
    phone_column: PhoneColumns = None,
    max_bytes: int,
    progress: Progress | None = None,
    now: datetime | None = None,
    campaign_id: str | None = None,
) -> IngestSummary:
    """Create a draft campaign from ``path``; raises a UserError for a bad file.

    ``phone_column`` is one column name or several (the first is dialed first); without it
    the config's ``phone_columns``, else every phone column of the header.
    ``campaign_id`` is the id to create, when the caller has already handed it out (an upload).
    """
    prepared = prepare(path, config, phone_column=phone_column, max_bytes=max_bytes)
    fmt, phone_cols, tz_col = prepared.fmt, prepared.phone_columns, prepared.timezone_column
    # The first phone column is the contact's phone_raw; the others stay template variables.
    variable_cols = [name for name in fmt.columns if name != phone_cols[0]]

    cid = campaign_id or store.new_campaign_id()
    summary = IngestSummary(
        campaign_id=cid,
        name=config.name,
        phone_column=phone_cols[0],
        phone_columns=phone_cols,
        encoding=fmt.encoding,
        delimiter=fmt.delimiter,
    )
    store.begin_campaign(cid, config, columns=fmt.columns, phone_column=phone_cols[0], phone_columns=phone_cols,
                         source=path.name)
    try:
        with _Writer() as writer:
            _ingest_rows(store, writer, path, fmt, config, summary, phone_cols, tz_col, variable_cols, progress, now)
            writer.finish()
        if summary.rows == 0:
            raise IngestError(f"{path} has a header but no data rows")
    except BaseException:
        store.discard_campaign(cid)
        raise
    store.publish_campaign(cid, summary.counts(), dict(summary.reject_reasons))
    return summary


class _RowNumbers:
    """Turns a row's phone cells into the contact's numbers, dropping the ones that cannot be called."""

    def __init__(self, config: CampaignConfig, zones: _ZoneResolver) -> None:
        self._normalizer = PhoneNormalizer(config.default_region)
        self._zones = zones

    def read(self, cells: list[str], tz_value: str) -> tuple[list[ContactNumber], tuple[str, ...], list[Dropped]]:
        """A row of several phone cells (or none; one cell goes through ``read_one``): (numbers kept,
        the zones they are called in, numbers dropped with reason and detail).

        Every number of a contact is called in one calling window: a number whose zones
        cannot share one with the numbers before it is dropped (no_common_window).
        """
        numbers: list[ContactNumber] = []
        dropped: list[dict[str, str]] = []
        contact_zones: tuple[str, ...] = ()
        seen: set[str] = set()
        for raw in cells:
            if not raw.strip():
                continue  # an empty secondary column is no number, not a bad one
            number, extension = split_extension(raw)
            try:
                info = self._normalizer.normalize(number)
            except PhoneRejected as exc:
                if exc.reason is not RejectReason.MISSING:  # "n/a" in a spare column
                    dropped.append({"raw": raw, "reason": exc.reason.value, "detail": exc.detail})
                continue
            entry = ContactNumber(info.e164, extension, info.number_type, raw)
            if entry.dial_key in seen:
                continue  # the same number twice in one row is one number
            resolved = self._zones.resolve(info.time_zones, tz_value)
            merged = resolved if not numbers or resolved is None else tuple(dict.fromkeys(contact_zones + resolved))
            if merged is None or (numbers and merged != contact_zones and not self._zones.can_call(merged)):
                dropped.append(_no_common_window(raw, info, bool(numbers)))
                continue
            seen.add(entry.dial_key)
            numbers.append(entry)
            contact_zones = merged
        return numbers, contact_zones, dropped

    def read_one(self, raw: str, tz_value: str) -> tuple[PhoneInfo, str, tuple[str, ...]] | Dropped:
        """The one number of a row with one phone cell (most rows): (number, its extension, the zones
        it is called in), or why it is dropped; no ``ContactNumber`` is built."""
        number, extension = split_extension(raw)
        try:
            info = self._normalizer.normalize(number)
        except PhoneRejected as exc:
            return {"raw": raw, "reason": exc.reason.value, "detail": exc.detail}
        resolved = self._zones.resolve(info.time_zones, tz_value)
        if resolved is None:
            return _no_common_window(raw, info, False)
        return info, extension, resolved


def _no_common_window(raw: str, info: PhoneInfo, after_others: bool) -> Dropped:
    return {"raw": raw, "reason": REASON_NO_COMMON_WINDOW, "detail": (
        f"{info.e164} maps to {len(info.time_zones) or 'no'} time zones that the calling window "
        "never covers together" + (" with the numbers before it" if after_others else "")
        + "; add a timezone column or set default_timezone")}


def _column(values: list[Any]) -> list[str]:
    """A chunk column's cells as text (they already are: the CSV is read as strings, no NA)."""
    if not values or set(map(type, values)) == {str}:
        return values
    return [_cell(value) for value in values]


def _values(names: list[str], row: tuple[str, ...]) -> dict[str, str]:
    """A row's cells by column name, as a skipped row keeps them."""
    return dict(zip(names, row, strict=True))


def _overflowing(chunk: Any) -> list[bool] | None:
    """Which rows have more fields than the header (a spare column not empty); None when none has.

    Most chunks have none, so each spare column is first checked whole (``list.count``, in C).
    """
    flags: list[bool] | None = None
    for name in chunk.columns:
        if not name.startswith("__extra_"):
            continue
        values = chunk[name].tolist()
        if values.count("") == len(values):
            continue
        row_flags = [value != "" for value in values]
        flags = row_flags if flags is None else [a or b for a, b in zip(flags, row_flags, strict=True)]
    return flags


class _Writer:
    """Runs the ingest's Redis writes on one background thread, one after the other, in order.

    Waiting for Redis to run ``ingest_chunk.lua`` was a third of an ingest's wall time; with the
    writes on their own thread the next rows are read and normalised meanwhile. One thread keeps
    file order: a batch's write finishes before the next one's starts, so the earlier row owns a
    number. ``send`` blocks while ``WRITE_DEPTH`` writes are unfinished, so memory stays bounded.
    After a failure the writes behind it are not run; ``wait`` and ``finish`` raise the first
    failure, the caller's exception as it was raised on the writer thread.
    """

    def __init__(self, depth: int = WRITE_DEPTH) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-writer")
        self._slots = threading.BoundedSemaphore(depth)
        self._sent: deque[Future[Any]] = deque()
        self._failed = False

    def send(self, call: Callable[..., Any], *args: Any) -> Future[Any]:
        self._slots.acquire()
        try:
            future = self._pool.submit(self._run, call, args)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: self._slots.release())
        self._sent.append(future)
        return future

    def _run(self, call: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        if self._failed:
            raise RuntimeError("not written: an earlier ingest write failed")
        try:
            return call(*args)
        except BaseException:
            self._failed = True
            raise

    def wait(self, future: Future[Any]) -> Any:
        """``future``'s result, once every write sent before it has finished (raising the first failure)."""
        while self._sent:
            done = self._sent.popleft()
            result = done.result()
            if done is future:
                return result
        raise ValueError("not a pending write of this writer")

    def finish(self) -> None:
        """Wait for every write sent; raise the first failure."""
        while self._sent:
            self._sent.popleft().result()

    def close(self) -> None:
        """Drop the writes not started and wait for the one running (before a failed ingest is discarded)."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _ingest_rows(
    store: Store,
    writer: _Writer,
    path: Path,
    fmt: csvfile.CsvFormat,
    config: CampaignConfig,
    summary: IngestSummary,
    phone_cols: list[str],
    tz_col: str | None,
    variable_cols: list[str],
    progress: Progress | None,
    now: datetime | None,
) -> None:
    """Read, check and store the rows; the writes go to ``writer`` a batch at a time, in file order."""
    zones = _ZoneResolver(config, now or datetime.now(UTC))
    reader = _RowNumbers(config, zones)
    batch_rows = store_module.WRITE_BATCH
    names = fmt.columns
    phone_at = [names.index(name) for name in phone_cols]
    first_phone = phone_at[0]
    one_column = len(phone_at) == 1
    tz_at = names.index(tz_col) if tz_col else None
    variable_at = [names.index(name) for name in variable_cols]
    no_variables = ((),)
    row_number = 1  # the header is row 1
    settle: Callable[[], None] | None = None
    for chunk in csvfile.read_chunks(path, fmt):
        columns = [_column(chunk[name].tolist()) for name in names]
        overflow = _overflowing(chunk)
        variable_rows = (zip(*(columns[at] for at in variable_at), strict=True) if variable_at
                         else no_variables * len(chunk))
        candidates: list[tuple[int, str, str]] = []
        #: per candidate, in the same order: its row's cells, and its Contact, or for a row of one
        #: number (whose json was built directly, without one) the cell text of that number.
        pending: list[tuple[tuple[str, ...], Contact | str]] = []
        skipped: list[dict[str, Any]] = []
        writes: list[Future[list[str]]] = []
        sent = 0
        for offset, (row, variable_row) in enumerate(zip(zip(*columns, strict=True), variable_rows, strict=True)):
            row_number += 1
            if overflow is not None and overflow[offset]:
                _reject(summary, skipped, row_number, _values(names, row), REASON_TOO_MANY_FIELDS,
                        f"row has more fields than the {len(names)} in the header")
                continue
            phone_raw = row[first_phone]
            cells = (csvfile.split_numbers(phone_raw) if one_column
                     else [part for at in phone_at for part in csvfile.split_numbers(row[at])])
            tz_value = row[tz_at] if tz_at is not None else ""
            if len(cells) == 1:
                # One number (most rows): its json is built directly, no Contact object.
                got = reader.read_one(cells[0], tz_value)
                if isinstance(got, dict):
                    _reject(summary, skipped, row_number, _values(names, row), got["reason"], got["detail"])
                    continue
                info, extension, contact_zones = got
                e164 = info.e164
                dial_key = f"{e164};ext={extension}" if extension else e164
                candidates.append((row_number, dial_key, Contact.one_number_json(
                    row_number, e164, info.number_type, extension, phone_raw=phone_raw,
                    time_zones=contact_zones, variables=dict(zip(variable_cols, variable_row, strict=True)))))
                pending.append((row, cells[0]))
            else:
                numbers, contact_zones, dropped = reader.read(cells, tz_value)
                if not numbers:
                    if not dropped:
                        _reject(summary, skipped, row_number, _values(names, row), RejectReason.MISSING.value,
                                f"no number in {', '.join(phone_cols)}")
                    else:
                        detail = (dropped[0]["detail"] if len(dropped) == 1
                                  else "; ".join(f"{entry['raw']!r}: {entry['detail']}" for entry in dropped))
                        _reject(summary, skipped, row_number, _values(names, row), dropped[0]["reason"], detail)
                    continue
                variables = dict(zip(variable_cols, variable_row, strict=True))
                contact = Contact.with_numbers(row_number, numbers, phone_raw=phone_raw, time_zones=contact_zones,
                                               variables=variables, dropped=dropped)
                candidates.append((row_number, ",".join(number.dial_key for number in numbers), contact.to_json()))
                pending.append((row, contact))
            if len(candidates) - sent >= batch_rows:
                # Written while the rows after it are read and normalised.
                writes.append(writer.send(store.store_contacts, summary.campaign_id, candidates[sent:]))
                sent = len(candidates)
        if sent < len(candidates):
            writes.append(writer.send(store.store_contacts, summary.campaign_id, candidates[sent:]))
        # Settled once the next chunk's rows are read and sent: its last writes finish meanwhile.
        if settle is not None:
            settle()
        settle = partial(_settle_chunk, store, writer, summary, names, len(chunk), candidates, pending, skipped,
                         writes, progress)
    if settle is not None:
        settle()


def _settle_chunk(
    store: Store,
    writer: _Writer,
    summary: IngestSummary,
    names: list[str],
    rows: int,
    candidates: list[tuple[int, str, str]],
    pending: list[tuple[tuple[str, ...], Contact | str]],
    skipped: list[dict[str, Any]],
    writes: list[Future[list[str]]],
    progress: Progress | None,
) -> None:
    """Count a chunk's rows once its writes are done: accepted, duplicate or suppressed by their
    letters; rewrite the contacts that lost numbers and keep the skipped rows (both written behind
    the next writes)."""
    letters = [letter for write in writes for letter in writer.wait(write)]
    rewritten: dict[int, str] = {}
    for (contact_id, dial_keys, _), (row, built), kept in zip(candidates, pending, letters, strict=True):
        if isinstance(built, str):  # one number, its cell text
            if kept == "A":
                summary.accepted += 1
                continue
            lost = [_lost_number(built, dial_keys, kept)]
        else:
            contact = built
            if not kept.strip("A") and not contact.dropped:  # every number kept
                summary.accepted += 1
                continue
            numbers = list(contact.all_numbers)
            if "A" in kept:
                summary.accepted += 1
                dropped = list(contact.dropped)
                for number, letter in zip(numbers, kept, strict=True):
                    if letter != "A":
                        dropped.append(_lost_number(number.raw, number.dial_key, letter))
                if len(dropped) != len(contact.dropped):
                    left = [number for number, letter in zip(numbers, kept, strict=True) if letter == "A"]
                    contact = Contact.with_numbers(contact_id, left, phone_raw=contact.phone_raw,
                                                   time_zones=contact.time_zones, variables=contact.variables,
                                                   dropped=dropped)
                    rewritten[contact_id] = contact.to_json()
                summary.numbers_dropped.update(entry["reason"] for entry in dropped)
                continue
            lost = [_lost_number(number.raw, number.dial_key, letter)
                    for number, letter in zip(numbers, kept, strict=True)]
        detail = "; ".join(entry["detail"] for entry in lost)
        values = _values(names, row)
        if "S" in kept:
            summary.suppressed += 1
            skipped.append({"row": contact_id, "bucket": "suppressed", "reason": "dnc", "detail": detail,
                            "values": values})
        else:
            summary.duplicates += 1
            skipped.append({"row": contact_id, "bucket": "duplicate", "reason": "duplicate", "detail": detail,
                            "values": values})
    # Both written behind the next chunk's batches; a failure surfaces at the next wait or at the end.
    if rewritten:
        writer.send(store.replace_contacts, summary.campaign_id, rewritten)
    if skipped:
        writer.send(store.add_skipped_rows, summary.campaign_id, sorted(skipped, key=lambda entry: entry["row"]))
    summary.rows += rows
    if progress:
        progress(rows)


def _lost_number(raw: str, dial_key: str, letter: str) -> dict[str, str]:
    """A number the store refused: on the DNC list (S) or an earlier contact's (D)."""
    number = dial_key.split(";")[0]
    if letter == "S":
        return {"raw": raw, "reason": "dnc", "detail": f"{number} is on the do-not-call list"}
    return {"raw": raw, "reason": "duplicate", "detail": f"{dial_key} appears earlier in the file"}
