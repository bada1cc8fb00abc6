"""Opening a campaign CSV: size, binary, encoding and delimiter checks, chunked reading."""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .errors import IngestError

#: Rows pandas parses at a time; memory is bounded by this, not by the file.
CHUNK_ROWS = 50_000
#: Extra unnamed columns read past the header, so a row with too many fields is
#: reported as a bad row instead of failing the whole file.
SPARE_COLUMNS = 32
SNIFF_BYTES = 64 * 1024
DELIMITERS = (",", ";", "\t", "|")

#: Header spellings taken as the phone column, in order of preference.
PHONE_COLUMN_NAMES = (
    "phone",
    "phone_number",
    "phonenumber",
    "number",
    "mobile",
    "mobile_number",
    "mobile_phone",
    "cell",
    "cell_phone",
    "tel",
    "telephone",
    "msisdn",
    "e164",
)
TIMEZONE_COLUMN_NAMES = ("timezone", "time_zone", "tz")
#: Several numbers in one cell, as Google Contacts exports them ("+1 202 555 0100 ::: 202-555-0101").
MULTI_NUMBER_SEPARATOR = ":::"

#: Words of the phone headers CRMs export, beyond ``PHONE_COLUMN_NAMES``: Google Contacts
#: ("Phone 1 - Value"), HubSpot ("Mobile Phone Number"), Salesforce ("Mobile", "Home Phone"),
#: Outlook ("Business Phone 2"), Pipedrive ("Phone - Work"). A header is a phone column when
#: it has a core word and nothing but these words and digits ("Phone 1 - Type" is not).
_PHONE_CORE_WORDS = frozenset({"phone", "telephone", "tel", "mobile", "cell", "cellphone", "mobilephone",
                               "phonenumber", "msisdn", "e164"})
_PHONE_OTHER_WORDS = frozenset({
    "primary", "main", "home", "work", "business", "office", "direct", "company", "personal", "private",
    "other", "alternate", "alt", "secondary", "assistant", "car", "contact", "day", "evening", "mobile",
    "cell", "number", "no", "nr", "num", "value",
})

_MAGIC = {
    b"PK\x03\x04": "a ZIP archive (an .xlsx workbook?); save it as CSV first",
    b"\xd0\xcf\x11\xe0": "a legacy Excel/Office document; save it as CSV first",
    b"%PDF": "a PDF document",
    b"\x1f\x8b": "a gzip archive; decompress it first",
}


def header_key(name: str) -> str:
    """Compare header names ignoring case, spacing and punctuation ("Phone 1 - Value" is phone_1_value)."""
    return re.sub(r"[\W_]+", "_", name.strip().lower()).strip("_")


def is_phone_header(name: str) -> bool:
    """A header CRMs use for a phone number: a known name, or phone words and digits only."""
    key = header_key(name)
    if key in PHONE_COLUMN_NAMES:
        return True
    words = key.split("_")
    return (any(word in _PHONE_CORE_WORDS for word in words)
            and all(word in _PHONE_CORE_WORDS or word in _PHONE_OTHER_WORDS or word.isdigit() for word in words))


def find_phone_columns(columns: list[str], wanted: Sequence[str] = ()) -> list[str]:
    """The phone columns of a header, the first to dial first.

    ``wanted`` names them (spelling-insensitive; a name that matches no column is left out,
    the caller reports it). Without it every phone header counts: the known names in the order
    of ``PHONE_COLUMN_NAMES`` first, then the other phone headers in file order; a bare
    ``number`` column counts only when there is no other.
    """
    keys = _header_keys(columns)
    if wanted:
        found = [keys[header_key(name)] for name in wanted if header_key(name) in keys]
        return list(dict.fromkeys(found))
    named = [keys[candidate] for candidate in PHONE_COLUMN_NAMES if candidate in keys]
    others = [name for name in columns if name not in named and is_phone_header(name)]
    found = named + others
    if len(found) > 1:
        found = [name for name in found if header_key(name) != "number"]
    return found


def split_numbers(cell: str) -> list[str]:
    """The numbers of one cell: Google Contacts joins several with ``" ::: "``."""
    if MULTI_NUMBER_SEPARATOR not in cell:
        return [cell]
    return [part.strip() for part in cell.split(MULTI_NUMBER_SEPARATOR) if part.strip()]


@dataclass(frozen=True)
class CsvFormat:
    encoding: str
    delimiter: str
    columns: list[str]


def _check_file(path: Path, max_bytes: int) -> bytes:
    if not path.exists():
        raise IngestError(f"file not found: {path}")
    if not path.is_file():
        raise IngestError(f"not a file: {path}")
    size = path.stat().st_size
    if size == 0:
        raise IngestError(f"{path} is empty: it needs a header row and at least one contact")
    if size > max_bytes:
        raise IngestError(
            f"{path} is {size / 2**20:.1f} MiB, over the {max_bytes / 2**20:.0f} MiB limit; "
            "split it or raise DIALER_MAX_UPLOAD_MB"
        )
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
    for magic, what in _MAGIC.items():
        if head.startswith(magic):
            raise IngestError(f"{path} is not a CSV file: it is {what}")
    if b"\x00" in head:
        raise IngestError(f"{path} is not a CSV file: it contains binary data")
    return head


def _detect_encoding(path: Path, head: bytes) -> str:
    """UTF-8 (BOM or not) when the whole file decodes as UTF-8, else cp1252 or latin-1."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with path.open("rb") as handle:
            while block := handle.read(1 << 20):
                decoder.decode(block)
            decoder.decode(b"", final=True)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        with path.open("rb") as handle:
            while block := handle.read(1 << 20):
                block.decode("cp1252")
        return "cp1252"
    except UnicodeDecodeError:
        return "latin-1"


def _detect_delimiter(sample: str) -> str:
    try:
        return csv.Sniffer().sniff(sample, delimiters="".join(DELIMITERS)).delimiter
    except csv.Error:
        first_line = sample.splitlines()[0] if sample else ""
        counts = {delim: first_line.count(delim) for delim in DELIMITERS}
        best = max(counts, key=lambda delim: counts[delim])
        return best if counts[best] else ","


def inspect(path: Path, max_bytes: int) -> CsvFormat:
    """Check the file and find its encoding, delimiter and header; fail with a clear error."""
    head = _check_file(path, max_bytes)
    encoding = _detect_encoding(path, head)
    sample = head.decode(encoding, errors="replace")
    if not sample.strip():
        raise IngestError(f"{path} is empty: it needs a header row and at least one contact")
    delimiter = _detect_delimiter(sample)
    try:
        header = next(csv.reader(io.StringIO(sample), delimiter=delimiter))
    except (csv.Error, StopIteration) as exc:
        raise IngestError(f"{path}: cannot read the header row ({exc})") from None
    columns = [name.strip() for name in header]
    if not any(columns):
        raise IngestError(f"{path}: the first row must be a header naming the columns")
    seen: dict[str, int] = {}
    unique = []
    for index, name in enumerate(columns):
        name = name or f"column_{index + 1}"
        count = seen.get(name, 0)
        seen[name] = count + 1
        unique.append(name if count == 0 else f"{name}_{count + 1}")
    return CsvFormat(encoding=encoding, delimiter=delimiter, columns=unique)


def find_column(columns: list[str], candidates: tuple[str, ...]) -> str | None:
    """The first of ``candidates`` (header keys) the header has, spelled as the file spells it."""
    keys = _header_keys(columns)
    return next((keys[candidate] for candidate in candidates if candidate in keys), None)


def _header_keys(columns: list[str]) -> dict[str, str]:
    """Each header key, to the first column that spells it."""
    return {header_key(name): name for name in reversed(columns)}


def read_chunks(path: Path, fmt: CsvFormat, chunk_rows: int | None = None) -> Iterator[pd.DataFrame]:
    """Yield the data rows as string DataFrames of at most ``chunk_rows`` rows.

    Extra fields past the header land in spare columns named ``__extra_N``;
    missing trailing fields are empty strings.
    """
    names = fmt.columns + [f"__extra_{i}" for i in range(SPARE_COLUMNS)]
    try:
        reader = pd.read_csv(
            path,
            sep=fmt.delimiter,
            encoding=fmt.encoding,
            header=None,
            skiprows=1,
            names=names,
            dtype=object,  # Python strings as parsed: pandas' str dtype would copy them into Arrow and back
            keep_default_na=False,
            na_filter=False,
            skip_blank_lines=True,
            chunksize=chunk_rows or CHUNK_ROWS,
            engine="c",
            quotechar='"',
            doublequote=True,
        )
        with reader:
            yield from reader
    except pd.errors.ParserError as exc:
        raise IngestError(f"{path}: the file is not valid CSV ({exc})") from None
