"""Process settings, read once from the environment and an optional ``.env`` file."""

from __future__ import annotations

import os
import time
from functools import cache
from pathlib import Path

from dotenv import dotenv_values
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import SettingsError

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_AGENT_NAME = "outbound-agent"
DEFAULT_MAX_UPLOAD_MB = 512
#: Enough threads for 2,000+ calls ringing at once in one process (bench/README.md: 2,500 ringing
#: at 382 MiB RSS); each ringing call holds one thread.
DEFAULT_WORKER_CONCURRENCY = 3000
DEFAULT_WEBHOOK_TIMEOUT_S = 10.0
DEFAULT_WEBHOOK_BACKOFF_S = 5.0
DEFAULT_WEBHOOK_BACKOFF_MAX_S = 3_600.0
DEFAULT_WEBHOOK_HORIZON_S = 86_400.0
DEFAULT_WEBHOOK_MAX_IN_FLIGHT = 20

#: What each setting is called in the environment, for error messages.
ENV_NAMES = {
    "redis_url": "REDIS_URL",
    "livekit_url": "LIVEKIT_URL",
    "livekit_api_key": "LIVEKIT_API_KEY",
    "livekit_api_secret": "LIVEKIT_API_SECRET",
    "sip_outbound_trunk_id": "SIP_OUTBOUND_TRUNK_ID",
    "agent_name": "AGENT_NAME",
}


class Settings(BaseSettings):
    """Everything a dialer process needs to know about its environment.

    Field names map to environment variables of the same name in upper case
    (``redis_url`` <- ``REDIS_URL``); secrets are never read from campaign files.
    """

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    redis_url: str = DEFAULT_REDIS_URL
    livekit_url: str | None = None
    livekit_api_key: str | None = None
    livekit_api_secret: str | None = Field(default=None, repr=False)
    sip_outbound_trunk_id: str | None = None
    agent_name: str = DEFAULT_AGENT_NAME
    #: Files larger than this are refused before anything is stored.
    dialer_max_upload_mb: float = Field(default=DEFAULT_MAX_UPLOAD_MB, gt=0)
    #: Where uploaded campaign files are kept for the ``ingest`` task.
    dialer_upload_dir: Path = Path("var/uploads")
    #: Trunk-wide limits, applied on top of each campaign's own (0 = no extra limit).
    dialer_trunk_max_concurrent_calls: int = Field(default=0, ge=0)
    dialer_trunk_calls_per_second: float = Field(default=0, ge=0)
    #: Seconds added to every calls-per-second window: the jitter allowed between the moment an
    #: INVITE is admitted and the moment it reaches LiveKit, so a burst of late requests still
    #: arrives within the caps (0.05 s costs 5% of a 1 call/s trunk).
    dialer_rate_guard_s: float = Field(default=0.05, ge=0, le=1)
    #: Threads per Celery worker process (each ringing call holds one).
    dialer_worker_concurrency: int = Field(default=DEFAULT_WORKER_CONCURRENCY, ge=1)

    #: Slack added to a dialing attempt's lease (ring timeout + this) and to an answered
    #: call's (max duration + twice this) before the reconciler looks into it.
    dialer_lease_margin_s: float = Field(default=60.0, gt=0)
    #: How long a room must be seen without the callee (over several looks) before a dial whose
    #: answer was lost counts as never placed: longer than LiveKit takes to place a participant.
    dialer_no_call_settle_s: float = Field(default=3.0, ge=0)
    #: How long the reconciler keeps looking for an attempt's room while LiveKit cannot be read;
    #: then the attempt is closed as failed, never dialed again (every lease ends by a deadline).
    dialer_reconcile_give_up_s: float = Field(default=900.0, gt=0)
    #: Silence (s) after which a worker, beat, the pacer or the reconciler counts as gone in
    #: `campaign status` and `dialer doctor`.
    dialer_heartbeat_stale_s: float = Field(default=30.0, gt=0)
    #: How long a queued attempt may wait for its dial task before it is requeued.
    dialer_queued_lease_s: float = Field(default=60.0, gt=0)
    #: ``text`` (Celery's log lines) or ``json`` (one JSON object a line, with ``call_id``).
    dialer_log_format: str = Field(default="text", pattern="^(text|json)$")
    #: Added to the wall clock by the dialer; for dry runs and tests of calling windows.
    dialer_clock_offset_s: float = 0.0

    # -- webhooks (dialer/webhooks.py, dialer/webhook_sender.py) ----------------------------
    #: Allow webhook URLs that resolve to loopback, link-local or private addresses.
    dialer_webhook_allow_private: bool = False
    #: How long one delivery waits for the receiver (connect and answer) before it counts as failed.
    dialer_webhook_timeout_s: float = Field(default=DEFAULT_WEBHOOK_TIMEOUT_S, gt=0, le=120)
    #: The wait after the first failed try; it doubles after each further one ...
    dialer_webhook_backoff_s: float = Field(default=DEFAULT_WEBHOOK_BACKOFF_S, gt=0)
    #: ... up to this.
    dialer_webhook_backoff_max_s: float = Field(default=DEFAULT_WEBHOOK_BACKOFF_MAX_S, gt=0)
    #: How long a delivery keeps being retried before it is marked failed (replay it by hand then).
    dialer_webhook_horizon_s: float = Field(default=DEFAULT_WEBHOOK_HORIZON_S, gt=0)
    #: Deliveries in flight at once across the deployment: what a receiver that never answers
    #: can hold of the workers' threads.
    dialer_webhook_max_in_flight: int = Field(default=DEFAULT_WEBHOOK_MAX_IN_FLIGHT, ge=1)

    # -- the agent worker (agent_worker/) ---------------------------------------------------
    #: OpenAI API key for the agent's models; never logged.
    openai_api_key: str | None = Field(default=None, repr=False)
    #: An OpenAI-compatible endpoint (a proxy or gateway); unset means api.openai.com.
    openai_base_url: str | None = None
    #: ``realtime`` (one speech-to-speech model) or ``pipeline`` (speech-to-text, LLM, text-to-speech).
    agent_mode: str = Field(default="realtime", pattern="^(realtime|pipeline)$")
    #: The speech-to-speech model when ``agent_mode`` is ``realtime``.
    agent_realtime_model: str = "gpt-realtime"
    #: The voice the agent speaks with (a realtime or TTS voice name).
    agent_voice: str = "marin"
    #: The speech-to-text model when ``agent_mode`` is ``pipeline``.
    agent_stt_model: str = "gpt-4o-transcribe"
    #: The LLM when ``agent_mode`` is ``pipeline``.
    agent_llm_model: str = "gpt-4.1-mini"
    #: The text-to-speech model when ``agent_mode`` is ``pipeline``.
    agent_tts_model: str = "gpt-4o-mini-tts"
    #: Answering-machine detection on answered calls (livekit-agents' built-in AMD).
    agent_amd_enabled: bool = True
    #: The text model that classifies the first words heard as a person or a machine.
    agent_amd_model: str = "gpt-4.1-mini"
    #: How long the agent waits for the dialed participant to join the call's room.
    agent_participant_timeout_s: float = Field(default=60.0, gt=0)
    #: How long a joined participant may ring before the agent leaves the call to the dialer
    #: (never less than the campaign's ``ring_timeout_s``; retried INVITEs ring in the same window).
    agent_answer_timeout_s: float = Field(default=180.0, gt=0)
    #: How long an answered callee that dropped without a final reason (or while the agent
    #: reconnects) may take to come back before the call counts as hung up.
    agent_reconnect_grace_s: float = Field(default=5.0, gt=0)
    #: The worker kills a job process this long after it began to shut down; the agent's own
    #: cleanup (result, room delete) stays inside it.
    agent_shutdown_timeout_s: float = Field(default=10.0, gt=0)

    def env_secret(self, name: str) -> str | None:
        """A secret named by a campaign (a webhook's ``secret_env``): from the environment, else
        from the ``.env`` file; never stored in a config."""
        value = os.environ.get(name)
        if value is None and self.model_config.get("env_file"):
            value = _dotenv().get(name)
        return value or None

    def now(self) -> float:
        """The dialer's clock (unix seconds)."""
        return time.time() + self.dialer_clock_offset_s

    @property
    def max_upload_bytes(self) -> int:
        return int(self.dialer_max_upload_mb * 1024 * 1024)

    def require(self, *names: str) -> None:
        """Raise a SettingsError naming every missing setting among ``names``."""
        missing = [name for name in names if not getattr(self, name)]
        if missing:
            env = ", ".join(ENV_NAMES.get(name, name.upper()) for name in missing)
            raise SettingsError(
                f"missing setting: {env}. Set it in the environment or in a .env file "
                f"in the working directory (see .env.example)."
            )


@cache
def _dotenv() -> dict[str, str | None]:
    return dotenv_values(".env")


@cache
def get_settings() -> Settings:
    """The process's settings, read on first use and validated."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{str(err['loc'][0]).upper()}: {err['msg']}" for err in exc.errors()
        )
        raise SettingsError(f"invalid setting: {problems}") from None
