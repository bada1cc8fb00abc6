"""The LiveKit server calls the agent makes about its own call: delete the room, transfer."""

from __future__ import annotations

import logging
from typing import Protocol

from livekit import api

from dialer.settings import Settings

log = logging.getLogger(__name__)

#: Seconds a delete may take; a transfer dials a phone and gets the SDK's longer default.
DELETE_TIMEOUT_S = 10.0


class CallControl(Protocol):
    async def delete_room(self, room: str) -> None:
        """Delete the room, hanging up whoever is still in it; a room already gone is fine."""

    async def transfer(self, room: str, identity: str, to: str) -> None:
        """Hand the SIP participant to ``to`` (an E.164 number or a ``sip:`` URI) with a SIP REFER."""

    async def aclose(self) -> None: ...


def transfer_target(number: str) -> str:
    """What TransferSIPParticipant expects: ``tel:+1...`` for a number, a SIP URI as given."""
    target = number.strip()
    return target if target.startswith(("tel:", "sip:", "sips:")) else f"tel:{target}"


class LiveKitCallControl:
    """``livekit-api`` with failover off: a transfer must never be sent twice."""

    def __init__(self, url: str, api_key: str, api_secret: str) -> None:
        self._url, self._key, self._secret = url, api_key, api_secret
        self._api: api.LiveKitAPI | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> LiveKitCallControl:
        settings.require("livekit_url", "livekit_api_key", "livekit_api_secret")
        assert settings.livekit_url and settings.livekit_api_key and settings.livekit_api_secret
        return cls(settings.livekit_url, settings.livekit_api_key, settings.livekit_api_secret)

    @property
    def _client(self) -> api.LiveKitAPI:
        if self._api is None:
            self._api = api.LiveKitAPI(self._url, self._key, self._secret, failover=False)
        return self._api

    async def delete_room(self, room: str) -> None:
        try:
            await self._client.room.delete_room(api.DeleteRoomRequest(room=room))
        except api.ServerError as exc:
            if exc.code != "not_found":
                raise

    async def transfer(self, room: str, identity: str, to: str) -> None:
        request = api.TransferSIPParticipantRequest(room_name=room, participant_identity=identity,
                                                    transfer_to=transfer_target(to), play_dialtone=False)
        await self._client.sip.transfer_sip_participant(request)

    async def aclose(self) -> None:
        if self._api is not None:
            await self._api.aclose()
            self._api = None
