"""Heartbeats and `dialer doctor`: a campaign that cannot move says why."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_cli, wait_for
from pipeline import TRUNK, create_campaign, sandbox, workers

from dialer import control, doctor
from dialer.models import CampaignState
from dialer.settings import Settings
from dialer.store import Keys, Store


def running(store: Store, tmp_path: Path) -> str:
    """A running campaign that stays running: its one callee rings for a long time."""
    cid = create_campaign(store, tmp_path, ["202-555-0100"], ring_timeout_s=60)
    store.set_state(cid, [CampaignState.DRAFT], CampaignState.RUNNING, fields={"trunk": TRUNK})
    return cid


def test_a_running_campaign_with_nobody_to_dial_it_says_what_to_start(store: Store, tmp_path: Path) -> None:
    cid = running(store, tmp_path)
    problems = control.status(store, cid)["problems"]
    assert "no dial worker seen ever: start one: `celery -A dialer worker` (or `docker compose up -d worker`)" \
        in problems
    assert any(problem.startswith("no beat seen ever: start exactly one") for problem in problems)


def test_campaign_wait_warns_once_instead_of_showing_a_silent_running_campaign(
    redis_url: str, store: Store, tmp_path: Path
) -> None:
    cid = running(store, tmp_path)
    result = run_cli(redis_url, "campaign", "wait", cid, "--timeout", "1.5")
    assert result.returncode == 1
    assert result.stderr.count("warning: no dial worker seen ever") == 1


def test_live_workers_and_beat_clear_the_problems_and_a_dead_one_brings_them_back(
    redis_url: str, store: Store, tmp_path: Path
) -> None:
    cid = running(store, tmp_path)
    with sandbox(redis_url, tmp_path, {"ring_s": 50, "default": ["answer"]}) as box, \
            workers(redis_url, box, tmp_path) as [worker]:
        wait_for(lambda: control.status(store, cid)["problems"] == [], timeout_s=30, interval_s=0.2,
                 what="heartbeats of the worker, beat, the pacer and the reconciler")
        worker.kill()
        problems = wait_for(lambda: [problem for problem in control.status(store, cid, stale_after_s=2)["problems"]
                                     if problem.startswith("no dial worker seen for ")],
                            timeout_s=20, interval_s=0.2, what="the dead worker to be noticed")
    assert problems[0].endswith("start one: `celery -A dialer worker` (or `docker compose up -d worker`)")


def test_doctor_passes_on_a_working_setup(redis_url: str, tmp_path: Path) -> None:
    with sandbox(redis_url, tmp_path) as box, workers(redis_url, box, tmp_path):
        wait_for(lambda: json.loads(run_cli(redis_url, "doctor", "--json", **box.env).stdout)["ok"],
                 timeout_s=30, interval_s=0.5, what="doctor to pass")
        report = json.loads(run_cli(redis_url, "doctor", "--json", **box.env).stdout)
    verdicts = {check["name"]: check["verdict"] for check in report["checks"]}
    assert verdicts["redis"] == "ok"
    assert verdicts["dial worker"] == verdicts["beat"] == verdicts["pacer run"] == "ok"
    assert verdicts["livekit"] == verdicts["trunk"] == "ok"


def test_doctor_names_rejected_livekit_credentials(redis_url: str, tmp_path: Path) -> None:
    with sandbox(redis_url, tmp_path) as box:
        result = run_cli(redis_url, "doctor", "--json", **{**box.env, "LIVEKIT_API_SECRET": "wrong-secret-0123"})
    assert result.returncode == 1
    [livekit] = [check for check in json.loads(result.stdout)["checks"] if check["name"] == "livekit"]
    assert livekit["verdict"] == "fail"
    assert "LIVEKIT_API_KEY and LIVEKIT_API_SECRET" in livekit["fix"]


def test_doctor_explains_an_unreachable_redis_without_a_traceback() -> None:
    result = run_cli("redis://127.0.0.1:1/0", "doctor")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert "cannot reach" in result.stdout


def _settings(redis_url: str) -> Settings:
    return Settings(redis_url=redis_url, livekit_url="http://127.0.0.1:1", livekit_api_key="k",
                    livekit_api_secret="s", dialer_heartbeat_stale_s=30)


def test_doctor_fails_webhook_events_that_nothing_sends(redis_url: str, store: Store) -> None:
    now = store.server_time()
    store.redis.rpush(Keys.webhook_outbox, json.dumps({"type": "call.completed", "campaign_id": "c1", "at": now - 90}))
    check = doctor._webhooks(store, _settings(redis_url))
    assert check.verdict is doctor.Verdict.FAIL
    assert check.detail == "1 webhook events wait to be sent, the oldest for 90 s"
    assert "`webhooks` queue" in check.fix


def test_doctor_warns_of_deliveries_long_past_due_and_not_of_fresh_ones(redis_url: str, store: Store) -> None:
    now = store.server_time()
    store.redis.zadd(Keys.webhook_due, {"c1|d1": now - 5})
    assert doctor._webhooks(store, _settings(redis_url)).verdict is doctor.Verdict.OK
    store.redis.zadd(Keys.webhook_due, {"c1|d0": now - doctor.WEBHOOK_OVERDUE_S - 60, "c1|d9": now + 60})
    check = doctor._webhooks(store, _settings(redis_url))
    assert check.verdict is doctor.Verdict.WARN
    assert check.detail.startswith("2 webhook deliveries overdue, the oldest by 36")


def test_doctor_is_content_with_no_webhook_work(redis_url: str, store: Store) -> None:
    check = doctor._webhooks(store, _settings(redis_url))
    assert (check.verdict, check.detail) == (doctor.Verdict.OK, "nothing waiting to be sent")
