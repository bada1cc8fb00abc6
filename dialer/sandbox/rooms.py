"""Rooms, their participants and their agent dispatches, in memory.

Plain state with no I/O; the event loop is the only writer, so there are no locks.
Rooms close themselves like LiveKit's: ``empty_timeout`` after creation when nobody
ever joined, ``departure_timeout`` after the last participant left.
"""

from __future__ import annotations

import secrets
import string
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from livekit.protocol import agent_dispatch, models

#: LiveKit's defaults when a CreateRoomRequest leaves them at 0.
DEFAULT_EMPTY_TIMEOUT_S = 300
DEFAULT_DEPARTURE_TIMEOUT_S = 20

_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str) -> str:
    """A LiveKit-style id: ``RM_``, ``PA_``, ``AD_``, ``SCL_`` and 12 random characters."""
    return prefix + "".join(_ALPHABET[byte % len(_ALPHABET)] for byte in secrets.token_bytes(12))


@dataclass(eq=False)
class RoomState:
    info: models.Room
    participants: dict[str, models.ParticipantInfo] = field(default_factory=dict)
    dispatches: dict[str, agent_dispatch.AgentDispatch] = field(default_factory=dict)
    #: When the room last became empty (its creation counts); None while occupied.
    empty_since: float | None = None
    ever_joined: bool = False

    @property
    def name(self) -> str:
        return str(self.info.name)

    def first_dispatch_metadata(self) -> str | None:
        for dispatch in self.dispatches.values():
            return str(dispatch.metadata)
        return None


class RoomStore:
    def __init__(self) -> None:
        self._rooms: dict[str, RoomState] = {}

    def __len__(self) -> int:
        return len(self._rooms)

    def get(self, name: str) -> RoomState | None:
        return self._rooms.get(name)

    def create(self, name: str, *, empty_timeout_s: int = 0, departure_timeout_s: int = 0,
               max_participants: int = 0, metadata: str = "") -> RoomState:
        """The room called ``name``; an existing room is returned unchanged, as LiveKit does."""
        existing = self._rooms.get(name)
        if existing is not None:
            return existing
        now = time.time()
        info = models.Room(
            sid=new_id("RM_"),
            name=name,
            empty_timeout=empty_timeout_s or DEFAULT_EMPTY_TIMEOUT_S,
            departure_timeout=departure_timeout_s or DEFAULT_DEPARTURE_TIMEOUT_S,
            max_participants=max_participants,
            creation_time=int(now),
            creation_time_ms=int(now * 1000),
            metadata=metadata,
        )
        room = RoomState(info=info, empty_since=now)
        self._rooms[name] = room
        return room

    def delete(self, name: str) -> RoomState | None:
        return self._rooms.pop(name, None)

    def infos(self, names: Iterable[str] = ()) -> list[models.Room]:
        wanted = set(names)
        return [room.info for room in self._rooms.values() if not wanted or room.name in wanted]

    def join(self, room: RoomState, participant: models.ParticipantInfo) -> models.ParticipantInfo | None:
        """Add ``participant``; returns the participant it replaced (same identity), if any."""
        replaced = room.participants.get(participant.identity)
        room.participants[participant.identity] = participant
        room.ever_joined = True
        room.empty_since = None
        room.info.num_participants = len(room.participants)
        return replaced

    def leave(self, room_name: str, identity: str, sid: str | None = None) -> models.ParticipantInfo | None:
        """Remove a participant (only the one with ``sid`` when given); None when absent."""
        room = self._rooms.get(room_name)
        participant = room.participants.get(identity) if room else None
        if room is None or participant is None or (sid is not None and participant.sid != sid):
            return None
        del room.participants[identity]
        room.info.num_participants = len(room.participants)
        if not room.participants:
            room.empty_since = time.time()
        return participant

    def expired(self, now: float) -> list[str]:
        """Names of empty rooms whose empty or departure timeout has passed."""
        names = []
        for room in self._rooms.values():
            if room.empty_since is None:
                continue
            timeout_s = room.info.departure_timeout if room.ever_joined else room.info.empty_timeout
            if now - room.empty_since >= timeout_s:
                names.append(room.name)
        return names
