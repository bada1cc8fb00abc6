"""The agent worker's server: registration, settings hand-off, models chosen by settings."""

from __future__ import annotations

import asyncio
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from livekit.agents import AgentServer, AgentSession, JobExecutorType, JobProcess
from livekit.agents.llm import RealtimeModel
from livekit.plugins import openai

from agent_worker import server as server_module
from agent_worker.models import new_screener, new_session
from agent_worker.screening import AmdScreener, assume_person
from agent_worker.server import SETTINGS_KEY, build_server, entrypoint, websocket_url
from dialer.errors import SettingsError
from dialer.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def settings(**values: Any) -> Settings:
    base = {"livekit_url": "http://127.0.0.1:7880", "livekit_api_key": "key", "livekit_api_secret": "s" * 32,
            "openai_api_key": "sk-test"}
    return Settings(_env_file=None, **{**base, **values})  # type: ignore[call-arg]


def test_the_entrypoint_is_registered_for_explicit_dispatch_under_the_agent_name(
        monkeypatch: pytest.MonkeyPatch) -> None:
    registered: list[tuple[Any, str]] = []
    original = AgentServer.rtc_session

    def spy(self: AgentServer, func: Any = None, **kwargs: Any) -> Any:
        registered.append((func, kwargs.get("agent_name", "")))
        return original(self, func, **kwargs)

    monkeypatch.setattr(server_module.AgentServer, "rtc_session", spy)
    build_server(settings(agent_name="survey-bot"))
    assert registered == [(entrypoint, "survey-bot")]


def test_job_processes_get_the_settings_the_worker_was_started_with() -> None:
    configured = settings(agent_name="survey-bot", agent_mode="pipeline")
    setup = build_server(configured).setup_fnc
    assert setup is not None
    process = JobProcess(executor_type=JobExecutorType.PROCESS, user_arguments=None, http_proxy=None)
    pickle.loads(pickle.dumps(setup))(process)  # job processes receive it pickled
    assert process.userdata[SETTINGS_KEY] == configured


def test_the_entrypoint_can_be_sent_to_a_job_process() -> None:
    assert pickle.loads(pickle.dumps(entrypoint)) is entrypoint


@pytest.mark.parametrize(("url", "expected"), [("http://lk:7880", "ws://lk:7880"), ("https://lk.example.com",
                                               "wss://lk.example.com"), ("wss://lk.example.com", "wss://lk.example.com")])
def test_the_worker_connects_over_websockets(url: str, expected: str) -> None:
    assert websocket_url(url) == expected


def session_for(configured: Settings) -> AgentSession:
    """Sessions are made inside a job's event loop."""

    async def make() -> AgentSession:
        return new_session(configured)

    return asyncio.run(make())


def test_realtime_mode_uses_one_speech_to_speech_model() -> None:
    session = session_for(settings(agent_mode="realtime"))
    assert isinstance(session.llm, RealtimeModel) and session.stt is None and session.tts is None


def test_pipeline_mode_uses_openai_stt_llm_and_tts() -> None:
    session = session_for(settings(agent_mode="pipeline", agent_llm_model="gpt-4.1-mini"))
    assert (type(session.stt), type(session.llm), type(session.tts)) == (openai.STT, openai.LLM, openai.TTS)
    assert session.llm is not None and session.llm.model == "gpt-4.1-mini"


def test_an_unknown_agent_mode_is_a_settings_error() -> None:
    with pytest.raises(ValueError, match="agent_mode"):
        settings(agent_mode="telepathy")


def test_a_session_without_an_openai_key_names_the_setting() -> None:
    with pytest.raises(SettingsError, match="OPENAI_API_KEY"):
        session_for(settings(openai_api_key=None))


@pytest.mark.parametrize(("enabled", "kind"), [(True, AmdScreener), (False, type(assume_person))])
def test_answering_machine_detection_follows_the_setting(enabled: bool, kind: type) -> None:
    assert isinstance(new_screener(settings(agent_amd_enabled=enabled)), kind)


def test_starting_without_settings_says_which_are_missing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIVEKIT_", "OPENAI_", "AGENT_"))}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([sys.executable, "-m", "agent_worker", "start"], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == ("error: missing setting: LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET, "
                                   "OPENAI_API_KEY. Set it in the environment or in a .env file in the working "
                                   "directory (see .env.example).")


def test_the_worker_kills_job_processes_after_the_agents_shutdown_timeout() -> None:
    server = build_server(settings(agent_shutdown_timeout_s=7.5))
    # AgentServer gives a shutting-down job process this long (ipc/supervised_proc.py close_timeout)
    assert server._shutdown_process_timeout == 7.5
