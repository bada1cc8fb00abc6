"""API keys and dashboard sessions: stored only as hashes, owned (keys included) by this module.

A key reads ``dk_<id>_<secret>``. Redis keeps, per id, the key's name, whether it is read-only
and the SHA-256 of the whole key; the key itself is printed once at creation and never stored
or logged. A dashboard session is a random token kept in an HttpOnly cookie; Redis keeps its
hash, the key id it was opened with and its CSRF token, and forgets it after ``SESSION_TTL_S``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from .errors import NotFoundError, UserError
from .store import PREFIX, Store

#: How long a dashboard session lasts without signing in again.
SESSION_TTL_S = 12 * 3600
KEY_PREFIX = "dk"


class AuthKeys:
    """The Redis keys this module owns."""

    api_keys = f"{PREFIX}:apikeys"  #: hash key id -> json {name, hash, read_only, created_at}

    @staticmethod
    def session(token_hash: str) -> str:
        return f"{PREFIX}:session:{token_hash}"  #: json {key_id, csrf}, expires after SESSION_TTL_S


class AuthError(UserError):
    """No key, or a key that is unknown or revoked (HTTP 401)."""


class ForbiddenError(UserError):
    """A read-only key asked to change something, or a CSRF token is missing (HTTP 403)."""


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    read_only: bool
    created_at: float

    def to_json_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "read_only": self.read_only, "created_at": self.created_at}


@dataclass(frozen=True)
class Session:
    key: ApiKey
    csrf_token: str


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(store: Store, name: str, read_only: bool = False) -> tuple[ApiKey, str]:
    """A new key; returns it with the only copy of its secret text."""
    name = name.strip()
    if not name:
        raise UserError("an API key needs a name")
    key_id = secrets.token_hex(6)
    secret = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
    key = ApiKey(key_id, name, read_only, time.time())
    store.redis.hset(AuthKeys.api_keys, key_id, json.dumps({**key.to_json_dict(), "hash": _digest(secret)}))
    return key, secret


def list_keys(store: Store) -> list[ApiKey]:
    keys = []
    for raw in store.redis.hvals(AuthKeys.api_keys):
        data = json.loads(raw)
        keys.append(ApiKey(data["id"], data["name"], bool(data["read_only"]), float(data["created_at"])))
    return sorted(keys, key=lambda key: key.created_at)


def revoke_key(store: Store, id_or_name: str) -> list[ApiKey]:
    """Revoke the key with this id, or every key with this name; NotFoundError if none."""
    gone = [key for key in list_keys(store) if id_or_name in (key.id, key.name)]
    if not gone:
        raise NotFoundError(f"no API key with id or name {id_or_name!r} (see `dialer api-key list`)")
    store.redis.hdel(AuthKeys.api_keys, *[key.id for key in gone])
    return gone


def verify_key(store: Store, secret: str) -> ApiKey:
    """The key ``secret`` is, or AuthError."""
    parts = secret.split("_")
    if len(parts) < 3 or parts[0] != KEY_PREFIX:
        raise AuthError("invalid API key")
    raw = store.redis.hget(AuthKeys.api_keys, parts[1])
    if raw is None:
        raise AuthError("invalid API key")
    data = json.loads(raw)
    if not hmac.compare_digest(data["hash"], _digest(secret)):
        raise AuthError("invalid API key")
    return ApiKey(data["id"], data["name"], bool(data["read_only"]), float(data["created_at"]))


def open_session(store: Store, secret: str) -> tuple[str, Session]:
    """Sign in with a key: returns the session token (for the cookie) and the session."""
    key = verify_key(store, secret)
    token = secrets.token_urlsafe(32)
    session = Session(key, secrets.token_urlsafe(24))
    store.redis.set(AuthKeys.session(_digest(token)), json.dumps({"key_id": key.id, "csrf": session.csrf_token}),
                    ex=SESSION_TTL_S)
    return token, session


def get_session(store: Store, token: str) -> Session:
    """The session of a cookie; AuthError when it expired or its key was revoked."""
    raw = store.redis.get(AuthKeys.session(_digest(token)))
    if raw is None:
        raise AuthError("not signed in (the session expired or was closed)")
    data = json.loads(raw)
    key_raw = store.redis.hget(AuthKeys.api_keys, data["key_id"])
    if key_raw is None:
        raise AuthError("the key this session signed in with was revoked")
    key = json.loads(key_raw)
    return Session(ApiKey(key["id"], key["name"], bool(key["read_only"]), float(key["created_at"])), data["csrf"])


def close_session(store: Store, token: str) -> None:
    store.redis.delete(AuthKeys.session(_digest(token)))


def check_csrf(session: Session, token: str | None) -> None:
    if not token or not hmac.compare_digest(session.csrf_token, token):
        raise ForbiddenError("missing or wrong CSRF token; reload the page")
