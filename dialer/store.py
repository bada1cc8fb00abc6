"""The one owner of Redis state: every key name and every state transition.

Nothing else in the project builds a key. Transitions that touch several keys
run as Lua scripts (``dialer/lua/*.lua``) so they are atomic.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import redis

from .config import CampaignConfig
from .errors import NotFoundError
from .models import CampaignState

PREFIX = "dialer"
#: Contacts written per Redis round trip by the ingest.
WRITE_BATCH = 2_000
#: Fields read per HSCAN / HMGET page.
READ_BATCH = 5_000
#: How long an ingest may go silent before its leftovers count as abandoned.
INGEST_STALE_S = 3_600

#: Counters kept in the campaign hash for the ingest summary.
INGEST_COUNTERS = ("rows", "accepted", "rejected", "duplicates", "suppressed")


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
    def due(cid: str) -> str:
        return f"{PREFIX}:campaign:{cid}:due"  #: zset contact id -> earliest dial time

    @classmethod
    def all_for(cls, cid: str) -> list[str]:
        return [cls.campaign(cid), cls.contacts(cid), cls.numbers(cid), cls.rejects(cid), cls.due(cid)]


@cache
def _lua(name: str) -> str:
    return resources.files("dialer").joinpath(f"lua/{name}.lua").read_text(encoding="utf-8")


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
            "source": self.source,
            "pause_reason": self.pause_reason or None,
            "config": self.config.model_dump(mode="json"),
        }


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


class Store:
    """Campaign state in Redis. Pass it a client; it never creates one deep inside."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._ingest_chunk = client.register_script(_lua("ingest_chunk"))

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> Store:
        return cls(redis.Redis.from_url(url, **kwargs))

    # -- campaigns ---------------------------------------------------------------

    @staticmethod
    def new_campaign_id() -> str:
        return uuid.uuid4().hex[:12]

    def begin_campaign(
        self, cid: str, config: CampaignConfig, *, columns: Sequence[str], phone_column: str, source: str
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
                "source": source,
            },
        )
        pipe.zadd(Keys.ingesting, {cid: now})
        pipe.execute()

    def store_contacts(self, cid: str, rows: Sequence[tuple[int, str, str]]) -> str:
        """Store (contact id, e164, contact json) rows; one bucket letter per row (A/D/S)."""
        keys = [Keys.contacts(cid), Keys.numbers(cid), Keys.due(cid), Keys.dnc]
        letters = []
        for start in range(0, len(rows), WRITE_BATCH):
            args: list[Any] = []
            for row in rows[start : start + WRITE_BATCH]:
                args.extend(row)
            letters.append(_text(self._ingest_chunk(keys=keys, args=args)))
        self.redis.zadd(Keys.ingesting, {cid: time.time()})
        return "".join(letters)

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
        raw = {_text(k): _text(v) for k, v in self.redis.hgetall(Keys.campaign(cid)).items()}
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
