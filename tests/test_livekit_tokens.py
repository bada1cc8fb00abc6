"""The LiveKit gateway's access tokens: signed once per set of grants, not once per request."""

from __future__ import annotations

from livekit.api import VideoGrants

from dialer.livekit import _TokenCache


def test_the_livekit_gateway_signs_each_set_of_grants_once() -> None:
    signed: list[str] = []

    def sign(grants: VideoGrants, sip: object = None) -> dict[str, str]:
        signed.append(grants.room)
        return {"Authorization": f"Bearer {len(signed)}"}

    auth_header = _TokenCache().wrap(sign)
    first = auth_header(VideoGrants(room_admin=True, room="dial-a-1-1"))
    assert auth_header(VideoGrants(room_admin=True, room="dial-a-1-1")) == first
    assert auth_header(VideoGrants(room_admin=True, room="dial-a-2-1")) != first
    assert signed == ["dial-a-1-1", "dial-a-2-1"]
