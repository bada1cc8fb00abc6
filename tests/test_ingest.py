"""Campaign CSV ingest against a real Redis."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dialer import csvfile
from dialer import store as store_module
from dialer.config import CampaignConfig, parse_config
from dialer.errors import ConfigError, IngestError
from dialer.ingest import ingest_file
from dialer.models import CampaignState, Contact, ContactNumber
from dialer.store import Keys, Store

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "campaigns" / "example.csv"
MAX_BYTES = 10 * 2**20


def config(**fields: object) -> CampaignConfig:
    return parse_config({"name": "Test", **fields})


def ingest(store: Store, path: Path, cfg: CampaignConfig | None = None, **kwargs: object):  # type: ignore[no-untyped-def]
    return ingest_file(store, path, cfg or config(), max_bytes=MAX_BYTES, **kwargs)  # type: ignore[arg-type]


def write(tmp_path: Path, text: str, name: str = "contacts.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def campaign_keys(store: Store) -> list[bytes]:
    return [key for key in store.redis.keys("dialer:campaign*")]


def test_example_campaign_buckets(store: Store) -> None:
    summary = ingest(store, EXAMPLE)
    assert summary.counts() == {"rows": 20, "accepted": 18, "rejected": 1, "duplicates": 1, "suppressed": 0}
    assert summary.reject_reasons == Counter({"invalid_number": 1})
    record = store.get_campaign(summary.campaign_id)
    assert record.state is CampaignState.DRAFT
    assert store.contact_count(summary.campaign_id) == 18
    assert store.due_count(summary.campaign_id) == 18


def test_contacts_keep_their_row_number_number_zone_and_variables(store: Store) -> None:
    summary = ingest(store, EXAMPLE)
    contact = store.get_contact_json(summary.campaign_id, 2)
    assert contact is not None
    assert contact["phone_e164"] == "+12025550100"
    assert contact["phone_raw"] == "(202) 555-0100"
    assert contact["time_zones"] == ["America/New_York"]
    assert contact["variables"] == {
        "mobile": "", "first_name": "Ada", "last_name": "Lovelace", "appointment": "2026-12-01 09:30",
        "clinic": "Downtown",
    }
    assert "numbers" not in contact  # one number: stored as before


def test_example_contacts_with_a_mobile_list_both_numbers_phone_first(store: Store) -> None:
    summary = ingest(store, EXAMPLE)
    assert summary.phone_columns == ["phone", "mobile"]
    alan = store.get_contact_json(summary.campaign_id, 3)
    assert alan is not None
    assert (alan["phone_e164"], alan["extension"]) == ("+12025550101", "204")
    assert [(n["e164"], n.get("extension", "")) for n in alan["numbers"]] == [
        ("+12025550101", "204"), ("+12025550120", "")]
    london_id = store.contact_id_for(summary.campaign_id, "+442079460002")
    london = store.get_contact_json(summary.campaign_id, london_id or 0)
    assert london is not None and london["time_zones"] == ["Europe/London"]


def test_skipped_rows_are_kept_with_row_number_and_reason(store: Store) -> None:
    summary = ingest(store, EXAMPLE)
    skipped = list(store.iter_skipped_rows(summary.campaign_id))
    by_bucket = {entry["bucket"]: entry for entry in skipped}
    assert by_bucket["duplicate"]["row"] == 20
    assert by_bucket["rejected"]["row"] == 21
    assert by_bucket["rejected"]["reason"] == "invalid_number"
    assert by_bucket["rejected"]["values"]["phone"] == "12345"


def test_dnc_numbers_are_suppressed(store: Store) -> None:
    store.dnc_add(["+12025550102"])
    summary = ingest(store, EXAMPLE)
    assert summary.suppressed == 1
    assert summary.accepted == 17
    assert store.contact_id_for(summary.campaign_id, "+12025550102") is None


def test_a_listed_number_of_a_contact_with_two_drops_only_that_number(store: Store) -> None:
    store.dnc_add(["+12025550101"])  # Alan's phone (x204); his mobile is not listed
    summary = ingest(store, EXAMPLE)
    assert (summary.suppressed, summary.accepted, summary.numbers_dropped["dnc"]) == (0, 18, 1)
    contact = store.get_contact_json(summary.campaign_id, 3)
    assert contact is not None and (contact["phone_e164"], contact.get("extension")) == ("+12025550120", None)


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_delimiters_are_detected(store: Store, tmp_path: Path, delimiter: str) -> None:
    text = delimiter.join(["name", "phone"]) + "\n" + delimiter.join(["Ann", "202-555-0143"]) + "\n"
    summary = ingest(store, write(tmp_path, text))
    assert summary.accepted == 1


def test_bom_quotes_and_embedded_newlines(store: Store, tmp_path: Path) -> None:
    text = '\ufeffPhone,note\n"202 555 0144","line one\nline two, with comma"\n202-555-0145,"say ""hi"""\n'
    summary = ingest(store, write(tmp_path, text))
    assert summary.accepted == 2
    contact = store.get_contact_json(summary.campaign_id, 2)
    assert contact is not None and contact["variables"]["note"] == "line one\nline two, with comma"
    assert (store.get_contact_json(summary.campaign_id, 3) or {})["variables"]["note"] == 'say "hi"'


def test_legacy_cp1252_export_is_read(store: Store, tmp_path: Path) -> None:
    summary = ingest(store, write(tmp_path, "phone;name\n2025550146;Zoë Müller €\n", encoding="cp1252"))
    assert summary.encoding == "cp1252"
    assert (store.get_contact_json(summary.campaign_id, 2) or {})["variables"]["name"] == "Zoë Müller €"


def test_phone_column_found_by_common_names(store: Store, tmp_path: Path) -> None:
    summary = ingest(store, write(tmp_path, "Name, Mobile Number \nAnn,202-555-0147\n"))
    assert summary.phone_column == "Mobile Number"
    assert summary.accepted == 1


def test_phone_column_option(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "who,contact\nAnn,202-555-0148\n")
    with pytest.raises(IngestError, match="no phone column"):
        ingest(store, path)
    assert ingest(store, path, phone_column="CONTACT").accepted == 1


def test_spreadsheet_mangles_are_rejected_not_guessed(store: Store, tmp_path: Path) -> None:
    text = "phone\n4.4207946E+11\n'2025550149\n"
    summary = ingest(store, write(tmp_path, text))
    assert summary.reject_reasons == Counter({"scientific_notation": 1})
    assert summary.accepted == 1


def test_row_with_too_many_fields_is_rejected(store: Store, tmp_path: Path) -> None:
    summary = ingest(store, write(tmp_path, "phone,name\n202-555-0150,Ann,extra\n202-555-0151,Bob\n"))
    assert summary.reject_reasons == Counter({"too_many_fields": 1})
    assert summary.accepted == 1


def test_short_row_gets_empty_variables(store: Store, tmp_path: Path) -> None:
    summary = ingest(store, write(tmp_path, "phone,name,city\n202-555-0152\n"))
    assert summary.accepted == 1
    assert (store.get_contact_json(summary.campaign_id, 2) or {})["variables"] == {"name": "", "city": ""}


def test_timezone_column_wins_over_the_number(store: Store, tmp_path: Path) -> None:
    text = "phone,timezone\n202-555-0153,America/Chicago\n202-555-0154,Nowhere/Else\n"
    summary = ingest(store, write(tmp_path, text))
    assert (store.get_contact_json(summary.campaign_id, 2) or {})["time_zones"] == ["America/Chicago"]
    assert (store.get_contact_json(summary.campaign_id, 3) or {})["time_zones"] == ["America/New_York"]


def test_toll_free_number_needs_a_timezone(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "phone\n+1 800 555 0100\n")
    summary = ingest(store, path)
    assert summary.reject_reasons == Counter({"no_common_window": 1})
    skipped = next(store.iter_skipped_rows(summary.campaign_id))
    assert "timezone column" in skipped["detail"]
    summary = ingest(store, path, config(default_timezone="America/Denver"))
    assert summary.accepted == 1
    assert (store.get_contact_json(summary.campaign_id, 2) or {})["time_zones"] == ["America/Denver"]


def test_templates_must_name_existing_columns(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "phone,name\n202-555-0155,Ann\n")
    with pytest.raises(ConfigError, match=r"\{first_name\}"):
        ingest(store, path, config(greeting="Hi {first_name}"))
    assert campaign_keys(store) == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"phone,name\n", "no data rows"),
        (b"name,city\nAnn,Paris\n", "no phone column"),
        (b"\x00\x01\x02binary\x00stuff", "binary"),
        (b"PK\x03\x04rest-of-a-zip", "xlsx"),
    ],
)
def test_bad_files_fail_before_anything_is_stored(
    store: Store, tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(IngestError, match=message):
        ingest(store, path)
    assert campaign_keys(store) == []
    assert store.list_campaigns() == []


def test_missing_and_oversized_files_are_refused(store: Store, tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="not found"):
        ingest(store, tmp_path / "nope.csv")
    with pytest.raises(IngestError, match="over the"):
        ingest_file(store, EXAMPLE, config(), max_bytes=100)
    assert campaign_keys(store) == []


def test_failure_mid_ingest_leaves_no_campaign(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(csvfile, "CHUNK_ROWS", 5)
    path = write(tmp_path, "phone\n" + "".join(f"202-555-{100 + i:04d}\n" for i in range(30)))
    chunks = []

    def explode_on_second_chunk(rows: int) -> None:
        chunks.append(rows)
        if len(chunks) == 2:
            raise RuntimeError("worker died")

    with pytest.raises(RuntimeError):
        ingest(store, path, progress=explode_on_second_chunk)
    assert campaign_keys(store) == []
    assert store.redis.zcard(Keys.ingesting) == 0


def test_chunks_are_read_in_bounded_pieces(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csvfile, "CHUNK_ROWS", 7)
    path = write(tmp_path, "phone\n" + "".join(f"202-555-{100 + i:04d}\n" for i in range(50)) + "202-555-0100\n")
    sizes: list[int] = []
    summary = ingest(store, path, progress=sizes.append)
    assert max(sizes) == 7
    assert summary.counts() == {"rows": 51, "accepted": 50, "rejected": 0, "duplicates": 1, "suppressed": 0}


def _two_column_file(tmp_path: Path) -> Path:
    """30 rows: unique phones, an invalid one every 7th row, every 5th a mobile that is an earlier row's phone."""
    lines = ["phone,mobile"]
    for i in range(30):
        phone = "n/a" if i % 7 == 6 else f"202-555-{100 + i:04d}"
        mobile = f"202-555-{100 + i - 3:04d}" if i % 5 == 4 else ""
        lines.append(f"{phone},{mobile}")
    return write(tmp_path, "\n".join(lines) + "\n")


@pytest.mark.parametrize(("method", "failing_call"), [
    ("store_contacts", 4), ("replace_contacts", 2), ("add_skipped_rows", 2)])
def test_a_redis_error_in_the_background_write_stops_the_ingest_as_before(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str, failing_call: int
) -> None:
    """The writes run on a writer thread; a failing one raises its own error to the caller, the writes
    behind it are not run, and the campaign is discarded as when the writes ran inline."""
    monkeypatch.setattr(csvfile, "CHUNK_ROWS", 4)
    monkeypatch.setattr(store_module, "WRITE_BATCH", 2)
    path = _two_column_file(tmp_path)
    real = getattr(store, method)
    calls: list[int] = []
    error = redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    def flaky(*args: object) -> object:
        calls.append(1)
        if len(calls) == failing_call:
            raise error
        return real(*args)

    monkeypatch.setattr(store, method, flaky)
    reported: list[int] = []
    with pytest.raises(redis.exceptions.ConnectionError) as raised:
        ingest(store, path, progress=reported.append)
    assert raised.value is error
    assert len(calls) == failing_call  # nothing written after the failure
    assert sum(reported) < 30
    assert campaign_keys(store) == []
    assert store.redis.zcard(Keys.ingesting) == 0


def test_duplicates_across_chunk_and_write_boundaries_follow_file_order(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(csvfile, "CHUNK_ROWS", 4)
    monkeypatch.setattr(store_module, "WRITE_BATCH", 2)
    reference = ingest(store, _two_column_file(tmp_path))  # written a batch of 2 rows at a time
    monkeypatch.setattr(csvfile, "CHUNK_ROWS", 3)
    monkeypatch.setattr(store_module, "WRITE_BATCH", 1)
    lines = ["phone"] + [f"202-555-{100 + i:04d}" for i in range(8)] + [
        "202-555-0101",  # row 10: row 3's, two chunks before
        "202-555-0108",  # row 11: new
        "202-555-0108",  # row 12: row 11's, in the same chunk
        "202-555-0107",  # row 13: row 9's, the chunk before
    ]
    summary = ingest(store, write(tmp_path, "\n".join(lines) + "\n", name="dups.csv"))
    assert summary.counts() == {"rows": 12, "accepted": 9, "rejected": 0, "duplicates": 3, "suppressed": 0}
    skipped = list(store.iter_skipped_rows(summary.campaign_id))
    assert [(entry["row"], entry["bucket"]) for entry in skipped] == [
        (10, "duplicate"), (12, "duplicate"), (13, "duplicate")]
    assert store.contact_id_for(summary.campaign_id, "+12025550101") == 3
    assert store.contact_id_for(summary.campaign_id, "+12025550107") == 9
    assert store.contact_id_for(summary.campaign_id, "+12025550108") == 11
    assert store.contact_ids(summary.campaign_id) == [*range(2, 10), 11]

    # Two numbers a contact: a mobile that is an earlier row's phone is dropped from its contact.
    assert reference.counts() == {"rows": 30, "accepted": 26, "rejected": 4, "duplicates": 0, "suppressed": 0}
    assert reference.numbers_dropped == Counter({"duplicate": 5})  # row 11's mobile was row 8's "n/a"
    row_6 = store.get_contact_json(reference.campaign_id, 6)  # mobile 202-555-0101 is row 3's phone
    assert row_6 is not None and row_6["phone_e164"] == "+12025550104" and "numbers" not in row_6
    assert row_6["dropped"] == [{"raw": "202-555-0101", "reason": "duplicate",
                                 "detail": "+12025550101 appears earlier in the file"}]
    skipped = list(store.iter_skipped_rows(reference.campaign_id))
    assert [entry["row"] for entry in skipped] == [8, 15, 22, 29]


HOSTILE = st.one_of(
    st.text(max_size=30),
    st.from_regex(r"\+?[0-9 ()\-.]{0,20}", fullmatch=True),
    st.sampled_from(["=cmd|' /C calc'!A0", "+1 202 555 0100", "4.4207946E+11", "'2025550100", "\x00", '"', "\r\n"]),
    st.integers(min_value=0, max_value=10**16).map(str),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(HOSTILE, HOSTILE), min_size=1, max_size=25))
def test_every_row_lands_in_exactly_one_bucket(
    store: Store, tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[str, str]]
) -> None:
    import csv

    path = tmp_path_factory.mktemp("hyp") / "rows.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["phone", "note"])
        writer.writerows(rows)
    try:
        summary = ingest(store, path)
    except IngestError:
        return  # a file-level refusal (e.g. all rows blank) stores nothing
    counts = summary.counts()
    assert counts["accepted"] + counts["rejected"] + counts["duplicates"] + counts["suppressed"] == counts["rows"]
    assert sum(summary.reject_reasons.values()) == counts["rejected"]
    assert store.contact_count(summary.campaign_id) == counts["accepted"]
    skipped = list(store.iter_skipped_rows(summary.campaign_id))
    assert len(skipped) == counts["rejected"] + counts["duplicates"] + counts["suppressed"]


@settings(max_examples=60, deadline=None)
@given(raw=st.text(max_size=20), extension=st.sampled_from(["", "12"]),
       zones=st.lists(st.sampled_from(["America/New_York", "Europe/London", "Asia/Tokyo"]), max_size=3),
       variables=st.dictionaries(st.text(max_size=8), st.text(max_size=12), max_size=4))
def test_one_number_json_is_the_json_of_the_contact_object(
    raw: str, extension: str, zones: list[str], variables: dict[str, str]
) -> None:
    number = ContactNumber("+12025550100", extension, "fixed_line_or_mobile", raw)
    contact = Contact.with_numbers(7, [number], phone_raw=raw + " ::: ", time_zones=tuple(zones),
                                   variables=variables, dropped=[])
    direct = Contact.one_number_json(7, "+12025550100", "fixed_line_or_mobile", extension, phone_raw=raw + " ::: ",
                                     time_zones=tuple(zones), variables=variables)
    assert direct == contact.to_json()


def test_rows_of_one_number_are_stored_as_their_contact_objects_would_be(store: Store, tmp_path: Path) -> None:
    # Rows of one number take a short path that builds their json without Contact objects.
    text = ('phone,name,note,timezone\n'
            '(617) 555-0106 x12,Zoë,"O\'Neil, ""Jr""",\n'
            '+44 20 7946 0958,,=cmd,Europe/London\n'
            '202-555-0100 ::: ,Ann,,\n'
            '1-800-555-0199,Bob,,America/Chicago\n'
            '+1 202 555 0101;ext=7,\u00e9\u6f22,\t,Mars/Base\n')
    summary = ingest(store, write(tmp_path, text))
    assert summary.accepted == 5
    for raw in store.redis.hvals(Keys.contacts(summary.campaign_id)):
        assert raw == Contact.from_json_dict(orjson.loads(raw)).to_json().encode()
    assert (store.get_contact_json(summary.campaign_id, 4) or {})["phone_raw"] == "202-555-0100 ::: "


def test_a_write_of_more_numbers_than_one_lua_slice_keeps_file_order(store: Store) -> None:
    # ingest_chunk.lua calls Redis in slices of 4,000 values; three numbers a row for 2,000 rows
    # take two HMGET slices and three HSET slices of the numbers hash.
    rows = [(row, f"+1202555{row:04d},+1303555{row:04d},+1404555{row:04d}", f'{{"id": {row}}}')
            for row in range(2, 2001)] + [(2001, "+13035550002", '{"id": 2001}')]
    letters = store.store_contacts("slices", rows)
    assert letters == ["AAA"] * 1999 + ["D"]
    assert store.store_contacts("slices", [(2002, "+14045552000,+15055550000", '{"id": 2002}')]) == ["DA"]
    assert store.contact_count("slices") == 2000
    assert store.contact_id_for("slices", "+14045552000") == 2000
    assert store.contact_id_for("slices", "+15055550000") == 2002
