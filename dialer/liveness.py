"""Heartbeats: who is alive, so that a campaign that cannot move says why.

Dial workers and beat leave a heartbeat in Redis every ``HEARTBEAT_PERIOD_S`` from a
background thread; the pacer and the reconciler leave one each time they run. Status
and ``dialer doctor`` read them and turn silence into a sentence that says what to
start. Times are the Redis server's clock, so skewed hosts do not look dead.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from enum import StrEnum

import redis

from .store import Store

log = logging.getLogger(__name__)

#: How often a worker or beat process says it is alive.
HEARTBEAT_PERIOD_S = 5.0
#: Silence longer than this means a process is gone.
STALE_AFTER_S = 30.0


class Role(StrEnum):
    WORKER = "worker"  #: a Celery worker consuming the dial queue
    BEAT = "beat"  #: Celery beat, which schedules the pacer and the reconciler
    PACER = "pacer"  #: a pacer run (beat scheduled it and a worker ran it)
    RECONCILER = "reconciler"  #: a reconciler run


#: What to do when nothing of a role has been seen.
REMEDIES = {
    Role.WORKER: "start one: `celery -A dialer worker` (or `docker compose up -d worker`)",
    Role.BEAT: "start exactly one: `celery -A dialer beat` (or `docker compose up -d beat`)",
    Role.PACER: "check that beat runs and a worker consumes the `control` queue",
    Role.RECONCILER: "check that beat runs and a worker consumes the `control` queue",
}
WHAT = {Role.WORKER: "dial worker", Role.BEAT: "beat", Role.PACER: "pacer run", Role.RECONCILER: "reconciler run"}


@dataclass(frozen=True)
class Seen:
    role: Role
    #: Processes seen within the stale limit.
    alive: int
    #: Seconds since the last heartbeat of any process of this role; None when never seen.
    silent_s: float | None

    def problem(self, stale_after_s: float) -> str | None:
        """A sentence saying what is wrong and what to do, or None when all is well."""
        if self.alive:
            return None
        since = "ever" if self.silent_s is None else f"for {self.silent_s:.0f} s"
        if self.silent_s is not None and self.silent_s <= stale_after_s:
            return None
        return f"no {WHAT[self.role]} seen {since}: {REMEDIES[self.role]}"


def beat(store: Store, role: Role, name: str) -> None:
    store.heartbeat(role.value, name)


def seen(store: Store, stale_after_s: float = STALE_AFTER_S) -> dict[Role, Seen]:
    out = {}
    for role in Role:
        ages = store.heartbeat_ages(role.value)
        alive = sum(1 for age in ages.values() if age <= stale_after_s)
        out[role] = Seen(role, alive, min(ages.values()) if ages else None)
    return out


def problems(store: Store, stale_after_s: float = STALE_AFTER_S, roles: tuple[Role, ...] = tuple(Role)) -> list[str]:
    """What stops a running campaign from moving, one sentence each."""
    found = seen(store, stale_after_s)
    return [problem for role in roles if (problem := found[role].problem(stale_after_s))]


class Heartbeat:
    """A daemon thread that beats for one process until stopped; Redis outages are survived."""

    def __init__(self, store: Store, role: Role, name: str, period_s: float = HEARTBEAT_PERIOD_S) -> None:
        self._store, self._role, self._name, self._period_s = store, role, name, period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{role}", daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self._period_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                beat(self._store, self._role, self._name)
            except redis.RedisError as exc:  # Redis restarting: beat again next period
                log.warning("heartbeat of %s %s failed: %s", self._role, self._name, exc)
            self._stop.wait(self._period_s)
