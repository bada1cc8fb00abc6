"""Redis restarts mid-campaign: the worker and beat reconnect and carry on (I1, I2).

Each test runs its own redis-server (AOF, everysec, as shipped) so it can be killed and
started again on the same port and directory while a real worker dials the sandbox.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import RedisServer, wait_for
from invariants import assert_dial_invariants
from pipeline import create_campaign, invites_by_number, outcomes_by_number, sandbox, settings_for, workers

from dialer import control
from dialer.models import CampaignState
from dialer.store import Store

SCENARIO = {"ring_s": 0.5, "talk_s": 0.5, "default": ["answer"]}
NUMBERS = [f"202-555-{n:04d}" for n in range(100, 130)]


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisServer(directory)
    server.start()
    yield server
    server.stop()


def run_through_restart(server: RedisServer, tmp_path: Path, *, sig_kill: bool, down_s: float) -> None:
    store = Store.from_url(server.url)
    with sandbox(server.url, tmp_path, SCENARIO) as box, workers(server.url, box, tmp_path) as [worker]:
        cid = create_campaign(store, tmp_path, NUMBERS, calls_per_second=5, max_concurrent_calls=4)
        control.start(store, settings_for(server.url, box), cid)
        wait_for(lambda: len(box.calls()) >= 5, timeout_s=30, what="the campaign to be under way")
        server.stop(sig_kill=sig_kill)  # calls ringing and talking, tasks unacknowledged
        time.sleep(down_s)  # the outage itself: nothing to poll for while Redis is down
        server.start()
        store = Store.from_url(server.url)
        wait_for(lambda: store.get_campaign(cid).state is CampaignState.COMPLETED, timeout_s=90, interval_s=0.5,
                 what="the campaign to complete after the restart")
        assert worker.process.poll() is None, "the worker exited:\n" + worker.log[-3000:]
        assert "Unrecoverable error" not in worker.log
        calls = box.calls()
    outcomes = outcomes_by_number(store, cid)
    assert len(outcomes) == len(NUMBERS)
    assert all(outcome == "answered" for outcome, _ in outcomes.values())
    assert_dial_invariants(calls, store, cid)
    assert set(invites_by_number(calls)) == set(outcomes)


def test_the_worker_survives_redis_killed_mid_campaign(own_redis: RedisServer, tmp_path: Path) -> None:
    run_through_restart(own_redis, tmp_path, sig_kill=True, down_s=2)


def test_the_worker_survives_a_graceful_redis_restart_after_a_minute_away(own_redis: RedisServer,
                                                                          tmp_path: Path) -> None:
    run_through_restart(own_redis, tmp_path, sig_kill=False, down_s=60)
