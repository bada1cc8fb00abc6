"""docker-compose.yml runs the real stack; rendered with the Compose client when there is one.

The compose file is copied with ``deploy/`` to a temporary directory next to a ``.env``
made from ``.env.example``, then rendered by ``docker compose config`` (v2) or
``docker-compose config`` (v1). Without either client the YAML itself is checked, with
``${VAR}`` filled in from the same ``.env``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from dialer.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SERVICES = {"redis", "livekit", "sip", "worker", "beat", "agent", "metrics", "api"}
OURS = {"worker": "celery -A dialer worker", "beat": "celery -A dialer beat", "agent": "python -m agent_worker start",
        "metrics": "dialer metrics serve", "api": "dialer api serve"}
TEST_KEY, TEST_SECRET = "APIcomposetest", "s3cr3t" * 6


def compose_client() -> list[str] | None:
    candidates = [["docker", "compose"], ["docker-compose"]]
    for client in candidates:
        if shutil.which(client[0]) is None:
            continue
        try:
            probe = subprocess.run([*client, "version"], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            return client
    return None


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("compose")
    shutil.copy(ROOT / "docker-compose.yml", directory)
    shutil.copytree(ROOT / "deploy", directory / "deploy")
    env = (ROOT / ".env.example").read_text()
    env = re.sub(r"(?m)^LIVEKIT_API_KEY=.*$", f"LIVEKIT_API_KEY={TEST_KEY}", env)
    env = re.sub(r"(?m)^LIVEKIT_API_SECRET=.*$", f"LIVEKIT_API_SECRET={TEST_SECRET}", env)
    (directory / ".env").write_text(env)
    return directory


def dotenv(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


@pytest.fixture(scope="module")
def stack(project: Path) -> dict[str, Any]:
    client = compose_client()
    if client is not None:
        rendered = subprocess.run([*client, "config"], cwd=project, capture_output=True, text=True, timeout=120)
        assert rendered.returncode == 0, rendered.stderr
        return dict(yaml.safe_load(rendered.stdout))
    env = dotenv(project / ".env")
    text = re.sub(r"\$\{(\w+)\}", lambda m: env.get(m.group(1), ""), (project / "docker-compose.yml").read_text())
    return dict(yaml.safe_load(text))


def command(service: dict[str, Any]) -> str:
    value = service["command"]
    return value if isinstance(value, str) else " ".join(value)


def test_the_stack_has_every_service(stack: dict[str, Any]) -> None:
    assert set(stack["services"]) == SERVICES


@pytest.mark.parametrize(("name", "expected"), sorted(OURS.items()))
def test_our_services_run_the_documented_commands(stack: dict[str, Any], name: str, expected: str) -> None:
    assert command(stack["services"][name]).startswith(expected)


@pytest.mark.parametrize("name", sorted(OURS))
def test_our_services_are_built_from_the_projects_dockerfile(stack: dict[str, Any], project: Path, name: str) -> None:
    build = stack["services"][name]["build"]
    context = build if isinstance(build, str) else build["context"]
    assert (project / context).resolve() == project.resolve()
    assert stack["services"][name]["image"] == "outbound-dialer:latest"


def test_the_api_and_the_worker_share_the_uploads_volume(stack: dict[str, Any]) -> None:
    def uploads(name: str) -> set[str]:
        volumes = stack["services"][name].get("volumes", [])
        return {v if isinstance(v, str) else f"{v['source']}:{v['target']}" for v in volumes} & {
            "uploads:/app/var/uploads"}

    assert uploads("api") == uploads("worker") == {"uploads:/app/var/uploads"}


def test_redis_keeps_an_append_only_file_and_never_evicts(stack: dict[str, Any]) -> None:
    redis_command = command(stack["services"]["redis"])
    for option in ("--appendonly yes", "--appendfsync everysec", "--maxmemory-policy noeviction"):
        assert option in redis_command


def test_livekit_gets_its_config_and_the_api_key_from_the_env_file(stack: dict[str, Any]) -> None:
    livekit = stack["services"]["livekit"]
    assert livekit["image"].startswith("livekit/livekit-server")
    assert "/etc/livekit/livekit.yaml" in command(livekit)
    assert livekit["environment"]["LIVEKIT_KEYS"] == f"{TEST_KEY}: {TEST_SECRET}"


def test_sip_gets_its_config_and_the_api_key_from_the_env_file(stack: dict[str, Any]) -> None:
    sip = stack["services"]["sip"]
    assert sip["image"].startswith("livekit/sip")
    assert sip["environment"]["SIP_CONFIG_FILE"] == "/etc/livekit/sip.yaml"
    assert (sip["environment"]["LIVEKIT_API_KEY"], sip["environment"]["LIVEKIT_API_SECRET"]) == (TEST_KEY, TEST_SECRET)


def test_livekit_and_sip_share_the_stacks_redis(stack: dict[str, Any]) -> None:
    livekit = yaml.safe_load((ROOT / "deploy" / "livekit.yaml").read_text())
    sip = yaml.safe_load((ROOT / "deploy" / "sip.yaml").read_text())
    redis_command = command(stack["services"]["redis"])
    port = re.search(r"--port (\d+)", redis_command)
    assert port is not None
    assert livekit["redis"]["address"] == sip["redis"]["address"] == f"127.0.0.1:{port.group(1)}"


def test_the_env_example_lists_every_setting() -> None:
    listed = {line.split("=", 1)[0] for line in (ROOT / ".env.example").read_text().splitlines()
              if "=" in line and not line.startswith("#")}
    assert {name.upper() for name in Settings.model_fields} <= listed
