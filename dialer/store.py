"""The one owner of Redis state: every key name and every state transition.

Nothing else in the project builds a key. Transitions that touch several keys
run as Lua scripts (``dialer/lua/*.lua``) so they are atomic.
"""

from __future__ import annotations

import functools
import json
import math
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, TypeVar

import orjson
import redis
from redis.commands.core import Script
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_exponential

from . import bridge
from .config import CampaignConfig
from .errors import NotFoundError, StateError
from .models import NEXT_NUMBER_OUTCOMES, OUTCOME_PREFERENCE, AttemptState, CampaignState, Outcome
from .redis_bridge import BridgedRedis
from .webhooks import subscribed

T = TypeVar("T")

PREFIX = "dialer"
#: Contacts written per Redis round trip by the ingest.
WRITE_BATCH = 2_000
#: Fields read per HSCAN / HMGET page.
READ_BATCH = 5_000
#: How long an ingest may go silent before its leftovers count as abandoned.
INGEST_STALE_S = 3_600

#: Heartbeats older than this are forgotten.
HEARTBEAT_KEEP_S = 86_400

#: ``models.OUTCOME_PREFERENCE`` as finalise.lua reads it.
_OUTCOME_PREFERENCE = ",".join(OUTCOME_PREFERENCE)

#: Counters kept in the campaign hash for the ingest summary.
INGEST_COUNTERS = ("rows", "accepted", "rejected", "duplicates", "suppressed")


def _json_fields(fields: dict[str, Any] | None) -> str:
    """Fields for a Lua script to merge; None is left out (Lua would see a truthy cjson.null)."""
    return orjson.dumps({k: v for k, v in (fields or {}).items() if v is not None}).decode()


class Keys:
    """Every Redis key the dialer uses."""

    campaigns = f"{PREFIX}:campaigns"  #: zset campaign id -> created_at
    ingesting = f"{PREFIX}:ingesting"  #: zset campaign id -> last heartbeat
    dnc = f"{PREFIX}:dnc"  #: set of E.164 numbers never to call

    @staticmethod
    def campaign(cid: str) -> str:
        return f"{PREFIX}:campaign:{cid}"  #: hash of campaign fields

    @staticmethod
    def contacts(cid: str) -> str:
        return f"{PREFIX}:campaign:{cid}:contacts"  #: hash contact id -> contact json

    @staticmethod
    def numbers(cid: str) -> str:
        return f"{PREFIX}:campaign:{cid}:numbers"  #: hash e164 -> contact id

    @staticmethod
    def rejects(cid: str) -> str:
        return f"{PREFIX}:campaign:{cid}:rejects"  #: list of skipped-row json

    @staticmethod
    def caller_turns(cid: str) -> str:
        return f"{PREFIX}:campaign:{cid}:caller_turns"  #: hash caller-ID pool -> next turn

    @staticmethod
    def due(cid: str) -> str:
        return f"{PREFIX}:campaign:{cid}:due"  #: zset contact id -> earliest dial time

    @staticmethod
    def status(cid: str) -> str:
        return f"{PREFIX}:campaign:{cid}:status"  #: hash contact id -> contact status json

    @staticmethod
    def attempts(cid: str) -> str:
        return f"{PREFIX}:campaign:{cid}:attempts"  #: hash "contact:seq" -> attempt json (the ledger)

    @staticmethod
    def results(cid: str) -> str:
        return f"{PREFIX}:campaign:{cid}:results"  #: hash "contact:seq" -> call result json

    @staticmethod
    def progress(cid: str) -> str:
        return f"{PREFIX}:campaign:{cid}:progress"  #: hash of counters (final, in_flight, outcome:x)

    @staticmethod
    def active(cid: str) -> str:
        return f"{PREFIX}:campaign:{cid}:active"  #: zset "contact:seq" -> lease expiry

    @staticmethod
    def rate(scope: str) -> str:
        return f"{PREFIX}:rate:{scope}"  #: zset of recent INVITE times (sliding window, server clock)

    @staticmethod
    def bucket(scope: str) -> str:
        return f"{PREFIX}:bucket:{scope}"  #: hash tokens/at: the pacer's release budget (token bucket)

    @staticmethod
    def trunk_active(trunk: str) -> str:
        return f"{PREFIX}:trunk:{trunk}:active"  #: zset "cid:contact:seq" -> lease expiry

    @staticmethod
    def breaker(cid: str, reason: str = "") -> str:
        """zset of the campaign's recent attempt endings (``reason``: only failures for it)."""
        return f"{PREFIX}:campaign:{cid}:breaker" + (f":{reason}" if reason else "")

    @staticmethod
    def trunk_backoff(trunk: str) -> str:
        return f"{PREFIX}:trunk:{trunk}:backoff"  #: hash factor/at: the trunk's pace after capacity refusals

    @staticmethod
    def snapshot(token: str, name: str) -> str:
        return f"{PREFIX}:snapshot:{token}:{name}"  #: a frozen copy of a hash, for a report

    @staticmethod
    def heartbeats(role: str) -> str:
        return f"{PREFIX}:heartbeats:{role}"  #: zset process name -> last heartbeat (server clock)

    @staticmethod
    def webhooks(cid: str) -> str:
        return f"{PREFIX}:campaign:{cid}:webhooks"  #: hash delivery id -> webhook delivery json

    @staticmethod
    def webhook_stats(cid: str) -> str:
        return f"{PREFIX}:campaign:{cid}:webhook_stats"  #: hash created/delivered/failed/replayed counts

    webhook_outbox = f"{PREFIX}:webhooks:outbox"  #: list of event json, written with the fact they tell
    webhook_due = f"{PREFIX}:webhooks:due"  #: zset "cid|delivery id" -> when to try it (server clock)
    webhook_in_flight = f"{PREFIX}:webhooks:in_flight"  #: zset "cid|delivery id" -> claim's lease expiry
    webhook_lock = f"{PREFIX}:lock:webhooks"  #: the single active webhook dispatcher
    metrics = f"{PREFIX}:metrics"  #: hash of process-wide histograms ("name:le:bound", "name:sum")
    leases = f"{PREFIX}:leases"  #: zset "cid:contact:seq" -> lease expiry, for the reconciler
    running = f"{PREFIX}:running"  #: set of running campaign ids
    pacer_lock = f"{PREFIX}:lock:pacer"  #: the single active pacer
    reconciler_lock = f"{PREFIX}:lock:reconciler"  #: the single active reconciler

    @classmethod
    def all_for(cls, cid: str) -> list[str]:
        return [
            cls.campaign(cid), cls.contacts(cid), cls.numbers(cid), cls.rejects(cid), cls.due(cid),
            cls.status(cid), cls.attempts(cid), cls.results(cid), cls.progress(cid), cls.active(cid),
            cls.caller_turns(cid), cls.webhooks(cid), cls.webhook_stats(cid),
        ]


#: How long a report's snapshot may live if the report dies before removing it.
SNAPSHOT_TTL_S = 3_600
#: The hashes a snapshot can copy.
SNAPSHOT_PARTS = ("status", "results", "attempts")


@dataclass(frozen=True)
class Snapshot:
    """A report's frozen view of one campaign (see ``Store.snapshot``)."""

    store: Store
    campaign_id: str
    keys: dict[str, str]
    progress: dict[str, int]

    def statuses(self, contact_ids: Sequence[int]) -> list[dict[str, Any] | None]:
        return self.store.hash_json(self.keys["status"], [str(i) for i in contact_ids])

    def results(self, members: Sequence[str]) -> list[dict[str, Any] | None]:
        return self.store.hash_json(self.keys["results"], members)

    def status_records(self, contact_ids: Sequence[int]) -> list[bytes | None]:
        """The statuses as stored (JSON bytes), for a reader that decodes a batch at once."""
        return self.store.hash_raw(self.keys["status"], contact_ids)

    def result_records(self, members: Sequence[str]) -> list[bytes | None]:
        return self.store.hash_raw(self.keys["results"], members)

    def iter_attempts(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for member, raw in self.store.redis.hscan_iter(self.keys["attempts"], count=READ_BATCH):
            yield _text(member), orjson.loads(raw)


#: How long a ledger write that records what happened to a call keeps trying through a Redis
#: outage (a restart, a failover) before it gives up.
REDIS_OUTAGE_S = 120.0
#: The wait after a first failure (tenacity's back-off follows).
OUTAGE_FIRST_WAIT_S = 0.2

#: Ledger writes that record a fact about a call (answered, ended, failed) must not be lost to
#: a Redis restart: they are compare-and-set scripts, so running one again is harmless.
_outage_retry = retry(
    retry=retry_if_exception_type((redis.ConnectionError, redis.TimeoutError)),
    wait=wait_exponential(multiplier=0.2, max=2.0),
    stop=stop_after_delay(REDIS_OUTAGE_S),
    sleep=bridge.sleep,  # on a worker's event loop, the other attempts go on meanwhile
    reraise=True,
)


def through_outages(fn: Callable[..., T]) -> Callable[..., T]:
    """Call ``fn``; if Redis is unreachable, keep calling it (with back-off) for up to
    ``REDIS_OUTAGE_S``. tenacity only after a first failure: its set-up on every call was a few
    percent of a dial attempt's CPU."""
    retried = _outage_retry(fn)

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError):
            bridge.sleep(OUTAGE_FIRST_WAIT_S)
            return retried(*args, **kwargs)

    return call


@dataclass(frozen=True)
class Ending:
    """An attempt's ending as the circuit breaker counts it (``Store.count_ending``)."""

    reason: str
    window_s: float
    min_attempts: int
    failure_ratio: float
    pause_reason: str


@dataclass(frozen=True)
class Claim:
    """What ``Store.claim`` found."""

    #: 'ok', or the state the attempt really was in.
    outcome: str
    contact: dict[str, Any] | None
    status: dict[str, Any] | None
    #: The attempt was queued by the Redis process that took the claim: no restart or failover
    #: between them, so no earlier claim of it can have been lost (its room holds no call).
    same_run: bool


#: A waiter for a calls-per-second slot may come back this late, at least, and still take it.
MIN_RATE_SLACK_S = 0.02


@dataclass(frozen=True)
class RateLimit:
    """At most ``events`` INVITEs per ``window_s`` seconds in ``scope`` (0 events: no limit)."""

    scope: str
    events: int
    window_s: float
    #: The jitter the window was lengthened by: how late a waiter may still take its slot.
    guard_s: float = 0.0

    @classmethod
    def per_second(cls, scope: str, calls_per_second: float, guard_s: float = 0.0) -> RateLimit:
        """A fractional rate as whole events over a longer window: 0.5/s is 1 per 2 s.
        ``guard_s`` lengthens the window by the jitter between admitting an INVITE and its arrival."""
        if calls_per_second <= 0:
            return cls.none()
        events = max(1, math.ceil(calls_per_second))
        return cls(scope, events, events / calls_per_second + guard_s, guard_s)

    @classmethod
    def none(cls) -> RateLimit:
        return cls("", 0, 0.0)


@dataclass(frozen=True)
class Pacing:
    """The pacer's release budgets for one campaign: token buckets in calls per second."""

    campaign_rate: float
    campaign_burst: float
    trunk_rate: float = 0.0
    trunk_burst: float = 0.0
    #: Campaigns on the trunk still to be paced in this run, this one included.
    trunk_sharers: int = 1

    @classmethod
    def unlimited(cls) -> Pacing:
        return cls(campaign_rate=1e9, campaign_burst=1e9)


@dataclass(frozen=True)
class QueueRequest:
    """One campaign's share of a pacer run (see ``Store.queue_attempts_many``)."""

    cid: str
    trunk: str
    #: Due contacts inside their calling window, to become queued attempts.
    contact_ids: list[int]
    lease_s: float
    max_concurrent: int
    trunk_max_concurrent: int
    pacing: Pacing | None = None
    #: Contacts whose window is closed: contact id -> when it opens (re-scored first).
    later: dict[int, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Observation:
    """One value for a histogram kept in ``Keys.metrics`` (see ``Store.observe``)."""

    name: str
    value: float
    buckets: tuple[float, ...]

    def fields(self) -> list[str]:
        """The bucket fields the value counts in, then the sum's field and the value (a script's
        arguments: every field but the last two gets +1, the sum field gets the value)."""
        bounds = [*(b for b in self.buckets if self.value <= b), math.inf]
        return [*(f"{self.name}:le:{bound:g}" for bound in bounds), f"{self.name}:sum", repr(self.value)]


@dataclass(frozen=True)
class Admission:
    """What ``Store.admit`` decided."""

    #: ok | wait | lost | campaign | dnc
    verdict: str
    #: The state behind ``lost``/``campaign``, e.g. "done" or "paused".
    detail: str = ""
    wait_s: float = 0.0

    @classmethod
    def parse(cls, reply: str) -> Admission:
        verdict, _, detail = reply.partition(":")
        if verdict == "wait":
            return cls(verdict, wait_s=float(detail))
        return cls(verdict, detail)

    @property
    def ok(self) -> bool:
        return self.verdict == "ok"


@cache
def _lua(name: str) -> str:
    return resources.files("dialer").joinpath(f"lua/{name}.lua").read_text(encoding="utf-8")


@cache
def _with_events(name: str) -> str:
    """``name``.lua as the function ``<name>_body``, run by ``<name>_events.lua``, which writes the
    webhook events of what it did in the same atomic step (the script itself stays untouched)."""
    return f"local function {name}_body()\n{_lua(name)}\nend\n{_lua(name + '_events')}"


@dataclass(frozen=True)
class CampaignRecord:
    """A campaign as stored."""

    id: str
    name: str
    state: CampaignState
    created_at: float
    config: CampaignConfig
    counts: dict[str, int]
    reject_reasons: dict[str, int]
    columns: list[str] = field(default_factory=list)
    phone_column: str = ""
    source: str = ""
    pause_reason: str = ""
    #: The trunk the campaign was started on ('' before it started); written once, with the start.
    trunk: str = ""
    #: Every column a contact's numbers were read from, ``phone_column`` first.
    phone_columns: list[str] = field(default_factory=list)

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "campaign_id": self.id,
            "name": self.name,
            "state": self.state.value,
            "created_at": self.created_at,
            **self.counts,
            "reject_reasons": self.reject_reasons,
            "columns": self.columns,
            "phone_column": self.phone_column,
            "phone_columns": self.phone_columns or [self.phone_column],
            "source": self.source,
            "pause_reason": self.pause_reason or None,
            "config": self.config.model_dump(mode="json"),
        }


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True)
class WebhookBacklog:
    """How far webhook work lags (``Store.webhook_backlog``)."""

    #: Events written by the dial path and not yet turned into deliveries.
    events: int
    #: Seconds since the oldest of them was written; None when there is none.
    oldest_event_s: float | None
    #: Deliveries past their due time.
    overdue: int
    #: Seconds the oldest of them is past due; None when there is none.
    oldest_overdue_s: float | None


class Store:
    """Campaign state in Redis. Pass it a client; it never creates one deep inside."""

    def __init__(self, client: redis.Redis | BridgedRedis) -> None:
        self.redis = client
        self._ingest_chunk = client.register_script(_lua("ingest_chunk"))
        self._pace = client.register_script(_lua("pace"))
        self._transition = client.register_script(_lua("transition"))
        self._finalise = client.register_script(_with_events("finalise"))
        self._admit = client.register_script(_lua("admit"))
        self._breaker = client.register_script(_lua("breaker"))
        self._cancel = client.register_script(_with_events("cancel"))
        self._webhook_fanout = client.register_script(_lua("webhook_fanout"))
        self._webhook_claim = client.register_script(_lua("webhook_claim"))
        self._webhook_record = client.register_script(_lua("webhook_record"))
        self._run_id = client.register_script(_lua("run_id"))

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> Store:
        return cls(redis.Redis.from_url(url, **kwargs))

    def load_scripts(self) -> None:
        """Load every script into Redis now (a worker starting), rather than at its first call:
        a NOSCRIPT reply and a second round trip in the middle of a campaign's first dials."""
        for script in vars(self).values():
            if isinstance(script, Script):
                self.redis.script_load(script.script)

    # -- campaigns ---------------------------------------------------------------

    @staticmethod
    def new_campaign_id() -> str:
        return uuid.uuid4().hex[:12]

    def begin_campaign(
        self, cid: str, config: CampaignConfig, *, columns: Sequence[str], phone_column: str, source: str,
        phone_columns: Sequence[str] = (),
    ) -> None:
        """Start storing a campaign; it stays invisible until ``publish_campaign``."""
        now = time.time()
        pipe = self.redis.pipeline()
        pipe.hset(
            Keys.campaign(cid),
            mapping={
                "id": cid,
                "name": config.name,
                "state": CampaignState.INGESTING.value,
                "created_at": repr(now),
                "config": config.model_dump_json(),
                "columns": json.dumps(list(columns)),
                "phone_column": phone_column,
                "phone_columns": json.dumps(list(phone_columns or [phone_column])),
                "source": source,
                # Read by finalise_events.lua: which endings write webhook events ('' none).
                "webhook_events": ",".join(sorted(subscribed(config.webhooks))),
            },
        )
        pipe.zadd(Keys.ingesting, {cid: now})
        pipe.execute()

    def store_contacts(self, cid: str, rows: Sequence[tuple[int, str, str]]) -> list[str]:
        """Store (contact id, numbers, contact json) rows, ``numbers`` comma separated dial keys.

        One string per row, a letter per number: A kept, D duplicate, S suppressed (DNC). A row
        is stored when one of its numbers is kept; ``replace_contacts`` then fixes the json of
        rows that lost some.
        """
        keys = [Keys.contacts(cid), Keys.numbers(cid), Keys.due(cid), Keys.dnc]
        letters: list[str] = []
        for start in range(0, len(rows), WRITE_BATCH):
            args: list[Any] = []
            for row in rows[start : start + WRITE_BATCH]:
                args.extend(row)
            letters.extend(_text(self._ingest_chunk(keys=keys, args=args)).split(","))
        self.redis.zadd(Keys.ingesting, {cid: time.time()})
        return letters

    def replace_contacts(self, cid: str, contacts: dict[int, str]) -> None:
        """Rewrite stored contacts' json (an ingest dropping some of a row's numbers)."""
        if contacts:
            self.redis.hset(Keys.contacts(cid), mapping={str(k): v for k, v in contacts.items()})

    def add_skipped_rows(self, cid: str, entries: Iterable[dict[str, Any]]) -> None:
        """Keep rejected, duplicate and suppressed rows with their reasons."""
        payload = [json.dumps(entry, ensure_ascii=False) for entry in entries]
        for start in range(0, len(payload), WRITE_BATCH):
            self.redis.rpush(Keys.rejects(cid), *payload[start : start + WRITE_BATCH])

    def publish_campaign(self, cid: str, counts: dict[str, int], reject_reasons: dict[str, int]) -> None:
        """Make a fully ingested campaign visible, in state draft."""
        created_at = float(_text(self.redis.hget(Keys.campaign(cid), "created_at")) or time.time())
        pipe = self.redis.pipeline()
        pipe.hset(
            Keys.campaign(cid),
            mapping={
                "state": CampaignState.DRAFT.value,
                "reject_reasons": json.dumps(reject_reasons),
                **{name: counts.get(name, 0) for name in INGEST_COUNTERS},
            },
        )
        pipe.zadd(Keys.campaigns, {cid: created_at})
        pipe.zrem(Keys.ingesting, cid)
        pipe.execute()

    def discard_campaign(self, cid: str) -> None:
        """Remove every key of a campaign (a failed ingest leaves nothing behind)."""
        pipe = self.redis.pipeline()
        pipe.unlink(*Keys.all_for(cid))
        pipe.zrem(Keys.ingesting, cid)
        pipe.zrem(Keys.campaigns, cid)
        pipe.execute()

    def discard_abandoned_ingests(self, older_than_s: float = INGEST_STALE_S) -> list[str]:
        """Remove campaigns whose ingest died mid-way (killed process)."""
        cutoff = time.time() - older_than_s
        stale = [_text(cid) for cid in self.redis.zrangebyscore(Keys.ingesting, "-inf", cutoff)]
        for cid in stale:
            self.discard_campaign(cid)
        return stale

    def get_campaign(self, cid: str) -> CampaignRecord:
        return self._campaign_record(cid, self.redis.hgetall(Keys.campaign(cid)))

    def running_records(self) -> list[tuple[CampaignRecord, int]]:
        """Every running campaign with its attempts in flight, in two round trips (the pacer's
        view; campaigns removed or stopped meanwhile are left out)."""
        ids = self.running_campaigns()
        pipe = self.redis.pipeline(transaction=False)
        for cid in ids:
            pipe.hgetall(Keys.campaign(cid))
            pipe.zcard(Keys.active(cid))
        replies = pipe.execute()
        out = []
        for index, cid in enumerate(ids):
            raw, in_flight = replies[2 * index], replies[2 * index + 1]
            try:
                record = self._campaign_record(cid, raw)
            except NotFoundError:
                continue
            out.append((record, int(in_flight)))
        return out

    @staticmethod
    def _campaign_record(cid: str, fields: dict[Any, Any]) -> CampaignRecord:
        raw = {_text(k): _text(v) for k, v in fields.items()}
        if not raw or raw.get("state") == CampaignState.INGESTING.value:
            raise NotFoundError(f"no campaign with id {cid!r} (see `dialer campaign list`)")
        return CampaignRecord(
            id=raw["id"],
            name=raw["name"],
            state=CampaignState(raw["state"]),
            created_at=float(raw["created_at"]),
            config=CampaignConfig.model_validate_json(raw["config"]),
            counts={name: int(raw.get(name) or 0) for name in INGEST_COUNTERS},
            reject_reasons=json.loads(raw.get("reject_reasons") or "{}"),
            columns=json.loads(raw.get("columns") or "[]"),
            phone_column=raw.get("phone_column", ""),
            source=raw.get("source", ""),
            pause_reason=raw.get("pause_reason", ""),
            trunk=raw.get("trunk", ""),
            phone_columns=json.loads(raw.get("phone_columns") or "[]"),
        )

    def list_campaigns(self) -> list[CampaignRecord]:
        ids = [_text(cid) for cid in self.redis.zrange(Keys.campaigns, 0, -1)]
        records = []
        for cid in ids:
            try:
                records.append(self.get_campaign(cid))
            except NotFoundError:
                continue
        return records

    def iter_skipped_rows(self, cid: str) -> Iterator[dict[str, Any]]:
        self.get_campaign(cid)
        length = self.redis.llen(Keys.rejects(cid))
        for start in range(0, length, READ_BATCH):
            for raw in self.redis.lrange(Keys.rejects(cid), start, start + READ_BATCH - 1):
                yield json.loads(raw)

    def recent_campaign_ids(self, limit: int) -> list[str]:
        """The ``limit`` most recently created campaigns' ids."""
        return [_text(cid) for cid in self.redis.zrevrange(Keys.campaigns, 0, limit - 1)]

    def next_turn(self, cid: str, pool: str) -> int:
        """Whose turn it is in a caller-ID pool (0, 1, 2, ... across every worker)."""
        return int(self.redis.hincrby(Keys.caller_turns(cid), pool, 1)) - 1

    def trunk_in_flight(self, trunk: str) -> int:
        return int(self.redis.zcard(Keys.trunk_active(trunk)))

    def contact_count(self, cid: str) -> int:
        return int(self.redis.hlen(Keys.contacts(cid)))

    def get_contact_json(self, cid: str, contact_id: int) -> dict[str, Any] | None:
        raw = self.redis.hget(Keys.contacts(cid), str(contact_id))
        return json.loads(raw) if raw else None

    def contact_id_for(self, cid: str, e164: str) -> int | None:
        raw = self.redis.hget(Keys.numbers(cid), e164)
        return int(raw) if raw else None

    def due_count(self, cid: str) -> int:
        return int(self.redis.zcard(Keys.due(cid)))

    # -- reading for reports ---------------------------------------------------------

    @contextmanager
    def snapshot(self, cid: str, parts: Sequence[str] = SNAPSHOT_PARTS) -> Iterator[Snapshot]:
        """A consistent view of a campaign's mutable state (``parts`` of it).

        A campaign that has ended with no call in flight can no longer change, so it is read
        in place; otherwise the hashes are copied atomically and the copies removed after.
        """
        record = self.get_campaign(cid)
        every = {"status": Keys.status(cid), "results": Keys.results(cid), "attempts": Keys.attempts(cid)}
        sources = {name: every[name] for name in parts}
        if record.state in (CampaignState.COMPLETED, CampaignState.CANCELLED) and not self.in_flight(cid):
            yield Snapshot(self, cid, sources, self.progress(cid))
            return
        token = uuid.uuid4().hex
        copies = {name: Keys.snapshot(token, name) for name in sources}
        pipe = self.redis.pipeline(transaction=True)
        pipe.hgetall(Keys.progress(cid))
        for name, source in sources.items():
            pipe.copy(source, copies[name])
            pipe.expire(copies[name], SNAPSHOT_TTL_S)
        progress = pipe.execute()[0]
        try:
            yield Snapshot(self, cid, copies, {_text(k): int(v) for k, v in progress.items()})
        finally:
            self.redis.unlink(*copies.values())

    def contact_ids(self, cid: str) -> list[int]:
        import numpy as np  # here: most users of the store never need it

        keys = self.redis.hkeys(Keys.contacts(cid))
        ids = np.fromiter(map(int, keys), np.int64, len(keys))  # int() reads bytes and str alike
        ids.sort()  # 1M ids: 0.37 s with NumPy's sort, 0.53 s with sorted()
        return ids.tolist()

    def hash_raw(self, key: str, fields: Sequence[str] | Sequence[int]) -> list[bytes | None]:
        """The fields' values as stored; int fields are sent as their decimal text (by hiredis, not
        a Python loop)."""
        if not fields:
            return []
        raws = self.redis.hmget(key, list(fields))
        if not self.redis.get_encoder().decode_responses:
            return raws  # type: ignore[return-value]  # bytes already
        return [raw.encode() if isinstance(raw, str) else raw for raw in raws]

    def hash_json(self, key: str, fields: Sequence[str]) -> list[dict[str, Any] | None]:
        if not fields:
            return []
        return [orjson.loads(raw) if raw else None for raw in self.redis.hmget(key, list(fields))]

    # -- do-not-call list --------------------------------------------------------

    def dnc_add(self, numbers: Iterable[str]) -> int:
        batch = list(numbers)
        added = 0
        for start in range(0, len(batch), WRITE_BATCH):
            added += int(self.redis.sadd(Keys.dnc, *batch[start : start + WRITE_BATCH]))
        return added

    def dnc_remove(self, numbers: Iterable[str]) -> int:
        batch = list(numbers)
        return int(self.redis.srem(Keys.dnc, *batch)) if batch else 0

    def dnc_contains(self, number: str) -> bool:
        return bool(self.redis.sismember(Keys.dnc, number))

    def dnc_count(self) -> int:
        return int(self.redis.scard(Keys.dnc))

    def iter_dnc(self) -> Iterator[str]:
        for number in self.redis.sscan_iter(Keys.dnc, count=READ_BATCH):
            yield _text(number)

    # -- campaign lifecycle --------------------------------------------------------

    def set_state(
        self, cid: str, allowed_from: Iterable[CampaignState], to: CampaignState, reason: str = "",
        fields: dict[str, str] | None = None,
    ) -> CampaignState:
        """Change a campaign's state if it is in one of ``allowed_from``; returns the old state.

        ``fields`` are written in the same transaction, only when the change happens (the trunk
        a campaign starts on must never be rewritten under calls in flight).
        """
        key = Keys.campaign(cid)
        allowed = {state.value for state in allowed_from}
        while True:
            with self.redis.pipeline() as pipe:
                try:
                    pipe.watch(key)
                    current = _text(pipe.hget(key, "state"))
                    if not current or current == CampaignState.INGESTING.value:
                        raise NotFoundError(f"no campaign with id {cid!r} (see `dialer campaign list`)")
                    if current not in allowed:
                        raise StateError(f"campaign {cid} is {current}; cannot make it {to.value}")
                    pipe.multi()
                    mapping: dict[str | bytes, str] = {"state": to.value, "pause_reason": reason,
                                                       f"{to.value}_at": repr(time.time())}
                    mapping.update(fields or {})
                    pipe.hset(key, mapping=mapping)  # type: ignore[arg-type]
                    if to is CampaignState.RUNNING:
                        pipe.sadd(Keys.running, cid)
                    else:
                        pipe.srem(Keys.running, cid)
                    pipe.execute()
                    return CampaignState(current)
                except redis.WatchError:
                    continue

    def cancel_waiting(self, cid: str, now: float, batch: int = READ_BATCH) -> int:
        """Give every contact still in the due set the outcome ``cancelled``."""
        keys = [Keys.due(cid), Keys.status(cid), Keys.progress(cid), Keys.campaign(cid),
                Keys.webhook_outbox]  # always the last key: cancel_events.lua reads KEYS[#KEYS]
        total = 0
        while cancelled := int(self._cancel(keys=keys, args=[now, batch])):
            total += cancelled
        return total

    def running_campaigns(self) -> list[str]:
        return sorted(_text(cid) for cid in self.redis.smembers(Keys.running))

    def campaign_state(self, cid: str) -> str:
        return _text(self.redis.hget(Keys.campaign(cid), "state"))

    def progress(self, cid: str) -> dict[str, int]:
        return {_text(k): int(v) for k, v in self.redis.hgetall(Keys.progress(cid)).items()}

    # -- pacing --------------------------------------------------------------------

    def due_contacts(self, cid: str, now: float, limit: int) -> list[int]:
        return [int(_text(i)) for i in self.redis.zrangebyscore(Keys.due(cid), "-inf", now, start=0, num=limit)]

    def reschedule_due(self, cid: str, due_at: dict[int, float]) -> None:
        if due_at:
            self.redis.zadd(Keys.due(cid), {str(k): v for k, v in due_at.items()}, xx=True)

    def next_due_at(self, cid: str) -> float | None:
        first = self.redis.zrange(Keys.due(cid), 0, 0, withscores=True)
        return float(first[0][1]) if first else None

    def contact_records(self, cid: str, ids: Sequence[int]) -> list[bytes | None]:
        """The contacts as stored (JSON bytes)."""
        return self.hash_raw(Keys.contacts(cid), ids)

    def contacts(self, cid: str, ids: Sequence[int]) -> list[dict[str, Any] | None]:
        if not ids:
            return []
        raw = self.redis.hmget(Keys.contacts(cid), [str(i) for i in ids])
        return [orjson.loads(item) if item else None for item in raw]

    def due_contacts_many(self, wanted: Sequence[tuple[str, int]], now: float) -> list[list[int]]:
        """``due_contacts`` for several (campaign id, limit) pairs in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for cid, limit in wanted:
            pipe.zrangebyscore(Keys.due(cid), "-inf", now, start=0, num=limit)
        return [[int(_text(i)) for i in ids] for ids in pipe.execute()] if wanted else []

    def contacts_many(self, wanted: Sequence[tuple[str, Sequence[int]]]) -> list[list[dict[str, Any] | None]]:
        """``contacts`` for several (campaign id, contact ids) pairs in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        asked = [(cid, ids) for cid, ids in wanted if ids]
        for cid, ids in asked:
            pipe.hmget(Keys.contacts(cid), [str(i) for i in ids])
        replies = iter(pipe.execute() if asked else [])
        return [[orjson.loads(item) if item else None for item in next(replies)] if ids else []
                for _, ids in wanted]

    def queue_attempts(
        self,
        cid: str,
        trunk: str,
        contact_ids: Sequence[int],
        *,
        now: float,
        lease_s: float,
        max_concurrent: int,
        trunk_max_concurrent: int,
        pacing: Pacing | None = None,
    ) -> list[str]:
        """Atomically move due contacts to queued attempts within the concurrency limits and,
        with ``pacing``, the campaign's and the trunk's release budgets."""
        request = QueueRequest(cid, trunk, list(contact_ids), lease_s=lease_s, max_concurrent=max_concurrent,
                               trunk_max_concurrent=trunk_max_concurrent, pacing=pacing)
        return self.queue_attempts_many([request], now=now)[0]

    def queue_attempts_many(self, requests: Sequence[QueueRequest], now: float) -> list[list[str]]:
        """``reschedule_due`` then ``queue_attempts`` for each request, in order, in one round
        trip (each script still atomic; the next one sees what the one before it took)."""
        pipe = self.redis.pipeline(transaction=False)
        for request in requests:
            cid, trunk = request.cid, request.trunk
            if request.later:
                pipe.zadd(Keys.due(cid), {str(k): v for k, v in request.later.items()}, xx=True)
            if not request.contact_ids:
                continue
            pacing = request.pacing or Pacing.unlimited()
            keys = [Keys.campaign(cid), Keys.due(cid), Keys.status(cid), Keys.attempts(cid),
                    Keys.active(cid), Keys.trunk_active(trunk), Keys.leases, Keys.progress(cid),
                    Keys.bucket(f"campaign:{cid}"), Keys.bucket(f"trunk:{trunk}")]
            args: list[Any] = [cid, now, request.lease_s, request.max_concurrent, request.trunk_max_concurrent,
                               pacing.campaign_rate, pacing.campaign_burst, pacing.trunk_rate, pacing.trunk_burst,
                               pacing.trunk_sharers, *request.contact_ids]
            self._pace(keys=keys, args=args, client=pipe)
        if len(pipe) == 0:
            return [[] for _ in requests]
        replies = iter(pipe.execute())
        out = []
        for request in requests:
            if request.later:
                next(replies)
            out.append([_text(member) for member in next(replies)] if request.contact_ids else [])
        return out

    def attempt_count(self, cid: str) -> int:
        return int(self.redis.hlen(Keys.attempts(cid)))

    def in_flight(self, cid: str) -> int:
        return int(self.redis.zcard(Keys.active(cid)))

    def admit(self, cid: str, member: str, *, claim: str, lease_s: float, number: str, mode: str,
              limits: Sequence[RateLimit] = (), nonce: str = "", fields: dict[str, Any] | None = None,
              trunk: str | None = None, first_invite: Observation | None = None) -> Admission:
        """The atomic check right before an INVITE (see ``lua/admit.lua``). ``trunk``, when the
        caller knows it, saves a read; ``first_invite`` is added to its histogram by the script
        when this admission lets the attempt's first INVITE go (no round trip of its own)."""
        trunk = trunk or self.trunk_of(cid)
        campaign_limit, trunk_limit = [*limits, RateLimit.none(), RateLimit.none()][:2]
        keys = [Keys.attempts(cid), Keys.campaign(cid), Keys.active(cid), Keys.trunk_active(trunk),
                Keys.leases, Keys.dnc, Keys.rate(campaign_limit.scope or f"campaign:{cid}"),
                Keys.rate(trunk_limit.scope or f"trunk:{trunk}"), Keys.metrics]
        observed = first_invite.fields() if first_invite else []
        args: list[Any] = [cid, member, claim, lease_s, number, mode,
                           campaign_limit.events, campaign_limit.window_s,
                           trunk_limit.events, trunk_limit.window_s, nonce, _json_fields(fields),
                           max(MIN_RATE_SLACK_S, campaign_limit.guard_s, trunk_limit.guard_s),
                           len(observed), *observed]
        return Admission.parse(_text(self._admit(keys=keys, args=args)))

    def count_ending(self, cid: str, ending: Ending) -> str:
        """Count an attempt's ending for the circuit breaker (its ``reason`` '' when it is no failure
        of ours); the pause reason when this one tripped it (see ``lua/breaker.lua``)."""
        keys, args = self._ending_call(cid, ending)
        return _text(self._breaker(keys=keys, args=args))

    @staticmethod
    def _ending_call(cid: str, ending: Ending) -> tuple[list[str], list[Any]]:
        keys = [Keys.breaker(cid), Keys.breaker(cid, ending.reason or "none"), Keys.campaign(cid), Keys.running]
        args: list[Any] = [cid, secrets.token_hex(16), ending.window_s, ending.min_attempts, ending.failure_ratio,
                           ending.reason, ending.pause_reason]
        return keys, args

    def reset_breaker(self, cid: str, reasons: Iterable[str]) -> None:
        self.redis.unlink(Keys.breaker(cid), *(Keys.breaker(cid, reason) for reason in reasons))

    def heartbeat(self, role: str, name: str) -> None:
        """``name`` (a process) of ``role`` is alive now; heartbeats a day old are dropped."""
        now = self.server_time()
        pipe = self.redis.pipeline(transaction=False)
        pipe.zadd(Keys.heartbeats(role), {name: now})
        pipe.zremrangebyscore(Keys.heartbeats(role), "-inf", now - HEARTBEAT_KEEP_S)
        pipe.execute()

    def heartbeat_ages(self, role: str) -> dict[str, float]:
        """Seconds since each process of ``role`` was last heard from."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.zrange(Keys.heartbeats(role), 0, -1, withscores=True)
        pipe.time()
        entries, (seconds, micros) = pipe.execute()
        now = float(seconds) + micros / 1e6
        return {_text(name): max(0.0, now - float(at)) for name, at in entries}

    def observe(self, name: str, value: float, buckets: Sequence[float]) -> None:
        """Add ``value`` to the histogram ``name``, kept in Redis so every worker adds to one."""
        *counted, sum_field, _ = Observation(name, value, tuple(buckets)).fields()
        pipe = self.redis.pipeline(transaction=False)
        for field_name in counted:
            pipe.hincrby(Keys.metrics, field_name, 1)
        pipe.hincrbyfloat(Keys.metrics, sum_field, value)
        pipe.execute()

    def histogram(self, name: str) -> tuple[dict[str, float], float]:
        """({bound: cumulative count}, sum) of the histogram ``name``."""
        raw = {_text(k): float(v) for k, v in self.redis.hgetall(Keys.metrics).items()}
        prefix = f"{name}:le:"
        buckets = {key[len(prefix):]: value for key, value in raw.items() if key.startswith(prefix)}
        return buckets, raw.get(f"{name}:sum", 0.0)

    def server_time(self) -> float:
        """The Redis server's clock: the one clock every lease and rate limit is read in."""
        seconds, micros = self.redis.time()
        return float(seconds) + micros / 1e6

    def trunk_backoff(self, trunk: str) -> tuple[float, float, float]:
        """(factor, set at, now), the server's clock: the trunk's last backed-off pace factor."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hmget(Keys.trunk_backoff(trunk), ["factor", "at"])
        pipe.time()
        (factor, at), (seconds, micros) = pipe.execute()
        now = float(seconds) + micros / 1e6
        return (float(factor) if factor else 1.0), (float(at) if at else now), now

    def set_trunk_backoff(self, trunk: str, update: Callable[[float, float, float], float]) -> float:
        """Atomically replace the trunk's factor with ``update(factor, at, now)``; returns it."""
        key = Keys.trunk_backoff(trunk)
        while True:
            with self.redis.pipeline() as pipe:
                try:
                    pipe.watch(key)
                    factor, at, now = self.trunk_backoff(trunk)
                    new = update(factor, at, now)
                    pipe.multi()
                    pipe.hset(key, mapping={"factor": repr(new), "at": repr(now)})
                    pipe.expire(key, 3600)
                    pipe.execute()
                    return new
                except redis.WatchError:
                    continue

    def try_lock(self, key: str, token: str, ttl_s: float) -> bool:
        """Take or renew a lock held by ``token``."""
        if self.redis.set(key, token, nx=True, px=int(ttl_s * 1000)):
            return True
        if _text(self.redis.get(key)) == token:
            self.redis.pexpire(key, int(ttl_s * 1000))
            return True
        return False

    # -- the attempt ledger ----------------------------------------------------------

    def attempt(self, cid: str, member: str) -> dict[str, Any] | None:
        raw = self.redis.hget(Keys.attempts(cid), member)
        return json.loads(raw) if raw else None

    @through_outages
    def transition(
        self,
        cid: str,
        member: str,
        expected: Sequence[AttemptState],
        to: AttemptState,
        lease_s: float,
        fields: dict[str, Any] | None = None,
        claim: str = "",
        trunk: str | None = None,
    ) -> str:
        """Compare-and-set an attempt's state with a lease of ``lease_s`` from now (server clock);
        'ok' or the state it was really in. ``claim`` makes the caller the attempt's holder;
        ``trunk``, when the caller knows the campaign's, saves a read."""
        keys, args = self._transition_call(cid, member, expected, to, lease_s, fields, claim, trunk)
        return _text(self._transition(keys=keys, args=args))

    def _transition_call(self, cid: str, member: str, expected: Sequence[AttemptState], to: AttemptState,
                         lease_s: float, fields: dict[str, Any] | None, claim: str, trunk: str | None
                         ) -> tuple[list[str], list[Any]]:
        keys = [Keys.attempts(cid), Keys.active(cid), self._trunk_active_key(cid, trunk), Keys.leases]
        args: list[Any] = [cid, member, ",".join(s.value for s in expected), to.value, lease_s,
                           _json_fields(fields), claim]
        return keys, args

    @through_outages
    def claim(self, cid: str, contact_id: int, seq: int, *, lease_s: float, fields: dict[str, Any],
              claim: str, trunk: str) -> Claim:
        """A dial task's first step in one round trip: ``transition`` of the attempt from queued to
        dialing under ``claim``, with the contact and its status read beside it (whatever the claim's
        outcome: reading them is harmless), and whether Redis ran without a restart since the
        attempt was queued."""
        member = f"{contact_id}:{seq}"
        pipe = self.redis.pipeline(transaction=False)
        pipe.hget(Keys.attempts(cid), member)
        keys, args = self._transition_call(cid, member, [AttemptState.QUEUED], AttemptState.DIALING,
                                           lease_s, fields, claim, trunk)
        self._transition(keys=keys, args=args, client=pipe)
        pipe.hget(Keys.contacts(cid), str(contact_id))
        pipe.hget(Keys.status(cid), str(contact_id))
        self._run_id(client=pipe)
        queued, moved, contact, status, run = pipe.execute()
        queued_run = orjson.loads(queued).get("run") if queued else None
        return Claim(_text(moved), orjson.loads(contact) if contact else None,
                     orjson.loads(status) if status else None,
                     same_run=bool(queued_run) and queued_run == _text(run))

    @through_outages
    def transition_counted(self, cid: str, member: str, expected: Sequence[AttemptState], to: AttemptState,
                           lease_s: float, fields: dict[str, Any] | None, *, trunk: str,
                           ending: Ending | None) -> tuple[str, str]:
        """``transition`` and, in the same round trip, ``count_ending`` of ``ending`` (when not
        None): (the transition's outcome, the breaker's pause reason or '')."""
        if ending is None:
            return self.transition(cid, member, expected, to, lease_s, fields, trunk=trunk), ""
        pipe = self.redis.pipeline(transaction=False)
        keys, args = self._transition_call(cid, member, expected, to, lease_s, fields, "", trunk)
        self._transition(keys=keys, args=args, client=pipe)
        keys, args = self._ending_call(cid, ending)
        self._breaker(keys=keys, args=args, client=pipe)
        moved, tripped = pipe.execute()
        return _text(moved), _text(tripped)

    @through_outages
    def finalise(
        self,
        cid: str,
        member: str,
        expected: Sequence[AttemptState],
        *,
        now: float,
        verdict: str,
        outcome: Outcome,
        counts: bool,
        due_at: float = 0.0,
        max_attempts: int = 1,
        fields: dict[str, Any] | None = None,
        pause_reason: str = "",
        result: dict[str, Any] | None = None,
        max_callbacks: int = 0,
        trunk: str | None = None,
        numbers: int = 1,
    ) -> str:
        """End an attempt exactly once (see ``lua/finalise.lua``).

        ``numbers`` > 1 (a contact with several numbers in a campaign that dials alternates)
        lets an outcome of ``NEXT_NUMBER_OUTCOMES`` move the contact on to its next number.
        """
        keys = [Keys.attempts(cid), Keys.status(cid), Keys.due(cid), Keys.progress(cid),
                Keys.active(cid), self._trunk_active_key(cid, trunk), Keys.leases, Keys.campaign(cid),
                Keys.running, Keys.results(cid),
                Keys.webhook_outbox]  # always the last key: finalise_events.lua reads KEYS[#KEYS]
        args: list[Any] = [cid, member, ",".join(s.value for s in expected), now, verdict, outcome.value,
                "1" if counts else "0", due_at, max_attempts, _json_fields(fields), pause_reason,
                json.dumps(result, ensure_ascii=False) if result is not None else "", max_callbacks,
                ",".join(NEXT_NUMBER_OUTCOMES) if numbers > 1 else "", numbers, _OUTCOME_PREFERENCE]
        return _text(self._finalise(keys=keys, args=args))

    def _trunk_active_key(self, cid: str, trunk: str | None = None) -> str:
        return Keys.trunk_active(trunk or self.trunk_of(cid))

    def trunk_of(self, cid: str) -> str:
        return _text(self.redis.hget(Keys.campaign(cid), "trunk")) or "default"

    def set_trunk(self, cid: str, trunk: str) -> None:
        self.redis.hset(Keys.campaign(cid), "trunk", trunk)

    def expired_leases(self, now: float | None = None, limit: int = 500) -> list[tuple[str, str]]:
        """(campaign id, attempt member) pairs whose lease ran out by ``now`` (the server's clock)."""
        now = self.server_time() if now is None else now
        out = []
        for raw in self.redis.zrangebyscore(Keys.leases, "-inf", now, start=0, num=limit):
            cid, _, member = _text(raw).partition(":")
            out.append((cid, member))
        return out

    def contact_status(self, cid: str, contact_id: int) -> dict[str, Any] | None:
        raw = self.redis.hget(Keys.status(cid), str(contact_id))
        return json.loads(raw) if raw else None

    def result(self, cid: str, member: str) -> dict[str, Any] | None:
        """The result an attempt's call reported (the agent's, or the sandbox's)."""
        raw = self.redis.hget(Keys.results(cid), member)
        return json.loads(raw) if raw else None

    def iter_statuses(self, cid: str) -> Iterator[tuple[int, dict[str, Any]]]:
        for contact, raw in self.redis.hscan_iter(Keys.status(cid), count=READ_BATCH):
            yield int(contact), json.loads(raw)

    def pacer_alive(self) -> bool:
        """A worker ran the pacer within its lock's TTL (a few pacer periods): workers and beat are up."""
        return bool(self.redis.exists(Keys.pacer_lock))

    # -- webhooks (dialer.webhook_sender) ----------------------------------------------

    def webhook_events(self, limit: int) -> list[str]:
        """The oldest events waiting in the outbox, as written (raw json)."""
        return [_text(raw) for raw in self.redis.lrange(Keys.webhook_outbox, 0, limit - 1)]

    def webhook_outbox_size(self) -> int:
        return int(self.redis.llen(Keys.webhook_outbox))

    def fan_out_webhook(self, raw_event: str, cid: str, deliveries: dict[str, str], now: float) -> int:
        """Take the event at the outbox's head and store its deliveries (id -> json), due now,
        in one step; deliveries that already exist are kept. -1: the head was another event."""
        keys = [Keys.webhook_outbox, Keys.webhooks(cid), Keys.webhook_due, Keys.webhook_stats(cid)]
        args: list[Any] = [raw_event, now, cid]
        for delivery_id, body in deliveries.items():
            args += [delivery_id, body]
        return int(self._webhook_fanout(keys=keys, args=args))

    def claim_webhooks(self, now: float, lease_s: float, max_in_flight: int,
                       limit: int | None = None) -> list[tuple[str, str]]:
        """(campaign id, delivery id) of due deliveries (at most ``limit``), now in flight under a lease."""
        members = self._webhook_claim(keys=[Keys.webhook_due, Keys.webhook_in_flight],
                                      args=[now, lease_s, max_in_flight, max_in_flight if limit is None else limit])
        claimed = []
        for member in members:
            cid, _, delivery_id = _text(member).partition("|")
            claimed.append((cid, delivery_id))
        return claimed

    def webhook_delivery(self, cid: str, delivery_id: str) -> dict[str, Any] | None:
        raw = self.redis.hget(Keys.webhooks(cid), delivery_id)
        return orjson.loads(raw) if raw else None

    def iter_webhook_deliveries(self, cid: str) -> Iterator[dict[str, Any]]:
        for _, raw in self.redis.hscan_iter(Keys.webhooks(cid), count=READ_BATCH):
            yield orjson.loads(raw)

    def record_webhook(self, cid: str, delivery: dict[str, Any], tries_read: int, due_at: float | None,
                       counter: str = "", keep: bool = True) -> bool:
        """Write a delivery back (or, ``keep=False``, remove it) if nobody changed it since it had
        ``tries_read`` tries; due again at ``due_at`` (None: never), counting it under ``counter``.
        False when it was stale."""
        keys = [Keys.webhooks(cid), Keys.webhook_due, Keys.webhook_in_flight, Keys.webhook_stats(cid)]
        args: list[Any] = [delivery["id"], f"{cid}|{delivery['id']}", tries_read,
                           orjson.dumps(delivery).decode() if keep else "", "" if due_at is None else due_at,
                           counter]
        return _text(self._webhook_record(keys=keys, args=args)) == "ok"

    def drop_webhook_claim(self, cid: str, delivery_id: str) -> None:
        """Forget the schedule of a delivery that is gone or no longer pending (a duplicate task, a
        removed campaign), so it never comes back."""
        pipe = self.redis.pipeline()
        pipe.zrem(Keys.webhook_in_flight, f"{cid}|{delivery_id}")
        pipe.zrem(Keys.webhook_due, f"{cid}|{delivery_id}")
        pipe.execute()

    def webhook_stats(self, cid: str) -> dict[str, int]:
        return {_text(k): int(v) for k, v in self.redis.hgetall(Keys.webhook_stats(cid)).items()}

    def webhooks_in_flight(self) -> int:
        return int(self.redis.zcard(Keys.webhook_in_flight))

    def webhook_backlog(self) -> WebhookBacklog:
        """How far webhook work lags: events not fanned out yet and deliveries past their due time,
        with the age in seconds of the oldest of each (None when there is none)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.llen(Keys.webhook_outbox)
        pipe.lindex(Keys.webhook_outbox, 0)
        pipe.zrange(Keys.webhook_due, 0, 0, withscores=True)
        pipe.time()
        events, head, oldest_due, (seconds, micros) = pipe.execute()
        now = float(seconds) + micros / 1e6
        event_at = json.loads(head).get("at") if head else None
        due_at = float(oldest_due[0][1]) if oldest_due else None
        return WebhookBacklog(
            events=int(events),
            oldest_event_s=max(0.0, now - float(event_at)) if event_at is not None else None,
            overdue=int(self.redis.zcount(Keys.webhook_due, "-inf", now)) if due_at is not None else 0,
            oldest_overdue_s=max(0.0, now - due_at) if due_at is not None and due_at <= now else None,
        )
