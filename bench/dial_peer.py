"""The dial peer (issue #11): what a plain asyncio loop over ``livekit-api`` places, as a user
comparing would write it. For each contact: create the room, the agent dispatch and the SIP
participant with ``wait_until_answered``, at most ``--concurrency`` contacts at a time
(``--room-agents``: the dispatch made by CreateRoom itself, as the dialer does). No
ledger, no limits, no window, no DNC: the yardstick our per-attempt guarantees are measured
against.

    .venv/bin/python bench/dial_peer.py --url http://127.0.0.1:PORT --numbers FILE [--concurrency 200]

Prints one JSON object: attempts, elapsed_s (first request to last answer), attempts_per_s,
failures. ``bench/dial.py`` runs it against the same sandbox and contacts as the worker.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path

import aiohttp
from livekit import api


async def place(lk: api.LiveKitAPI, index: int, number: str, trunk: str, ring_timeout_s: int,
                gate: asyncio.Semaphore, room_agents: bool = False) -> bool:
    room = f"peer-{os.getpid()}-{index}"
    async with gate:
        try:
            if room_agents:  # the agent dispatched by CreateRoom itself, as the dialer does
                await lk.room.create_room(api.CreateRoomRequest(name=room, empty_timeout=60, agents=[
                    api.RoomAgentDispatch(agent_name="peer-agent", metadata="{}")]))
            else:
                await lk.room.create_room(api.CreateRoomRequest(name=room, empty_timeout=60))
                await lk.agent_dispatch.create_dispatch(
                    api.CreateAgentDispatchRequest(agent_name="peer-agent", room=room, metadata="{}"))
            request = api.CreateSIPParticipantRequest(
                sip_trunk_id=trunk, sip_call_to=number, room_name=room, participant_identity=f"callee-{index}",
                wait_until_answered=True, play_dialtone=False)
            request.ringing_timeout.seconds = ring_timeout_s
            await lk.sip.create_sip_participant(request)
            return True
        except (TimeoutError, api.ServerError, aiohttp.ClientError):
            return False


async def main_async(args: argparse.Namespace) -> dict[str, float]:
    numbers = [line.strip() for line in Path(args.numbers).read_text().splitlines() if line.strip()]
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=args.ring_timeout + 20),
                                    connector=aiohttp.TCPConnector(limit=0))
    lk = api.LiveKitAPI(args.url, args.key, args.secret, session=session, failover=False)
    gate = asyncio.Semaphore(args.concurrency)
    started = time.monotonic()
    done = await asyncio.gather(*(place(lk, i, n, args.trunk, args.ring_timeout, gate, args.room_agents)
                                  for i, n in enumerate(numbers)))
    elapsed = time.monotonic() - started
    await lk.aclose()
    await session.close()
    return {"attempts": len(numbers), "elapsed_s": round(elapsed, 2),
            "attempts_per_s": round(len(numbers) / elapsed, 1), "failures": done.count(False)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--numbers", required=True, help="file with one E.164 number a line")
    parser.add_argument("--key", default=os.environ.get("LIVEKIT_API_KEY", ""))
    parser.add_argument("--secret", default=os.environ.get("LIVEKIT_API_SECRET", ""))
    parser.add_argument("--trunk", default=os.environ.get("SIP_OUTBOUND_TRUNK_ID", "ST_peer"))
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--ring-timeout", type=int, default=30)
    parser.add_argument("--room-agents", action="store_true",
                        help="dispatch the agent in CreateRoom (two requests a contact, as the dialer) "
                             "instead of the issue's separate CreateDispatch")
    print(json.dumps(asyncio.run(main_async(parser.parse_args()))), flush=True)


if __name__ == "__main__":
    main()
