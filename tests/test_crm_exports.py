"""Contact exports straight from CRMs: their phone headers, several numbers per contact."""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path

import pytest

from dialer import control, csvfile
from dialer.config import CampaignConfig, parse_config
from dialer.errors import IngestError
from dialer.ingest import IngestSummary, ingest_file
from dialer.store import Store

MAX_BYTES = 10 * 2**20

#: The header row of a Google Contacts CSV export ("Google CSV").
GOOGLE_HEADER = [
    "Name", "Given Name", "Additional Name", "Family Name", "Yomi Name", "Given Name Yomi",
    "Additional Name Yomi", "Family Name Yomi", "Name Prefix", "Name Suffix", "Initials", "Nickname",
    "Short Name", "Maiden Name", "Birthday", "Gender", "Location", "Billing Information",
    "Directory Server", "Mileage", "Occupation", "Hobby", "Sensitivity", "Priority", "Subject", "Notes",
    "Language", "Photo", "Group Membership", "E-mail 1 - Type", "E-mail 1 - Value",
    "Phone 1 - Type", "Phone 1 - Value", "Phone 2 - Type", "Phone 2 - Value",
]
HUBSPOT_HEADER = ["Record ID", "First Name", "Last Name", "Email", "Phone Number", "Mobile Phone Number",
                  "Company Name", "Lifecycle Stage", "Create Date"]
SALESFORCE_HEADER = ["First Name", "Last Name", "Title", "Account Name", "Phone", "Mobile", "Email", "Mailing City"]


def export(tmp_path: Path, name: str, header: list[str], rows: list[dict[str, str]],
           quoting: int = csv.QUOTE_MINIMAL) -> Path:
    """Write a CSV the way the CRM does: its header, its quoting, CRLF line ends."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, quoting=quoting, lineterminator="\r\n", restval="")
    writer.writeheader()
    writer.writerows(rows)
    path = tmp_path / name
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


def google(name: str, phone1: str, phone2: str = "") -> dict[str, str]:
    given, _, family = name.partition(" ")
    return {"Name": name, "Given Name": given, "Family Name": family, "Group Membership": "* myContacts",
            "E-mail 1 - Type": "* Home", "E-mail 1 - Value": f"{given.lower()}@example.com",
            "Phone 1 - Type": "Mobile", "Phone 1 - Value": phone1,
            "Phone 2 - Type": "Work" if phone2 else "", "Phone 2 - Value": phone2}


def hubspot(record: int, first: str, phone: str, mobile: str) -> dict[str, str]:
    return {"Record ID": str(record), "First Name": first, "Last Name": "Example",
            "Email": f"{first.lower()}@example.com", "Phone Number": phone, "Mobile Phone Number": mobile,
            "Company Name": "Acme, Inc.", "Lifecycle Stage": "lead", "Create Date": "2026-11-02 10:14"}


def config(**fields: object) -> CampaignConfig:
    return parse_config({"name": "CRM", **fields})


def ingest(store: Store, path: Path, cfg: CampaignConfig | None = None, **kwargs: object) -> IngestSummary:
    return ingest_file(store, path, cfg or config(), max_bytes=MAX_BYTES, **kwargs)  # type: ignore[arg-type]


def numbers(store: Store, cid: str, row: int) -> list[str]:
    contact = store.get_contact_json(cid, row)
    assert contact is not None
    listed = contact.get("numbers") or [{"e164": contact["phone_e164"], "extension": contact.get("extension", "")}]
    return [n["e164"] + (f"x{n['extension']}" if n.get("extension") else "") for n in listed]


@pytest.mark.parametrize(("header", "phone"), [
    ("Phone 1 - Value", True), ("phone 1 value", True), ("PHONE_2_VALUE", True), ("Phone 1 - Type", False),
    ("Phone Number", True), ("Mobile Phone Number", True), ("Phone", True), ("Mobile", True),
    ("Home Phone", True), ("Business Phone 2", True), ("Phone - Work", True), ("Fax", False),
    ("E-mail 1 - Value", False), ("Record ID", False), ("Lifecycle Stage", False),
])
def test_phone_headers_of_crm_exports_are_recognised(header: str, phone: bool) -> None:
    assert csvfile.is_phone_header(header) is phone


def test_google_contacts_export_gives_each_contact_its_numbers_in_order(store: Store, tmp_path: Path) -> None:
    path = export(tmp_path, "contacts.csv", GOOGLE_HEADER, [
        google("Ada Lovelace", "+1 202-555-0110 ::: (202) 555-0111", "202-555-0112"),
        google("Alan Turing", "", "202-555-0113"),
        google("Grace Hopper", "12345 ::: 202-555-0114"),
        google("Edsger Dijkstra", "n/a"),
    ])
    summary = ingest(store, path)
    assert summary.phone_columns == ["Phone 1 - Value", "Phone 2 - Value"]
    assert summary.counts() == {"rows": 4, "accepted": 3, "rejected": 1, "duplicates": 0, "suppressed": 0}
    cid = summary.campaign_id
    assert numbers(store, cid, 2) == ["+12025550110", "+12025550111", "+12025550112"]
    assert numbers(store, cid, 3) == ["+12025550113"]
    assert numbers(store, cid, 4) == ["+12025550114"]
    assert summary.reject_reasons == Counter({"missing_phone": 1})
    assert summary.numbers_dropped == Counter({"invalid_number": 1})


def test_a_number_left_out_of_a_contact_is_kept_with_its_reason(store: Store, tmp_path: Path) -> None:
    path = export(tmp_path, "contacts.csv", GOOGLE_HEADER, [google("Grace Hopper", "12345 ::: 202-555-0114")])
    contact = store.get_contact_json(ingest(store, path).campaign_id, 2)
    assert contact is not None
    assert contact["phone_e164"] == "+12025550114"
    assert [(d["raw"], d["reason"]) for d in contact["dropped"]] == [("12345", "invalid_number")]


def test_a_row_whose_numbers_are_all_invalid_is_rejected_with_every_reason(store: Store, tmp_path: Path) -> None:
    path = export(tmp_path, "contacts.csv", GOOGLE_HEADER, [google("Nobody", "12345 ::: 4.4207946E+11")])
    summary = ingest(store, path)
    assert summary.rejected == 1
    (entry,) = store.iter_skipped_rows(summary.campaign_id)
    assert (entry["row"], entry["reason"]) == (2, "invalid_number")
    assert "12345" in entry["detail"] and "4.4207946E+11" in entry["detail"]


def test_hubspot_row_with_only_a_mobile_number_is_accepted(store: Store, tmp_path: Path) -> None:
    path = export(tmp_path, "hubspot-crm-exports-all-contacts.csv", HUBSPOT_HEADER, [
        hubspot(51, "Ada", "", "(202) 555-0120"),
        hubspot(52, "Alan", "+1 202 555 0121", "202.555.0122"),
    ])
    summary = ingest(store, path)
    assert summary.phone_columns == ["Phone Number", "Mobile Phone Number"]
    assert (summary.accepted, summary.rejected) == (2, 0)
    assert numbers(store, summary.campaign_id, 2) == ["+12025550120"]
    assert numbers(store, summary.campaign_id, 3) == ["+12025550121", "+12025550122"]


def test_salesforce_export_all_quoted_keeps_the_extension_of_its_number(store: Store, tmp_path: Path) -> None:
    path = export(tmp_path, "report1700000000000.csv", SALESFORCE_HEADER, [
        {"First Name": "Frances", "Last Name": "Allen", "Title": "VP, Research", "Account Name": "IBM",
         "Phone": "(617) 555-0106 x12", "Mobile": "(617) 555-0107", "Email": "fa@example.com",
         "Mailing City": "Boston"},
    ], quoting=csv.QUOTE_ALL)
    assert path.read_text().startswith('"First Name","Last Name","Title"')
    summary = ingest(store, path)
    assert summary.accepted == 1
    assert numbers(store, summary.campaign_id, 2) == ["+16175550106x12", "+16175550107"]
    contact = store.get_contact_json(summary.campaign_id, 2)
    assert contact is not None and contact["variables"]["Mobile"] == "(617) 555-0107"


def test_phone_columns_of_the_config_choose_and_order_the_numbers(store: Store, tmp_path: Path) -> None:
    path = export(tmp_path, "hubspot.csv", HUBSPOT_HEADER, [hubspot(1, "Ada", "202-555-0130", "202-555-0131")])
    summary = ingest(store, path, config(phone_columns=["mobile phone number", "Phone Number"]))
    assert summary.phone_columns == ["Mobile Phone Number", "Phone Number"]
    assert numbers(store, summary.campaign_id, 2) == ["+12025550131", "+12025550130"]


def test_phone_column_argument_wins_over_the_config(store: Store, tmp_path: Path) -> None:
    path = export(tmp_path, "hubspot.csv", HUBSPOT_HEADER, [hubspot(1, "Ada", "202-555-0130", "202-555-0131")])
    summary = ingest(store, path, config(phone_columns=["Phone Number"]), phone_column=["Mobile Phone Number"])
    assert numbers(store, summary.campaign_id, 2) == ["+12025550131"]


def test_a_phone_column_that_is_not_there_is_named_in_the_error(store: Store, tmp_path: Path) -> None:
    path = export(tmp_path, "hubspot.csv", HUBSPOT_HEADER, [hubspot(1, "Ada", "202-555-0130", "")])
    with pytest.raises(IngestError, match="no phone column named 'Work Phone'"):
        ingest(store, path, phone_column=["Phone Number", "Work Phone"])


def test_a_number_on_the_dnc_list_is_dropped_not_the_contact(store: Store, tmp_path: Path) -> None:
    store.dnc_add(["+12025550140", "+12025550142"])
    path = export(tmp_path, "hubspot.csv", HUBSPOT_HEADER, [
        hubspot(1, "Ada", "202-555-0140", "202-555-0141"),
        hubspot(2, "Alan", "202-555-0142", ""),
    ])
    summary = ingest(store, path)
    assert (summary.accepted, summary.suppressed) == (1, 1)
    assert numbers(store, summary.campaign_id, 2) == ["+12025550141"]
    assert summary.numbers_dropped == Counter({"dnc": 1})
    contact = store.get_contact_json(summary.campaign_id, 2)
    assert contact is not None and contact["dropped"][0]["reason"] == "dnc"


def test_a_number_an_earlier_contact_has_is_dropped_and_the_contact_kept(store: Store, tmp_path: Path) -> None:
    path = export(tmp_path, "hubspot.csv", HUBSPOT_HEADER, [
        hubspot(1, "Ada", "202-555-0150", ""),
        hubspot(2, "Alan", "(202) 555-0150", "202-555-0151"),
        hubspot(3, "Grace", "+12025550151", "202.555.0150"),
    ])
    summary = ingest(store, path)
    assert summary.counts() == {"rows": 3, "accepted": 2, "rejected": 0, "duplicates": 1, "suppressed": 0}
    assert numbers(store, summary.campaign_id, 3) == ["+12025550151"]
    assert summary.numbers_dropped == Counter({"duplicate": 1})
    assert store.contact_id_for(summary.campaign_id, "+12025550151") == 3
    (entry,) = store.iter_skipped_rows(summary.campaign_id)
    assert (entry["row"], entry["bucket"]) == (4, "duplicate")


def test_a_number_whose_zone_cannot_share_the_window_is_dropped(store: Store, tmp_path: Path) -> None:
    path = export(tmp_path, "hubspot.csv", HUBSPOT_HEADER, [hubspot(1, "Ada", "202-555-0160", "+61 2 5550 4321")])
    summary = ingest(store, path)
    contact = store.get_contact_json(summary.campaign_id, 2)
    assert contact is not None
    assert (contact["phone_e164"], contact["time_zones"]) == ("+12025550160", ["America/New_York"])
    assert summary.numbers_dropped == Counter({"no_common_window": 1})


def test_a_crm_export_imported_as_dnc_list_gives_every_number(tmp_path: Path) -> None:
    path = export(tmp_path, "contacts.csv", GOOGLE_HEADER, [
        google("Ada Lovelace", "+1 202-555-0110 ::: (202) 555-0111", "202-555-0112"),
        google("Alan Turing", "", "202-555-0113"),
    ])
    assert sorted(control.read_number_file(path, MAX_BYTES)) == [
        "(202) 555-0111", "+1 202-555-0110", "202-555-0112", "202-555-0113"]
