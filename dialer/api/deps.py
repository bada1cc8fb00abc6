"""Dependencies: the settings, the store, and who is calling (a Bearer key or a dashboard session)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from .. import auth
from ..settings import Settings
from ..store import Store

SESSION_COOKIE = "dialer_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]


@dataclass(frozen=True)
class Caller:
    key: auth.ApiKey
    via_session: bool


def caller(request: Request, store: StoreDep) -> Caller:
    """A valid key from ``Authorization: Bearer``, or a dashboard session (with its CSRF token to change things)."""
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise auth.AuthError("use Authorization: Bearer <API key>")
        return Caller(auth.verify_key(store, secret.strip()), via_session=False)
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise auth.AuthError("missing API key: send Authorization: Bearer <API key>")
    session = auth.get_session(store, token)
    if request.method not in SAFE_METHODS:
        auth.check_csrf(session, request.headers.get(CSRF_HEADER))
    return Caller(session.key, via_session=True)


def writer(who: Annotated[Caller, Depends(caller)]) -> Caller:
    """A caller allowed to change things (not a read-only key)."""
    if who.key.read_only:
        raise auth.ForbiddenError(f"the API key {who.key.name!r} is read-only")
    return who


Reader = Annotated[Caller, Depends(caller)]
Writer = Annotated[Caller, Depends(writer)]
