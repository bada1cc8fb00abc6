"""Adaptive pacing: a trunk that refuses for capacity is slowed down (AIMD) and recovers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pipeline import API_KEY, API_SECRET, TRUNK, Sandbox, create_campaign, sandbox, settings_for

from dialer import control
from dialer.dialing import Dialer
from dialer.livekit import LiveKitGateway
from dialer.pacer import BACKOFF_MIN_FACTOR, BACKOFF_RECOVERY_PER_S, back_off, pace, pace_factor, recovered
from dialer.settings import Settings
from dialer.store import Store


def test_a_capacity_refusal_halves_the_pace_once_per_burst_of_refusals(store: Store) -> None:
    assert pace_factor(store, TRUNK) == 1.0
    assert back_off(store, TRUNK) == pytest.approx(0.5, abs=0.01)
    # INVITEs already in flight get refused together: one signal, not five.
    for _ in range(4):
        back_off(store, TRUNK)
    assert pace_factor(store, TRUNK) == pytest.approx(0.5, abs=0.01)
    assert pace_factor(store, "ST_other") == 1.0


def test_the_pace_recovers_additively_and_never_passes_the_configured_rate() -> None:
    assert recovered(0.5, 10) == pytest.approx(0.5 + 10 * BACKOFF_RECOVERY_PER_S)
    assert recovered(0.5, 3600) == 1.0
    assert recovered(BACKOFF_MIN_FACTOR, 0) == BACKOFF_MIN_FACTOR


def test_the_pace_never_drops_below_its_floor(store: Store) -> None:
    for _ in range(12):
        store.set_trunk_backoff(TRUNK, lambda factor, at, now: max(BACKOFF_MIN_FACTOR, factor * 0.5))
    assert pace_factor(store, TRUNK) >= BACKOFF_MIN_FACTOR


def test_the_pacer_releases_at_the_backed_off_rate(store: Store, tmp_path: Path, redis_url: str) -> None:
    config = Settings(redis_url=redis_url, livekit_url="http://127.0.0.1:1", livekit_api_key="k",
                      livekit_api_secret="s", sip_outbound_trunk_id=TRUNK)
    cid = create_campaign(store, tmp_path, [f"202-555-{n:04d}" for n in range(100, 130)], calls_per_second=10,
                          max_concurrent_calls=100)
    control.start(store, config, cid)
    back_off(store, TRUNK)
    assert pace(store, config, lambda *_: None, token="t") == 5
    status = control.status(store, cid)
    assert status["effective_calls_per_second"] == pytest.approx(5.0, abs=0.1)
    assert status["trunk_pace_factor"] == pytest.approx(0.5, abs=0.01)


@pytest.fixture
def box(redis_url: str, tmp_path: Path) -> Iterator[Sandbox]:
    scenario = {"ring_s": 0.05, "talk_s": 0.1, "numbers": {"+12025550190": ["capacity", "answer"]}}
    with sandbox(redis_url, tmp_path, scenario) as server:
        yield server


def test_a_provider_cps_refusal_slows_the_trunk_down(store: Store, box: Sandbox, tmp_path: Path,
                                                     redis_url: str) -> None:
    config = settings_for(redis_url, box)
    cid = create_campaign(store, tmp_path, ["202-555-0190"])
    control.start(store, config, cid)
    [member] = store.queue_attempts(cid, TRUNK, [2], now=2e9, lease_s=60, max_concurrent=10, trunk_max_concurrent=0)
    gateway = LiveKitGateway(box.url, API_KEY, API_SECRET)
    try:
        result = Dialer(store, gateway, config, sleep=lambda s: None).dial(cid, 2, int(member.split(":")[1]))
    finally:
        gateway.close()
    assert result == "answered"  # retried inside the task after the 503 "CPS limit exceeded"
    assert pace_factor(store, TRUNK) < 0.6
    configured = store.get_campaign(cid).config.calls_per_second
    assert control.status(store, cid)["effective_calls_per_second"] < 0.6 * configured
