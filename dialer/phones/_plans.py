"""A region's metadata, compiled: what the fast parser checks a number against.

Per region and national-number length, one regex gives ``_number_type_helper``'s
answer, trying the types in its order::

    (?=(?:general)\\Z)(?:(?:premium_rate)\\Z(?P<t0>)|(?:toll_free)\\Z(?P<t1>)|...
        |(?=(?:fixed_line)\\Z)(?:(?=(?:mobile)\\Z)(?P<t5>)|(?P<t6>))|(?:mobile)\\Z(?P<t7>))

A type is only present when its possible lengths allow the length, and the
empty group the match ended on (``lastindex``) says which type it is: fixed
line or mobile, fixed line, mobile, ... Length verdicts (``_test_number_length``)
are tables by length.
"""

from __future__ import annotations

import re
import threading

from phonenumbers import PhoneMetadata, PhoneNumberDesc, PhoneNumberType, ValidationResult

# Limits of phonenumbers.phonenumberutil
MAX_NATIONAL_DIGITS = 17
MAX_INPUT_CHARS = 250

UNKNOWN = PhoneNumberType.UNKNOWN
#: the types ``_number_type_helper`` tries before fixed line and mobile, in its order
_SPECIAL_TYPES = (
    (PhoneNumberType.PREMIUM_RATE, "premium_rate"),
    (PhoneNumberType.TOLL_FREE, "toll_free"),
    (PhoneNumberType.SHARED_COST, "shared_cost"),
    (PhoneNumberType.VOIP, "voip"),
    (PhoneNumberType.PERSONAL_NUMBER, "personal_number"),
    (PhoneNumberType.PAGER, "pager"),
    (PhoneNumberType.UAN, "uan"),
    (PhoneNumberType.VOICEMAIL, "voicemail"),
)
#: length verdicts after which ``parse`` puts back a national prefix it stripped
_KEEP_PREFIX = (
    ValidationResult.TOO_SHORT,
    ValidationResult.IS_POSSIBLE_LOCAL_ONLY,
    ValidationResult.INVALID_LENGTH,
)
_NATIONAL_LENGTHS = range(MAX_NATIONAL_DIGITS + 1)


class RegionPlan:
    """One region's (or one non-geographic code's) metadata, compiled."""

    __slots__ = ("code", "general", "idd", "idd_literal", "leading", "prefix", "prefix_literal",
                 "region", "strip_allowed", "too_long", "transform", "types", "verdicts")

    def __init__(self, region: str, metadata: PhoneMetadata) -> None:
        self.region = region
        self.code = metadata.country_code or 0
        general = metadata.general_desc or PhoneNumberDesc()
        self.general = _compile(general.national_number_pattern)
        self.prefix = _compile(metadata.national_prefix_for_parsing)
        self.transform = bool(metadata.national_prefix_transform_rule)
        #: the national prefix when it is plain digits (no transform): startswith will do
        self.prefix_literal = _literal(metadata.national_prefix_for_parsing, self.transform)
        idd = metadata.international_prefix
        self.idd = re.compile(idd) if idd is not None else None
        self.idd_literal = _literal(idd, False)
        leading = metadata.leading_digits
        self.leading = re.compile(leading) if leading is not None else None
        verdicts = [_length_verdict(n, general) for n in range(MAX_INPUT_CHARS + 1)]
        #: by length: ``_test_number_length``'s verdict
        self.verdicts = tuple(verdicts)
        #: by length: is a number this long too long for ``_test_number_length``
        self.too_long = tuple(verdict == ValidationResult.TOO_LONG for verdict in verdicts)
        #: by length: does ``parse`` keep a number this long after stripping a national prefix
        self.strip_allowed = tuple(verdict not in _KEEP_PREFIX for verdict in verdicts)
        #: by length: the type regex and the type of each of its alternatives
        self.types = tuple(_type_matcher(metadata, n) for n in _NATIONAL_LENGTHS)

    def matches_general(self, number: str) -> bool:
        return self.general is not None and self.general.fullmatch(number) is not None

    def type_of(self, national: str) -> int:
        """``_number_type_helper`` for a national number of 2 to 17 digits."""
        matcher = self.types[len(national)]
        if matcher is None:
            return UNKNOWN
        match = matcher[0].match(national)
        return UNKNOWN if match is None else matcher[1][match.lastindex or 0]

    def strip_national_prefix(self, number: str) -> str | None:
        """``_maybe_strip_national_prefix_carrier_code``; None where a transform rule applies."""
        if not number or self.prefix is None:
            return number
        match = self.prefix.match(number)
        if match is None:
            return number
        if self.transform and not transform_skipped(match):
            return None
        rest = number[match.end():]
        if not self.matches_general(rest) and self.matches_general(number):
            return number
        return rest


_plans: dict[tuple[int, str], RegionPlan | None] = {}
_build_lock = threading.Lock()


def plan_for(code: int, region: str) -> RegionPlan | None:
    """The compiled metadata phonenumbers uses for ``region`` (for "001": for ``code``)."""
    key = (code, region)
    plan = _plans.get(key)
    if plan is None and key not in _plans:
        with _build_lock:
            if key not in _plans:
                metadata = PhoneMetadata.metadata_for_region_or_calling_code(code, region)
                _plans[key] = RegionPlan(region, metadata) if metadata is not None else None
            plan = _plans[key]
    return plan


def _compile(pattern: str | None) -> re.Pattern[str] | None:
    return re.compile(pattern) if pattern else None


def _literal(pattern: str | None, transform: bool) -> str | None:
    """``pattern`` if it only matches itself (digits, no transform rule to apply)."""
    plain = pattern is not None and pattern.isdigit() and pattern.isascii()
    return pattern if plain and not transform else None


def transform_skipped(match: re.Match[str]) -> bool:
    """Whether phonenumbers strips the prefix plainly although a transform rule exists."""
    groups = match.groups()
    return bool(groups) and groups[-1] is None


def _applies(desc: PhoneNumberDesc | None, length: int) -> str | None:
    """The pattern of ``desc`` if ``_is_number_matching_desc`` can accept ``length`` digits."""
    if desc is None or not desc.national_number_pattern:
        return None
    if desc.possible_length and length not in desc.possible_length:
        return None
    return str(desc.national_number_pattern)


def _type_matcher(
    metadata: PhoneMetadata, length: int
) -> tuple[re.Pattern[str], tuple[int, ...]] | None:
    general = _applies(metadata.general_desc, length)
    if general is None:
        return None
    branches: list[str] = []  # each ends in marker groups, one per type it can give
    kinds: list[int] = []  # the type of each marker, by marker number

    def marker(kind: int) -> str:
        kinds.append(kind)
        return f"(?P<t{len(kinds) - 1}>)"

    for kind, field in _SPECIAL_TYPES:
        pattern = _applies(getattr(metadata, field), length)
        if pattern is not None:
            branches.append(f"(?:{pattern})\\Z{marker(kind)}")
    fixed = _applies(metadata.fixed_line, length)
    mobile = _applies(metadata.mobile, length)
    if metadata.same_mobile_and_fixed_line_pattern:
        if fixed is not None:
            branches.append(f"(?:{fixed})\\Z{marker(PhoneNumberType.FIXED_LINE_OR_MOBILE)}")
    else:
        if fixed is not None and mobile is not None:  # the fixed-line pattern runs once
            both = marker(PhoneNumberType.FIXED_LINE_OR_MOBILE)
            only = marker(PhoneNumberType.FIXED_LINE)
            branches.append(f"(?=(?:{fixed})\\Z)(?:(?=(?:{mobile})\\Z){both}|{only})")
        elif fixed is not None:
            branches.append(f"(?:{fixed})\\Z{marker(PhoneNumberType.FIXED_LINE)}")
        if mobile is not None:
            branches.append(f"(?:{mobile})\\Z{marker(PhoneNumberType.MOBILE)}")
    if not branches:
        return None
    regex = re.compile(f"(?=(?:{general})\\Z)(?:{'|'.join(branches)})")
    # A marker closes last on its branch, so it is the match's lastindex; numbering by
    # name keeps this right should a pattern ever capture groups of its own.
    by_group = [UNKNOWN] * (regex.groups + 1)
    for name, group in regex.groupindex.items():
        by_group[group] = kinds[int(name[1:])]
    return regex, tuple(by_group)


def _length_verdict(length: int, general: PhoneNumberDesc) -> int:
    """``_test_number_length(number, metadata)`` for a number of ``length`` digits."""
    possible = general.possible_length
    if not possible:  # no such metadata ships; phonenumbers itself would fail on it
        return ValidationResult.INVALID_LENGTH
    if length in general.possible_length_local_only:
        return ValidationResult.IS_POSSIBLE_LOCAL_ONLY
    if possible[0] == length:
        return ValidationResult.IS_POSSIBLE
    if possible[0] > length:
        return ValidationResult.TOO_SHORT
    if possible[-1] < length:
        return ValidationResult.TOO_LONG
    if length in possible[1:]:
        return ValidationResult.IS_POSSIBLE
    return ValidationResult.INVALID_LENGTH
