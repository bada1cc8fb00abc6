"""The streaming XLSX writer: cell types, escaping, and sheets that split where Excel stops."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from openpyxl import load_workbook

from dialer import xlsx


def write(path: Path, table: pa.Table, *, max_rows: int = xlsx.SHEET_DATA_ROWS) -> list[list[tuple[str, object]]]:
    book = xlsx.Workbook(path)
    book.start_table("contacts", table.column_names, max_rows=max_rows)
    book.append(table)
    book.close()
    sheet = load_workbook(path)["contacts"]
    return [[(cell.data_type, cell.value) for cell in row] for row in sheet.iter_rows(min_row=2)]


def test_cells_keep_their_types_and_nulls_stay_empty(tmp_path: Path) -> None:
    table = pa.table({"text": ["a", None], "count": pa.array([486, None], pa.int32()), "talk_s": [1.5, float("nan")],
                      "counted": [True, False]})
    rows = write(tmp_path / "r.xlsx", table)
    assert rows[0] == [("s", "a"), ("n", 486), ("n", 1.5), ("b", True)]
    assert [value for _, value in rows[1]] == [None, None, None, False]


def test_text_is_never_a_formula_and_markup_survives(tmp_path: Path) -> None:
    rows = write(tmp_path / "r.xlsx", pa.table({"text": ["=1+1", "<b>&amp;</b>", "é 漢 ☎", "  padded  "]}))
    assert [row[0] for row in rows] == [("s", "=1+1"), ("s", "<b>&amp;</b>"), ("s", "é 漢 ☎"), ("s", "  padded  ")]


def test_control_characters_are_written_as_excel_escapes(tmp_path: Path) -> None:
    rows = write(tmp_path / "r.xlsx", pa.table({"text": ["bell\x07", "cr\r", "_x0041_"]}))
    assert [row[0][1] for row in rows] == ["bell_x0007_", "cr_x000D_", "_x005F_x0041_"]


def test_text_longer_than_an_excel_cell_is_cut_at_the_limit(tmp_path: Path) -> None:
    rows = write(tmp_path / "r.xlsx", pa.table({"text": ["x" * (xlsx.CELL_MAX_CHARS + 10)]}))
    assert rows[0][0][1] == "x" * xlsx.CELL_MAX_CHARS


def test_a_full_sheet_continues_on_a_numbered_sheet_with_the_header(tmp_path: Path) -> None:
    path = tmp_path / "r.xlsx"
    write(path, pa.table({"id": list(range(7))}), max_rows=3)
    book = load_workbook(path)
    assert book.sheetnames == ["contacts", "contacts (2)", "contacts (3)"]
    assert [[cell.value for cell in row] for row in book["contacts (3)"].iter_rows()] == [["id"], [6]]


def test_a_sheet_near_the_zip_part_limit_continues_on_the_next(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(xlsx, "PART_MAX_BYTES", 400)
    book = xlsx.Workbook(tmp_path / "r.xlsx")
    book.start_table("contacts", ["text"])
    for _ in range(3):
        book.append(pa.table({"text": ["y" * 100]}))
    book.close()
    assert book.sheet_names == ["contacts", "contacts (2)", "contacts (3)"]


@pytest.mark.parametrize(("index", "letters"), [(0, "A"), (25, "Z"), (26, "AA"), (701, "ZZ"), (702, "AAA")])
def test_column_letters(index: int, letters: str) -> None:
    assert xlsx.column_letters(index) == letters
