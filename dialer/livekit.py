"""The dialer's LiveKit client: the real ``livekit-api`` on one event loop per process.

Dial tasks run on Celery's worker threads; every LiveKit call is handed to a single
asyncio loop in a background thread, so hundreds of ringing calls share one HTTP
session instead of holding a process each. Failover is off (invariant I1): the SDK
would otherwise resend a CreateSIPParticipant on a timeout or 5xx.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import aiohttp
from livekit import api
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_random_exponential

from . import bridge
from .settings import Settings

T = TypeVar("T")
#: Seconds an ordinary (non-dialing) API call may take.
API_TIMEOUT_S = 10.0
#: The SIP participant kind in ParticipantInfo.
SIP_KIND = 3


#: Tries of a call that is safe to repeat (reads, deletes) when LiveKit fails transiently.
SAFE_TRIES = 3
#: How long a signed access token is reused for requests with the same grants (they live 6 h).
TOKEN_REUSE_S = 300.0
#: Signed tokens kept at most (most are one room's: its look and its cleanup share one).
TOKEN_CACHE_SIZE = 20_000


class _TokenCache:
    """Signs each set of grants once per ``TOKEN_REUSE_S`` instead of once per request.

    ``livekit-api`` builds and signs a new JWT in every request (``Service._auth_header``); in
    the dial bench that was a fifth of the worker's CPU. The grants (and the room they name)
    decide the token, so a cached one authorises exactly what a fresh one would.
    """

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str], tuple[float, dict[str, str]]] = {}

    def wrap(self, sign: Callable[..., dict[str, str]]) -> Callable[..., dict[str, str]]:
        def auth_header(grants: Any, sip: Any = None) -> dict[str, str]:
            key = (repr(grants), repr(sip))
            now = time.monotonic()
            cached = self._tokens.get(key)
            if cached is not None and now - cached[0] < TOKEN_REUSE_S:
                return cached[1]
            if len(self._tokens) >= TOKEN_CACHE_SIZE:
                self._tokens.clear()
            header = sign(grants, sip)
            self._tokens[key] = (now, header)
            return header

        return auth_header


def _transient(exc: BaseException) -> bool:
    """A failure that says nothing about the request: a 5xx from LiveKit itself or a transport error."""
    if isinstance(exc, api.ServerError):
        return exc.status >= 500
    return isinstance(exc, aiohttp.ClientError | asyncio.TimeoutError | concurrent.futures.TimeoutError)


#: Reads and deletes give the same result when repeated, so a transient failure is tried again
#: here, once, for every caller. Never used for CreateSIPParticipant.
_idempotent: Callable[[Callable[..., T]], Callable[..., T]] = retry(
    retry=retry_if_exception(_transient),
    wait=wait_random_exponential(multiplier=0.1, max=0.5),
    stop=stop_after_attempt(SAFE_TRIES),
    sleep=bridge.sleep,
    reraise=True,
)


class LiveKitGateway:
    """Synchronous facade over ``livekit.api.LiveKitAPI`` for worker threads."""

    def __init__(self, url: str, api_key: str, api_secret: str) -> None:
        self._url, self._key, self._secret = url, api_key, api_secret
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="livekit-loop", daemon=True)
        self._thread.start()
        self._session: aiohttp.ClientSession | None = None
        self._api: api.LiveKitAPI = self.run(self._make_api())

    @classmethod
    def from_settings(cls, settings: Settings) -> LiveKitGateway:
        settings.require("livekit_url", "livekit_api_key", "livekit_api_secret")
        assert settings.livekit_url and settings.livekit_api_key and settings.livekit_api_secret
        return cls(settings.livekit_url, settings.livekit_api_key, settings.livekit_api_secret)

    async def _make_api(self) -> api.LiveKitAPI:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=API_TIMEOUT_S),
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=0),
        )
        client = api.LiveKitAPI(self._url, self._key, self._secret, session=self._session, failover=False)
        tokens = _TokenCache()
        for service in (client.room, client.sip):
            service._auth_header = tokens.wrap(service._auth_header)  # type: ignore[method-assign]
        return client

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float | None = None) -> T:
        """Run ``coro`` on the gateway's loop and wait for it: from this thread, or, inside
        ``bridge.run`` on that loop, from the attempt's greenlet while the loop goes on with the others."""
        if bridge.bridged() and asyncio.get_running_loop() is self._loop:
            return bridge.wait(asyncio.wait_for(coro, timeout_s) if timeout_s is not None else coro)
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout_s)

    def close(self) -> None:
        async def _close() -> None:
            await self._api.aclose()
            if self._session is not None:
                await self._session.close()

        try:
            self.run(_close(), 5)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)

    # -- the calls the dialer makes --------------------------------------------------

    def create_room(self, name: str, empty_timeout_s: int, *, agent_name: str, agent_metadata: str,
                    max_participants: int = 10) -> None:
        """CreateRoom with the agent dispatched in the same request (``CreateRoomRequest.agents``).

        LiveKit launches a room's agents only when it builds the room (livekit-server
        ``pkg/rtc/room.go`` ``NewRoom``); a CreateRoom for a room that is already live returns it
        and dispatches nothing (``pkg/service/roommanager.go`` ``getOrCreateRoom``). So the call
        can be repeated after a lost answer without putting a second agent in the room (I1).
        """
        request = api.CreateRoomRequest(
            name=name, empty_timeout=empty_timeout_s, max_participants=max_participants,
            agents=[api.RoomAgentDispatch(agent_name=agent_name, metadata=agent_metadata)])
        self.run(self._api.room.create_room(request))

    @_idempotent
    def delete_room(self, name: str) -> bool:
        """Delete a room; False when it was already gone."""
        try:
            self.run(self._api.room.delete_room(api.DeleteRoomRequest(room=name)))
        except api.ServerError as exc:
            if exc.code == "not_found":
                return False
            raise
        return True

    def dial(self, request: api.CreateSIPParticipantRequest) -> api.SIPParticipantInfo:
        """CreateSIPParticipant; raises ``api.SipCallError`` or a transport error."""
        return self.run(self._api.sip.create_sip_participant(request))

    @_idempotent
    def room_count(self) -> int:
        """How many rooms exist: a harmless call that proves the credentials work."""
        return len(self.run(self._api.room.list_rooms(api.ListRoomsRequest())).rooms)

    def outbound_trunk_exists(self, trunk_id: str) -> bool:
        request = api.ListSIPOutboundTrunkRequest(trunk_ids=[trunk_id])
        items = self.run(self._api.sip.list_outbound_trunk(request)).items
        return any(item.sip_trunk_id == trunk_id for item in items)

    @_idempotent
    def participants(self, room: str) -> list[Any] | None:
        """The room's participants, or None when the room does not exist."""
        try:
            response = self.run(
                self._api.room.list_participants(api.ListParticipantsRequest(room=room))
            )
        except api.ServerError as exc:
            if exc.code == "not_found":
                return None
            raise
        return list(response.participants)
