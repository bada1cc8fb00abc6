"""The dashboard's pages and its sign-in: a session cookie (HttpOnly, SameSite=Strict) opened with a key.

The pages call the same /v1 routes as scripts do, authenticated by the cookie; every
state-changing call carries the session's CSRF token (``deps.caller`` checks it).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ... import auth, control, uploads
from ...errors import NotFoundError
from .. import pages
from ..deps import SESSION_COOKIE, StoreDep

router = APIRouter(include_in_schema=False)


def _session(request: Request, store: StoreDep) -> auth.Session | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    try:
        return auth.get_session(store, token)
    except auth.AuthError:
        return None


def _html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers={
        "Cache-Control": "no-store", "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin",
        "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"})


def _sign_in() -> Response:
    return RedirectResponse("/", status_code=303)


@router.get("/")
def home(request: Request, store: StoreDep) -> Response:
    session = _session(request, store)
    if session is None:
        return _html(pages.sign_in())
    return _html(pages.home(control.list_campaigns(store), session.csrf_token, session.key.read_only))


@router.post("/session")
def sign_in(request: Request, store: StoreDep, key: Annotated[str, Form()] = "") -> Response:
    try:
        token, _ = auth.open_session(store, key.strip())
    except auth.AuthError:
        return _html(pages.sign_in("That key is not valid (or was revoked)."), status=401)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(SESSION_COOKIE, token, max_age=auth.SESSION_TTL_S, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path="/")
    return response


@router.post("/logout")
def sign_out(request: Request, store: StoreDep, csrf: Annotated[str, Form()] = "") -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    session = _session(request, store)
    if token and session:
        auth.check_csrf(session, csrf)
        auth.close_session(store, token)
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/campaigns/{campaign_id}")
def campaign(campaign_id: str, request: Request, store: StoreDep) -> Response:
    session = _session(request, store)
    if session is None:
        return _sign_in()
    try:
        data = control.show(store, campaign_id)
    except NotFoundError:
        data = uploads.ingest_record(store, campaign_id)
    return _html(pages.campaign(data, session.csrf_token, session.key.read_only))


@router.get("/dnc")
def dnc(request: Request, store: StoreDep) -> Response:
    session = _session(request, store)
    if session is None:
        return _sign_in()
    return _html(pages.dnc(control.dnc_list(store), session.csrf_token, session.key.read_only))
