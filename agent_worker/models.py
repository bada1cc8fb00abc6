"""The agent's OpenAI models, chosen by settings (livekit-plugins-openai).

``realtime``: one speech-to-speech model; it also transcribes the callee for the
transcript and for answering-machine detection. ``pipeline``: speech-to-text, an LLM
and text-to-speech, with the silero voice-activity model bundled in livekit-agents
(``livekit-local-inference``; nothing is downloaded at run time).
"""

from __future__ import annotations

from typing import Any

from livekit.agents import AgentSession, inference
from livekit.plugins import openai

from dialer.models import DispatchMetadata
from dialer.settings import Settings

from .screening import AmdScreener, Screener, assume_person


def _credentials(settings: Settings) -> dict[str, Any]:
    settings.require("openai_api_key")
    credentials: dict[str, Any] = {"api_key": settings.openai_api_key}
    if settings.openai_base_url:
        credentials["base_url"] = settings.openai_base_url
    return credentials


def new_session(settings: Settings, metadata: DispatchMetadata | None = None) -> AgentSession:
    """An ``AgentSession`` with the configured models; nothing connects until it starts."""
    credentials = _credentials(settings)
    if settings.agent_mode == "realtime":
        model = openai.realtime.RealtimeModel(model=settings.agent_realtime_model, voice=settings.agent_voice,
                                              **credentials)
        return AgentSession(llm=model, user_away_timeout=None)
    return AgentSession(
        stt=openai.STT(model=settings.agent_stt_model, **credentials),
        llm=openai.LLM(model=settings.agent_llm_model, **credentials),
        tts=openai.TTS(model=settings.agent_tts_model, voice=settings.agent_voice, **credentials),
        vad=inference.VAD(),
        user_away_timeout=None,
    )


def new_screener(settings: Settings) -> Screener:
    """Answering-machine detection with its own text classifier, or none when it is off."""
    if not settings.agent_amd_enabled:
        return assume_person
    return AmdScreener(openai.LLM(model=settings.agent_amd_model, **_credentials(settings)))
