"""Campaign ingest: a CSV of contacts plus a config becomes a stored draft campaign.

Every data row ends in exactly one bucket: accepted, rejected (with its row
number and reason), duplicate or suppressed (DNC). Nothing is stored unless
the whole file is read; a failure part-way removes what was written.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import csvfile
from .config import CampaignConfig
from .errors import ConfigError, IngestError
from .models import Contact
from .phones import PhoneNormalizer, PhoneRejected, split_extension
from .store import Store
from .window import can_call_together, zone

#: Reject reasons the ingest adds to those of ``dialer.phones.RejectReason``.
REASON_NO_COMMON_WINDOW = "no_common_window"
REASON_TOO_MANY_FIELDS = "too_many_fields"

Progress = Callable[[int], None]


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
    phone_column: str = ""
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
            "phone_column": self.phone_column,
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
    phone_column: str
    timezone_column: str | None


def prepare(path: Path, config: CampaignConfig, *, phone_column: str | None, max_bytes: int) -> Prepared:
    """Every check that needs no Redis: size, binary, encoding, header, phone column, templates.

    The CLI runs it inside ``ingest_file``; the HTTP API runs it before it accepts an upload,
    so both refuse a bad file with the same message.
    """
    fmt = csvfile.inspect(path, max_bytes)
    phone_col = csvfile.find_column(fmt.columns, phone_column, csvfile.PHONE_COLUMN_NAMES)
    if phone_col is None:
        wanted = f"named {phone_column!r}" if phone_column else "(phone, phone_number, number, mobile, tel...)"
        raise IngestError(
            f"{path}: no phone column {wanted}; columns found: {', '.join(fmt.columns)}. "
            "Rename the column or pass --phone-column."
        )
    check_templates(config, fmt.columns)
    return Prepared(fmt, phone_col, csvfile.find_column(fmt.columns, None, csvfile.TIMEZONE_COLUMN_NAMES))


def ingest_file(
    store: Store,
    path: Path,
    config: CampaignConfig,
    *,
    phone_column: str | None = None,
    max_bytes: int,
    progress: Progress | None = None,
    now: datetime | None = None,
    campaign_id: str | None = None,
) -> IngestSummary:
    """Create a draft campaign from ``path``; raises a UserError for a bad file.

    ``campaign_id`` is the id to create, when the caller has already handed it out (an upload).
    """
    prepared = prepare(path, config, phone_column=phone_column, max_bytes=max_bytes)
    fmt, phone_col, tz_col = prepared.fmt, prepared.phone_column, prepared.timezone_column
    variable_cols = [name for name in fmt.columns if name != phone_col]

    cid = campaign_id or store.new_campaign_id()
    summary = IngestSummary(
        campaign_id=cid,
        name=config.name,
        phone_column=phone_col,
        encoding=fmt.encoding,
        delimiter=fmt.delimiter,
    )
    store.begin_campaign(cid, config, columns=fmt.columns, phone_column=phone_col, source=path.name)
    try:
        _ingest_rows(store, path, fmt, config, summary, phone_col, tz_col, variable_cols, progress, now)
        if summary.rows == 0:
            raise IngestError(f"{path} has a header but no data rows")
    except BaseException:
        store.discard_campaign(cid)
        raise
    store.publish_campaign(cid, summary.counts(), dict(summary.reject_reasons))
    return summary


def _ingest_rows(
    store: Store,
    path: Path,
    fmt: csvfile.CsvFormat,
    config: CampaignConfig,
    summary: IngestSummary,
    phone_col: str,
    tz_col: str | None,
    variable_cols: list[str],
    progress: Progress | None,
    now: datetime | None,
) -> None:
    normalizer = PhoneNormalizer(config.default_region)
    zones = _ZoneResolver(config, now or datetime.now(UTC))
    row_number = 1  # the header is row 1
    for chunk in csvfile.read_chunks(path, fmt):
        columns = {name: chunk[name].tolist() for name in fmt.columns}
        extras = chunk[[name for name in chunk.columns if name.startswith("__extra_")]]
        overflow = extras.ne("").any(axis=1).tolist() if not extras.empty else [False] * len(chunk)
        phones = columns[phone_col]
        tzs = columns[tz_col] if tz_col else None
        candidates: list[tuple[int, str, str]] = []
        skipped: list[dict[str, Any]] = []
        by_id: dict[int, dict[str, str]] = {}
        for offset in range(len(chunk)):
            row_number += 1
            values = {name: _cell(columns[name][offset]) for name in fmt.columns}
            if overflow[offset]:
                _reject(summary, skipped, row_number, values, REASON_TOO_MANY_FIELDS,
                        f"row has more fields than the {len(fmt.columns)} in the header")
                continue
            number, extension = split_extension(phones[offset])
            try:
                info = normalizer.normalize(number)
            except PhoneRejected as exc:
                _reject(summary, skipped, row_number, values, exc.reason.value, exc.detail)
                continue
            resolved = zones.resolve(info.time_zones, _cell(tzs[offset]) if tzs else "")
            if resolved is None:
                _reject(summary, skipped, row_number, values, REASON_NO_COMMON_WINDOW,
                        f"{info.e164} maps to {len(info.time_zones) or 'no'} time zones that the "
                        "calling window never covers together; add a timezone column or set "
                        "default_timezone")
                continue
            contact = Contact(
                id=row_number,
                phone_e164=info.e164,
                phone_raw=values[phone_col],
                number_type=info.number_type,
                time_zones=resolved,
                variables={name: values[name] for name in variable_cols},
                extension=extension,
            )
            by_id[row_number] = values
            candidates.append((row_number, contact.dial_key, contact.to_json()))
        letters = store.store_contacts(summary.campaign_id, candidates)
        for (contact_id, e164, _), letter in zip(candidates, letters, strict=True):
            if letter == "A":
                summary.accepted += 1
            elif letter == "D":
                summary.duplicates += 1
                skipped.append(
                    {"row": contact_id, "bucket": "duplicate", "reason": "duplicate",
                     "detail": f"{e164} appears earlier in the file", "values": by_id[contact_id]}
                )
            else:
                summary.suppressed += 1
                skipped.append(
                    {"row": contact_id, "bucket": "suppressed", "reason": "dnc",
                     "detail": f"{e164} is on the do-not-call list", "values": by_id[contact_id]}
                )
        store.add_skipped_rows(summary.campaign_id, sorted(skipped, key=lambda entry: entry["row"]))
        summary.rows += len(chunk)
        if progress:
            progress(len(chunk))

