"""One dial attempt, from claim to hand-off (DESIGN.md section 3, steps 4-5; invariants I1-I4).

The attempt is claimed in the ledger with a compare-and-set before anything
reaches LiveKit; a failed claim is a duplicate delivery. Right before every
INVITE one atomic step (``Store.admit``) checks that the attempt is still held
by this task and the campaign still runs, takes the calls-per-second slots in
the Redis server's clock and renews the lease, so a task slowed past its lease
never dials. tenacity retries only failures where no INVITE can have been
answered (carrier 5xx, capacity). A dial whose outcome is unknown (timeout,
reset, 5xx from LiveKit itself) is resolved by looking at the room, never by
dialing again, and closed only on positive evidence.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import math
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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

from . import bridge
from .callerid import choose as choose_caller_id
from .config import CampaignConfig, render
from .livekit import LiveKitGateway
from .models import AttemptState, CallResult, CampaignState, DispatchMetadata, Outcome, contact_numbers
from .pacer import back_off, pace_factor
from .policy import Action, SipClass, Verdict, classify, is_ambiguous
from .settings import Settings
from .store import CampaignRecord, Ending, Observation, RateLimit, Store, through_outages
from .window import is_open, next_opening

log = logging.getLogger(__name__)

#: In-task tries of a CreateSIPParticipant that failed before any answer.
DIAL_TRIES = 3
DIAL_RETRY_BASE_S = 0.2
DIAL_RETRY_MAX_S = 3.0
#: Tries of the call that places nothing (CreateRoom with the agent's dispatch).
SETUP_TRIES = 3
#: How long a contact refused for capacity waits before it is due again.
CAPACITY_COOLDOWN_S = 5.0
#: Delay before an attempt that never reached the network is tried again.
REQUEUE_DELAY_S = 5.0
#: A room with nobody left in it closes after this long.
ROOM_EMPTY_TIMEOUT_S = 60
#: How often an unknown dial outcome is polled.
RESOLVE_POLL_S = 0.25
#: Looks without the callee, at least, before a dial counts as never placed (with the settle time).
NO_CALL_LOOKS = 3
#: Buckets (s) of the time from a dial task's claim to its first INVITE, for the metrics.
DIAL_LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: Longest nap while waiting for a calls-per-second slot (the lease is renewed after each).
RATE_POLL_MAX_S = 1.0
CAMPAIGN_CACHE_S = 5.0
#: How long a trunk's pace factor read by a worker is used for its INVITEs (a back-off raises
#: the next refusal within this, which backs off again; recovery is 2% a second).
PACE_FACTOR_CACHE_S = 0.5
#: How far ahead a callback the callee asked for is kept; later ones are recorded, not scheduled.
CALLBACK_HORIZON = timedelta(days=30)
#: Attempts of one worker process setting up at once (claim to first INVITE) on its event loop.
SETUP_GATE = 50
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
    cid: str, contact_id: int, seq: int, contact: dict[str, Any], config: CampaignConfig, number: str = ""
) -> DispatchMetadata:
    """What the agent is told about one attempt (``number``: the one dialed, default the contact's
    first), with the campaign's templates rendered."""
    variables = contact.get("variables", {})
    return DispatchMetadata(
        call_id=DispatchMetadata.make_call_id(cid, contact_id, seq),
        campaign_id=cid,
        contact_id=contact_id,
        attempt=seq,
        phone_e164=number or contact["phone_e164"],
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


#: Failures that are ours or the carrier's, never the callee's: what the circuit breaker counts.
BREAKER_REASONS = (SipClass.CARRIER_ERROR.value, SipClass.CAPACITY.value, SipClass.UNKNOWN.value,
                   "unknown_outcome", "setup_failed")


def dtmf(extension: str, pause_s: float) -> str:
    """The digits LiveKit SIP plays once the call is answered: a pause ('w' is 0.5 s), then them."""
    return "w" * math.ceil(pause_s / 0.5) + extension


def dial_lease_s(settings: Settings, config: CampaignConfig) -> float:
    """A dialing attempt's lease, renewed at each step: the ring window plus slack."""
    return config.ring_timeout_s + settings.dialer_lease_margin_s


def in_call_lease_s(settings: Settings, config: CampaignConfig) -> float:
    """An answered call's lease: its longest possible length plus slack."""
    return config.max_call_duration_s + 2 * settings.dialer_lease_margin_s


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


class _LostClaim(Exception):
    """The attempt is no longer this task's (the reconciler ended it, or another claim holds it)."""

    def __init__(self, state: str) -> None:
        super().__init__(state)
        self.state = state


@dataclass
class _Attempt:
    cid: str
    contact_id: int
    seq: int
    campaign: CampaignRecord
    contact: dict[str, Any]
    #: This task's claim token: every step before an INVITE checks it is still the holder.
    claim: str = ""
    #: INVITEs this task sent for the attempt.
    invites: int = 0
    #: A CreateRoom went out: the room (and its agent) may exist, so an ending deletes it.
    room_requested: bool = False
    #: When this task claimed the attempt (monotonic clock).
    claimed_at: float = field(default_factory=time.monotonic)
    #: The number the callee sees, chosen once per attempt from the campaign's pool.
    caller_id: str = ""
    #: The trunk the campaign runs on (fixed when it started): read once per attempt.
    trunk: str = "default"
    #: The calls-per-second limits of this attempt's INVITEs: the trunk's pace factor is read
    #: once per attempt, and again only after a capacity refusal backed the trunk off.
    limits: list[RateLimit] | None = None
    #: Which of the contact's numbers this attempt dials (0: the first).
    number_index: int = 0
    #: How many numbers the contact may move through (1 unless the campaign dials alternates).
    alternates: int = 1
    #: Called at each INVITE: the attempt has stopped setting up (``Dialer.dial``).
    started: Callable[[], None] = field(default=lambda: None)
    #: Look in the room before dialing: Redis restarted (or failed over) since the attempt was
    #: queued, so a claim of it may have been lost with a call live in its room.
    look_first: bool = True

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
    def number(self) -> str:
        return contact_numbers(self.contact)[self.number_index][0]

    @property
    def extension(self) -> str:
        return contact_numbers(self.contact)[self.number_index][1]

    @property
    def number_fields(self) -> dict[str, Any]:
        """What the ledger records of the number an attempt dials."""
        fields: dict[str, Any] = {"number": self.number}
        if self.alternates > 1 or "numbers" in self.contact:
            fields["number_index"] = self.number_index
        return fields

    @property
    def identity(self) -> str:
        return participant_identity(self.contact_id)

    @property
    def log_extra(self) -> dict[str, str]:
        return {"call_id": self.call_id}


class Dialer:
    """Places dial attempts; one per worker process, shared by its threads.

    ``clock`` and ``sleep`` are the hooks tests drive to slow a task down deterministically.
    """

    def __init__(self, store: Store, gateway: LiveKitGateway, settings: Settings,
                 clock: Callable[[], float] | None = None, sleep: Callable[[float], None] | None = None) -> None:
        self.store = store
        self.gateway = gateway
        self.settings = settings
        self.clock = clock or settings.now
        self.sleep = sleep or bridge.sleep
        self._campaigns: dict[str, tuple[float, CampaignRecord]] = {}
        self._gate: asyncio.Semaphore | None = None
        self._factors: dict[str, tuple[float, float]] = {}

    def campaign(self, cid: str) -> CampaignRecord:
        cached = self._campaigns.get(cid)
        if cached and time.monotonic() - cached[0] < CAMPAIGN_CACHE_S:
            return cached[1]
        record = self.store.get_campaign(cid)
        self._campaigns[cid] = (time.monotonic(), record)
        return record

    # -- the task body -----------------------------------------------------------------

    def dial(self, cid: str, contact_id: int, seq: int, started: Callable[[], None] | None = None) -> str:
        """Dial one queued attempt; returns what became of it (for logs and tests). ``started`` is
        called at each INVITE, once the attempt has stopped setting up."""
        campaign = self.campaign(cid)
        # The trunk is written once, with the start; a record read before it has none.
        trunk = campaign.trunk or self.store.trunk_of(cid)
        member = f"{contact_id}:{seq}"
        now = self.clock()
        claim = secrets.token_hex(16)
        claimed = self.store.claim(cid, contact_id, seq, lease_s=dial_lease_s(self.settings, campaign.config),
                                   fields={"dial_started_at": now}, claim=claim, trunk=trunk)
        if claimed.outcome != "ok":
            log.info("attempt %s:%s already %s; duplicate delivery ignored", cid, member, claimed.outcome,
                     extra={"call_id": f"{cid}:{member}"})
            return f"duplicate:{claimed.outcome}"
        contact = claimed.contact or {}
        attempt = _Attempt(cid, contact_id, seq, campaign, contact, claim, trunk=trunk,
                           started=started or (lambda: None), look_first=not claimed.same_run)
        if campaign.config.alternate_numbers == "next_on_failure" and len(contact.get("numbers", ())) > 1:
            # finalise.lua moves a contact to its next number; the status says which one is due.
            attempt.alternates = len(contact["numbers"])
            index = int((claimed.status or {}).get("number_index") or 0)
            attempt.number_index = min(index, attempt.alternates - 1)
        try:
            self._window(attempt)
        except _Stop as stop:
            return self._stop(attempt, stop)
        # The campaign's state, DNC and the claim are checked (and the lease renewed) by the
        # admission before each room set-up try and before each INVITE.
        return self._place_call(attempt)

    async def dial_all(self, cid: str, attempts: Sequence[tuple[int, int]]) -> list[str]:
        """Dial several queued attempts at once on the running loop, each as ``dial`` would
        (``bridge.run``) once it passes the setup gate; one attempt's failure is logged and
        leaves the others alone."""
        ends = await asyncio.gather(*(self._gated(cid, contact_id, seq) for contact_id, seq in attempts),
                                    return_exceptions=True)
        for (contact_id, seq), end in zip(attempts, ends, strict=True):
            if isinstance(end, BaseException):
                log.error("dial attempt %s:%s:%s failed", cid, contact_id, seq, exc_info=end,
                          extra={"call_id": DispatchMetadata.make_call_id(cid, contact_id, seq)})
        return [end if isinstance(end, str) else f"error:{type(end).__name__}" for end in ends]

    async def _gated(self, cid: str, contact_id: int, seq: int) -> str:
        """One attempt through the setup gate: at most ``SETUP_GATE`` attempts of this process are
        between their start and their first INVITE (a wait for a calls-per-second slot included).
        Thousands started at once would otherwise go through each step together, every claim,
        then every room..., and the first INVITE would wait for the last claim."""
        if self._gate is None:
            self._gate = asyncio.Semaphore(SETUP_GATE)
        gate = self._gate
        await gate.acquire()
        held = True

        def leave() -> None:
            nonlocal held
            if held:
                held = False
                gate.release()

        try:
            return await bridge.run(self.dial, cid, contact_id, seq, leave)
        finally:
            leave()

    def _window(self, attempt: _Attempt) -> None:
        """The calling window in the callee's local time (I4); it must stay open past the INVITE."""
        now = self.clock()
        zones = attempt.contact.get("time_zones", [])
        window = attempt.config.calling_window
        moment = datetime.fromtimestamp(now, UTC)
        if not (is_open(window, zones, moment) and is_open(window, zones, moment + WINDOW_GUARD)):
            opening = next_opening(window, zones, moment + WINDOW_GUARD)
            due = opening.timestamp() if opening else now + 86_400
            raise _Stop("outside_window", "requeue", Outcome.FAILED, due, "outside the calling window")

    def _admit(self, attempt: _Attempt, mode: str) -> None:
        """Check the claim, the campaign and DNC atomically and renew the lease; with ``invite``
        also wait for the calls-per-second slots (renewing the lease while waiting)."""
        nonce = secrets.token_hex(16)
        if attempt.limits is None:
            attempt.limits = self._limits(attempt)
        while True:
            first_invite = None
            if mode == "invite":
                self._window(attempt)
                # Counted by the script only when it lets the attempt's first INVITE go.
                first_invite = Observation("dial_latency_s", time.monotonic() - attempt.claimed_at,
                                           DIAL_LATENCY_BUCKETS_S)
            admission = self.store.admit(
                attempt.cid, attempt.member, claim=attempt.claim,
                lease_s=dial_lease_s(self.settings, attempt.config), number=attempt.number, mode=mode,
                limits=attempt.limits, nonce=nonce,
                fields={"caller_id": attempt.caller_id or None, **attempt.number_fields},
                trunk=attempt.trunk, first_invite=first_invite,
            )
            if admission.ok:
                return
            if admission.verdict == "wait":
                self.sleep(min(admission.wait_s, RATE_POLL_MAX_S))
                continue
            now = self.clock()
            if admission.verdict == "lost":
                raise _LostClaim(admission.detail)
            if admission.verdict == "dnc":
                raise _Stop("dnc", "final", Outcome.OPTED_OUT, now, "on the do-not-call list")
            if admission.detail == CampaignState.CANCELLED:
                raise _Stop("cancelled", "final", Outcome.CANCELLED, now, "campaign cancelled")
            raise _Stop(f"requeued:{admission.detail}", "requeue", Outcome.FAILED, now,
                        f"campaign {admission.detail}")

    def _limits(self, attempt: _Attempt) -> list[RateLimit]:
        """The calls-per-second limits of this INVITE, slowed while the trunk backs off."""
        trunk = attempt.trunk
        factor = self._pace_factor(trunk)
        guard_s = self.settings.dialer_rate_guard_s
        limits = [RateLimit.per_second(f"campaign:{attempt.cid}", attempt.config.calls_per_second * factor, guard_s)]
        if self.settings.dialer_trunk_calls_per_second > 0:
            limits.append(RateLimit.per_second(f"trunk:{trunk}", self.settings.dialer_trunk_calls_per_second * factor,
                                               guard_s))
        return limits

    def _pace_factor(self, trunk: str) -> float:
        """The trunk's pace factor, read at most once per ``PACE_FACTOR_CACHE_S`` by this process
        (and at once after this process backed the trunk off)."""
        cached = self._factors.get(trunk)
        if cached is None or time.monotonic() - cached[0] >= PACE_FACTOR_CACHE_S:
            cached = (time.monotonic(), pace_factor(self.store, trunk))
            self._factors[trunk] = cached
        return cached[1]

    def _stop(self, attempt: _Attempt, stop: _Stop) -> str:
        self._end(attempt, stop.verdict, stop.outcome, counts=False, due_at=stop.due_at, reason=stop.reason,
                  invite_sent=attempt.invites > 0)
        if attempt.room_requested:  # a CreateRoom went out, even one refused on its retry
            self._clean_up(attempt)
        return stop.label

    def _lost(self, attempt: _Attempt, lost: _LostClaim) -> str:
        """The attempt was taken from this task: never dial; tidy up only what is ours alone."""
        log.warning("attempt %s is %s under another holder; this late task does not dial", attempt.member,
                    lost.state, extra=attempt.log_extra)
        if lost.state in (AttemptState.DONE, "missing"):
            self._clean_up(attempt)
        return f"lost_claim:{lost.state}"

    def _place_call(self, attempt: _Attempt) -> str:
        # I1 after a lost claim (Redis restarted from an AOF without it): a callee already in this
        # attempt's room means an earlier holder's INVITE is live. Never dial over it; the
        # reconciler follows that call from the room. Without a restart since the attempt was
        # queued no claim can have been lost, and the room is not read.
        try:
            status = self._look_before_dialing(attempt) if attempt.look_first else None
        except (api.ServerError, *TRANSIENT_ERRORS) as exc:
            refusal = _refusal(exc)
            if refusal is not None:
                return self._handle_failure(attempt, refusal)
            log.warning("cannot read room %s before dialing (%s); left to the reconciler", attempt.room, exc,
                        extra=attempt.log_extra)
            return "room_unreadable"
        if status is not None:
            log.warning("callee already in room %s (%s): attempt in progress, not dialing again", attempt.room,
                        status, extra=attempt.log_extra)
            return "in_progress"
        try:
            self._set_up_room(attempt)
        except _Stop as stop:  # refused before a retried CreateRoom: the first may have worked
            return self._stop(attempt, stop)
        except _LostClaim as lost:
            return self._lost(attempt, lost)
        except (api.ServerError, *TRANSIENT_ERRORS) as exc:
            log.warning("could not set up room %s: %s", attempt.room, exc, extra=attempt.log_extra)
            refusal = _refusal(exc)
            if refusal is not None:
                return self._handle_failure(attempt, refusal)
            self._end(attempt, "requeue", Outcome.CARRIER_ERROR, counts=False,
                      due_at=self.clock() + REQUEUE_DELAY_S, reason=f"room setup failed: {exc}",
                      invite_sent=False)
            self._count_ending(attempt, "setup_failed", f"LiveKit failed to set up the room ({exc})")
            self._clean_up(attempt)
            return "setup_failed"
        attempt.caller_id = choose_caller_id(self.store, attempt.cid, attempt.config, attempt.number)
        try:
            info = self._dial_with_retries(attempt)
        except _Stop as stop:
            return self._stop(attempt, stop)
        except _LostClaim as lost:
            return self._lost(attempt, lost)
        except _RetryableFailure as failure:
            return self._handle_failure(attempt, failure.verdict)
        except api.ServerError as exc:
            verdict = self._classify(attempt, exc)
            if verdict is None:
                return self._resolve_unknown(attempt, str(exc))
            return self._handle_failure(attempt, verdict)
        except _UnknownOutcome as exc:
            return self._resolve_unknown(attempt, str(exc))
        return self._answered(attempt, info.sip_call_id)

    def _look_before_dialing(self, attempt: _Attempt) -> str | None:
        """The callee's status in the attempt's room (the gateway retries reads by itself)."""
        return callee_status(self.gateway, attempt.room, attempt.identity)

    def _set_up_room(self, attempt: _Attempt) -> None:
        """Create the attempt's room with its agent dispatched in the same request. A try whose
        answer was lost is safe to repeat: LiveKit dispatches a room's agents only when it builds
        the room, never for a CreateRoom of a live one (see ``LiveKitGateway.create_room``)."""
        metadata = dispatch_metadata(attempt.cid, attempt.contact_id, attempt.seq, attempt.contact, attempt.config,
                                     attempt.number).model_dump_json()
        agent_name = attempt.config.agent_name or self.settings.agent_name
        for retry in Retrying(
            retry=retry_if_exception_type(TRANSIENT_ERRORS) | retry_if_exception_type(api.ServerError),
            wait=wait_random_exponential(multiplier=DIAL_RETRY_BASE_S, max=DIAL_RETRY_MAX_S),
            stop=stop_after_attempt(SETUP_TRIES),
            sleep=self.sleep,
            reraise=True,
        ):
            with retry:
                self._admit(attempt, "hold")  # still ours, and the lease covers this try
                attempt.room_requested = True
                self.gateway.create_room(attempt.room, ROOM_EMPTY_TIMEOUT_S, agent_name=agent_name,
                                         agent_metadata=metadata)

    def _dial_with_retries(self, attempt: _Attempt) -> api.SIPParticipantInfo:
        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning("dial %s failed (%s); retry %d of %d", mask(attempt.number),
                        exc, state.attempt_number, DIAL_TRIES - 1, extra=attempt.log_extra)

        for retry in Retrying(
            retry=retry_if_exception_type(_RetryableFailure),
            wait=wait_random_exponential(multiplier=DIAL_RETRY_BASE_S, max=DIAL_RETRY_MAX_S),
            stop=stop_after_attempt(DIAL_TRIES),
            before_sleep=before_sleep,
            sleep=self.sleep,
            reraise=True,
        ):
            with retry:
                return self._dial_once(attempt)
        raise AssertionError("unreachable")

    def _dial_once(self, attempt: _Attempt) -> api.SIPParticipantInfo:
        # Every INVITE, first or retry: still ours, campaign running, not on DNC, window open,
        # and a calls-per-second slot for the campaign and the trunk (I1, I3, I4).
        self._admit(attempt, "invite")
        config = attempt.config
        request = api.CreateSIPParticipantRequest(
            sip_trunk_id=attempt.trunk,
            sip_call_to=attempt.number,
            sip_number=attempt.caller_id,
            room_name=attempt.room,
            participant_identity=attempt.identity,
            participant_name=attempt.contact.get("variables", {}).get("first_name", ""),
            participant_attributes={"dialer.call_id": attempt.call_id, "dialer.attempt": str(attempt.seq)},
            wait_until_answered=True,
            play_dialtone=False,
        )
        if attempt.extension:
            request.dtmf = dtmf(attempt.extension, config.extension_pause_s)
        request.ringing_timeout.seconds = config.ring_timeout_s
        request.max_call_duration.seconds = config.max_call_duration_s
        attempt.invites += 1
        attempt.started()
        log.info("INVITE %s (try %d)", mask(attempt.number), attempt.invites, extra=attempt.log_extra)
        try:
            return self.gateway.dial(request)
        except api.ServerError as exc:
            verdict = self._classify(attempt, exc)
            if verdict is not None and verdict.rule.action in (Action.RETRY_SOON, Action.SLOW_DOWN):
                if verdict.rule.action is Action.SLOW_DOWN:
                    self._factors[attempt.trunk] = (time.monotonic(), back_off(self.store, attempt.trunk))
                    attempt.limits = None  # the next try reads the slower pace
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

    # -- endings -----------------------------------------------------------------------

    def _answered(self, attempt: _Attempt, sip_call_id: str) -> str:
        now = self.clock()
        moved, tripped = self.store.transition_counted(
            attempt.cid, attempt.member, [AttemptState.DIALING], AttemptState.IN_CALL,
            in_call_lease_s(self.settings, attempt.config), {"answered_at": now, "sip_call_id": sip_call_id},
            trunk=attempt.trunk, ending=self._ending(attempt, ""))
        log.info("call %s answered", mask(attempt.number), extra=attempt.log_extra)
        self._tripped(attempt, tripped)
        return "answered" if moved == "ok" else f"answered:{moved}"

    def _handle_failure(self, attempt: _Attempt, verdict: Verdict) -> str:
        # The SIP result goes into the ledger first: a crash during the cleanup must not turn a
        # person's 603 into a carrier-error retry.
        rule = verdict.rule
        now = self.clock()
        fields = {"sip_code": verdict.sip_code, "sip_status": verdict.sip_status,
                  "sip_class": verdict.sip_class.value, "spam_flagged": verdict.spam_flagged}
        log.info("dial %s failed: %s (%s)", mask(attempt.number), verdict.reason,
                 verdict.sip_class.value, extra=attempt.log_extra)
        end = functools.partial(self._end, attempt, reason=verdict.reason, fields=fields,
                                invite_sent=attempt.invites > 0)
        if rule.action is Action.FINAL:
            end("final", rule.outcome, counts=True)
        elif rule.action in (Action.RESCHEDULE, Action.RETRY_SOON):
            delay = getattr(attempt.config.retry_delay_s, rule.outcome.value, REQUEUE_DELAY_S)
            end("retry", rule.outcome, counts=True, due_at=now + delay)
        elif rule.action is Action.SLOW_DOWN:
            end("requeue", rule.outcome, counts=False, due_at=now + CAPACITY_COOLDOWN_S)
        else:
            if verdict.sip_code is None:
                why = (f"LiveKit refused the request ({verdict.reason}, HTTP 401/403): check "
                       "LIVEKIT_API_KEY and LIVEKIT_API_SECRET, then `dialer campaign resume`")
            else:
                why = (f"the trunk refused the call ({verdict.reason}): check the outbound trunk's "
                       "credentials and settings, then `dialer campaign resume`")
            end("pause", rule.outcome, counts=False, due_at=now, pause_reason=why)
        if attempt.invites:
            failure = verdict.sip_class.value if verdict.sip_class.value in BREAKER_REASONS else ""
            self._count_ending(attempt, failure, verdict.reason)
        self._clean_up(attempt)
        return verdict.sip_class.value

    def _resolve_unknown(self, attempt: _Attempt, why: str) -> str:
        """Find out from LiveKit what became of a dial whose response was lost (I1).

        Closed only on positive evidence: the callee answered, or the room was seen without the
        callee for longer than LiveKit takes to place one and was then deleted. Anything else
        (look-ups failing, a callee still ringing or just hung up) is left to the reconciler.
        """
        log.warning("dial outcome unknown (%s); asking LiveKit about room %s", why, attempt.room,
                    extra=attempt.log_extra)
        settle_s = self.settings.dialer_no_call_settle_s
        deadline = time.monotonic() + attempt.config.ring_timeout_s + self.settings.dialer_lease_margin_s / 2
        empty_looks, empty_since, seen = 0, 0.0, False
        while time.monotonic() < deadline:
            if (self.store.attempt(attempt.cid, attempt.member) or {}).get("state") != AttemptState.DIALING:
                return "unknown:settled"  # the call's agent reported, or the reconciler settled it
            status = self._sip_status(attempt)
            if status == "active":
                return self._answered(attempt, "")
            if status is None and seen:
                break  # a call was placed and is over: only its agent (or the reconciler) knows how
            if status is None:
                empty_looks += 1
                empty_since = empty_since or time.monotonic()
                if empty_looks >= NO_CALL_LOOKS and time.monotonic() - empty_since >= settle_s:
                    return self._settle_no_call(attempt, why)
            elif status != "unknown":
                seen = True
            self.sleep(RESOLVE_POLL_S)
        log.warning("dial outcome of room %s still unknown; left to the reconciler", attempt.room,
                    extra=attempt.log_extra)
        return "unknown:reconciler"

    def _settle_no_call(self, attempt: _Attempt, why: str) -> str:
        try:
            self.gateway.delete_room(attempt.room)
        except (api.ServerError, *TRANSIENT_ERRORS) as exc:
            # The room might still get its callee; not settled until a later look shows it gone.
            log.warning("room %s could not be deleted (%s); left to the reconciler", attempt.room, exc,
                        extra=attempt.log_extra)
            return "unknown:reconciler"
        self._end(attempt, "retry", Outcome.CARRIER_ERROR, counts=True,
                  due_at=self.clock() + attempt.config.retry_delay_s.carrier_error,
                  reason=f"dial outcome unknown ({why}); no call in the room")
        self._count_ending(attempt, "unknown_outcome", f"LiveKit lost the answer to the INVITE ({why})")
        return "unknown"

    def _count_ending(self, attempt: _Attempt, failure: str, detail: str = "") -> None:
        """Feed the circuit breaker: ``failure`` is one of BREAKER_REASONS, or '' for an ending
        that says nothing bad about the trunk (answered, busy, no answer, declined...)."""
        ending = self._ending(attempt, failure, detail)
        if ending is not None:
            self._tripped(attempt, self.store.count_ending(attempt.cid, ending))

    @staticmethod
    def _ending(attempt: _Attempt, failure: str, detail: str = "") -> Ending | None:
        """What the circuit breaker counts of an ending; None when the campaign has it off."""
        breaker = attempt.config.circuit_breaker
        if not breaker.enabled:
            return None
        why = (f"circuit breaker: {{failed}} of the last {{total}} attempts within {breaker.window_s:g} s failed "
               f"with {failure} (last: {detail}); check the trunk and the carrier, then `dialer campaign resume`")
        return Ending(failure, breaker.window_s, breaker.min_attempts, breaker.failure_ratio, why)

    @staticmethod
    def _tripped(attempt: _Attempt, tripped: str) -> None:
        if tripped:
            log.warning("campaign %s paused: %s", attempt.cid, tripped, extra=attempt.log_extra)

    def _sip_status(self, attempt: _Attempt) -> str | None:
        """The callee participant's sip.callStatus, None when it is not in the room, or
        ``unknown`` when LiveKit could not be read."""
        try:
            return callee_status(self.gateway, attempt.room, attempt.identity)
        except (api.ServerError, *TRANSIENT_ERRORS):
            return "unknown"

    def _clean_up(self, attempt: _Attempt) -> None:
        """Delete the room on every failure path: LiveKit ends its agent's job with it."""
        try:
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
            fields={"reason": reason, **marker, **attempt.number_fields, **(fields or {})}, pause_reason=pause_reason,
            trunk=attempt.trunk, numbers=attempt.alternates,
        )


def _refusal(exc: BaseException) -> Verdict | None:
    """A LiveKit refusal that pauses the campaign (bad credentials), else None."""
    if isinstance(exc, api.ServerError) and not is_ambiguous(None, exc.status):
        verdict = classify(None, None, exc.code, http_status=exc.status)
        if verdict.rule.action is Action.PAUSE:
            return verdict
    return None


def callee_status(gateway: LiveKitGateway, room: str, identity: str) -> str | None:
    """The callee's sip.callStatus in ``room``, or None when it is not there (or no room).
    LiveKit errors are raised."""
    for participant in gateway.participants(room) or []:
        if participant.identity == identity:
            return str(participant.attributes.get("sip.callStatus", "dialing"))
    return None


@through_outages  # a call's result outlives a Redis restart; every step here can run again
def finish_call(store: Store, call_id: str, result: CallResult, now: float | None = None) -> str:
    """Record a call's end, exactly once: the path the agent (and the sandbox) report through."""
    cid, contact_id, seq = DispatchMetadata.parse_call_id(call_id)
    if result.outcome is Outcome.OPTED_OUT:
        contact = store.contacts(cid, [contact_id])[0]
        if contact:
            # The number the callee was reached on (the contact's other numbers may be other people's).
            dialed = (store.attempt(cid, f"{contact_id}:{seq}") or {}).get("number")
            store.dnc_add([dialed or contact["phone_e164"]])
    ended = result.ended_at or now or time.time()
    due_at, skipped = callback_due(result, ended)
    # Only a callback reads the campaign's configuration (its max_callbacks); a final verdict
    # needs no limit, so the common ending reads just the trunk.
    max_callbacks = store.get_campaign(cid).config.max_callbacks if due_at is not None else 0
    return store.finalise(
        cid, f"{contact_id}:{seq}", [AttemptState.DIALING, AttemptState.IN_CALL], now=ended,
        verdict="final" if due_at is None else "callback", outcome=result.outcome, counts=True,
        due_at=due_at or 0.0, max_callbacks=max_callbacks,
        fields={"answered_at": result.answered_at, "ended_at": ended, "talk_s": result.talk_s,
                "disposition": result.disposition, "sip_call_id": result.sip_call_id,
                "reason": result.error or result.disposition, "callback_skipped": skipped or None},
        result=result.model_dump(mode="json"),
    )


def callback_due(result: CallResult, ended_at: float) -> tuple[float | None, str]:
    """When to call back a callee who asked for it (None when not), and why a request is not kept."""
    if not result.callback_at or result.outcome is not Outcome.ANSWERED:
        return None, ""
    try:
        moment = datetime.fromisoformat(result.callback_at)
    except ValueError:
        return None, f"callback time {result.callback_at!r} is not an ISO 8601 date and time"
    due = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    if due <= ended_at:
        return None, f"callback time {result.callback_at} had passed when the call ended"
    if due - ended_at > CALLBACK_HORIZON.total_seconds():
        return None, f"callback time {result.callback_at} is more than {CALLBACK_HORIZON.days} days ahead"
    return due, ""
