"""The `dialer` command as a user runs it: a real subprocess against a real Redis."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from conftest import ROOT, run_cli

from dialer.store import Store

EXAMPLE_CSV = str(ROOT / "campaigns" / "example.csv")
EXAMPLE_YAML = str(ROOT / "campaigns" / "example.yaml")


def create(redis_url: str, *extra: str) -> dict:  # type: ignore[type-arg]
    result = run_cli(redis_url, "campaign", "create", EXAMPLE_CSV, "--config", EXAMPLE_YAML, "--json", *extra)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_create_json_has_the_documented_keys(redis_url: str) -> None:
    data = create(redis_url, "--name", "CLI test")
    assert data["rows"] == 20
    assert (data["accepted"], data["rejected"], data["duplicates"], data["suppressed"]) == (18, 1, 1, 0)
    assert data["reject_reasons"] == {"invalid_number": 1}
    assert len(data["campaign_id"]) == 12


def test_list_and_show(redis_url: str) -> None:
    created = create(redis_url, "--name", "Listed")
    listed = json.loads(run_cli(redis_url, "campaign", "list", "--json").stdout)
    assert [(c["campaign_id"], c["name"], c["state"]) for c in listed] == [(created["campaign_id"], "Listed", "draft")]
    shown = json.loads(run_cli(redis_url, "campaign", "show", created["campaign_id"], "--json").stdout)
    assert shown["config"]["calling_window"]["start"] == "09:00"
    assert shown["accepted"] == 18
    human = run_cli(redis_url, "campaign", "show", created["campaign_id"])
    assert "Listed" in human.stdout and "draft" in human.stdout


def test_rejects_file_has_row_numbers_and_reasons(redis_url: str, tmp_path: Path) -> None:
    created = create(redis_url)
    out = tmp_path / "rejects.csv"
    result = run_cli(redis_url, "campaign", "rejects", created["campaign_id"], "-o", str(out))
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(out.open()))
    assert [(r["row"], r["reason"], r["phone"]) for r in rows] == [("21", "invalid_number", "12345")]
    run_cli(redis_url, "campaign", "rejects", created["campaign_id"], "-o", str(out), "--all")
    assert {r["bucket"] for r in csv.DictReader(out.open())} == {"rejected", "duplicate"}


def test_user_mistakes_get_a_message_not_a_traceback(redis_url: str, tmp_path: Path) -> None:
    bad_config = tmp_path / "bad.yaml"
    bad_config.write_text("name: x\nmax_attempts: zero\n")
    cases = [
        ("campaign", "create", str(tmp_path / "missing.csv"), "--config", EXAMPLE_YAML),
        ("campaign", "create", EXAMPLE_CSV, "--config", str(bad_config)),
        ("campaign", "show", "doesnotexist"),
    ]
    for args in cases:
        result = run_cli(redis_url, *args)
        assert result.returncode != 0
        assert "Traceback" not in result.stderr
        assert "error:" in result.stderr
    result = run_cli(redis_url, "campaign", "create", EXAMPLE_CSV, "--config", str(bad_config))
    assert "max_attempts" in result.stderr


def test_an_error_is_one_line_whatever_the_width(redis_url: str) -> None:
    result = run_cli(redis_url, "campaign", "show", "doesnotexist", COLUMNS="40")
    assert result.returncode == 3
    assert result.stderr.strip() == "error: no campaign with id 'doesnotexist' (see `dialer campaign list`)"


def test_bad_config_stops_before_anything_is_stored(redis_url: str, tmp_path: Path) -> None:
    bad_config = tmp_path / "bad.yaml"
    bad_config.write_text("name: x\ncalling_window: {start: '9am'}\n")
    result = run_cli(redis_url, "campaign", "create", EXAMPLE_CSV, "--config", str(bad_config))
    assert result.returncode == 2
    assert "calling_window.start" in result.stderr
    assert Store.from_url(redis_url).list_campaigns() == []


def test_unreachable_redis_is_explained(tmp_path: Path) -> None:
    result = run_cli("redis://127.0.0.1:1/0", "campaign", "list")
    assert result.returncode != 0
    assert "cannot reach Redis" in result.stderr
    assert "Traceback" not in result.stderr


def test_dnc_add_check_remove_and_import(redis_url: str, tmp_path: Path) -> None:
    assert run_cli(redis_url, "dnc", "add", "(202) 555-0120", "+44 20 7946 0500").returncode == 0
    check = run_cli(redis_url, "dnc", "check", "202.555.0120", "--json")
    assert (check.returncode, json.loads(check.stdout)) == (0, {"number": "+12025550120", "listed": True})
    assert run_cli(redis_url, "dnc", "check", "202-555-0121").returncode == 1
    numbers = tmp_path / "dnc.csv"
    numbers.write_text("phone\n202-555-0122\nnot a number\n")
    imported = json.loads(run_cli(redis_url, "dnc", "import", str(numbers), "--json").stdout)
    assert (imported["added"], len(imported["invalid"])) == (1, 1)
    assert run_cli(redis_url, "dnc", "remove", "+12025550120").returncode == 0
    listed = json.loads(run_cli(redis_url, "dnc", "list", "--json").stdout)
    assert listed == ["+12025550122", "+442079460500"]


def test_dnc_suppresses_at_ingest(redis_url: str) -> None:
    run_cli(redis_url, "dnc", "add", "202-555-0102")
    assert create(redis_url)["suppressed"] == 1


def test_rejects_file_neutralises_spreadsheet_formulas(redis_url: str, tmp_path: Path) -> None:
    contacts = tmp_path / "c.csv"
    contacts.write_text('phone,name\n=cmd|calc,"=HYPERLINK(""x"")"\n202-555-0100,Ann\n')
    config = tmp_path / "c.yaml"
    config.write_text("name: Plain\n")
    created = json.loads(run_cli(redis_url, "campaign", "create", str(contacts), "--config", str(config),
                                 "--json").stdout)
    out = tmp_path / "rejects.csv"
    run_cli(redis_url, "campaign", "rejects", created["campaign_id"], "-o", str(out))
    [row] = list(csv.DictReader(out.open()))
    assert (row["phone"], row["name"]) == ("'=cmd|calc", "'=HYPERLINK(\"x\")")


def test_phone_column_given_twice_reads_both_columns_first_one_first(redis_url: str, tmp_path: Path) -> None:
    contacts = tmp_path / "hubspot.csv"
    contacts.write_text("Record ID,First Name,Phone Number,Mobile Phone Number,Fax\r\n"
                        "1,Ada,202-555-0130,202-555-0131,202-555-0132\r\n"
                        "2,Alan,,202-555-0133,\r\n")
    config = tmp_path / "c.yaml"
    config.write_text("name: Two columns\n")
    created = json.loads(run_cli(redis_url, "campaign", "create", str(contacts), "--config", str(config), "--json",
                                 "--phone-column", "mobile phone number", "--phone-column", "Phone Number").stdout)
    assert created["phone_columns"] == ["Mobile Phone Number", "Phone Number"]
    assert created["accepted"] == 2
    contact = Store.from_url(redis_url).get_contact_json(created["campaign_id"], 2)
    assert contact is not None
    assert [number["e164"] for number in contact["numbers"]] == ["+12025550131", "+12025550130"]
    shown = run_cli(redis_url, "campaign", "show", created["campaign_id"])
    assert "Mobile Phone Number, Phone Number" in " ".join(shown.stdout.split())
