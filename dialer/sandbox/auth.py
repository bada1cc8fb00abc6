"""Access tokens and grants, checked the way LiveKit's server checks them.

Two stages, as in livekit-server ``pkg/service/auth.go``:

* The auth middleware runs before any handler. A token that does not parse, is
  signed by an unknown key, has a bad signature, or is expired (one minute of
  leeway, ``exp`` required; livekit/protocol ``auth/verifier.go``) is refused with
  HTTP 401 and a plain-text body, not a Twirp JSON error. Without any token the
  request goes on with no grants.
* Each handler then checks the grant it needs. A missing grant is the Twirp error
  ``unauthenticated`` (HTTP 401), message "permissions denied": the server wraps
  every permission failure with ``twirp.Unauthenticated`` (``twirpAuthError``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt

from .twirp import TwirpError

BEARER = "Bearer "
LEEWAY_S = 60
#: The Twirp code of a call whose token lacks the grant it needs (see module docstring).
GRANT_DENIED_CODE = "unauthenticated"
GRANT_DENIED_MSG = "permissions denied"


class AuthError(Exception):
    """A token the auth middleware refuses: HTTP 401 with the message as plain text."""


@dataclass(frozen=True)
class Grants:
    """The claims of a verified token that the emulated calls look at."""

    video: Mapping[str, Any] = field(default_factory=dict)
    sip: Mapping[str, Any] = field(default_factory=dict)
    identity: str = ""

    def _video(self, name: str) -> bool:
        return self.video.get(name) is True

    def require_room_create(self) -> None:
        """CreateRoom, DeleteRoom: ``video.roomCreate``."""
        if not self._video("roomCreate"):
            raise denied()

    def require_room_list(self) -> None:
        """ListRooms: ``video.roomList``."""
        if not self._video("roomList"):
            raise denied()

    def require_room_admin(self, room: str) -> None:
        """Participant and agent-dispatch calls: ``video.roomAdmin`` for exactly this room."""
        if not self._video("roomAdmin") or self.video.get("room", "") != room:
            raise denied()

    def require_sip_admin(self) -> None:
        """Trunk and dispatch-rule calls (ListSIPOutboundTrunk, ...): ``sip.admin``."""
        if self.sip.get("admin") is not True:
            raise denied()

    def require_sip_call(self) -> None:
        """CreateSIPParticipant (and TransferSIPParticipant): ``sip.call``."""
        if self.sip.get("call") is not True:
            raise denied()


NO_GRANTS = Grants()


def denied() -> TwirpError:
    return TwirpError(GRANT_DENIED_CODE, GRANT_DENIED_MSG)


def verify(authorization: str | None, api_key: str, api_secret: str) -> Grants:
    """The grants of the request's bearer token; raises ``AuthError`` for a bad token."""
    if not authorization:
        return NO_GRANTS
    if not authorization.startswith(BEARER):
        raise AuthError(f"invalid authorization header. Must start with {BEARER}")
    token = authorization[len(BEARER):]
    try:
        unverified = jwt.decode(token, options={"verify_signature": False},
                                algorithms=["HS256"])
    except jwt.PyJWTError:
        raise AuthError("invalid authorization token") from None
    if unverified.get("iss") != api_key:
        raise AuthError("invalid API key")
    try:
        claims = jwt.decode(token, api_secret, algorithms=["HS256"], issuer=api_key,
                            leeway=LEEWAY_S, options={"require": ["exp"]})
    except jwt.PyJWTError as exc:
        raise AuthError(f"invalid authorization token: {exc}") from None
    video = claims.get("video")
    sip = claims.get("sip")
    return Grants(
        video=video if isinstance(video, dict) else {},
        sip=sip if isinstance(sip, dict) else {},
        identity=str(claims.get("sub", "")),
    )
