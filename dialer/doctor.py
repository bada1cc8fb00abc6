"""`dialer doctor`: check everything a campaign needs to move, and say what to fix."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from dataclasses import asdict, dataclass
from enum import StrEnum

import aiohttp
import redis
from livekit import api

from . import liveness
from .errors import SettingsError
from .livekit import LiveKitGateway
from .settings import Settings
from .store import Store


class Verdict(StrEnum):
    OK = "ok"
    WARN = "warn"  #: works, but not as production should run it
    FAIL = "fail"  #: campaigns cannot move until this is fixed


@dataclass(frozen=True)
class Check:
    name: str
    verdict: Verdict
    detail: str
    fix: str = ""

    def to_json_dict(self) -> dict[str, str]:
        return {**asdict(self), "verdict": self.verdict.value}


def run_checks(settings: Settings, gateway_factory: Callable[[Settings], LiveKitGateway] | None = None) -> list[Check]:
    """Every check, in the order a newcomer would fix them."""
    checks = [_redis(settings)]
    if checks[0].verdict is not Verdict.FAIL:
        store = Store.from_url(settings.redis_url, socket_timeout=5)
        checks += _liveness(store, settings.dialer_heartbeat_stale_s)
        checks.append(_webhooks(store, settings))
        store.redis.close()
    checks += _livekit(settings, gateway_factory or LiveKitGateway.from_settings)
    return checks


def _redis(settings: Settings) -> Check:
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
    try:
        client.ping()
        config = client.config_get("appendonly") | client.config_get("maxmemory-policy")
    except redis.exceptions.ResponseError:  # CONFIG disabled on a managed Redis
        return Check("redis", Verdict.OK, "reachable (its configuration cannot be read)")
    except redis.RedisError as exc:
        return Check("redis", Verdict.FAIL, f"cannot reach {settings.redis_url.split('@')[-1]}: {exc}",
                     "start Redis or set REDIS_URL")
    finally:
        client.close()
    problems = []
    if config.get("appendonly") != "yes":
        problems.append("appendonly is off (a restart loses every campaign's state)")
    if config.get("maxmemory-policy") != "noeviction":
        problems.append(f"maxmemory-policy is {config.get('maxmemory-policy')} (Redis may evict state)")
    if problems:
        return Check("redis", Verdict.WARN, "; ".join(problems),
                     "run Redis with --appendonly yes --maxmemory-policy noeviction (as docker-compose.yml does)")
    return Check("redis", Verdict.OK, "reachable, AOF on, noeviction")


def _liveness(store: Store, stale_after_s: float) -> list[Check]:
    checks = []
    for role, seen in liveness.seen(store, stale_after_s).items():
        problem = seen.problem(stale_after_s)
        name = liveness.WHAT[role]
        if problem is None and seen.alive:
            checks.append(Check(name, Verdict.OK, f"{seen.alive} alive"))
        elif problem is None:
            checks.append(Check(name, Verdict.OK, f"last seen {seen.silent_s:.0f} s ago"))
        else:
            checks.append(Check(name, Verdict.FAIL, problem.split(": ", 1)[0], liveness.REMEDIES[role]))
    return checks


#: Deliveries this far past their due time mean nothing is sending them (the dispatcher claims due
#: ones every second), or receivers so slow that DIALER_WEBHOOK_MAX_IN_FLIGHT is always full.
WEBHOOK_OVERDUE_S = 300.0


def _webhooks(store: Store, settings: Settings) -> Check:
    backlog = store.webhook_backlog()
    if backlog.oldest_event_s is not None and backlog.oldest_event_s > settings.dialer_heartbeat_stale_s:
        return Check("webhooks", Verdict.FAIL,
                     f"{backlog.events} webhook events wait to be sent, the oldest for {backlog.oldest_event_s:.0f} s",
                     "run beat, and a worker that consumes the `webhooks` queue (a plain `celery -A dialer worker`)")
    if backlog.oldest_overdue_s is not None and backlog.oldest_overdue_s > WEBHOOK_OVERDUE_S:
        return Check("webhooks", Verdict.WARN,
                     f"{backlog.overdue} webhook deliveries overdue, the oldest by {backlog.oldest_overdue_s:.0f} s",
                     "check that a worker consumes the `webhooks` queue; for slow receivers raise "
                     "DIALER_WEBHOOK_MAX_IN_FLIGHT or lower DIALER_WEBHOOK_TIMEOUT_S")
    if backlog.events or backlog.overdue:
        return Check("webhooks", Verdict.OK, f"{backlog.events} events and {backlog.overdue} deliveries on their way")
    return Check("webhooks", Verdict.OK, "nothing waiting to be sent")


def _livekit(settings: Settings, gateway_factory: Callable[[Settings], LiveKitGateway]) -> list[Check]:
    try:
        gateway = gateway_factory(settings)
    except SettingsError as exc:
        return [Check("livekit", Verdict.FAIL, str(exc).split(". ")[0], "see .env.example")]
    try:
        try:
            rooms = gateway.room_count()
        except api.ServerError as exc:
            fix = ("check LIVEKIT_API_KEY and LIVEKIT_API_SECRET" if exc.status in (401, 403)
                   else "check LIVEKIT_URL and the LiveKit server's logs")
            return [Check("livekit", Verdict.FAIL, f"LiveKit refused a harmless call: {exc.message}", fix)]
        except (TimeoutError, aiohttp.ClientError, concurrent.futures.TimeoutError, OSError) as exc:
            return [Check("livekit", Verdict.FAIL, f"cannot reach {settings.livekit_url}: {exc or type(exc).__name__}",
                          "start LiveKit (or `dialer sandbox serve`) and check LIVEKIT_URL")]
        checks = [Check("livekit", Verdict.OK, f"{settings.livekit_url}: credentials accepted ({rooms} rooms)")]
        checks.append(_trunk(settings, gateway))
        checks.append(Check("agent worker", Verdict.WARN,
                            "LiveKit's server API does not list registered agent workers",
                            f"check the agent's log for 'registered worker' under AGENT_NAME={settings.agent_name}"))
        return checks
    finally:
        gateway.close()


def _trunk(settings: Settings, gateway: LiveKitGateway) -> Check:
    trunk = settings.sip_outbound_trunk_id
    if not trunk:
        return Check("trunk", Verdict.WARN, "SIP_OUTBOUND_TRUNK_ID is not set",
                     "set it, or give every campaign a trunk_id")
    try:
        exists = gateway.outbound_trunk_exists(trunk)
    except api.ServerError as exc:
        return Check("trunk", Verdict.WARN, f"cannot list outbound trunks: {exc.message}",
                     "give the API key the sip.admin grant, or check the trunk with `lk sip outbound list`")
    except (aiohttp.ClientError, concurrent.futures.TimeoutError, TimeoutError) as exc:
        return Check("trunk", Verdict.WARN, f"cannot list outbound trunks: {exc}")
    if not exists:
        return Check("trunk", Verdict.FAIL, f"LiveKit has no outbound trunk {trunk}",
                     "create one with `lk sip outbound create` and set SIP_OUTBOUND_TRUNK_ID to its ST_ id")
    return Check("trunk", Verdict.OK, f"{trunk} exists")
