"""The sandbox's HTTP server: LiveKit's Twirp API on ``/twirp/``, test hooks on ``/sandbox/``.

    POST   /twirp/livekit.<Service>/<Method>   the emulated LiveKit server API
    GET    /sandbox/health                     readiness
    GET    /sandbox/calls                      the INVITE log, a JSON list
    DELETE /sandbox/calls                      clear the log and the per-number INVITE counts
    GET    /sandbox/faults, PUT /sandbox/faults   read or replace the fault knobs (JSON)
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import random
import signal
import time
from pathlib import Path
from typing import Any

from aiohttp import web
from google.protobuf.message import Message
from pydantic import ValidationError

from . import auth
from .api import ROUTES, CallContext, LiveKitApi
from .calls import CallSimulator
from .records import CallRecord, ConversationSink
from .rooms import RoomStore
from .scenario import Faults, Scenario, load_scenario
from .twirp import TwirpError, bad_route, decode, encode, encoding_of

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
#: How often rooms past their empty or departure timeout are closed.
SWEEP_INTERVAL_S = 1.0
#: How long stopping waits for requests still being answered.
SHUTDOWN_TIMEOUT_S = 2.0
REQUEST_ID_HEADER = "X-Livekit-Request-Id"


class SandboxServer:
    """An in-process LiveKit API emulator with simulated callees."""

    def __init__(self, scenario: Scenario, api_key: str, api_secret: str,
                 conversation_sink: ConversationSink | None = None) -> None:
        if not api_key or not api_secret:
            raise ValueError("the sandbox needs an API key and secret")
        self.api_key = api_key
        self.api_secret = api_secret
        self.rooms = RoomStore()
        self.simulator = CallSimulator(self.rooms, scenario, conversation_sink)
        self.api = LiveKitApi(self.rooms, self.simulator)
        self.scenario = scenario
        self._runner: web.AppRunner | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.host = DEFAULT_HOST
        self.port = 0

    # -- the Python API -------------------------------------------------------------------

    @property
    def scenario(self) -> Scenario:
        return self.simulator.scenario

    @scenario.setter
    def scenario(self, scenario: Scenario) -> None:
        """Swap the callees' scenario (calls in progress keep theirs) and its fault knobs."""
        self.simulator.scenario = scenario
        self.set_faults(scenario.faults)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def calls(self) -> list[CallRecord]:
        """A snapshot of the INVITE log, oldest first."""
        return [dataclasses.replace(record) for record in self.simulator.records]

    def clear_calls(self) -> int:
        return self.simulator.clear()

    def set_faults(self, faults: Faults) -> None:
        self.faults = faults
        self._dice = random.Random(faults.seed)

    async def start(self, host: str = DEFAULT_HOST, port: int = 0) -> int:
        """Listen on ``host:port`` (0 picks a free port); returns the bound port."""
        if self._runner is not None:
            raise RuntimeError("the sandbox is already running")
        app = web.Application()
        app.router.add_get("/sandbox/health", self._health)
        app.router.add_get("/sandbox/calls", self._list_calls)
        app.router.add_delete("/sandbox/calls", self._clear_calls)
        app.router.add_get("/sandbox/faults", self._get_faults)
        app.router.add_put("/sandbox/faults", self._put_faults)
        app.router.add_route("*", "/twirp/{route:.*}", self._twirp)
        app.router.add_route("*", "/{tail:.*}", self._unknown_route)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        self.host = host
        self.port = _bound_port(runner) or port
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep(), name="sandbox-sweeper")
        log.info("sandbox listening on %s", self.url)
        return self.port

    async def stop(self) -> None:
        """Cancel every call in progress and stop listening."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        await self.simulator.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- Twirp ----------------------------------------------------------------------------

    async def _twirp(self, request: web.Request) -> web.StreamResponse:
        if self.faults.latency_s > 0:
            await asyncio.sleep(self.faults.latency_s)
        fail_before = self._dice.random() < self.faults.api_error_rate
        fail_after = self._dice.random() < self.faults.error_after_rate
        try:
            if fail_before:
                raise TwirpError("unavailable", "sandbox: injected failure before the call")
            try:
                grants = auth.verify(request.headers.get("Authorization"), self.api_key,
                                     self.api_secret)
            except auth.AuthError as exc:
                return web.Response(status=401, text=str(exc))  # LiveKit answers in plain text
            response = await self._dispatch(request, grants, fail_after)
        except TwirpError as exc:
            return exc.response()
        return response

    async def _dispatch(self, request: web.Request, grants: auth.Grants,
                        fail_after: bool) -> web.StreamResponse:
        path = request.match_info["route"]
        route = ROUTES.get(path)
        if request.method != "POST":
            raise bad_route(f"unsupported method {request.method} (only POST is allowed)",
                            request.method, request.path)
        if route is None:
            raise bad_route(f"no handler for path {request.path!r}", request.method, request.path)
        encoding = encoding_of(request.headers.get("Content-Type", ""))
        if encoding is None:
            raise bad_route(f"unexpected Content-Type: {request.headers.get('Content-Type', '')!r}",
                            request.method, request.path)
        message = decode(await request.read(), encoding, route.request)
        context = CallContext(grants=grants, request_id=request.headers.get(REQUEST_ID_HEADER, ""))
        result: Message | None = None
        try:
            result = await route.handler(self.api, message, context)
        except TwirpError:
            if not fail_after:
                raise
        if fail_after or result is None:
            # Replaces whatever the call answered, success or error: the ambiguous case.
            self._flag_error_after(context.request_id)
            raise TwirpError("unavailable", "sandbox: injected failure after the call")
        return encode(result, encoding)

    def _flag_error_after(self, request_id: str) -> None:
        for record in reversed(self.simulator.records):
            if request_id and record.request_id == request_id:
                record.api_error_after = True
                return

    async def _unknown_route(self, request: web.Request) -> web.StreamResponse:
        return bad_route(f"no handler for path {request.path!r}", request.method,
                         request.path).response()

    # -- test hooks -----------------------------------------------------------------------

    async def _health(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"status": "ok", "rooms": len(self.rooms),
                                  "calls_in_progress": self.simulator.in_progress,
                                  "calls_logged": len(self.simulator.records)})

    async def _list_calls(self, request: web.Request) -> web.StreamResponse:
        return web.json_response([record.to_dict() for record in self.simulator.records])

    async def _clear_calls(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"cleared": self.clear_calls()})

    async def _get_faults(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.faults.model_dump())

    async def _put_faults(self, request: web.Request) -> web.StreamResponse:
        try:
            data: Any = json.loads(await request.read() or b"{}")
            faults = Faults.model_validate(data)
        except (ValueError, ValidationError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        self.set_faults(faults)
        return web.json_response(faults.model_dump())

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            for name in self.rooms.expired(time.time()):
                log.info("room %s closed after its empty timeout", name)
                self.simulator.delete_room(name)


def _bound_port(runner: web.AppRunner) -> int | None:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return None


def serve(host: str, port: int, scenario_path: Path | None, api_key: str, api_secret: str,
          conversation_sink: ConversationSink | None = None) -> None:
    """Run the sandbox until SIGINT or SIGTERM; prints the URL it listens on."""
    scenario = load_scenario(scenario_path)
    asyncio.run(_serve(host, port, scenario, api_key, api_secret, conversation_sink))


async def _serve(host: str, port: int, scenario: Scenario, api_key: str, api_secret: str,
                 conversation_sink: ConversationSink | None) -> None:
    server = SandboxServer(scenario, api_key, api_secret, conversation_sink)
    await server.start(host, port)
    print(f"LiveKit sandbox listening on {server.url}", flush=True)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopped.set)
    try:
        await stopped.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await server.stop()
