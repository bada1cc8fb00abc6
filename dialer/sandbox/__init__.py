"""The sandbox: an embedded LiveKit server API emulator with simulated callees.

The real ``livekit-api`` client talks to it unchanged (Twirp, protobuf or JSON,
access tokens and grants checked as LiveKit checks them). Callees follow a
scenario (``scenario.py``); every INVITE is logged; an answered call ends with a
``SimulatedConversation`` handed to the injected conversation sink.
"""

from .records import CallRecord, CallStatus, ConversationSink, SimulatedConversation
from .scenario import Faults, Rule, Scenario, ScenarioError, SimOutcome, load_scenario, parse_scenario
from .server import SandboxServer, serve

__all__ = [
    "CallRecord",
    "CallStatus",
    "ConversationSink",
    "Faults",
    "Rule",
    "SandboxServer",
    "Scenario",
    "ScenarioError",
    "SimOutcome",
    "SimulatedConversation",
    "load_scenario",
    "parse_scenario",
    "serve",
]
