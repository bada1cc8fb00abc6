"""Who answered: a person or a machine (livekit-agents' built-in answering-machine detection).

The call starts it together with the session, before the answer: ``AMD`` waits for the
SIP participant's ``sip.callStatus`` to turn ``active`` before it listens, holds the agent's
speech while it decides, classifies the first words heard with a text model, and interrupts
the agent when a machine answered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from enum import StrEnum

from livekit.agents import AgentSession, llm
from livekit.agents.voice.amd import AMD
from livekit.agents.voice.amd.detector import DetectionOptions

log = logging.getLogger(__name__)

#: Longest wait for a verdict; AMD's own detection timeout is 20 s, plus the greeting's tail.
AMD_TIMEOUT_S = 45.0


class Screening(StrEnum):
    """AMD's categories, as the agent acts on them."""

    HUMAN = "human"  #: a person answered
    VOICEMAIL = "machine-vm"  #: a voicemail greeting; a message can be left
    UNAVAILABLE = "machine-unavailable"  #: a mailbox that is full or not set up
    IVR = "machine-ivr"  #: an automated menu
    UNCERTAIN = "uncertain"  #: could not tell; treated as a person

    @property
    def is_machine(self) -> bool:
        return self in (Screening.VOICEMAIL, Screening.UNAVAILABLE, Screening.IVR)


#: ``screen(session, participant_identity)``: decides who answered an active call.
Screener = Callable[[AgentSession, str], Awaitable[Screening]]


class AmdScreener:
    """Runs ``livekit.agents.voice.amd.AMD`` on the dialed participant only."""

    def __init__(self, classifier: llm.LLM, timeout_s: float = AMD_TIMEOUT_S,
                 detection_options: DetectionOptions | None = None) -> None:
        self._classifier = classifier
        self._timeout_s = timeout_s
        self._detection_options = detection_options

    async def __call__(self, session: AgentSession, identity: str) -> Screening:
        options: DetectionOptions = self._detection_options or {}
        detector = AMD(
            session,
            llm=self._classifier,
            stt=None,  # the session's own transcripts
            participant_identity=identity,
            ivr_detection=False,
            suppress_compatibility_warning=True,
            detection_options=options,
        )
        try:
            async with detector:
                prediction = await asyncio.wait_for(detector.execute(), self._timeout_s)
        except TimeoutError:
            log.warning("answering-machine detection gave no verdict in %.0f s; assuming a person",
                        self._timeout_s)
            return Screening.UNCERTAIN
        log.info("answered by %s (%s)", prediction.category.value, prediction.reason)
        return Screening(prediction.category.value)

    async def aclose(self) -> None:
        await self._classifier.aclose()


async def assume_person(session: AgentSession, identity: str) -> Screening:
    """The screener when answering-machine detection is off."""
    return Screening.HUMAN
