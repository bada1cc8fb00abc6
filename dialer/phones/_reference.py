"""The reference parser: phonenumbers itself, and the reject messages for what it refuses.

The fast parser hands everything it is not certain about to ``parse_reference``,
and the tests hold the two to identical results.
"""

from __future__ import annotations

import functools

import phonenumbers
from phonenumbers import (
    NumberParseException,
    PhoneMetadata,
    PhoneNumber,
    PhoneNumberFormat,
    PhoneNumberType,
    ValidationResult,
)
from phonenumbers.timezone import UNKNOWN_TIMEZONE, time_zones_for_number

from ._cells import extension_rejected, is_plain_digits
from ._model import PhoneInfo, PhoneRejected, RejectReason

#: PhoneNumberType value -> "fixed_line", "mobile", ...
TYPE_NAMES: dict[int, str] = {
    value: name.lower()
    for name, value in vars(PhoneNumberType).items()
    if name.isupper() and isinstance(value, int)
}


def parse_reference(text: str, region: str) -> PhoneInfo:
    """Parse ``text`` with phonenumbers, ``region`` being the default for national numbers."""
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException as exc:
        raise _unparsable(text, exc) from None
    if number.extension:
        raise extension_rejected(number.extension)
    if not phonenumbers.is_valid_number(number):
        raise PhoneRejected(RejectReason.INVALID, _why_invalid(number, text, region))
    return PhoneInfo(
        e164=phonenumbers.format_number(number, PhoneNumberFormat.E164),
        region=phonenumbers.region_code_for_number(number) or "",
        number_type=TYPE_NAMES[phonenumbers.number_type(number)],
        time_zones=known_zones(time_zones_for_number(number)),
        geographic=phonenumbers.is_number_geographical(number),
    )


def known_zones(zones: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """phonenumbers' zones without its "Etc/Unknown" marker."""
    return tuple(zone for zone in zones if zone != UNKNOWN_TIMEZONE)


def _unparsable(text: str, exc: NumberParseException) -> PhoneRejected:
    kind = exc.error_type
    if kind == NumberParseException.NOT_A_NUMBER and not is_plain_digits(text):
        return PhoneRejected(
            RejectReason.NOT_A_NUMBER, f"{text!r} does not look like a phone number"
        )
    if kind == NumberParseException.INVALID_COUNTRY_CODE:
        detail = "the digits after + (or 00) do not start with a known country calling code"
    elif kind == NumberParseException.TOO_SHORT_AFTER_IDD:
        detail = "too few digits after + (or 00) to be a phone number"
    elif kind == NumberParseException.TOO_LONG:
        detail = "too many digits to be a phone number"
    else:  # NOT_A_NUMBER on plain digits, TOO_SHORT_NSN
        detail = "too few digits to be a phone number"
    return PhoneRejected(RejectReason.INVALID, detail)


def _why_invalid(number: PhoneNumber, text: str, default_region: str) -> str:
    return invalid_detail(
        number.country_code,
        phonenumbers.region_code_for_number(number),
        len(phonenumbers.national_significant_number(number)),
        phonenumbers.is_possible_number_with_reason(number),
        not text.startswith("+"),
        default_region,
    )


@functools.lru_cache(maxsize=4096)
def invalid_detail(
    code: int, region: str | None, digits: int, verdict: int, national: bool, default_region: str
) -> str:
    """Why a parsed number is not valid, from phonenumbers' facts about it.

    ``region``: ``region_code_for_number``; ``digits``: length of the national number;
    ``verdict``: ``is_possible_number_with_reason``; ``national``: written without "+".
    """
    home_code = phonenumbers.country_code_for_region(default_region)
    region = (
        region
        or (default_region if code == home_code else None)
        or phonenumbers.region_code_for_country_code(code)
    )
    where = f"{region} (+{code})"
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(code, region)
    general = metadata.general_desc if metadata else None
    lengths = _lengths(general.possible_length) if general else "?"
    count = f"{digits} digit{'s' if digits != 1 else ''} after +{code}"
    if verdict == ValidationResult.TOO_SHORT:
        detail = f"too short for {where}: {count}, expected {lengths}"
    elif verdict == ValidationResult.TOO_LONG:
        detail = f"too long for {where}: {count}, expected {lengths}"
    elif verdict == ValidationResult.INVALID_LENGTH:
        detail = f"wrong length for {where}: {count}, expected {lengths}"
    elif verdict == ValidationResult.IS_POSSIBLE_LOCAL_ONLY:
        detail = f"a local number without its area code in {where}; add the area code"
    else:
        detail = f"not a valid number in {where}: no number range in use there starts like this"
    if national and code == home_code:
        detail += (
            f" (read as a national number of {default_region}; "
            "write numbers of other countries with + and the country code)"
        )
    return detail


def _lengths(lengths: tuple[int, ...]) -> str:
    if not lengths:
        return "?"
    if len(lengths) > 2 and lengths[-1] - lengths[0] == len(lengths) - 1:
        return f"{lengths[0]} to {lengths[-1]} digits"
    if len(lengths) == 1:
        return f"{lengths[0]} digits"
    return f"{', '.join(map(str, lengths[:-1]))} or {lengths[-1]} digits"
