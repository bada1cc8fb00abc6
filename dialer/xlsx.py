"""A streaming XLSX writer for Arrow tables: each batch becomes sheet XML in a few vectorised steps.

Cells are written the way xlsxwriter writes them in its constant-memory mode (inline
strings, no shared-string table): text as ``t="inlineStr"``, numbers as ``<v>``, booleans
as ``t="b"``; nulls, empty strings and non-finite numbers are left out. A whole batch of
rows is turned into XML with Arrow string kernels instead of one Python call per cell,
and streamed into the zip entry, so memory is bounded by the batch.

A table longer than a sheet can hold continues on ``name (2)``, ``name (3)``... each with
the header repeated: Excel stops at 1,048,576 rows, and a zip entry without zip64 at 2 GiB.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any
from xml.sax.saxutils import quoteattr

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: Rows in one Excel worksheet, the header included.
EXCEL_MAX_ROWS = 1_048_576
#: Data rows per sheet under one header row.
SHEET_DATA_ROWS = EXCEL_MAX_ROWS - 1
#: Excel keeps at most this many characters in a cell; longer text is cut there.
CELL_MAX_CHARS = 32_767
#: Largest uncompressed part written without zip64 (which older Excel builds refuse).
PART_MAX_BYTES = (1 << 31) - 1 - (16 << 20)
#: zlib level for the sheets: 1 is about four times faster than the default 6 and the file
#: is about 20% larger.
DEFLATE_LEVEL = 1

#: Characters XML 1.0 cannot carry; Excel reads them back from ``_xHHHH_``.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f]")
_CONTROL_PATTERN = "[\\x00-\\x08\\x0b-\\x1f]"
#: Text that already looks like such an escape gets its underscore escaped, as Excel does.
_ESCAPE_LOOKALIKE = r"_(x[0-9A-Fa-f]{4}_)"

_MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
_HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_SHEET_OPEN = f'{_HEAD}<worksheet xmlns="{_MAIN_NS}" xmlns:r="{_REL_NS}"><sheetData>'.encode()
_SHEET_CLOSE = b"</sheetData></worksheet>"
_STYLES = (
    f'{_HEAD}<styleSheet xmlns="{_MAIN_NS}">'
    '<fonts count="1"><font><sz val="11"/><name val="Calibri"/><family val="2"/></font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/></cellXfs>'
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    "</styleSheet>"
)


def column_letters(index: int) -> str:
    """Excel's name of the 0-based column ``index``: A, B, ... Z, AA, AB..."""
    name = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        name = chr(65 + rest) + name
    return name


def _control_escape(text: str) -> str:
    return _CONTROL.sub(lambda match: f"_x{ord(match.group()):04X}_", text)


def _xml_text(column: pa.Array) -> pa.Array:
    """Text made safe for an XML element: cut to Excel's cell size, escaped, control characters encoded."""
    if len(column) and (pc.max(pc.utf8_length(column)).as_py() or 0) > CELL_MAX_CHARS:
        column = pc.utf8_slice_codeunits(column, 0, CELL_MAX_CHARS)
    for char, entity in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;")):
        column = pc.replace_substring(column, char, entity)
    if pc.any(pc.match_substring_regex(column, _ESCAPE_LOOKALIKE)).as_py():
        column = pc.replace_substring_regex(column, _ESCAPE_LOOKALIKE, r"_x005F_\1")
    if pc.any(pc.match_substring_regex(column, _CONTROL_PATTERN)).as_py():  # rare: done in Python
        column = pa.array([None if v is None else _control_escape(v) for v in column.to_pylist()], pa.string())
    return column


def _cells(column: pa.Array, refs: pa.Array) -> pa.Array:
    """One XML cell per row ("" for a cell left out)."""
    kind = column.type
    if pa.types.is_boolean(kind):
        value = pc.if_else(column, "1", "0")
        cells = pc.binary_join_element_wise('<c r="', refs, '" t="b"><v>', value, "</v></c>", "")
    elif pa.types.is_integer(kind) or pa.types.is_floating(kind):
        if pa.types.is_floating(kind):
            column = pc.if_else(pc.is_finite(column), column, pa.scalar(None, kind))
        cells = pc.binary_join_element_wise('<c r="', refs, '"><v>', column.cast(pa.string()), "</v></c>", "")
    else:
        text = column if pa.types.is_string(kind) else column.cast(pa.string())
        text = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
        cells = pc.binary_join_element_wise('<c r="', refs, '" t="inlineStr"><is><t xml:space="preserve">',
                                            _xml_text(text), "</t></is></c>", "")
    return pc.fill_null(cells, "")


def _rows_xml(table: pa.Table, first_row: int) -> memoryview:
    """The ``<row>`` elements of ``table``, numbered from ``first_row``, as UTF-8 bytes."""
    numbers = pa.array(np.arange(first_row, first_row + table.num_rows, dtype=np.int64)).cast(pa.string())
    parts = [pc.binary_join_element_wise('<row r="', numbers, '">', "")]
    for index, column in enumerate(table.columns):
        refs = pc.binary_join_element_wise(column_letters(index), numbers, "")
        parts.append(_cells(column.combine_chunks(), refs))
    parts.append(pa.array(["</row>"] * table.num_rows, pa.string()))
    rows = pc.binary_join_element_wise(*parts, "")
    if isinstance(rows, pa.ChunkedArray):
        rows = rows.combine_chunks()
    rows = rows.cast(pa.string())
    if rows.offset:
        rows = pa.concat_arrays([rows])  # a copy starting at 0, so its buffers are the rows alone
    offsets = np.frombuffer(rows.buffers()[1], dtype=np.int32, count=len(rows) + 1)
    return memoryview(rows.buffers()[2])[: int(offsets[-1])] if len(rows) else memoryview(b"")


class Workbook:
    """An .xlsx file written sheet after sheet; only the sheet being written is open."""

    def __init__(self, path: Path, *, compresslevel: int = DEFLATE_LEVEL) -> None:
        self.path = path
        self._zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=compresslevel)
        self.sheet_names: list[str] = []
        self._part: IO[bytes] | None = None
        self._part_bytes = 0
        self._rows = 0
        self._table_name = ""
        self._header: pa.Table | None = None
        self._max_rows = SHEET_DATA_ROWS

    def _open_sheet(self, name: str) -> None:
        self._close_sheet()
        self.sheet_names.append(name)
        self._part = self._zip.open(f"xl/worksheets/sheet{len(self.sheet_names)}.xml", "w")
        self._part.write(_SHEET_OPEN)
        self._part_bytes = len(_SHEET_OPEN) + len(_SHEET_CLOSE)
        self._rows = 0

    def _close_sheet(self) -> None:
        if self._part is not None:
            self._part.write(_SHEET_CLOSE)
            self._part.close()
            self._part = None

    def _write_rows(self, table: pa.Table) -> None:
        assert self._part is not None
        xml = _rows_xml(table, self._rows + 1)
        self._part.write(xml)
        self._part_bytes += len(xml)
        self._rows += table.num_rows

    def start_table(self, name: str, header: Sequence[str], *, max_rows: int = SHEET_DATA_ROWS) -> None:
        """Begin a sheet of rows under ``header``; rows past ``max_rows`` go on to "name (2)"..."""
        self._table_name = name
        self._header = pa.table({str(i): pa.array([title], pa.string()) for i, title in enumerate(header)})
        self._max_rows = max_rows
        self._open_sheet(name)
        self._write_rows(self._header)
        self._rows = 0

    def _next_table_sheet(self) -> None:
        assert self._header is not None
        self._open_sheet(f"{self._table_name} ({len(self.sheet_names) + 1})")
        self._write_rows(self._header)
        self._rows = 0

    def append(self, table: pa.Table) -> None:
        """Add rows to the table begun last, starting a new sheet where one is full."""
        while table.num_rows:
            if self._rows >= self._max_rows:
                self._next_table_sheet()
            room = self._max_rows - self._rows
            head, table = table.slice(0, room), table.slice(room)
            xml = _rows_xml(head, self._rows + 2)  # +1 for the header, +1 as rows count from 1
            if self._part_bytes + len(xml) > PART_MAX_BYTES and self._rows:
                self._next_table_sheet()
                xml = _rows_xml(head, 2)
            assert self._part is not None
            self._part.write(xml)
            self._part_bytes += len(xml)
            self._rows += head.num_rows

    def add_sheet(self, name: str, rows: Sequence[Sequence[Any]]) -> None:
        """A small sheet of ready values (text, numbers), written at once."""
        self._open_sheet(name)
        width = max((len(row) for row in rows), default=0)
        columns = {str(i): pa.array([row[i] if i < len(row) else None for row in rows]) for i in range(width)}
        if rows:
            self._write_rows(pa.table(columns))

    def close(self) -> None:
        self._close_sheet()
        count = len(self.sheet_names)
        sheets = "".join(f"<sheet name={quoteattr(name)} sheetId=\"{i}\" r:id=\"rId{i}\"/>"
                         for i, name in enumerate(self.sheet_names, start=1))
        parts = {
            "[Content_Types].xml": _content_types(count),
            "_rels/.rels": f'{_HEAD}<Relationships xmlns="{_PKG_REL_NS}"><Relationship Id="rId1" '
                           f'Type="{_REL_NS}/officeDocument" Target="xl/workbook.xml"/></Relationships>',
            "xl/workbook.xml": f'{_HEAD}<workbook xmlns="{_MAIN_NS}" xmlns:r="{_REL_NS}"><sheets>{sheets}'
                               "</sheets></workbook>",
            "xl/_rels/workbook.xml.rels": _workbook_rels(count),
            "xl/styles.xml": _STYLES,
        }
        for name, text in parts.items():
            self._zip.writestr(name, text)
        self._zip.close()


def _content_types(sheets: int) -> str:
    sheet_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
    overrides = "".join(f'<Override PartName="/xl/worksheets/sheet{i}.xml" ContentType="{sheet_type}"/>'
                        for i in range(1, sheets + 1))
    return (
        f'{_HEAD}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/styles.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
        f"{overrides}</Types>"
    )


def _workbook_rels(sheets: int) -> str:
    links = "".join(f'<Relationship Id="rId{i}" Type="{_REL_NS}/worksheet" Target="worksheets/sheet{i}.xml"/>'
                    for i in range(1, sheets + 1))
    styles = f'<Relationship Id="rId{sheets + 1}" Type="{_REL_NS}/styles" Target="styles.xml"/>'
    return f'{_HEAD}<Relationships xmlns="{_PKG_REL_NS}">{links}{styles}</Relationships>'

