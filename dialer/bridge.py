"""Plain synchronous code run as a coroutine: how a worker runs the dial path on its event loop.

The dial path (``dialing.Dialer``) is written as plain calls, one step after another, and tests
drive it from threads with their own clock and sleep. In a worker each attempt instead runs in
its own greenlet on the LiveKit gateway's event loop (``run``): where the code would block on a
LiveKit request or a nap (``wait``, ``sleep``), its greenlet hands the awaitable to the loop and
is resumed with the result, so thousands of attempts share one thread without a thread hand-off
per request. Redis calls of a worker's store wait the same way (``redis_bridge``), sharing round trips.

The same code outside ``run`` (a test's thread, the CLI) simply blocks as before.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import greenlet

T = TypeVar("T")


class _Attempt(greenlet.greenlet):
    """A greenlet started by ``run``: the marker ``wait`` looks for."""


def bridged() -> bool:
    """True inside ``run``: waits must go through the event loop."""
    return isinstance(greenlet.getcurrent(), _Attempt)


def wait(awaitable: Awaitable[T]) -> T:
    """Wait for ``awaitable`` from synchronous code inside ``run``; its result or its exception."""
    current = greenlet.getcurrent()
    if not isinstance(current, _Attempt):
        raise RuntimeError("bridge.wait called outside bridge.run")
    return current.parent.switch(awaitable)


def sleep(seconds: float) -> None:
    """``time.sleep`` that, inside ``run``, lets the loop run other attempts meanwhile."""
    if bridged():
        wait(asyncio.sleep(seconds))
    else:
        time.sleep(seconds)


async def run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn(*args, **kwargs)`` as a coroutine on the running loop (see the module doc)."""
    child = _Attempt(fn, parent=greenlet.getcurrent())
    pending: Any = child.switch(*args, **kwargs)
    while not child.dead:
        try:
            value = await pending
        except BaseException as exc:
            pending = child.throw(exc)
        else:
            pending = child.switch(value)
    return pending
