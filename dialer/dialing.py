"""One dial attempt, from claim to hand-off (DESIGN.md section 3, steps 4-5; invariants I1-I4).

The attempt is claimed in the ledger with a compare-and-set before anything
reaches LiveKit; a failed claim is a duplicate delivery. tenacity retries only
failures where no INVITE can have been answered (carrier 5xx, capacity). A dial
whose outcome is unknown (timeout, reset, 5xx from LiveKit itself) is resolved
by looking at the room, never by dialing again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from livekit import api
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from .config import CampaignConfig, render
from .livekit import LiveKitGateway
from .models import AttemptState, CallResult, CampaignState, DispatchMetadata, Outcome
from .policy import Action, Verdict, classify, is_ambiguous
from .settings import Settings
from .store import CampaignRecord, Store
from .window import is_open, next_opening

log = logging.getLogger(__name__)

#: In-task tries of a CreateSIPParticipant that failed before any answer.
DIAL_TRIES = 3
DIAL_RETRY_BASE_S = 0.2
DIAL_RETRY_MAX_S = 3.0
#: Tries of the calls that place nothing (create room, create dispatch).
SETUP_TRIES = 3
#: How long the trunk backs off after a capacity response.
CAPACITY_COOLDOWN_S = 5.0
#: Delay before an attempt that never reached the network is tried again.
REQUEUE_DELAY_S = 5.0
#: A room with nobody left in it closes after this long.
ROOM_EMPTY_TIMEOUT_S = 60
#: How often an unknown dial outcome is polled.
RESOLVE_POLL_S = 0.25
CAMPAIGN_CACHE_S = 5.0
#: The calling window must stay open this long past the INVITE.
WINDOW_GUARD = timedelta(seconds=2)

TRANSIENT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, concurrent.futures.TimeoutError)


def mask(number: str) -> str:
    """A phone number safe for logs: +1202*****42."""
    return number[:5] + "*" * max(0, len(number) - 7) + number[-2:] if len(number) > 7 else "***"


def room_name(cid: str, contact_id: int, seq: int) -> str:
    """Deterministic: the same attempt always means the same room."""
    return f"dial-{cid}-{contact_id}-{seq}"


def participant_identity(contact_id: int) -> str:
    return f"callee-{contact_id}"


def dispatch_metadata(
    cid: str, contact_id: int, seq: int, contact: dict[str, Any], config: CampaignConfig
) -> DispatchMetadata:
    """What the agent is told about one attempt, with the campaign's templates rendered."""
    variables = contact.get("variables", {})
    return DispatchMetadata(
        call_id=DispatchMetadata.make_call_id(cid, contact_id, seq),
        campaign_id=cid,
        contact_id=contact_id,
        attempt=seq,
        phone_e164=contact["phone_e164"],
        participant_identity=participant_identity(contact_id),
        variables=variables,
        instructions=render(config.instructions, variables),
        greeting=render(config.greeting, variables),
        voicemail_action=config.voicemail_action,
        voicemail_message=render(config.voicemail_message or "", variables),
        dispositions=list(config.dispositions),
        capture_fields=dict(config.capture_fields),
        transfer_number=config.transfer_number,
        max_call_duration_s=config.max_call_duration_s,
        ring_timeout_s=config.ring_timeout_s,
    )


def in_call_lease(settings: Settings, config: CampaignConfig, now: float) -> float:
    """When an answered call's lease runs out: its longest possible length plus slack."""
    return now + config.max_call_duration_s + 2 * settings.dialer_lease_margin_s


def rate_window(calls_per_second: float) -> tuple[int, float]:
    """(events, seconds): a fractional rate as whole events over a longer window."""
    events = max(1, math.ceil(calls_per_second))
    return events, events / calls_per_second


class _RetryableFailure(Exception):
    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.reason)
        self.verdict = verdict


@dataclass
class _Stop(Exception):
    """The attempt must not dial now (campaign state, DNC or calling window)."""

    label: str
    verdict: str
    outcome: Outcome
    due_at: float
    reason: str


class _UnknownOutcome(Exception):
    """The INVITE may or may not have gone out."""


@dataclass
class _Attempt:
    cid: str
    contact_id: int
    seq: int
    campaign: CampaignRecord
    contact: dict[str, Any]

    @property
    def member(self) -> str:
        return f"{self.contact_id}:{self.seq}"

    @property
    def call_id(self) -> str:
        return DispatchMetadata.make_call_id(self.cid, self.contact_id, self.seq)

    @property
    def config(self) -> CampaignConfig:
        return self.campaign.config

    @property
    def room(self) -> str:
        return room_name(self.cid, self.contact_id, self.seq)

    @property
    def identity(self) -> str:
        return participant_identity(self.contact_id)

    @property
    def log_extra(self) -> dict[str, str]:
        return {"call_id": self.call_id}


class Dialer:
    """Places dial attempts; one per worker process, shared by its threads."""

    def __init__(self, store: Store, gateway: LiveKitGateway, settings: Settings,
                 clock: Callable[[], float] | None = None) -> None:
        self.store = store
        self.gateway = gateway
        self.settings = settings
        self.clock = clock or settings.now
        self._campaigns: dict[str, tuple[float, CampaignRecord]] = {}

    def campaign(self, cid: str) -> CampaignRecord:
        cached = self._campaigns.get(cid)
        if cached and time.monotonic() - cached[0] < CAMPAIGN_CACHE_S:
            return cached[1]
        record = self.store.get_campaign(cid)
        self._campaigns[cid] = (time.monotonic(), record)
        return record

    # -- the task body -----------------------------------------------------------------

    def dial(self, cid: str, contact_id: int, seq: int) -> str:
        """Dial one queued attempt; returns what became of it (for logs and tests)."""
        campaign = self.campaign(cid)
        member = f"{contact_id}:{seq}"
        now = self.clock()
        lease = now + campaign.config.ring_timeout_s + self.settings.dialer_lease_margin_s
        claimed = self.store.transition(cid, member, [AttemptState.QUEUED], AttemptState.DIALING,
                                        lease, {"dial_started_at": now})
        if claimed != "ok":
            log.info("attempt %s:%s already %s; duplicate delivery ignored", cid, member, claimed,
                     extra={"call_id": f"{cid}:{member}"})
            return f"duplicate:{claimed}"
        contact = self.store.contacts(cid, [contact_id])[0] or {}
        attempt = _Attempt(cid, contact_id, seq, campaign, contact)
        stop = self._gate(attempt, now)
        if stop:
            return self._stop(attempt, None, stop)
        return self._place_call(attempt)

    def _gate(self, attempt: _Attempt, now: float) -> _Stop | None:
        """Campaign state, DNC and calling window (I4); checked again right before each INVITE."""
        state = self.store.campaign_state(attempt.cid)
        if state == CampaignState.CANCELLED:
            return _Stop("cancelled", "final", Outcome.CANCELLED, now, "campaign cancelled")
        if state != CampaignState.RUNNING:
            return _Stop(f"requeued:{state}", "requeue", Outcome.FAILED, now, f"campaign {state}")
        if self.store.dnc_contains(attempt.contact["phone_e164"]):
            return _Stop("dnc", "final", Outcome.OPTED_OUT, now, "on the do-not-call list")
        zones = attempt.contact.get("time_zones", [])
        window = attempt.config.calling_window
        moment = datetime.fromtimestamp(now, UTC)
        # The window must still be open a little after the INVITE leaves, not only now.
        if not (is_open(window, zones, moment) and is_open(window, zones, moment + WINDOW_GUARD)):
            opening = next_opening(window, zones, moment + WINDOW_GUARD)
            due = opening.timestamp() if opening else now + 86_400
            return _Stop("outside_window", "requeue", Outcome.FAILED, due, "outside the calling window")
        return None

    def _stop(self, attempt: _Attempt, dispatch_id: str | None, stop: _Stop) -> str:
        if dispatch_id is not None:
            self._clean_up(attempt, dispatch_id)
        self._end(attempt, stop.verdict, stop.outcome, counts=False, due_at=stop.due_at, reason=stop.reason,
                  invite_sent=False)
        return stop.label

    def _place_call(self, attempt: _Attempt) -> str:
        # Take the first calls-per-second slot before the room and the agent dispatch exist,
        # so the agent's wait for the callee starts only when the INVITE is about to leave.
        self._wait_for_rate(attempt)
        stop = self._gate(attempt, self.clock())
        if stop:
            return self._stop(attempt, None, stop)
        try:
            dispatch_id = self._set_up_room(attempt)
        except (api.ServerError, *TRANSIENT_ERRORS) as exc:
            log.warning("could not set up room %s: %s", attempt.room, exc, extra=attempt.log_extra)
            if isinstance(exc, api.ServerError) and not is_ambiguous(None, exc.status):
                refusal = classify(None, None, exc.code, http_status=exc.status)
                if refusal.rule.action is Action.PAUSE:
                    return self._handle_failure(attempt, None, refusal, invite_sent=False)
            self._clean_up(attempt, None)
            self._end(attempt, "requeue", Outcome.CARRIER_ERROR, counts=False,
                      due_at=self.clock() + REQUEUE_DELAY_S, reason=f"room setup failed: {exc}",
                      invite_sent=False)
            return "setup_failed"
        try:
            info = self._dial_with_retries(attempt)
        except _Stop as stop:
            return self._stop(attempt, dispatch_id, stop)
        except _RetryableFailure as failure:
            return self._handle_failure(attempt, dispatch_id, failure.verdict)
        except api.ServerError as exc:
            verdict = self._classify(attempt, exc)
            if verdict is None:
                return self._resolve_unknown(attempt, dispatch_id, str(exc))
            return self._handle_failure(attempt, dispatch_id, verdict)
        except _UnknownOutcome as exc:
            return self._resolve_unknown(attempt, dispatch_id, str(exc))
        return self._answered(attempt, info.sip_call_id)

    def _set_up_room(self, attempt: _Attempt) -> str:
        metadata = dispatch_metadata(attempt.cid, attempt.contact_id, attempt.seq, attempt.contact, attempt.config)
        for retry in Retrying(
            retry=retry_if_exception_type(TRANSIENT_ERRORS) | retry_if_exception_type(api.ServerError),
            wait=wait_random_exponential(multiplier=DIAL_RETRY_BASE_S, max=DIAL_RETRY_MAX_S),
            stop=stop_after_attempt(SETUP_TRIES),
            reraise=True,
        ):
            with retry:
                self.gateway.create_room(attempt.room, ROOM_EMPTY_TIMEOUT_S)
                return self.gateway.create_dispatch(
                    attempt.room, attempt.config.agent_name or self.settings.agent_name,
                    metadata.model_dump_json(),
                )
        raise AssertionError("unreachable")

    def _dial_with_retries(self, attempt: _Attempt) -> api.SIPParticipantInfo:
        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning("dial %s failed (%s); retry %d of %d", mask(attempt.contact["phone_e164"]),
                        exc, state.attempt_number, DIAL_TRIES - 1, extra=attempt.log_extra)

        for retry in Retrying(
            retry=retry_if_exception_type(_RetryableFailure),
            wait=wait_random_exponential(multiplier=DIAL_RETRY_BASE_S, max=DIAL_RETRY_MAX_S),
            stop=stop_after_attempt(DIAL_TRIES),
            before_sleep=before_sleep,
            reraise=True,
        ):
            with retry:
                return self._dial_once(attempt, retrying=retry.retry_state.attempt_number > 1)
        raise AssertionError("unreachable")

    def _dial_once(self, attempt: _Attempt, retrying: bool) -> api.SIPParticipantInfo:
        if retrying:  # every INVITE takes its own calls-per-second slot (I3)
            self._wait_for_rate(attempt)
        stop = self._gate(attempt, self.clock())
        if stop:
            raise stop
        config = attempt.config
        request = api.CreateSIPParticipantRequest(
            sip_trunk_id=self.store.trunk_of(attempt.cid),
            sip_call_to=attempt.contact["phone_e164"],
            sip_number=config.caller_id or "",
            room_name=attempt.room,
            participant_identity=attempt.identity,
            participant_name=attempt.contact.get("variables", {}).get("first_name", ""),
            participant_attributes={"dialer.call_id": attempt.call_id, "dialer.attempt": str(attempt.seq)},
            wait_until_answered=True,
            play_dialtone=False,
        )
        request.ringing_timeout.seconds = config.ring_timeout_s
        request.max_call_duration.seconds = config.max_call_duration_s
        try:
            return self.gateway.dial(request)
        except api.ServerError as exc:
            verdict = self._classify(attempt, exc)
            if verdict is not None and verdict.rule.action in (Action.RETRY_SOON, Action.SLOW_DOWN):
                if verdict.rule.action is Action.SLOW_DOWN:
                    self.store.cool_down(self.store.trunk_of(attempt.cid), CAPACITY_COOLDOWN_S)
                raise _RetryableFailure(verdict) from None
            raise
        except TRANSIENT_ERRORS as exc:
            raise _UnknownOutcome(f"{type(exc).__name__}: {exc}") from None

    def _classify(self, attempt: _Attempt, exc: api.ServerError) -> Verdict | None:
        """The policy's verdict, or None when LiveKit itself failed and the outcome is unknown."""
        sip_code = exc.sip_status_code if isinstance(exc, api.SipCallError) else None
        sip_status = exc.sip_status if isinstance(exc, api.SipCallError) else None
        if is_ambiguous(sip_code, exc.status):
            return None
        return classify(sip_code, sip_status, exc.code, attempt.config.sip_policy, exc.status)

    def _wait_for_rate(self, attempt: _Attempt) -> None:
        """Hold the INVITE until the campaign's (and trunk's) calls-per-second allow it (I3)."""
        scopes = [(f"campaign:{attempt.cid}", attempt.config.calls_per_second)]
        if self.settings.dialer_trunk_calls_per_second > 0:
            scopes.append((f"trunk:{self.store.trunk_of(attempt.cid)}",
                           self.settings.dialer_trunk_calls_per_second))
        for scope, rate in scopes:
            events, window_s = rate_window(rate)
            token = f"{attempt.call_id}:{time.monotonic_ns()}"
            while (wait := self.store.acquire_rate(scope, time.time(), events, window_s, token)) > 0:
                time.sleep(min(wait, 1.0))

    # -- endings -----------------------------------------------------------------------

    def _answered(self, attempt: _Attempt, sip_call_id: str) -> str:
        now = self.clock()
        lease = in_call_lease(self.settings, attempt.config, now)
        moved = self.store.transition(attempt.cid, attempt.member, [AttemptState.DIALING],
                                      AttemptState.IN_CALL, lease,
                                      {"answered_at": now, "sip_call_id": sip_call_id})
        log.info("call %s answered", mask(attempt.contact["phone_e164"]), extra=attempt.log_extra)
        return "answered" if moved == "ok" else f"answered:{moved}"

    def _handle_failure(self, attempt: _Attempt, dispatch_id: str | None, verdict: Verdict,
                        invite_sent: bool = True) -> str:
        self._clean_up(attempt, dispatch_id)
        rule = verdict.rule
        now = self.clock()
        fields = {"sip_code": verdict.sip_code, "sip_status": verdict.sip_status,
                  "sip_class": verdict.sip_class.value, "spam_flagged": verdict.spam_flagged}
        log.info("dial %s failed: %s (%s)", mask(attempt.contact["phone_e164"]), verdict.reason,
                 verdict.sip_class.value, extra=attempt.log_extra)
        end = functools.partial(self._end, attempt, reason=verdict.reason, fields=fields, invite_sent=invite_sent)
        if rule.action is Action.FINAL:
            end("final", rule.outcome, counts=True)
        elif rule.action in (Action.RESCHEDULE, Action.RETRY_SOON):
            delay = getattr(attempt.config.retry_delay_s, rule.outcome.value, REQUEUE_DELAY_S)
            end("retry", rule.outcome, counts=True, due_at=now + delay)
        elif rule.action is Action.SLOW_DOWN:
            self.store.cool_down(self.store.trunk_of(attempt.cid), CAPACITY_COOLDOWN_S)
            end("requeue", rule.outcome, counts=False, due_at=now + CAPACITY_COOLDOWN_S)
        else:
            if verdict.sip_code is None:
                why = (f"LiveKit refused the request ({verdict.reason}, HTTP 401/403): check "
                       "LIVEKIT_API_KEY and LIVEKIT_API_SECRET, then `dialer campaign resume`")
            else:
                why = (f"the trunk refused the call ({verdict.reason}): check the outbound trunk's "
                       "credentials and settings, then `dialer campaign resume`")
            end("pause", rule.outcome, counts=False, due_at=now, pause_reason=why)
        return verdict.sip_class.value

    def _resolve_unknown(self, attempt: _Attempt, dispatch_id: str | None, why: str) -> str:
        """Find out from LiveKit what became of a dial whose response was lost (I1)."""
        log.warning("dial outcome unknown (%s); asking LiveKit about room %s", why, attempt.room,
                    extra=attempt.log_extra)
        deadline = time.monotonic() + attempt.config.ring_timeout_s + self.settings.dialer_lease_margin_s / 2
        while time.monotonic() < deadline:
            status = self._sip_status(attempt)
            if status == "active":
                return self._answered(attempt, "")
            if status in (None, "hangup"):
                break
            time.sleep(RESOLVE_POLL_S)
        self._clean_up(attempt, dispatch_id)
        self._end(attempt, "retry", Outcome.CARRIER_ERROR, counts=True,
                  due_at=self.clock() + attempt.config.retry_delay_s.carrier_error,
                  reason=f"dial outcome unknown ({why}); no call in the room")
        return "unknown"

    def _sip_status(self, attempt: _Attempt) -> str | None:
        """The callee participant's sip.callStatus, or None when it is not in the room."""
        try:
            participants = self.gateway.participants(attempt.room)
        except (api.ServerError, *TRANSIENT_ERRORS):
            return "unknown"
        for participant in participants or []:
            if participant.identity == attempt.identity:
                return str(participant.attributes.get("sip.callStatus", "dialing"))
        return None

    def _clean_up(self, attempt: _Attempt, dispatch_id: str | None) -> None:
        """Delete the room and the dispatch on every failure path."""
        try:
            if dispatch_id:
                self.gateway.delete_dispatch(dispatch_id, attempt.room)
            self.gateway.delete_room(attempt.room)
        except (api.ServerError, *TRANSIENT_ERRORS) as exc:
            log.warning("cleanup of room %s failed: %s (it empties itself after %ss)", attempt.room,
                        exc, ROOM_EMPTY_TIMEOUT_S, extra=attempt.log_extra)

    def _end(self, attempt: _Attempt, verdict: str, outcome: Outcome, *, counts: bool,
             due_at: float = 0.0, reason: str = "", fields: dict[str, Any] | None = None,
             pause_reason: str = "", invite_sent: bool = True) -> str:
        """Finalise a dialing attempt; ``invite_sent=False`` marks one that never reached the network."""
        marker = {} if invite_sent else {"invite_sent": False}
        return self.store.finalise(
            attempt.cid, attempt.member, [AttemptState.DIALING], now=self.clock(), verdict=verdict,
            outcome=outcome, counts=counts, due_at=due_at, max_attempts=attempt.config.max_attempts,
            fields={"reason": reason, **marker, **(fields or {})}, pause_reason=pause_reason,
        )


def finish_call(store: Store, call_id: str, result: CallResult, now: float | None = None) -> str:
    """Record a call's end, exactly once: the path the agent (and the sandbox) report through."""
    cid, contact_id, seq = DispatchMetadata.parse_call_id(call_id)
    contact = store.contacts(cid, [contact_id])[0]
    if result.outcome is Outcome.OPTED_OUT and contact:
        store.dnc_add([contact["phone_e164"]])
    record = store.get_campaign(cid)
    ended = result.ended_at or now or time.time()
    return store.finalise(
        cid, f"{contact_id}:{seq}", [AttemptState.DIALING, AttemptState.IN_CALL], now=ended,
        verdict="final", outcome=result.outcome, counts=True, max_attempts=record.config.max_attempts,
        fields={"answered_at": result.answered_at, "ended_at": ended, "talk_s": result.talk_s,
                "disposition": result.disposition, "sip_call_id": result.sip_call_id,
                "reason": result.error or result.disposition},
        result=result.model_dump(mode="json"),
    )
