"""Twirp on the wire: protobuf and JSON bodies, error codes, HTTP statuses, error bodies.

Follows the Twirp v8 spec as LiveKit's Go server speaks it: a response uses the
request's encoding, JSON uses the proto field names and prints unset fields, and
an error is always a JSON body ``{"code", "msg", "meta"}`` with string meta values.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

PROTOBUF = "application/protobuf"
JSON = "application/json"

#: Twirp error code -> HTTP status (Twirp spec, "Error codes").
HTTP_STATUS: dict[str, int] = {
    "canceled": 408,
    "unknown": 500,
    "invalid_argument": 400,
    "malformed": 400,
    "deadline_exceeded": 408,
    "not_found": 404,
    "bad_route": 404,
    "already_exists": 409,
    "permission_denied": 403,
    "unauthenticated": 401,
    "resource_exhausted": 429,
    "failed_precondition": 412,
    "aborted": 409,
    "out_of_range": 400,
    "unimplemented": 501,
    "internal": 500,
    "unavailable": 503,
    "dataloss": 500,
}

#: SIP final response -> Twirp code, as LiveKit maps a failed outbound INVITE
#: (livekit/protocol ``livekit/sip.go``, SIPStatus.GRPCStatus). Unlisted codes fall
#: back by class: 4xx and 6xx invalid_argument, 5xx failed_precondition.
SIP_TO_TWIRP: dict[int, str] = {
    300: "invalid_argument", 301: "not_found", 302: "not_found", 305: "invalid_argument",
    380: "invalid_argument",
    400: "invalid_argument", 401: "permission_denied", 402: "permission_denied",
    403: "permission_denied", 404: "not_found", 405: "invalid_argument", 406: "invalid_argument",
    407: "unauthenticated", 408: "deadline_exceeded", 409: "failed_precondition", 410: "not_found",
    411: "invalid_argument", 412: "failed_precondition", 413: "invalid_argument", 414: "invalid_argument",
    415: "invalid_argument", 416: "out_of_range", 417: "invalid_argument", 420: "invalid_argument",
    421: "invalid_argument", 422: "invalid_argument", 423: "invalid_argument",
    424: "invalid_argument", 425: "invalid_argument", 428: "unauthenticated",
    429: "invalid_argument", 430: "invalid_argument", 433: "permission_denied",
    436: "unauthenticated", 437: "unauthenticated", 438: "unauthenticated",
    439: "invalid_argument", 440: "resource_exhausted", 469: "invalid_argument",
    470: "permission_denied", 480: "resource_exhausted", 481: "not_found",
    482: "failed_precondition", 483: "failed_precondition", 484: "invalid_argument",
    485: "invalid_argument", 486: "resource_exhausted", 487: "aborted", 488: "invalid_argument",
    489: "invalid_argument", 491: "aborted", 493: "invalid_argument", 494: "unauthenticated",
    500: "failed_precondition", 501: "failed_precondition", 502: "failed_precondition",
    503: "failed_precondition", 504: "deadline_exceeded", 505: "invalid_argument",
    513: "invalid_argument",
    600: "resource_exhausted", 603: "permission_denied", 604: "not_found",
    606: "invalid_argument", 607: "permission_denied", 608: "permission_denied",
}

M = TypeVar("M", bound=Message)


class TwirpError(Exception):
    """An error answered as a Twirp JSON body."""

    def __init__(self, code: str, msg: str, meta: dict[str, str] | None = None) -> None:
        super().__init__(f"{code}: {msg}")
        if code not in HTTP_STATUS:
            raise ValueError(f"not a Twirp error code: {code}")
        self.code = code
        self.msg = msg
        self.meta = dict(meta or {})

    @property
    def status(self) -> int:
        return HTTP_STATUS[self.code]

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "msg": self.msg}
        if self.meta:
            body["meta"] = {key: str(value) for key, value in self.meta.items()}
        return body

    def response(self) -> web.Response:
        return json_response(self.body(), self.status)


def sip_error(code: int, reason: str) -> TwirpError:
    """A failed INVITE as LiveKit reports it: the mapped Twirp code plus SIP metadata.

    LiveKit also sends ``error_details`` (a base64 google.rpc.Status); it is left out here
    because livekit-api ignores it and google.rpc is no dependency of this project.
    """
    if code in SIP_TO_TWIRP:
        twirp_code = SIP_TO_TWIRP[code]
    elif 500 <= code < 600:
        twirp_code = "failed_precondition"
    else:
        twirp_code = "invalid_argument"
    return TwirpError(twirp_code, f"sip status: {code}: {reason}",
                      {"sip_status_code": str(code), "sip_status": reason})


def bad_route(msg: str, method: str, path: str) -> TwirpError:
    return TwirpError("bad_route", msg, {"twirp_invalid_route": f"{method} {path}"})


def encoding_of(content_type: str) -> str | None:
    """PROTOBUF or JSON for a request Content-Type, or None when Twirp does not speak it."""
    mime = content_type.split(";", 1)[0].strip().lower()
    return mime if mime in (PROTOBUF, JSON) else None


def decode(body: bytes, encoding: str, message_class: type[M]) -> M:
    """The request message; a body that does not parse is a ``malformed`` error."""
    message = message_class()
    try:
        if encoding == PROTOBUF:
            message.ParseFromString(body)
        else:
            json_format.Parse(body.decode("utf-8") or "{}", message, ignore_unknown_fields=True)
    except (DecodeError, json_format.ParseError, UnicodeDecodeError) as exc:
        kind = "protobuf" if encoding == PROTOBUF else "json"
        raise TwirpError("malformed", f"the {kind} request could not be decoded: {exc}") from None
    return message


def encode(message: Message, encoding: str) -> web.Response:
    if encoding == PROTOBUF:
        return web.Response(body=message.SerializeToString(), content_type=PROTOBUF)
    data = json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)
    return json_response(data)


def json_response(data: dict[str, Any], status: int = 200) -> web.Response:
    """JSON with exactly ``Content-Type: application/json``, as LiveKit's Twirp server writes it
    (twirp's generated ``writeError`` and JSON responses); LiveKit's Node SDK reads ``code`` and
    ``meta`` only when the header is exactly that, so no ``; charset=utf-8`` may follow."""
    return web.Response(body=json.dumps(data).encode("utf-8"), status=status, headers={"Content-Type": JSON})
