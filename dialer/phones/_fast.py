"""The fast parser: phonenumbers' parsing and validation, replayed on its compiled metadata.

``FastParser.parse`` replays ``phonenumbers.parse``, ``is_valid_number``,
``region_code_for_number``, ``number_type``, ``is_number_geographical`` and
``time_zones_for_number`` for plain "+digits" and "digits", step by step and
with the same metadata. It answers only where it is certain of phonenumbers'
answer: a ``PhoneInfo``, or for a number phonenumbers parses but finds not
valid, the same ``PhoneRejected`` the reference raises (``invalid_detail`` from
the same facts). Anything else returns ``None`` for phonenumbers to decide: an
international prefix other than "+", a national prefix with a transform rule,
a number phonenumbers would refuse to parse, ...

The metadata it checks against is compiled in ``_plans``.
"""

from __future__ import annotations

import phonenumbers
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, ValidationResult
from phonenumbers.tzdata import TIMEZONE_DATA, TIMEZONE_LONGEST_PREFIX

from ._model import PhoneInfo, PhoneRejected, RejectReason, make_info
from ._plans import (
    MAX_INPUT_CHARS,
    MAX_NATIONAL_DIGITS,
    UNKNOWN,
    RegionPlan,
    plan_for,
    transform_skipped,
)
from ._reference import TYPE_NAMES, invalid_detail, known_zones

_MIN_NATIONAL_DIGITS = 2  # phonenumbers' _MIN_LENGTH_FOR_NSN
_MAX_COUNTRY_CODE_DIGITS = 3
#: time zone lookups remembered per country calling code, at most
_MAX_ZONE_MEMO = 200_000
_COUNTRY_CODES = {str(code): code for code in COUNTRY_CODE_TO_REGION_CODE}


class Country:
    """A country calling code: its regions in lookup order, and its time zone data."""

    __slots__ = ("code", "country_zones", "first", "first_region", "first_types", "geographic",
                 "main", "main_region", "plans", "prefix", "single", "tz_depth", "tz_head",
                 "tz_lengths", "tz_memo")

    def __init__(self, code: int) -> None:
        regions = COUNTRY_CODE_TO_REGION_CODE[code]
        self.code = code
        self.prefix = str(code)
        self.single = len(regions) == 1
        self.main_region = regions[0]
        self.main = plan_for(code, regions[0])
        if len(regions) == 1:
            self.plans: tuple[RegionPlan, ...] = (self.main,) if self.main else ()
        else:
            plans = (plan_for(code, region) for region in regions)
            self.plans = tuple(plan for plan in plans if plan is not None)
        #: the plan to try first, when its number type alone decides the region
        self.first = self.plans[0] if self.plans and (
            self.single or self.plans[0].leading is None
        ) else None
        self.first_types = self.first.types if self.first else (None,) * (MAX_NATIONAL_DIGITS + 1)
        self.first_region = self.first.region if self.first else None
        self.geographic = {
            kind: phonenumbers.is_number_type_geographical(kind, code) for kind in TYPE_NAMES
        }
        self.country_zones = known_zones(_country_level_zones(self.prefix))
        # Zones go by the longest key of TIMEZONE_DATA that starts the E.164 digits. Keys
        # longer than tz_head all start with a head listed in tz_depth, with the length of
        # the longest such key, so digits[:tz_depth.get(head, tz_head)] decides the answer.
        keys = [key for key in TIMEZONE_DATA
                if key.startswith(self.prefix) or self.prefix.startswith(key)]
        self.tz_lengths = tuple(sorted({len(key) for key in keys}, reverse=True))
        self.tz_head = min((len(key) for key in keys if len(key) > len(self.prefix)),
                           default=len(self.prefix))
        self.tz_depth: dict[str, int] = {}
        for key in keys:
            if len(key) > self.tz_head:
                head = key[: self.tz_head]
                self.tz_depth[head] = max(len(key), self.tz_depth.get(head, 0))
        self.tz_memo: dict[str, tuple[str, ...]] = {}

    def classify(self, national: str) -> tuple[str | None, RegionPlan | None, int]:
        """``region_code_for_number``, its plan and ``number_type`` (UNKNOWN: not valid)."""
        first = self.first
        if first is not None:
            matcher = first.types[len(national)]
            if matcher is not None:
                match = matcher[0].match(national)
                if match is not None:
                    return first.region, first, matcher[1][match.lastindex or 0]
        if self.single:
            return self.main_region, self.main, UNKNOWN
        for plan in self.plans if first is None else self.plans[1:]:
            if plan.leading is not None:
                if plan.leading.match(national):
                    return plan.region, plan, plan.type_of(national)
            else:
                kind = plan.type_of(national)
                if kind != UNKNOWN:
                    return plan.region, plan, kind
        return None, None, UNKNOWN

    def verdict(self, length: int) -> int:
        """``is_possible_number_with_reason`` for a national number of ``length`` digits."""
        return self.main.verdicts[length] if self.main else ValidationResult.INVALID_LENGTH

    def zones(self, digits: str) -> tuple[str, ...]:
        """``time_zones_for_geographical_number`` for the E.164 digits (without the +)."""
        key = digits[: self.tz_depth.get(digits[: self.tz_head], self.tz_head)]
        zones = self.tz_memo.get(key)
        if zones is None:
            found = None
            for length in self.tz_lengths:
                found = TIMEZONE_DATA.get(digits[:length])
                if found is not None:
                    break
            zones = known_zones(found or ())
            if len(self.tz_memo) < _MAX_ZONE_MEMO:
                self.tz_memo[key] = zones
        return zones


class FastParser:
    """Plain "+digits" / "digits" to ``PhoneInfo`` or ``PhoneRejected`` (for a number that
    is not valid), or None where phonenumbers must decide."""

    def __init__(self, region: str) -> None:
        home = plan_for(phonenumbers.country_code_for_region(region), region)
        if home is None:
            raise ValueError(f"{region!r} is not a known region code")
        self.region = region
        self.home = home
        self.home_country = country_for(home.code)

    def parse(self, text: str) -> PhoneInfo | None:
        # phonenumbers.parse: find the country calling code and the national number
        if len(text) > MAX_INPUT_CHARS:
            return None
        if text[:1] == "+":
            digits = text[1:]
            if len(digits) <= _MIN_NATIONAL_DIGITS or digits[0] == "0":
                return None
            if not (digits.isdigit() and digits.isascii()):
                return None
            # country calling codes are prefix-free: at most one of these is one
            country = (_countries_by_prefix.get(digits[:1]) or _countries_by_prefix.get(digits[:2])
                       or _countries_by_prefix.get(digits[:3]) or _country_starting(digits))
            if country is None:
                return None
            national = digits[len(country.prefix):]
            plan = country.main
        else:
            if not (text.isdigit() and text.isascii()):
                return None
            home = self.home
            if home.idd_literal is not None:
                if text.startswith(home.idd_literal):
                    return None
            elif home.idd is not None and home.idd.match(text):
                return None
            country = self.home_country
            national, plan = text, home
            if text.startswith(country.prefix):
                potential = home.strip_national_prefix(text[len(country.prefix):])
                if potential is None:
                    return None
                if home.too_long[len(text)] or (
                    home.matches_general(potential) and not home.matches_general(text)
                ):
                    national, plan = potential, country.main
        if plan is None or len(national) < _MIN_NATIONAL_DIGITS:
            return None
        # The national prefix: phonenumbers strips it when the rest matches the plan's
        # general pattern (or the whole number does not) and has a possible length. The
        # rest is taken here when its length allows, and the pattern is checked after
        # classifying: a rest valid for the plan's own region matches its general pattern.
        unstripped = None
        literal = plan.prefix_literal
        if literal is not None:
            if national.startswith(literal):
                rest = national[len(literal):]
                if plan.strip_allowed[len(rest)]:
                    unstripped, national = national, rest
        elif plan.prefix is not None:
            match = plan.prefix.match(national)
            if match is not None:
                if plan.transform and not transform_skipped(match):
                    return None
                rest = national[match.end():]
                if plan.strip_allowed[len(rest)]:
                    unstripped, national = national, rest
        if not _MIN_NATIONAL_DIGITS <= len(national) <= MAX_NATIONAL_DIGITS:
            return None
        # is_valid_number, region_code_for_number, number_type
        region: str | None
        region_plan: RegionPlan | None
        matcher = country.first_types[len(national)]
        match = matcher[0].match(national) if matcher is not None else None
        if match is not None:  # the usual case, inline: country.classify would say the same
            region, region_plan = country.first_region, country.first
            kind = matcher[1][match.lastindex or 0]  # type: ignore[index]
        else:
            region, region_plan, kind = country.classify(national)
        if (
            unstripped is not None
            and (kind == UNKNOWN or region_plan is not plan)
            and not plan.matches_general(national)
            and plan.matches_general(unstripped)
        ):  # phonenumbers keeps this national prefix after all
            national = unstripped
            if len(national) > MAX_NATIONAL_DIGITS:
                return None
            region, region_plan, kind = country.classify(national)
        if kind == UNKNOWN or region_plan is None:
            raise PhoneRejected(RejectReason.INVALID, invalid_detail(
                country.code, region, len(national), country.verdict(len(national)),
                text[:1] != "+", self.region,
            ))
        # time_zones_for_number, is_number_geographical
        digits = country.prefix + national
        if country.geographic[kind]:
            zones = country.tz_memo.get(digits[: country.tz_depth.get(
                digits[: country.tz_head], country.tz_head)])
            if zones is None:
                zones = country.zones(digits)
            return make_info("+" + digits, region_plan.region, TYPE_NAMES[kind], zones, True)
        return make_info(
            "+" + digits, region_plan.region, TYPE_NAMES[kind], country.country_zones, False
        )


#: by calling code, and by its digits for the countries met so far
_countries: dict[int, Country] = {}
_countries_by_prefix: dict[str, Country] = {}


def country_for(code: int) -> Country:
    country = _countries.get(code)
    if country is None:
        country = _countries.setdefault(code, Country(code))
        _countries_by_prefix[country.prefix] = country
    return country


def _country_starting(digits: str) -> Country | None:
    """``_extract_country_code``'s country, for digits with no country cached yet."""
    for length in range(1, _MAX_COUNTRY_CODE_DIGITS + 1):
        code = _COUNTRY_CODES.get(digits[:length])
        if code is not None:
            return country_for(code)
    return None


def _country_level_zones(prefix: str) -> tuple[str, ...]:
    """``_country_level_time_zones_for_number``, its slicing included."""
    for prefix_len in range(TIMEZONE_LONGEST_PREFIX, 0, -1):
        zones = TIMEZONE_DATA.get(prefix[: 1 + prefix_len])
        if zones is not None:
            return tuple(zones)
    return ()
