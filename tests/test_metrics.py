"""`dialer metrics serve`: Prometheus metrics of a real campaign, scraped over HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

from conftest import ROOT, cli_env, free_port, wait_for
from invariants import assert_dial_invariants
from pipeline import create_campaign, run_to_end, sandbox, settings_for, workers
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from dialer.store import Store


def scrape(url: str) -> list[Sample]:
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def value(samples: list[Sample], name: str, **labels: str) -> float:
    found = [s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert found, f"no {name} {labels}"
    return sum(found)


def test_a_finished_campaign_is_visible_in_the_metrics(redis_url: str, tmp_path: Path) -> None:
    store = Store.from_url(redis_url)
    scenario = {"ring_s": 0.05, "talk_s": 0.1, "numbers": {"+12025550101": ["busy", "answer"]},
                "default": ["answer"]}
    with sandbox(redis_url, tmp_path, scenario) as box, workers(redis_url, box, tmp_path):
        cid = create_campaign(store, tmp_path, ["202-555-0100", "202-555-0101", "not a number"])
        run_to_end(store, settings_for(redis_url, box), cid)
        assert_dial_invariants(box.calls(), store, cid)
        invites = len(box.calls())
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "dialer", "metrics", "serve", "--port", str(port)],
                                  cwd=ROOT, env=cli_env(redis_url), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}/metrics"
            samples = wait_for(lambda: _try_scrape(url), timeout_s=20, what="the metrics server")
        finally:
            server.terminate()
            server.wait(timeout=10)
    assert value(samples, "dialer_campaign_outcomes_total", campaign=cid, outcome="answered") == 2
    assert value(samples, "dialer_campaign_contacts", campaign=cid, state="final") == 2
    assert value(samples, "dialer_attempts_total", campaign=cid, result="busy", sip_code="486") == 1
    assert value(samples, "dialer_attempts_total", campaign=cid, result="answered", sip_code="") == 2
    assert value(samples, "dialer_ingest_rows", campaign=cid, kind="rejected") == 1
    assert value(samples, "dialer_dial_latency_seconds_count") == invites
    assert value(samples, "dialer_heartbeat_age_seconds", role="worker") >= 0


def _try_scrape(url: str) -> list[Sample] | None:
    try:
        return scrape(url)
    except OSError:
        return None


def test_json_logs_carry_the_call_id_and_never_a_whole_phone_number(redis_url: str, tmp_path: Path) -> None:
    store = Store.from_url(redis_url)
    with sandbox(redis_url, tmp_path, {"ring_s": 0.05, "talk_s": 0.1, "default": ["answer"]}) as box, \
            workers(redis_url, box, tmp_path, DIALER_LOG_FORMAT="json") as [worker]:
        cid = create_campaign(store, tmp_path, ["202-555-0100"])
        run_to_end(store, settings_for(redis_url, box), cid)
        log = worker.log
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    [invite] = [record for record in records if record["message"].startswith("INVITE ")]
    assert invite["call_id"] == f"{cid}:2:1"
    assert invite["message"] == "INVITE +1202*****00 (try 1)"
    assert {"ts", "level", "logger"} <= set(invite)
    assert "+12025550100" not in log
