"""From a raw CSV cell to the text a parser gets: the ingest's policy on messy cells.

Both parsers (the fast one and phonenumbers) receive what ``prepare`` returns,
so every decision made here is shared and the parsers only differ in speed.

- Blanks, NaN and placeholders ("n/a", "null", "-") are ``MISSING``.
- A leading apostrophe (a spreadsheet's text marker), an Excel ``="..."`` wrapper
  and a ``tel:`` prefix are removed.
- Scientific notation ("4.4207946E+11", or a float whose repr uses an exponent)
  is ``SCIENTIFIC``: the digits are already lost, so nothing is guessed.
- A trailing ".0" on a plain digit string ("2025550142.0", how pandas writes a
  float column) is dropped; an integral float is read as its integer.
- An extension ("x123", "ext. 5", "#5", ";ext=5") is ``EXTENSION``: the dialer
  cannot dial one, and calling the main line instead would be a guess.
- Any other letter is ``NOT_A_NUMBER`` (vanity numbers like 1-800-FLOWERS too).
- A trailing "#" is dropped; other "#" / ";" / ",," forms are extensions.
- Spaces, dashes, dots, parentheses and slashes are removed; a leading "00"
  becomes "+" whatever the default region's own international prefix is.
"""

from __future__ import annotations

import math
import re

from ._model import PhoneRejected, RejectReason

_SEPARATORS = str.maketrans(
    dict.fromkeys(
        " \t\n\r\v\f-.()/"
        "\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u200b"
        "\u2028\u2029\u202f\u205f\u3000\ufeff"
        "\u2010\u2011\u2012\u2013\u2014\u2015\u2212"
    )
)
#: what ``str.strip()`` removes, plus the invisible BOM and zero-width space
_BLANKS = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff\u200b"
)
_PLACEHOLDERS = frozenset({"nan", "none", "null", "nil", "n/a", "na", "#n/a", "<na>", "-", "--"})
_SCIENTIFIC = re.compile(r"[+-]?\d+(?:[.,]\d*)?[eE][+-]?\d+", re.ASCII)
_FLOAT_ARTIFACT = re.compile(r"(\+?\d+)\.0", re.ASCII)
_EXTENSION = re.compile(
    r"(?:e?xt(?:ension|n)?\.?|x|#|,,|;(?:\s*ext=)?)\s*[:=.]?\s*(\d{1,10})\s*#?\s*\Z",
    re.IGNORECASE | re.ASCII,
)
_LETTER = re.compile(r"[^\W\d_]")
_DIGIT = re.compile(r"\d")


def prepare(raw: object) -> str:
    """The text to parse: "+digits" or "digits" for the usual shapes, else the trimmed cell."""
    text = raw if type(raw) is str else _text_of(raw)
    # The usual shapes, quickly; anything else takes the full policy in _prepare_text.
    digits = (
        text.replace(" ", "").replace("-", "").replace("(", "").replace(")", "")
        .replace(".", "").replace("/", "")
    )
    if (
        (digits.isdigit() or (digits[:1] == "+" and digits[1:].isdigit()))
        and digits.isascii()
        and not ("." in text and text.rstrip(_BLANKS).endswith(".0"))
    ):
        return _plus_for_00(digits)
    return _prepare_text(text)


def is_plain_digits(text: str) -> bool:
    """True for what ``prepare`` returns for the usual shapes: digits, maybe after a "+"."""
    digits = text[1:] if text[:1] == "+" else text
    return digits.isdigit() and digits.isascii()


def _plus_for_00(digits: str) -> str:
    return "+" + digits[2:] if digits[:2] == "00" and len(digits) > 2 else digits


def _text_of(raw: object) -> str:
    if raw is None:
        raise PhoneRejected(RejectReason.MISSING, "the phone cell is empty")
    if isinstance(raw, bool):
        raise PhoneRejected(RejectReason.NOT_A_NUMBER, f"{raw!r} is not a phone number")
    if isinstance(raw, int):
        if raw < 0:
            raise PhoneRejected(RejectReason.NOT_A_NUMBER, f"{raw} is negative, not a phone number")
        return str(raw)
    if isinstance(raw, float):
        return _text_of_float(raw)
    return str(raw)


def _text_of_float(raw: float) -> str:
    if math.isnan(raw):
        raise PhoneRejected(RejectReason.MISSING, "the phone cell is empty (NaN)")
    if not math.isfinite(raw) or raw < 0:
        raise PhoneRejected(RejectReason.NOT_A_NUMBER, f"{raw!r} is not a phone number")
    text = repr(raw)
    if "e" in text:
        raise _scientific(text)
    if not raw.is_integer():
        raise PhoneRejected(
            RejectReason.NOT_A_NUMBER,
            f"{text} has a fractional part, so it is not a phone number; "
            "re-export the column as text",
        )
    return str(int(raw))


def _prepare_text(text: str) -> str:
    text = _trim(text)
    if len(text) > 2 and text.startswith('="') and text.endswith('"'):
        text = _trim(text[2:-1])
    if text.startswith("'"):
        text = _trim(text[1:])
    if text[:4].lower() == "tel:":
        text = _trim(text[4:])
    text = _trim(text.rstrip("#"))  # a trailing # (an IVR's "end of number") means nothing
    if not text or text.lower() in _PLACEHOLDERS:
        shown = f" (it holds {text!r})" if text else ""
        raise PhoneRejected(RejectReason.MISSING, f"the phone cell is empty{shown}")
    if _SCIENTIFIC.fullmatch(text):
        raise _scientific(text)
    artifact = _FLOAT_ARTIFACT.fullmatch(text)
    if artifact:
        text = artifact[1]
    extension = _EXTENSION.search(text)
    if extension and _DIGIT.search(text, 0, extension.start()):
        raise extension_rejected(extension[1])
    if _LETTER.search(text):
        raise PhoneRejected(
            RejectReason.NOT_A_NUMBER,
            f"{text!r} is not a phone number: it contains letters; write the number in digits",
        )
    if not _DIGIT.search(text):
        raise PhoneRejected(RejectReason.MISSING, f"the phone cell holds no digits ({text!r})")
    digits = text.translate(_SEPARATORS)
    if is_plain_digits(digits):
        return _plus_for_00(digits)
    return text


#: A cell that may hold an extension: every spelling of one has one of these characters ("ext"
#: has its x). One character class, not an alternation: a third of the time per cell.
_MAYBE_EXTENSION = re.compile(r"[xX#;,]", re.ASCII)


def split_extension(raw: object) -> tuple[object, str]:
    """(the number without its extension, the extension's digits) for cells such as
    "(617) 555-0106 x12", "+1 617 555 0106;ext=12" or "617-555-0106,,12"; ('', no digits)
    cells come back unchanged with ''. What is left is checked like any other number."""
    if type(raw) is not str or not _MAYBE_EXTENSION.search(raw):
        return raw, ""
    text = _trim(_trim(raw).rstrip("#"))
    extension = _EXTENSION.search(text)
    if extension and _DIGIT.search(text, 0, extension.start()):
        return _trim(text[:extension.start()]), extension[1]
    return raw, ""


def extension_rejected(extension: str) -> PhoneRejected:
    return PhoneRejected(
        RejectReason.EXTENSION,
        f"the number has an extension ({extension}), which the dialer cannot dial; "
        "put the main number alone in the phone column",
    )


def _trim(text: str) -> str:
    return text.strip(_BLANKS)


def _scientific(text: str) -> PhoneRejected:
    return PhoneRejected(
        RejectReason.SCIENTIFIC,
        f"number is in scientific notation ({text}), probably mangled by a spreadsheet; "
        "re-export the column as text",
    )
