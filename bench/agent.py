"""Benchmark: time from the answer to the agent's first word, in our own code.

A real ``AgentSession`` (audio output on, as in production) runs each dispatched call in
``agent_worker.testing.JobRunner`` against the room and callee doubles, which follow
livekit rtc and livekit/sip: the callee subscribes to the agent's audio only once
``sip.callStatus`` is ``active``. The scripted TTS answers at once, so model time is
excluded. Measured per call: from ``sip.callStatus`` turning ``active`` to the first frame
of the greeting reaching the audio output (``playback_started`` of the session's output).
Regulators judge abandoned calls by the time from answer to the first word.

    .venv/bin/python bench/agent.py [--calls N] [--ring-s S]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from livekit.agents import AgentSession  # noqa: E402
from livekit.agents.voice.io import PlaybackStartedEvent  # noqa: E402

from agent_worker.call import CallDeps, run_call  # noqa: E402
from agent_worker.screening import assume_person  # noqa: E402
from agent_worker.testing import (  # noqa: E402
    FakeRoom,
    JobRunner,
    RecordingControl,
    ScriptedLLM,
    ScriptedTTS,
    SipCall,
    dialed_attempt,
)
from dialer.models import DispatchMetadata  # noqa: E402
from dialer.services import local_redis  # noqa: E402
from dialer.settings import Settings  # noqa: E402
from dialer.store import Store  # noqa: E402

#: Our own overhead target from answer to first audio frame, model time excluded.
TARGET_MS = 300.0
CAMPAIGN = {"greeting": "Hi {first_name}, this is Sam from Acme."}


async def one_call(store: Store, settings: Settings, directory: Path, ring_s: float) -> float:
    """Seconds from ``active`` to the greeting's first frame at the audio output."""
    metadata = dialed_attempt(store, directory, identity="callee-2", **CAMPAIGN)
    room = FakeRoom()
    callee = SipCall(room, metadata.participant_identity)
    sessions: list[AgentSession] = []
    first_frame: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    def new_session(_: DispatchMetadata) -> AgentSession:
        session: AgentSession = AgentSession(llm=ScriptedLLM(), tts=ScriptedTTS(), vad=None)
        sessions.append(session)
        return session

    def on_playback_started(event: PlaybackStartedEvent) -> None:
        if not first_frame.done():
            first_frame.set_result(event.created_at)

    deps = CallDeps(settings=settings, store=store, control=RecordingControl(room), new_session=new_session,
                    screen=assume_person)
    runner = JobRunner(room, metadata.model_dump_json())

    async def entrypoint(ctx: Any) -> None:
        await run_call(ctx, deps)

    job = asyncio.create_task(runner.run(entrypoint))
    callee.dial()
    callee.ringing()
    while not sessions or sessions[0].output.audio is None:
        await asyncio.sleep(0.005)
    sessions[0].output.audio.on("playback_started", on_playback_started)
    await asyncio.sleep(ring_s)
    callee.answer()
    frame_at = await asyncio.wait_for(first_frame, 10)
    assert callee.answered_at is not None
    callee.hang_up()
    await asyncio.wait_for(job, 20)
    await room.aclose()
    return frame_at - callee.answered_at


async def measure(calls: int, ring_s: float, redis_url: str) -> list[float]:
    store = Store.from_url(redis_url)
    settings = Settings(_env_file=None, redis_url=redis_url)  # type: ignore[call-arg]
    with tempfile.TemporaryDirectory(prefix="bench-agent-") as directory:
        return [await one_call(store, settings, Path(directory), ring_s) for _ in range(calls)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--ring-s", type=float, default=0.3, help="how long each call rings before the answer")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    with local_redis() as url:
        delays = asyncio.run(measure(args.calls, args.ring_s, url))
    ms = sorted(delay * 1000 for delay in delays)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    print(f"answer -> first greeting frame at the audio output, {len(ms)} calls (model time excluded):")
    print(f"  median {statistics.median(ms):.1f} ms, p95 {p95:.1f} ms, max {ms[-1]:.1f} ms, min {ms[0]:.1f} ms")
    print(f"  target under {TARGET_MS:.0f} ms: {'met' if p95 < TARGET_MS else 'NOT met'}")


if __name__ == "__main__":
    main()
