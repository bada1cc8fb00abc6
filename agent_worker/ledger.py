"""The agent's writes to the dialer's Redis: the do-not-call list at once, the result once.

The store is synchronous (redis-py); every call runs in a worker thread so the
agent's event loop never waits on Redis.
"""

from __future__ import annotations

import asyncio
import logging

from dialer.dialing import finish_call, mask
from dialer.models import CallResult
from dialer.store import Store

log = logging.getLogger(__name__)


class CallLedger:
    """One call's view of the store. ``finish`` writes through ``finish_call`` at most once."""

    def __init__(self, store: Store, call_id: str, phone_e164: str) -> None:
        self._store = store
        self.call_id = call_id
        self._phone = phone_e164
        self._lock = asyncio.Lock()
        self._written: str | None = None

    @property
    def written(self) -> bool:
        return self._written is not None

    async def add_to_dnc(self) -> None:
        """Put the callee on the do-not-call list now, not when the call ends."""
        await asyncio.to_thread(self._store.dnc_add, [self._phone])
        log.info("%s added to the do-not-call list", mask(self._phone), extra={"call_id": self.call_id})

    async def finish(self, result: CallResult) -> str:
        """Report the call's end; a second call changes nothing and returns the first answer."""
        async with self._lock:
            if self._written is None:
                self._written = await asyncio.to_thread(finish_call, self._store, self.call_id, result)
                log.info("call ended: %s %s (attempt %s)", result.outcome.value, result.disposition or "-",
                         self._written, extra={"call_id": self.call_id})
            return self._written
