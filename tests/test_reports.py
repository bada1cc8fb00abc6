"""Outcome reports, exported from a campaign really run on the sandbox."""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import redis
from conftest import ROOT, RedisServer, run_cli, wait_for
from openpyxl import load_workbook
from pipeline import create_campaign, run_to_end, sandbox, settings_for, workers
from test_pipeline import EXPECTED

from dialer import report_arrow, reports
from dialer.errors import DialerError
from dialer.reports import Format
from dialer.store import Store
from dialer.summary import summarise

#: A database of the suite's Redis of its own, so per-test flushes leave this campaign alone.
REPORT_DB = 15
HOSTILE = ["=HYPERLINK(\"http://x\",\"y\")", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\tindent", "=1+1"]


@pytest.fixture(scope="module")
def finished(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(redis url, campaign id) of the example campaign run to the end, with hostile notes."""
    url = f"redis://127.0.0.1:{redis_server.port}/{REPORT_DB}"
    redis.Redis.from_url(url).flushdb()
    tmp = tmp_path_factory.mktemp("report")
    with (ROOT / "campaigns" / "example.csv").open(newline="") as handle:
        source = list(csv.reader(handle))
    with (tmp / "hostile.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*source[0], "note"])
        writer.writerows([*row, HOSTILE[i % len(HOSTILE)]] for i, row in enumerate(source[1:]))
    store = Store.from_url(url)
    with sandbox(url, tmp) as box, workers(url, box, tmp):
        cid = create_campaign(store, tmp, str(tmp / "hostile.csv"), capture_fields={"best_time": "when to call"})
        status = run_to_end(store, settings_for(url, box), cid, timeout_s=90)
    assert status["state"] == "completed"
    yield url, cid


def export(finished: tuple[str, str], tmp_path: Path, fmt: Format, **kwargs: Any) -> Path:
    url, cid = finished
    path = tmp_path / f"report.{fmt.value}"
    reports.export(Store.from_url(url), cid, fmt, path, **kwargs)
    return path


def read(path: Path, fmt: Format) -> pd.DataFrame:
    if fmt is Format.CSV:
        return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    if fmt is Format.XLSX:
        return pd.read_excel(path, sheet_name=0, dtype=str, keep_default_na=False)
    if fmt is Format.PARQUET:
        return pq.read_table(path).to_pandas(integer_object_nulls=True)
    return pd.DataFrame(json.loads(path.read_text())["rows"], dtype=object)


def test_one_row_per_accepted_contact_matching_the_store(finished: tuple[str, str], tmp_path: Path) -> None:
    frame = read(export(finished, tmp_path, Format.CSV), Format.CSV)
    assert len(frame) == 18
    got = {row.phone_e164: (row.outcome, int(row.attempts)) for row in frame.itertuples()}
    assert got == {number: (outcome, attempts) for number, (outcome, attempts, _) in EXPECTED.items()}
    busy = frame[frame.phone_e164 == "+12025550104"].iloc[0]
    assert (busy.last_sip_status, busy.last_sip_reason) == ("486", "Busy Here")
    answered = frame[frame.phone_e164 == "+12025550100"].iloc[0]
    assert answered.disposition == "completed"
    assert answered.answered_at.endswith("+00:00") and "T" in answered.answered_at
    assert float(answered.talk_s) > 0
    assert answered.transcript.startswith("agent:")
    source_columns = ["contact_id", "phone", "mobile", "first_name", "last_name", "appointment", "clinic", "note"]
    assert list(frame.columns[:8]) == source_columns
    assert "captured_best_time" in frame.columns


@pytest.mark.parametrize("fmt", [Format.XLSX, Format.PARQUET, Format.JSON])
def test_every_format_rereads_to_the_same_values(finished: tuple[str, str], tmp_path: Path, fmt: Format) -> None:
    keys = ["contact_id", "phone_e164", "outcome", "attempts", "last_sip_status", "disposition", "first_name"]
    baseline = read(export(finished, tmp_path, Format.CSV), Format.CSV)[keys]
    other = read(export(finished, tmp_path, fmt), fmt)[keys]
    normalised = other.astype(object).where(other.notna(), "").astype(str)
    assert normalised.to_dict("records") == baseline.astype(str).to_dict("records")


def test_json_and_parquet_keep_the_full_transcript(finished: tuple[str, str], tmp_path: Path) -> None:
    rows = json.loads(export(finished, tmp_path, Format.JSON).read_text())["rows"]
    transcript = next(row["transcript"] for row in rows if row["phone_e164"] == "+12025550100")
    assert isinstance(transcript, list) and transcript[0]["role"] == "agent"
    table = pq.read_table(export(finished, tmp_path, Format.PARQUET))
    assert table.schema.metadata[b"dialer.report_timezone"] == b"UTC"
    assert str(table.schema.field("answered_at").type) == "timestamp[us, tz=UTC]"


def test_hostile_cells_are_neutralised_but_numbers_stay_text(finished: tuple[str, str], tmp_path: Path) -> None:
    with export(finished, tmp_path, Format.CSV).open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    notes = {row["note"] for row in rows}
    assert notes == {"'" + value for value in HOSTILE}
    assert {row["phone_e164"] for row in rows} >= {"+12025550100", "+442079460000"}
    book = load_workbook(export(finished, tmp_path, Format.XLSX))
    cells = [cell for row in book["contacts"].iter_rows() for cell in row]
    assert not [cell.coordinate for cell in cells if cell.data_type == "f"]
    values = {cell.value for cell in cells}
    assert "+12025550100" in values
    assert not values & set(HOSTILE)


def test_attempts_export_has_one_row_per_attempt(finished: tuple[str, str], tmp_path: Path) -> None:
    frame = read(export(finished, tmp_path, Format.CSV, attempts=True), Format.CSV)
    url, cid = finished
    assert len(frame) == Store.from_url(url).attempt_count(cid)
    per_number = Counter(frame.phone_e164)
    assert per_number["+12025550104"] == 3
    assert set(frame[frame.phone_e164 == "+12025550104"].sip_status) == {"486"}


def test_report_times_follow_the_requested_zone(finished: tuple[str, str], tmp_path: Path) -> None:
    frame = read(export(finished, tmp_path, Format.CSV, timezone="Asia/Kolkata"), Format.CSV)
    assert all(value.endswith("+05:30") for value in frame.first_attempt_at if value)


def test_summary_counts_equal_the_exports(finished: tuple[str, str], tmp_path: Path) -> None:
    url, cid = finished
    frame = read(export(finished, tmp_path, Format.CSV), Format.CSV)
    summary = summarise(Store.from_url(url), cid)
    assert {k: v for k, v in summary["outcomes"].items() if v} == dict(Counter(frame.outcome))
    assert summary["contacts"] == len(frame)
    assert summary["attempts"] == sum(int(d) for d in frame.dials)
    assert summary["dialed"] == 18
    assert summary["answered"] == 10  # 9 answered + 1 opted out
    assert summary["answer_rate"] == round(10 / 18, 4)
    assert sum(summary["calls_by_local_hour"]) == summary["attempts"]
    assert summary["talk_s"]["calls"] == 10


def test_cli_summary_json_and_chart(finished: tuple[str, str], tmp_path: Path) -> None:
    url, cid = finished
    chart = tmp_path / "chart.png"
    result = run_cli(url, "report", "summary", cid, "--json", "--chart", str(chart))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["outcomes"]["busy"] == 1
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_export_errors_are_clear(finished: tuple[str, str], tmp_path: Path) -> None:
    url, cid = finished
    missing = run_cli(url, "report", "export", "nope", "-o", str(tmp_path / "r.csv"))
    assert missing.returncode == 3 and "no campaign" in missing.stderr
    bad_format = run_cli(url, "report", "export", cid, "--format", "docx")
    assert bad_format.returncode == 2 and "docx" in bad_format.stderr
    unwritable = run_cli(url, "report", "export", cid, "-o", str(tmp_path / "no" / "such" / "r.csv"))
    assert unwritable.returncode == 2 and "cannot write" in unwritable.stderr
    for result in (missing, bad_format, unwritable):
        assert "Traceback" not in result.stderr
    ok = run_cli(url, "report", "export", cid, "-o", str(tmp_path / "r.xlsx"))
    assert ok.returncode == 0 and (tmp_path / "r.xlsx").exists()


@pytest.mark.parametrize("value", ["=1", "+1+1", "-1", "@A1", "\tx", "\rx"])
def test_every_formula_start_is_neutralised(value: str) -> None:
    assert reports.safe_cell(value) == "'" + value
    table = reports.neutralise(pa.table({"cell": [value, "plain", "+12025550100", None]}))
    assert table.column("cell").to_pylist() == ["'" + value, "plain", "+12025550100", None]


def test_export_while_the_campaign_runs_is_a_consistent_snapshot(redis_url: str, tmp_path: Path) -> None:
    store = Store.from_url(redis_url)
    scenario = {"ring_s": 0.1, "talk_s": 1.5, "default": ["answer"]}
    with sandbox(redis_url, tmp_path, scenario) as box, workers(redis_url, box, tmp_path):
        cid = create_campaign(store, tmp_path, [f"202-555-{n:04d}" for n in range(100, 112)],
                              max_concurrent_calls=2, calls_per_second=5)
        from dialer import control

        control.start(store, settings_for(redis_url, box), cid)
        wait_for(lambda: control.status(store, cid)["final"] >= 2, timeout_s=30)
        path = tmp_path / "live.csv"
        reports.export(store, cid, Format.CSV, path)
        summary = summarise(store, cid)
        control.cancel(store, settings_for(redis_url, box), cid)
    frame = read(path, Format.CSV)
    assert len(frame) == 12
    outcomes = Counter(frame.outcome)
    assert outcomes["answered"] >= 2
    assert outcomes["pending"] + outcomes["in_flight"] >= 1
    assert summary["contacts"] == 12


@pytest.mark.parametrize("fmt", [Format.CSV, Format.PARQUET])
def test_parallel_export_equals_the_serial_one(
    finished: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: Format
) -> None:
    serial_dir = tmp_path / "serial"
    serial_dir.mkdir()
    serial = read(export(finished, serial_dir, fmt, processes=1), fmt)
    monkeypatch.setattr(reports, "BATCH", 4)
    monkeypatch.setattr(reports, "PARALLEL_MIN_CONTACTS", 0)
    parallel_path = tmp_path / f"parallel.{fmt.value}"
    url, cid = finished
    rows = reports.export(Store.from_url(url), cid, fmt, parallel_path, processes=2)
    parallel = read(parallel_path, fmt)
    assert rows == len(parallel) == 18
    assert parallel.drop(columns=["transcript"]).astype(str).to_dict("records") == \
        serial.drop(columns=["transcript"]).astype(str).to_dict("records")
    assert not list(tmp_path.glob("dialer-report-*"))  # the part files are gone


def test_a_parallel_parquet_export_reads_back_as_the_same_table_as_a_serial_one(
    finished: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serial_dir = tmp_path / "serial"
    serial_dir.mkdir()
    serial = pq.read_table(export(finished, serial_dir, Format.PARQUET, processes=1))
    monkeypatch.setattr(reports, "BATCH", 4)  # the helper's share arrives in several Arrow batches
    monkeypatch.setattr(reports, "PARALLEL_MIN_CONTACTS", 0)
    parallel = pq.read_table(export(finished, tmp_path, Format.PARQUET, processes=2))
    assert parallel.num_rows == 18
    assert parallel.equals(serial, check_metadata=True)  # transcripts, types and the zone metadata too


def _helpers_write_every_batch_but_the_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reports, "BATCH", 4)
    monkeypatch.setattr(reports, "PARALLEL_MIN_CONTACTS", 0)
    monkeypatch.setattr(reports, "AHEAD_BATCHES", 0)  # this process takes batch 0 and waits for the rest
    monkeypatch.setattr(reports, "HELPER_POLL_S", 0.05)


def test_a_parallel_export_fails_with_the_error_of_a_helper_that_failed(
    finished: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _helpers_write_every_batch_but_the_first(monkeypatch)

    def full(self: Any, columns: Any) -> None:
        raise OSError("No space left on device")

    monkeypatch.setattr(reports._ArrowPartWriter, "write", full)
    with pytest.raises(DialerError, match="failed in a helper process: OSError: No space left on device"):
        export(finished, tmp_path, Format.PARQUET, processes=2)
    assert not list(tmp_path.glob("dialer-report-*"))


def test_a_parallel_export_fails_when_a_helper_dies(
    finished: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _helpers_write_every_batch_but_the_first(monkeypatch)
    monkeypatch.setattr(reports._ArrowPartWriter, "write", lambda self, columns: os._exit(9))  # as if killed
    with pytest.raises(DialerError, match="it died"):
        export(finished, tmp_path, Format.PARQUET, processes=2)


def test_attempts_stopped_before_the_invite_are_marked_and_left_out_of_the_hours(
    redis_url: str, tmp_path: Path
) -> None:
    store = Store.from_url(redis_url)
    with sandbox(redis_url, tmp_path) as box, workers(redis_url, box, tmp_path):
        cid = create_campaign(store, tmp_path, ["202-555-0100", "202-555-0101"], max_concurrent_calls=1)
        store.dnc_add(["+12025550101"])  # added after ingest: the gate stops it at dial time
        run_to_end(store, settings_for(redis_url, box), cid)
    with store.snapshot(cid, ("attempts",)) as snapshot:
        attempts = dict(snapshot.iter_attempts())
    assert attempts["3:1"]["invite_sent"] is False
    assert "invite_sent" not in attempts["2:1"]
    summary = summarise(store, cid)
    assert summary["outcomes"]["opted_out"] == 1
    assert sum(summary["calls_by_local_hour"]) == 1


def test_xlsx_rows_past_a_sheet_continue_on_numbered_sheets_with_the_header(
    finished: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    baseline = read(export(finished, tmp_path, Format.CSV), Format.CSV)
    monkeypatch.setattr(reports, "XLSX_SHEET_ROWS", 5)
    monkeypatch.setattr(reports, "BATCH", 4)  # batches that straddle the sheet boundaries
    path = export(finished, tmp_path, Format.XLSX)
    sheets = pd.read_excel(path, sheet_name=None, dtype=str, keep_default_na=False)
    assert list(sheets) == ["contacts", "contacts (2)", "contacts (3)", "contacts (4)", "about"]
    assert [len(sheets[name]) for name in list(sheets)[:4]] == [5, 5, 5, 3]
    joined = pd.concat([sheets[name] for name in list(sheets)[:4]], ignore_index=True)
    keys = ["contact_id", "phone_e164", "outcome", "attempts", "last_sip_status", "first_name", "transcript"]
    assert joined[keys].to_dict("records") == baseline[keys].astype(str).to_dict("records")


def test_xlsx_report_of_one_full_sheet_has_no_empty_second_sheet(
    finished: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reports, "XLSX_SHEET_ROWS", 18)
    sheets = pd.read_excel(export(finished, tmp_path, Format.XLSX), sheet_name=None, dtype=str)
    assert list(sheets) == ["contacts", "about"]
    assert len(sheets["contacts"]) == 18


@pytest.mark.parametrize("full_transcript", [False, True])
def test_batches_decoded_by_arrow_equal_the_python_ones(finished: tuple[str, str], full_transcript: bool) -> None:
    url, cid = finished
    store = Store.from_url(url)
    spec = reports.ReportSpec(store.get_campaign(cid), "UTC", attempts=False, full_transcript=full_transcript)
    with store.snapshot(cid, ("status", "results")) as snapshot:
        tables = {arrow: [reports._arrow(spec, columns, text_times=not full_transcript)
                          for columns in reports.iter_contact_batches(store, snapshot, spec, arrow=arrow)]
                  for arrow in (False, True)}
    assert tables[True] == tables[False]
    assert sum(table.num_rows for table in tables[True]) == 18


def test_a_batch_whose_records_do_not_fit_the_arrow_schema_is_built_the_python_way(
    finished: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = export(finished, tmp_path, Format.CSV).read_bytes()
    strict = pa.schema([(f.name, pa.int64()) if f.name == "outcome" else f for f in report_arrow.STATUS_SCHEMA])
    monkeypatch.setattr(report_arrow, "STATUS_SCHEMA", strict)  # "answered" is no int64
    assert export(finished, tmp_path, Format.CSV).read_bytes() == expected
