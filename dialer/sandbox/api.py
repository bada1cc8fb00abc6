"""The emulated Twirp methods: RoomService, AgentDispatchService and SIP.

Grants and error codes follow livekit-server ``pkg/service/roomservice.go``,
``agent_dispatch_service.go`` and ``sip.go``:

=====================================  ==========================================
method                                 grant
=====================================  ==========================================
RoomService.CreateRoom, DeleteRoom     video.roomCreate
RoomService.ListRooms                  video.roomList
RoomService.ListParticipants,          video.roomAdmin with video.room == room
GetParticipant, RemoveParticipant
AgentDispatchService.*                 video.roomAdmin with video.room == room
SIP.CreateSIPParticipant               sip.call
SIP.TransferSIPParticipant             sip.call, then video.roomAdmin for the room
SIP.ListSIPOutboundTrunk               sip.admin
=====================================  ==========================================
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message
from livekit.protocol import agent_dispatch, models, room, sip

from .auth import Grants
from .calls import CallSimulator
from .rooms import RoomState, RoomStore, new_id
from .twirp import TwirpError


@dataclass(frozen=True)
class CallContext:
    grants: Grants
    #: The ``X-Livekit-Request-Id`` header the client sends (its idempotency key).
    request_id: str = ""


def _room_not_found() -> TwirpError:
    return TwirpError("not_found", "requested room does not exist")


def _participant_not_found() -> TwirpError:
    return TwirpError("not_found", "participant does not exist")


class LiveKitApi:
    def __init__(self, rooms: RoomStore, calls: CallSimulator) -> None:
        self.rooms = rooms
        self.calls = calls

    # -- RoomService ----------------------------------------------------------------------

    async def create_room(self, req: room.CreateRoomRequest, ctx: CallContext) -> models.Room:
        ctx.grants.require_room_create()
        if not req.name:
            raise TwirpError("invalid_argument", "no room name")
        is_new = self.rooms.get(req.name) is None
        state = self.rooms.create(req.name, empty_timeout_s=req.empty_timeout,
                                  departure_timeout_s=req.departure_timeout,
                                  max_participants=req.max_participants, metadata=req.metadata)
        if is_new:
            # The room's agents are dispatched when LiveKit builds the room (pkg/rtc/room.go
            # NewRoom -> createAgentDispatchesFromRoomAgent), never for a CreateRoom of a live one
            # (pkg/service/roommanager.go getOrCreateRoom returns it as it is). LiveKit also
            # dispatches agents registered without a name to a room created with no `agents`; the
            # sandbox runs no such agents and records none.
            for agent in req.agents:
                _add_dispatch(state, new_id("AD_"), agent)
        return state.info

    async def list_rooms(self, req: room.ListRoomsRequest, ctx: CallContext) -> room.ListRoomsResponse:
        ctx.grants.require_room_list()
        return room.ListRoomsResponse(rooms=self.rooms.infos(req.names))

    async def delete_room(self, req: room.DeleteRoomRequest, ctx: CallContext) -> room.DeleteRoomResponse:
        ctx.grants.require_room_create()
        if not self.calls.delete_room(req.room):
            raise _room_not_found()
        return room.DeleteRoomResponse()

    async def list_participants(self, req: room.ListParticipantsRequest,
                                ctx: CallContext) -> room.ListParticipantsResponse:
        ctx.grants.require_room_admin(req.room)
        state = self.rooms.get(req.room)  # an unknown room lists no one, as in LiveKit
        participants = list(state.participants.values()) if state else []
        return room.ListParticipantsResponse(participants=participants)

    async def get_participant(self, req: room.RoomParticipantIdentity,
                              ctx: CallContext) -> models.ParticipantInfo:
        ctx.grants.require_room_admin(req.room)
        state = self.rooms.get(req.room)
        participant = state.participants.get(req.identity) if state else None
        if participant is None:
            raise _participant_not_found()
        return participant

    async def remove_participant(self, req: room.RoomParticipantIdentity,
                                 ctx: CallContext) -> room.RemoveParticipantResponse:
        ctx.grants.require_room_admin(req.room)
        participant = self.rooms.leave(req.room, req.identity)
        if participant is None:
            raise _participant_not_found()
        self.calls.participant_removed(req.room, participant)
        return room.RemoveParticipantResponse()

    # -- AgentDispatchService -------------------------------------------------------------

    async def create_dispatch(self, req: agent_dispatch.CreateAgentDispatchRequest,
                              ctx: CallContext) -> agent_dispatch.AgentDispatch:
        ctx.grants.require_room_admin(req.room)
        state = self.rooms.get(req.room) or self.rooms.create(req.room)  # rooms auto-create
        return _add_dispatch(state, _dispatch_id(ctx.request_id), req)

    async def delete_dispatch(self, req: agent_dispatch.DeleteAgentDispatchRequest,
                              ctx: CallContext) -> agent_dispatch.AgentDispatch:
        ctx.grants.require_room_admin(req.room)
        state = self.rooms.get(req.room)
        if state is None:
            raise _room_not_found()
        dispatch = state.dispatches.pop(req.dispatch_id, None)
        if dispatch is None:
            raise TwirpError("not_found", "dispatch ID not found")
        dispatch.state.deleted_at = time.time_ns()
        return dispatch

    async def list_dispatch(self, req: agent_dispatch.ListAgentDispatchRequest,
                            ctx: CallContext) -> agent_dispatch.ListAgentDispatchResponse:
        ctx.grants.require_room_admin(req.room)
        state = self.rooms.get(req.room)
        if state is None:
            raise _room_not_found()
        found = [d for d in state.dispatches.values() if not req.dispatch_id or d.id == req.dispatch_id]
        return agent_dispatch.ListAgentDispatchResponse(agent_dispatches=found)

    # -- SIP ------------------------------------------------------------------------------

    async def create_sip_participant(self, req: sip.CreateSIPParticipantRequest,
                                     ctx: CallContext) -> sip.SIPParticipantInfo:
        ctx.grants.require_sip_call()
        call = self.calls.dial(req, ctx.request_id)
        if req.wait_until_answered:
            await self.calls.wait_answered(call)
        return sip.SIPParticipantInfo(
            participant_id=call.participant.sid, participant_identity=call.participant.identity,
            room_name=call.record.room, sip_call_id=call.record.sip_call_id,
        )

    async def list_sip_outbound_trunk(self, req: sip.ListSIPOutboundTrunkRequest,
                                      ctx: CallContext) -> sip.ListSIPOutboundTrunkResponse:
        """The sandbox dials through any trunk id, so every trunk asked for by id exists."""
        ctx.grants.require_sip_admin()
        return sip.ListSIPOutboundTrunkResponse(items=[
            sip.SIPOutboundTrunkInfo(sip_trunk_id=trunk_id, name="sandbox trunk", address="sandbox.invalid")
            for trunk_id in req.trunk_ids
        ])

    async def transfer_sip_participant(self, req: sip.TransferSIPParticipantRequest,
                                       ctx: CallContext) -> sip.TransferSIPParticipantResponse:
        if not req.room_name:
            raise TwirpError("invalid_argument", "Missing room name")
        if not req.participant_identity:
            raise TwirpError("invalid_argument", "Missing participant identity")
        ctx.grants.require_sip_call()
        ctx.grants.require_room_admin(req.room_name)
        return self.calls.transfer(req.room_name, req.participant_identity, req.transfer_to)


Handler = Callable[[LiveKitApi, Any, CallContext], Awaitable[Message]]


@dataclass(frozen=True)
class Route:
    request: type[Message]
    handler: Handler


#: ``<package>.<Service>/<Method>`` -> what handles it.
ROUTES: dict[str, Route] = {
    "livekit.RoomService/CreateRoom": Route(room.CreateRoomRequest, LiveKitApi.create_room),
    "livekit.RoomService/ListRooms": Route(room.ListRoomsRequest, LiveKitApi.list_rooms),
    "livekit.RoomService/DeleteRoom": Route(room.DeleteRoomRequest, LiveKitApi.delete_room),
    "livekit.RoomService/ListParticipants": Route(room.ListParticipantsRequest,
                                                  LiveKitApi.list_participants),
    "livekit.RoomService/GetParticipant": Route(room.RoomParticipantIdentity, LiveKitApi.get_participant),
    "livekit.RoomService/RemoveParticipant": Route(room.RoomParticipantIdentity,
                                                   LiveKitApi.remove_participant),
    "livekit.AgentDispatchService/CreateDispatch": Route(agent_dispatch.CreateAgentDispatchRequest,
                                                         LiveKitApi.create_dispatch),
    "livekit.AgentDispatchService/DeleteDispatch": Route(agent_dispatch.DeleteAgentDispatchRequest,
                                                         LiveKitApi.delete_dispatch),
    "livekit.AgentDispatchService/ListDispatch": Route(agent_dispatch.ListAgentDispatchRequest,
                                                       LiveKitApi.list_dispatch),
    "livekit.SIP/CreateSIPParticipant": Route(sip.CreateSIPParticipantRequest,
                                              LiveKitApi.create_sip_participant),
    "livekit.SIP/ListSIPOutboundTrunk": Route(sip.ListSIPOutboundTrunkRequest, LiveKitApi.list_sip_outbound_trunk),
    "livekit.SIP/TransferSIPParticipant": Route(sip.TransferSIPParticipantRequest,
                                                LiveKitApi.transfer_sip_participant),
}


def _add_dispatch(state: RoomState, dispatch_id: str,
                  req: agent_dispatch.CreateAgentDispatchRequest | agent_dispatch.RoomAgentDispatch,
                  ) -> agent_dispatch.AgentDispatch:
    dispatch = agent_dispatch.AgentDispatch(
        id=dispatch_id, agent_name=req.agent_name, room=state.name, metadata=req.metadata,
        attributes=dict(req.attributes), state=agent_dispatch.AgentDispatchState(created_at=time.time_ns()))
    state.dispatches[dispatch.id] = dispatch
    return dispatch


def _dispatch_id(request_id: str) -> str:
    """Derived from the request id like LiveKit's, so a replayed request names the same dispatch."""
    if not request_id:
        return new_id("AD_")
    return "AD_" + hashlib.sha256(request_id.encode()).hexdigest()[:12]
