"""``python -m agent_worker start|dev|console``: the agent worker (livekit-agents' CLI)."""

from __future__ import annotations

import sys
import warnings

from livekit.agents import cli

from dialer.errors import SettingsError
from dialer.settings import get_settings

from .server import build_server

#: Subcommands that run the worker and so need every setting.
RUN_COMMANDS = frozenset({"start", "dev", "console", "connect"})


def main() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    try:
        settings = get_settings()
        if command in RUN_COMMANDS:
            settings.require("livekit_url", "livekit_api_key", "livekit_api_secret", "openai_api_key")
        server = build_server(settings)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    # cli.run_app is the entry point the project standardises on; its notice about the
    # LiveKit CLI (`lk agent ...`) is not actionable for users of this command.
    warnings.filterwarnings("ignore", message="the built-in Python CLI is deprecated", category=DeprecationWarning)
    cli.run_app(server)


if __name__ == "__main__":
    main()
