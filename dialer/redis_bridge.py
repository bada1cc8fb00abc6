"""A redis-py client whose commands, inside ``bridge.run``, share round trips on the event loop.

The store is written against the synchronous ``redis.Redis``. On a worker's event loop
(``bridge.run``) every synchronous round trip stops all the attempts on the loop until Redis
answers: profiled, the loop spent three quarters of its time in Redis calls, half of it waiting
on the socket. Inside ``bridge.run`` this client queues the command instead and hands the wait
to the loop; once the attempts that are ready have run, one pipeline (no transaction) carries
every queued command to Redis, and each attempt resumes with its own reply. So attempts that
reach Redis together pay one round trip between them, as if they had sent their commands at the
same moment on separate connections. (``redis.asyncio`` was tried first: it overlapped the
waits but cost 2-3 times the CPU per command, and the worker ran slower.)

The round trip runs on the loop's own thread while round trips are fast (under
``INLINE_MAX_S``): handing it to a thread and back cost more CPU than a loopback round trip takes
(profiled: 15% of the dial path's CPU). Once one is slower (a remote or busy Redis), the next
ones go through an I/O thread, so the loop runs on while Redis answers, until one is fast again.

Scripts (``register_script``) work unchanged: redis-py's ``Script`` calls ``evalsha`` and, on
NOSCRIPT, ``script_load`` through this client. A ``pipeline(transaction=False)`` made inside
``bridge.run`` joins the shared round trip as a group; one of its scripts that the server does
not know (after a restart) failed alone and is loaded and sent again alone. Anywhere else, and
for transactions, this is the plain synchronous client. One event loop at a time uses it (a
worker's LiveKit loop).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import time
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.commands.core import Script
from redis.exceptions import NoScriptError

from . import bridge

#: A round trip faster than this is made on the loop's thread next time (see the module doc).
INLINE_MAX_S = 0.002
#: Command methods that are not one command each, so never queued.
_NOT_QUEUED = frozenset({"pipeline", "transaction", "pubsub", "monitor", "lock", "register_script"})


@functools.cache
def _queueable(name: str) -> bool:
    """A redis-py command method (defined by one of ``redis.commands``' classes) that a pipeline
    buffers as one command: not a helper such as ``get_encoder``, which a pipeline would run at
    once and so shift every reply after it."""
    if name in _NOT_QUEUED or name.endswith("_iter"):
        return False
    for klass in redis.Redis.__mro__:
        if name in vars(klass):
            return klass.__module__.startswith("redis.commands")
    return False


@dataclass
class _Group:
    """Commands of one caller that go in the next shared round trip, and where its replies go."""

    commands: list[tuple[str, tuple[Any, ...], dict[str, Any]]]
    replies: asyncio.Future[list[Any]] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class BridgedRedis:
    """``redis.Redis`` that queues commands made inside ``bridge.run`` (see the module doc)."""

    def __init__(self, client: redis.Redis) -> None:
        self.sync = client
        self._queued: list[_Group] = []
        self._sending = False
        self._io: concurrent.futures.ThreadPoolExecutor | None = None
        self._scripts: dict[str, str] = {}
        #: How long the last round trip took (written by whichever thread made it).
        self._last_round_trip_s = 0.0
        self.inline_max_s = INLINE_MAX_S

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> BridgedRedis:
        return cls(redis.Redis.from_url(url, **kwargs))

    def register_script(self, script: str) -> Script:
        registered = Script(self, script)  # type: ignore[arg-type]  # it calls evalsha and script_load
        self._scripts[registered.sha] = script
        return registered

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Any:
        if transaction or not bridge.bridged():
            return self.sync.pipeline(transaction, shard_hint)
        return _Pipeline(self)

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.sync, name)
        if not bridge.bridged() or not _queueable(name):
            return target

        def queued(*args: Any, **kwargs: Any) -> Any:
            [reply] = self.send([(name, args, kwargs)])
            if isinstance(reply, Exception):
                raise reply
            return reply

        return queued

    def send(self, commands: list[tuple[str, tuple[Any, ...], dict[str, Any]]]) -> list[Any]:
        """Queue ``commands`` for the next shared round trip and wait for their replies (an
        exception in place of a command that failed); a failed connection is raised."""
        group = _Group(commands)
        self._queued.append(group)
        if not self._sending:
            self._sending = True
            asyncio.get_running_loop().call_soon(self._flush)
        return bridge.wait(group.replies)

    def _flush(self) -> None:
        """Send what is queued: here while round trips are fast, else from the I/O thread while
        the loop goes on. One round trip is in flight at a time: what is queued during it goes in
        the next one."""
        groups, self._queued = self._queued, []
        loop = asyncio.get_running_loop()
        if self._last_round_trip_s < self.inline_max_s:
            done: asyncio.Future[list[Any]] = loop.create_future()
            try:
                done.set_result(self._round_trip(groups))
            except Exception as exc:  # the connection failed: handed to the callers below
                done.set_exception(exc)
            self._deliver(groups, done)
            return
        if self._io is None:
            self._io = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="redis-io")
        sent = loop.run_in_executor(self._io, self._round_trip, groups)
        sent.add_done_callback(lambda done: self._deliver(groups, done))

    def _round_trip(self, groups: list[_Group]) -> list[Any]:
        started = time.perf_counter()
        try:
            pipe = self.sync.pipeline(transaction=False)
            for group in groups:
                for name, args, kwargs in group.commands:
                    getattr(pipe, name)(*args, **kwargs)
            replies = pipe.execute(raise_on_error=False)
        finally:
            self._last_round_trip_s = time.perf_counter() - started
        if len(replies) != sum(len(group.commands) for group in groups):
            # A call the pipeline did not buffer would hand every later caller another's reply.
            raise RuntimeError("a shared round trip got a different number of replies than commands")
        return replies

    def _deliver(self, groups: list[_Group], done: asyncio.Future[list[Any]]) -> None:
        failure = done.exception()
        start = 0
        for group in groups:
            replies = done.result()[start:start + len(group.commands)] if failure is None else []
            start += len(group.commands)
            if group.replies.done():
                continue  # its attempt was cancelled (a worker shutting down)
            if failure is not None:  # the connection failed: every caller sees it, as it would alone
                group.replies.set_exception(failure)
            else:
                group.replies.set_result(replies)
        if self._queued:
            self._flush()
        else:
            self._sending = False

    def reload(self, command: tuple[str, tuple[Any, ...], dict[str, Any]]) -> Any:
        """Send again, alone, a queued ``evalsha`` that failed with NOSCRIPT, once its script is loaded."""
        name, args, kwargs = command
        self.script_load(self._scripts[args[0]])
        return getattr(self, name)(*args, **kwargs)


class _Pipeline:
    """A ``pipeline(transaction=False)`` inside ``bridge.run``: its commands are one group of the
    shared round trip."""

    def __init__(self, owner: BridgedRedis) -> None:
        self._owner = owner
        self._commands: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        if not _queueable(name):
            raise AttributeError(f"{name} is not a command a shared round trip can carry")

        def buffer(*args: Any, **kwargs: Any) -> _Pipeline:
            self._commands.append((name, args, kwargs))
            return self

        return buffer

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        commands, self._commands = self._commands, []
        replies = self._owner.send(commands) if commands else []
        for index, reply in enumerate(replies):
            if isinstance(reply, NoScriptError):
                try:
                    replies[index] = self._owner.reload(commands[index])
                except redis.RedisError as exc:
                    replies[index] = exc
        if raise_on_error:
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
        return replies

    def __enter__(self) -> _Pipeline:
        return self

    def __exit__(self, *_: Any) -> None:
        self._commands.clear()
