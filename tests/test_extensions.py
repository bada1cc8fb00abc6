"""Numbers with extensions: accepted, deduplicated per extension, dialed with DTMF after the answer."""

from __future__ import annotations

from pathlib import Path

import pytest
from invariants import assert_dial_invariants
from pipeline import outcomes_by_number, run_to_end, sandbox, settings_for, workers

from dialer.config import parse_config
from dialer.ingest import ingest_file
from dialer.store import Store

#: As a CRM export writes them (quoted, with the extension in the phone cell).
CSV = '''Name,Phone
"Ada Lovelace","(202) 555-0106 x12"
"Alan Turing","+1 202 555 0106;ext=34"
"Grace Hopper","202-555-0106 ext. 12"
"Flowers Inc","1-800-FLOWERS"
"Edsger Dijkstra","202-555-0107,,5"
"Barbara Liskov","202-555-0108"
'''


def ingest(store: Store, tmp_path: Path, **config: object) -> str:
    path = tmp_path / "crm.csv"
    path.write_text(CSV)
    window = {"start": "00:00", "end": "24:00", "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}
    summary = ingest_file(store, path, parse_config({"name": "crm", "calling_window": window, **config}),
                          max_bytes=2**20)
    return summary.campaign_id


def test_an_extension_is_kept_and_two_extensions_of_one_line_are_two_people(store: Store, tmp_path: Path) -> None:
    cid = ingest(store, tmp_path)
    record = store.get_campaign(cid)
    assert (record.counts["accepted"], record.counts["duplicates"], record.counts["rejected"]) == (4, 1, 1)
    contacts = {c["variables"]["Name"]: c for c in store.contacts(cid, store.contact_ids(cid)) if c}
    assert (contacts["Ada Lovelace"]["phone_e164"], contacts["Ada Lovelace"]["extension"]) == ("+12025550106", "12")
    assert contacts["Alan Turing"]["extension"] == "34"
    assert contacts["Edsger Dijkstra"]["extension"] == "5"
    assert "extension" not in contacts["Barbara Liskov"]
    skipped = {row["values"]["Name"]: row["reason"] for row in store.iter_skipped_rows(cid)}
    assert skipped == {"Grace Hopper": "duplicate", "Flowers Inc": "not_a_number"}  # vanity letters stay out


def test_the_extension_is_dialed_as_dtmf_after_the_answer(redis_url: str, tmp_path: Path) -> None:
    store = Store.from_url(redis_url)
    with sandbox(redis_url, tmp_path, {"ring_s": 0.05, "talk_s": 0.1, "default": ["answer"]}) as box, \
            workers(redis_url, box, tmp_path):
        cid = ingest(store, tmp_path, extension_pause_s=1.0, retry_delay_s={"busy": 1})
        run_to_end(store, settings_for(redis_url, box), cid)
        calls = box.calls()
    # Two extensions of one line are two people: that line is called once for each.
    assert_dial_invariants(calls, store, cid, redial_after_answer=["+12025550106"])
    dtmf = sorted(call["dtmf"] for call in calls)
    assert dtmf == ["", "ww12", "ww34", "ww5"]
    played = [call for call in calls if call["dtmf"]]
    assert all(call["dtmf_played_at"] - call["answered_at"] == pytest.approx(1.0) for call in played)
    assert {outcome for outcome, _ in outcomes_by_number(store, cid).values()} == {"answered"}
