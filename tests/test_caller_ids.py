"""A caller-ID pool: numbers taken in turn, or one local to the callee; visible per attempt."""

from __future__ import annotations

import csv
from pathlib import Path

from invariants import assert_dial_invariants
from pipeline import create_campaign, run_to_end, sandbox, settings_for, workers

from dialer.callerid import area, choose
from dialer.config import parse_config
from dialer.reports import Format, export
from dialer.store import Store
from dialer.summary import summarise

DC, CHICAGO, LONDON = "+12025550190", "+13125550190", "+442079460190"


def test_round_robin_takes_the_pool_in_turn(store: Store) -> None:
    config = parse_config({"name": "pool", "caller_id": [DC, CHICAGO, LONDON]})
    assert [choose(store, "c1", config, "+12025550100") for _ in range(4)] == [DC, CHICAGO, LONDON, DC]


def test_local_presence_shows_a_number_from_the_callees_area_when_the_pool_has_one(store: Store) -> None:
    config = parse_config({"name": "pool", "caller_id": [DC, CHICAGO], "caller_id_strategy": "local_presence"})
    assert area("+13125550111") == (1, "312")
    assert {choose(store, "c1", config, "+13125550111") for _ in range(3)} == {CHICAGO}
    assert [choose(store, "c2", config, "+442079460000") for _ in range(2)] == [DC, CHICAGO]  # none local


def test_a_pool_needs_valid_numbers() -> None:
    config = parse_config({"name": "one", "caller_id": [DC]})
    assert config.caller_id == DC and config.caller_ids == (DC,)


def test_each_attempt_shows_its_caller_id_in_the_call_the_report_and_the_summary(
    redis_url: str, tmp_path: Path
) -> None:
    store = Store.from_url(redis_url)
    scenario = {"ring_s": 0.05, "talk_s": 0.05, "numbers": {"+12025550103": ["unwanted"]}, "default": ["answer"]}
    numbers = ["202-555-0100", "202-555-0101", "202-555-0102", "202-555-0103"]
    with sandbox(redis_url, tmp_path, scenario) as box, workers(redis_url, box, tmp_path):
        cid = create_campaign(store, tmp_path, numbers, caller_id=[DC, CHICAGO], max_concurrent_calls=1)
        run_to_end(store, settings_for(redis_url, box), cid)
        calls = sorted(box.calls(), key=lambda call: call["started_at"])
    assert_dial_invariants(calls, store, cid)
    shown = {call["number"]: call["from_number"] for call in calls}
    assert [call["from_number"] for call in calls] == [DC, CHICAGO, DC, CHICAGO]
    path = tmp_path / "report.csv"
    export(store, cid, Format.CSV, path)
    rows = list(csv.DictReader(path.open()))
    assert {row["phone_e164"]: row["caller_id"] for row in rows} == shown
    per_caller = summarise(store, cid)["caller_ids"]
    assert per_caller[DC] == {"attempts": 2, "answered": 2, "answer_rate": 1.0, "spam_flagged": 0}
    assert per_caller[CHICAGO]["spam_flagged"] == 1  # 607 Unwanted: this number looks burnt
