"""The voice agent that talks to whoever answers a dialed call (``python -m agent_worker start``).

- ``server``: the livekit-agents ``AgentServer``, registered under ``AGENT_NAME`` for explicit dispatch.
- ``call``: one call's life in a job: bind to the dialed participant, wait for the answer, end once.
- ``agent``: the ``Agent`` and its tools; ``prompts``: the prompt text.
- ``screening``: answering-machine detection; ``models``: the OpenAI models from settings.
- ``record`` and ``ledger``: what a call learned, and its one write through ``finish_call``.
- ``control``: LiveKit calls about the call itself (delete the room, transfer).
- ``testing``: doubles to run all of it without LiveKit or a model provider.
"""
