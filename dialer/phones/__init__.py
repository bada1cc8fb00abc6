"""E.164 normalisation of campaign phone cells, fast enough for a million rows.

``PhoneNormalizer(default_region).normalize(cell)`` returns a ``PhoneInfo`` or
raises ``PhoneRejected`` with a ``RejectReason`` and a detail saying what to fix.
What counts as a phone cell (placeholders, spreadsheet damage, extensions,
letters) is decided in ``_cells``; whether the digits are a valid number, of
which type, region and time zones, is phonenumbers' answer, computed by the
compiled metadata of ``_fast`` when it can be and by phonenumbers itself
(``_reference``) otherwise.
"""

from __future__ import annotations

from ._cells import split_extension
from ._model import PhoneInfo, PhoneRejected, RejectReason
from ._normalizer import PhoneNormalizer

__all__ = ["PhoneInfo", "PhoneNormalizer", "PhoneRejected", "RejectReason", "split_extension"]
