"""Alternate numbers (``alternate_numbers: next_on_failure``) end to end against the sandbox."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import RedisServer
from invariants import assert_dial_invariants
from pipeline import FAST, invites_by_number, run_to_end, sandbox, settings_for, workers

from dialer import control, reports
from dialer.config import parse_config
from dialer.ingest import ingest_file
from dialer.store import Store

#: A HubSpot export: the office line first, the mobile second.
CSV = (
    "Record ID,First Name,Last Name,Email,Phone Number,Mobile Phone Number\r\n"
    "101,Ada,Lovelace,ada@example.com,202-555-0170,202-555-0171\r\n"      # first number does not exist
    "102,Alan,Turing,alan@example.com,202-555-0172,(312) 555-0173\r\n"    # always busy; a Chicago mobile
    "103,Grace,Hopper,grace@example.com,202-555-0174,202-555-0175\r\n"    # declined, then does not exist
    "104,Edsger,Dijkstra,ed@example.com,202-555-0176,202-555-0177\r\n"    # answers on the first number
    "105,Barbara,Liskov,bl@example.com,202-555-0178,202-555-0179\r\n"     # does not exist, then listed
)
#: Put on the do-not-call list after the ingest: the gate at dial time must stop it.
LISTED_LATE = "+12025550179"
SCENARIO = {
    "ring_s": 0.05, "talk_s": 0.1, "default": ["answer"],
    "numbers": {"+12025550170": ["not_found"], "+12025550172": ["busy"], "+12025550174": ["decline"],
                "+12025550175": ["not_found"], "+12025550178": ["not_found"]},
}
SECOND_NUMBERS = {"+12025550171", "+13125550173", "+12025550175", "+12025550177", "+12025550179"}
#: A caller-ID pool with a number in each of the contacts' area codes.
LOCAL_PRESENCE = {"caller_id": ["+12025550199", "+13125550199"], "caller_id_strategy": "local_presence"}


def run(redis_url: str, tmp_path: Path, **config: Any) -> tuple[Store, str, list[dict[str, Any]]]:
    store = Store.from_url(redis_url)
    path = tmp_path / "hubspot.csv"
    path.write_text(CSV)
    campaign = parse_config({"name": "alternates", **FAST, "max_attempts": 2, **LOCAL_PRESENCE, **config})
    with sandbox(redis_url, tmp_path, SCENARIO) as box, workers(redis_url, box, tmp_path):
        cid = ingest_file(store, path, campaign, max_bytes=2**20).campaign_id
        store.dnc_add([LISTED_LATE])
        run_to_end(store, settings_for(redis_url, box), cid)
        calls = box.calls()
    assert_dial_invariants(calls, store, cid)
    return store, cid, calls


def report(store: Store, cid: str, tmp_path: Path, *, attempts: bool) -> pd.DataFrame:
    path = tmp_path / f"report-{attempts}.csv"
    reports.export(store, cid, reports.Format.CSV, path, attempts=attempts)
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def outcomes(store: Store, cid: str) -> dict[str, tuple[str, int]]:
    return {contact["variables"]["First Name"]: (status["outcome"], status["attempts"])
            for contact, status in ((store.get_contact_json(cid, i), store.contact_status(cid, i))
                                    for i in store.contact_ids(cid)) if contact and status}


#: The module's own database on the suite's redis-server (the per-test one, 0, is flushed by each test).
ALTERNATES_DB = 14


@pytest.fixture(scope="module")
def alternates(redis_server: RedisServer,
               tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, str, list[Any], Path]:
    url = f"redis://127.0.0.1:{redis_server.port}/{ALTERNATES_DB}"
    Store.from_url(url).redis.flushdb()
    tmp = tmp_path_factory.mktemp("alternates")
    store, cid, calls = run(url, tmp, alternate_numbers="next_on_failure")
    return store, cid, calls, tmp


def test_a_contact_whose_first_number_fails_is_answered_on_its_second(alternates: Any) -> None:
    store, cid, calls, _ = alternates
    assert outcomes(store, cid) == {
        "Ada": ("answered", 2),  # invalid, then answered on the mobile
        "Alan": ("answered", 3),  # busy through max_attempts (2), then answered on the mobile
        "Grace": ("declined", 2),  # declined, then invalid: the better of the two
        "Edsger": ("answered", 1),
        "Barbara": ("opted_out", 1),  # invalid, then its mobile found on the DNC list at dial time
    }
    assert invites_by_number(calls) == {
        "+12025550170": 1, "+12025550171": 1, "+12025550172": 2, "+13125550173": 1,
        "+12025550174": 1, "+12025550175": 1, "+12025550176": 1, "+12025550178": 1,
    }


def test_the_caller_id_is_chosen_for_the_number_being_dialed(alternates: Any) -> None:
    _, _, calls, _ = alternates
    shown = {(call["number"], call["from_number"]) for call in calls if call["number"] in ("+12025550172",
                                                                                            "+13125550173")}
    assert shown == {("+12025550172", "+12025550199"), ("+13125550173", "+13125550199")}


def test_each_attempt_row_says_which_number_it_dialed(alternates: Any) -> None:
    store, cid, _, tmp = alternates
    frame = report(store, cid, tmp, attempts=True)
    alan = frame[frame["First Name"] == "Alan"]
    assert list(zip(alan.attempt, alan.number_index, alan.phone_used, alan.result, strict=True)) == [
        ("1", "1", "+12025550172", "busy"), ("2", "1", "+12025550172", "busy"),
        ("3", "2", "+13125550173", "answered"),
    ]


def test_the_contact_report_says_which_number_reached_the_contact(alternates: Any) -> None:
    store, cid, _, tmp = alternates
    frame = report(store, cid, tmp, attempts=False).set_index("First Name")
    after_outcome = list(frame.columns[list(frame.columns).index("outcome"):][:3])
    assert after_outcome == ["outcome", "number_index", "phone_used"]
    assert frame.loc["Ada", "phone_used"] == "+12025550171"
    assert frame.loc["Ada", "number_index"] == "2"
    assert frame.loc["Ada", "phones"].lstrip("'") == "+12025550170 +12025550171"
    assert frame.loc["Ada", "phone_e164"] == "+12025550170"
    assert frame.loc["Edsger", "phone_used"] == "+12025550176"


def test_the_contact_detail_lists_the_numbers_and_each_attempt_its_number(alternates: Any) -> None:
    store, cid, _, _ = alternates
    ada = control.contact(store, cid, 2)
    assert ada["phones"] == ["+12025550170", "+12025550171"]
    assert [(a["number_index"], a["number"]) for a in ada["attempts"]] == [(0, "+12025550170"), (1, "+12025550171")]


def test_without_alternate_numbers_the_second_number_is_never_dialed(redis_url: str, tmp_path: Path) -> None:
    store, cid, calls = run(redis_url, tmp_path)
    assert not SECOND_NUMBERS & {call["number"] for call in calls}
    assert outcomes(store, cid) == {
        "Ada": ("invalid_number", 1), "Alan": ("busy", 2), "Grace": ("declined", 1), "Edsger": ("answered", 1),
        "Barbara": ("invalid_number", 1),
    }
