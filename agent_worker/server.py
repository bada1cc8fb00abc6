"""The livekit-agents ``AgentServer``: registered under ``AGENT_NAME`` for explicit dispatch only.

The dialer dispatches the agent to each call's room by name with the call's
``DispatchMetadata``; the server never joins a room on its own. Settings are read once
by ``python -m agent_worker`` and handed to every job process through ``setup_fnc``.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable

from livekit.agents import AgentServer, JobContext, JobProcess

from dialer.settings import Settings
from dialer.store import Store

from .call import CallDeps, run_call
from .control import LiveKitCallControl
from .models import new_screener, new_session
from .screening import AmdScreener

#: Where a job process keeps the settings it was started with.
SETTINGS_KEY = "settings"


def websocket_url(url: str) -> str:
    """LiveKit's URL as the agent connects to it: ``ws(s)://`` for ``http(s)://``."""
    return "ws" + url[4:] if url.startswith("http") else url


def build_server(settings: Settings) -> AgentServer:
    """The worker, registered under ``settings.agent_name``; jobs get these same settings."""
    server = AgentServer(
        ws_url=websocket_url(settings.livekit_url) if settings.livekit_url else None,
        api_key=settings.livekit_api_key,
        api_secret=settings.livekit_api_secret,
        setup_fnc=functools.partial(_setup_process, settings),
        # the call's shutdown cleanup is budgeted against this (agent_worker.call.shutdown_budget_s)
        shutdown_process_timeout=settings.agent_shutdown_timeout_s,
    )
    server.rtc_session(entrypoint, agent_name=settings.agent_name)
    return server


def _setup_process(settings: Settings, proc: JobProcess) -> None:
    proc.userdata[SETTINGS_KEY] = settings


async def entrypoint(ctx: JobContext) -> None:
    """One dispatched call (see ``agent_worker.call``)."""
    settings: Settings = ctx.proc.userdata[SETTINGS_KEY]
    await run_call(ctx, production_deps(settings))


def production_deps(settings: Settings) -> CallDeps:
    """Redis, LiveKit and OpenAI as configured; nothing connects until it is used."""
    store = Store.from_url(settings.redis_url)
    control = LiveKitCallControl.from_settings(settings)
    screen = new_screener(settings)

    async def close_store() -> None:
        await asyncio.to_thread(store.redis.close)

    closers: list[Callable[[], Awaitable[None]]] = [control.aclose, close_store]
    if isinstance(screen, AmdScreener):
        closers.append(screen.aclose)
    return CallDeps(settings=settings, store=store, control=control,
                    new_session=functools.partial(new_session, settings), screen=screen, closers=closers)
