"""``PhoneNormalizer``: the fast parser, with phonenumbers for whatever it is not sure of."""

from __future__ import annotations

import phonenumbers

from ._cells import prepare
from ._fast import FastParser
from ._model import PhoneInfo
from ._reference import parse_reference


class PhoneNormalizer:
    """Normalises phone cells to E.164 with ``default_region`` for national numbers.

    ``normalize`` and ``normalize_reference`` give identical results;
    ``normalize_reference`` only ever asks phonenumbers, ``normalize`` asks it
    only for what its compiled metadata cannot decide (``fallbacks`` counts those).
    """

    def __init__(self, default_region: str) -> None:
        region = default_region.upper() if isinstance(default_region, str) else ""
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(
                f"{default_region!r} is not a known region code (use two letters, like US or GB)"
            )
        self.region = region
        self.fallbacks = 0
        self._fast = FastParser(region).parse

    def normalize(self, raw: object) -> PhoneInfo:
        """The number in ``raw`` (str, int, float, None); raises ``PhoneRejected``."""
        text = prepare(raw)
        info = self._fast(text)
        if info is None:
            self.fallbacks += 1
            return parse_reference(text, self.region)
        return info

    def normalize_reference(self, raw: object) -> PhoneInfo:
        """As ``normalize``, with phonenumbers alone: the reference the fast path is held to."""
        return parse_reference(prepare(raw), self.region)
