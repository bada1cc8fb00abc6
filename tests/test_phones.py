"""Phone normalisation: the cell policy, and the fast path held to phonenumbers' answers."""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable
from typing import Any

import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumber, PhoneNumberFormat, PhoneNumberType

from dialer.phones import PhoneInfo, PhoneNormalizer, PhoneRejected, RejectReason
from dialer.phones._cells import _EXTENSION, _MAYBE_EXTENSION, _prepare_text, prepare
from dialer.phones._fast import FastParser
from dialer.phones._reference import parse_reference

#: default regions the properties run under: the bench's, and the awkward ones
#: (shared country codes, national prefix transform rules, Italian leading zeros)
REGIONS = ["US", "GB", "DE", "FR", "IN", "CA", "AU", "BR", "AR", "JP", "IT", "RU", "MX", "JE", "BS"]
REAL_REGIONS = ["US", "GB", "DE", "FR", "IN"]
PROPERTY = settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

_normalizers: dict[str, PhoneNormalizer] = {}


def normalizer(region: str) -> PhoneNormalizer:
    if region not in _normalizers:
        _normalizers[region] = PhoneNormalizer(region)
    return _normalizers[region]


def outcome(normalize: Callable[[Any], object], raw: object) -> object:
    """What ``normalize`` made of ``raw``: its result, or the rejection's reason and detail."""
    try:
        return normalize(raw)
    except PhoneRejected as exc:
        return exc.reason.value, exc.detail


def assert_same_as_phonenumbers(region: str, raw: object) -> None:
    n = normalizer(region)
    assert outcome(n.normalize, raw) == outcome(n.normalize_reference, raw), (region, raw)


def rejection(raw: object, region: str = "US") -> PhoneRejected:
    with pytest.raises(PhoneRejected) as caught:
        PhoneNormalizer(region).normalize(raw)
    return caught.value


# -- generated inputs -------------------------------------------------------------------


def _formats(draw: st.DrawFn, code: int, nsn: str, region: str) -> str:
    number = PhoneNumber(country_code=code, national_number=int(nsn))
    national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
    international = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    prefix = phonenumbers.ndd_prefix_for_region(region, True) or ""
    shapes = [
        f"+{code}{nsn}",
        international,
        f"00{code} {nsn}",
        f"{code}{nsn}",
        f"+{code} ({prefix}){nsn}",
        national,
        nsn,
        prefix + nsn,
        national.replace(" ", "-"),
        f"({nsn[:3]}) {nsn[3:6]}-{nsn[6:]}",
        f"{prefix}{nsn[:3]}/{nsn[3:]}",
        f"+{code}.{nsn[:3]}.{nsn[3:]}",
    ]
    return draw(st.sampled_from(shapes))


@st.composite
def real_looking(draw: st.DrawFn) -> tuple[str, str]:
    """A number shaped like one of a region's example numbers, in one of many formats."""
    region = draw(st.sampled_from(REAL_REGIONS))
    kind = draw(st.sampled_from([PhoneNumberType.FIXED_LINE, PhoneNumberType.MOBILE,
                                 PhoneNumberType.TOLL_FREE, PhoneNumberType.VOIP]))
    example = phonenumbers.example_number_for_type(region, kind) or phonenumbers.example_number(
        region
    )
    assert example is not None
    nsn = phonenumbers.national_significant_number(example)
    keep = draw(st.integers(min_value=1, max_value=len(nsn)))
    tail = draw(st.text(alphabet="0123456789", min_size=len(nsn) - keep, max_size=len(nsn) - keep))
    extra = draw(st.sampled_from(["", "", "", "", "7", "12"]))  # sometimes too long
    cut = draw(st.sampled_from([0, 0, 0, 0, 1]))  # sometimes too short
    nsn = (nsn[:keep] + tail + extra)[: len(nsn) + len(extra) - cut]
    text = _formats(draw, example.country_code or 0, nsn, region)
    return draw(st.sampled_from([*REAL_REGIONS, "CA", "AU"])), text


_EXAMPLES = sorted(
    (phonenumbers.format_number(example, PhoneNumberFormat.E164), region)
    for region in phonenumbers.SUPPORTED_REGIONS
    for kind in phonenumbers.supported_types_for_region(region)
    if (example := phonenumbers.example_number_for_type(region, kind)) is not None
)


@st.composite
def any_region_number(draw: st.DrawFn) -> tuple[str, str]:
    """An example number of any region, its tail rewritten, written nationally or not."""
    e164, region = draw(st.sampled_from(_EXAMPLES))
    number = phonenumbers.parse(e164)
    code, nsn = str(number.country_code), phonenumbers.national_significant_number(number)
    keep = draw(st.integers(min_value=0, max_value=len(nsn)))
    size = len(nsn) - keep + draw(st.sampled_from([0, 0, 0, 1, -1, 2]))
    nsn = nsn[:keep] + draw(st.text(alphabet="0123456789", min_size=max(size, 0),
                                    max_size=max(size, 0)))
    prefix = phonenumbers.ndd_prefix_for_region(region, True) or ""
    text = draw(st.sampled_from([f"+{code}{nsn}", prefix + nsn, nsn, f"{code}{nsn}",
                                 f"+{code}{prefix}{nsn}", prefix + prefix + nsn]))
    home = draw(st.sampled_from([region, region, "US", "GB", "DE", "BR", "JP"]))
    return home, text


digit_strings = st.builds(
    lambda prefix, digits: prefix + digits,
    st.sampled_from(["", "", "+", "00", "0", "1", "+1", "+44", "0044", "+49", "011", "8", "+7"]),
    st.text(alphabet="0123456789", min_size=0, max_size=18),
)
hostile = st.one_of(
    st.text(max_size=30),
    st.text(alphabet="0123456789+-() ./'#;,xXeE=:tel\u00a0\uff10\u0661", max_size=25),
    st.none(),
    st.integers(min_value=-10, max_value=10**16),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
)


# -- the fast path gives phonenumbers' answers ------------------------------------------


@PROPERTY
@given(region=st.sampled_from(REGIONS), text=digit_strings)
def test_fast_path_matches_phonenumbers_on_random_digits(region: str, text: str) -> None:
    assert_same_as_phonenumbers(region, text)


@PROPERTY
@given(case=real_looking())
def test_fast_path_matches_phonenumbers_on_real_looking_numbers(case: tuple[str, str]) -> None:
    assert_same_as_phonenumbers(*case)


@PROPERTY
@given(case=any_region_number())
def test_fast_path_matches_phonenumbers_on_numbers_of_every_region(case: tuple[str, str]) -> None:
    assert_same_as_phonenumbers(*case)


@PROPERTY
@given(region=st.sampled_from(REGIONS), raw=hostile)
def test_fast_path_matches_phonenumbers_on_hostile_cells(region: str, raw: object) -> None:
    assert_same_as_phonenumbers(region, raw)


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet="0123456789+-() ./'\t\u00a0x#e", max_size=20))
def test_quick_shape_check_agrees_with_full_cell_policy(text: str) -> None:
    assert outcome(prepare, text) == outcome(_prepare_text, text)


def _example_numbers() -> list[PhoneNumber]:
    examples = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in phonenumbers.supported_types_for_region(region):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is not None:
                examples.append(example)
    for code in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
        example = phonenumbers.example_number_for_non_geo_entity(code)
        if example is not None:
            examples.append(example)
    return examples


def test_every_example_number_of_every_region_matches_phonenumbers() -> None:
    examples = _example_numbers()
    fast = FastParser("US")
    answered = 0
    for example in examples:
        e164 = phonenumbers.format_number(example, PhoneNumberFormat.E164)
        region = phonenumbers.region_code_for_number(example)
        home = region if region in phonenumbers.SUPPORTED_REGIONS else "US"
        national = phonenumbers.format_number(example, PhoneNumberFormat.NATIONAL)
        assert_same_as_phonenumbers("US", e164)
        assert_same_as_phonenumbers(home, national)
        answered += fast.parse(e164) is not None
    assert len(examples) > 1000
    assert answered / len(examples) > 0.97  # the rest is phonenumbers' own job, still correct


def test_common_shapes_and_invalid_numbers_never_need_the_fallback() -> None:
    cells: dict[str, list[object]] = {
        "US": ["(202) 555-0142", "202-555-0143", "202.555.0144", "12025550145", "+1 202 555 0146",
               "001 202 555 0147", 2025550148, 2025550149.0, "2025550150.0", "'2025550151"],
        "GB": ["020 7946 0123", "+44 20 7946 0124", "+44 (0)20 7946 0125", "07400 123456",
               "0044 7400 123457", "442079460126"],
        "DE": ["030 1234567", "+49 30 1234568", "0151 23456789", "+49 (0)151 23456780"],
    }
    invalid = {"US": ["555-555-0100", "+1 202 555 010"], "GB": ["07700 900123"],
               "DE": ["+49 30 12"]}
    for region, values in cells.items():
        n = PhoneNormalizer(region)
        for value in values:
            n.normalize(value)
        for value in invalid[region]:
            with pytest.raises(PhoneRejected):
                n.normalize(value)
        assert n.fallbacks == 0, region


# -- the cell policy --------------------------------------------------------------------


@pytest.mark.parametrize("line", range(100, 200))
def test_fictional_us_555_01xx_numbers_are_valid(line: int) -> None:
    assert PhoneNormalizer("US").normalize(f"202-555-0{line}").e164 == f"+12025550{line}"


@pytest.mark.parametrize("line", [0, 1, 500, 998, 999])
def test_fictional_london_020_7946_0xxx_numbers_are_valid(line: int) -> None:
    info = PhoneNormalizer("GB").normalize(f"020 7946 0{line:03d}")
    assert (info.e164, info.region, info.time_zones) == (
        f"+442079460{line:03d}", "GB", ("Europe/London",)
    )


def test_uk_drama_range_07700_900xxx_is_invalid() -> None:
    error = rejection("07700 900123", "GB")
    assert error.reason is RejectReason.INVALID
    assert "GB" in error.detail


def test_us_number_is_fixed_line_or_mobile_in_its_zone() -> None:
    assert PhoneNormalizer("US").normalize("(202) 555-0142") == PhoneInfo(
        e164="+12025550142", region="US", number_type="fixed_line_or_mobile",
        time_zones=("America/New_York",), geographic=True,
    )


def test_toll_free_number_has_every_zone_of_its_country_and_is_not_geographic() -> None:
    info = PhoneNormalizer("US").normalize("1-800-555-0100")
    assert info.number_type == "toll_free"
    assert not info.geographic
    assert {"America/New_York", "America/Los_Angeles"} <= set(info.time_zones)


def test_unknown_time_zone_marker_becomes_empty_tuple() -> None:
    info = PhoneNormalizer("US").normalize("+800 1234 5678")
    assert (info.region, info.time_zones) == ("001", ())


def test_shared_country_code_resolves_to_the_right_region() -> None:
    n = PhoneNormalizer("US")
    assert n.normalize("+1 204 555 0100").region == "CA"
    assert n.normalize("+1 876 555 0100").region == "JM"


@pytest.mark.parametrize(
    ("cell", "region", "e164"),
    [
        ("+44 (0)20 7946 0000", "US", "+442079460000"),
        ("0044 20 7946 0000", "US", "+442079460000"),
        ("00 1 202 555 0100", "GB", "+12025550100"),
        ("1 (202) 555-0100", "US", "+12025550100"),
        ("030/1234567", "DE", "+49301234567"),
        ("01 23 45 67 89", "FR", "+33123456789"),
        ("tel:+1-202-555-0100", "GB", "+12025550100"),
        ("'2025550100", "US", "+12025550100"),
        ('="2025550100"', "US", "+12025550100"),
        ("\u00a0202\u2011555\u20110100\ufeff", "US", "+12025550100"),
        ("\uff12\uff10\uff12\uff15\uff15\uff15\uff10\uff11\uff10\uff10", "US", "+12025550100"),
        (2025550100, "US", "+12025550100"),
        (442079460000, "GB", "+442079460000"),
    ],
)
def test_common_ways_of_writing_a_number_are_accepted(cell: object, region: str, e164: str) -> None:
    assert PhoneNormalizer(region).normalize(cell).e164 == e164


@pytest.mark.parametrize("cell", ["2025550100.0", 2025550100.0, " 2025550100.0 "])
def test_pandas_float_artifact_dot_zero_is_dropped(cell: object) -> None:
    assert PhoneNormalizer("US").normalize(cell).e164 == "+12025550100"


@pytest.mark.parametrize("cell", [None, math.nan, "", "   ", "n/a", "NULL", "nan", "-", "()"])
def test_empty_cells_are_missing(cell: object) -> None:
    assert rejection(cell).reason is RejectReason.MISSING


@pytest.mark.parametrize("cell", ["4.4207946E+11", "4,4207946E+11", "2.02555e9", 4.4207946e16])
def test_scientific_notation_is_rejected_never_guessed(cell: object) -> None:
    error = rejection(cell)
    assert error.reason is RejectReason.SCIENTIFIC
    assert "scientific notation" in error.detail
    assert "re-export the column as text" in error.detail


def test_scientific_notation_message_quotes_the_cell() -> None:
    assert rejection("4.4207946E+11").detail == (
        "number is in scientific notation (4.4207946E+11), probably mangled by a spreadsheet; "
        "re-export the column as text"
    )


@pytest.mark.parametrize(
    "cell",
    ["202-555-0100 x123", "202-555-0100 ext. 5", "(202) 555-0100 Ext: 12", "2025550100#7",
     "+1 202 555 0100;ext=9", "2025550100,,44", "2025550100 extension 3"],
)
def test_extensions_are_rejected_with_their_own_reason(cell: str) -> None:
    error = rejection(cell)
    assert error.reason is RejectReason.EXTENSION
    assert "extension" in error.detail


@pytest.mark.parametrize("cell", ["call me", "1-800-FLOWERS", "202-555-O100", "unknown", True])
def test_letters_are_not_a_number(cell: object) -> None:
    assert rejection(cell).reason is RejectReason.NOT_A_NUMBER


@pytest.mark.parametrize("cell", [2025550100.5, -2025550100, math.inf])
def test_numeric_cells_that_cannot_be_numbers_are_not_a_number(cell: object) -> None:
    assert rejection(cell).reason is RejectReason.NOT_A_NUMBER


@pytest.mark.parametrize(
    ("cell", "words"),
    [
        ("202555010", ["too short", "US", "10 digits"]),
        ("20255501000", ["too long", "US"]),
        ("+44 740", ["too short", "GB (+44)", "7, 9 or 10 digits"]),
        ("+44 20 7946", ["local number", "GB (+44)", "add the area code"]),
        ("+999 1234567", ["country calling code"]),
        ("12", ["too short"]),
        ("5555550100", ["not a valid number", "US (+1)", "+ and the country code"]),
    ],
)
def test_invalid_numbers_say_why_and_for_which_region(cell: str, words: list[str]) -> None:
    error = rejection(cell)
    assert error.reason is RejectReason.INVALID
    for word in words:
        assert word in error.detail


def test_reject_reasons_are_stable_codes() -> None:
    assert {reason.value for reason in RejectReason} == {
        "missing_phone", "scientific_notation", "not_a_number", "has_extension", "invalid_number",
    }


def test_rejection_survives_pickling() -> None:
    error = pickle.loads(pickle.dumps(rejection("4.4207946E+11")))
    assert (error.reason, str(error)) == (RejectReason.SCIENTIFIC, error.detail)


def test_unknown_region_is_refused_and_lower_case_accepted() -> None:
    with pytest.raises(ValueError, match="not a known region"):
        PhoneNormalizer("XX")
    assert PhoneNormalizer("gb").normalize("020 7946 0000").region == "GB"


def test_reference_and_fast_parser_share_the_phonenumbers_type_names() -> None:
    assert parse_reference("+4915123456789", "DE").number_type == "mobile"
    assert FastParser("DE").parse("+4915123456789") == parse_reference("+4915123456789", "DE")


@given(st.one_of(
    st.text(max_size=30),
    st.builds(lambda number, spelling, digits: f"{number}{spelling}{digits}",
              st.sampled_from(["(617) 555-0106", "+1 617 555 0106", "617.555.0106"]),
              st.sampled_from([" x", "X", " ext. ", "EXT", " Extension: ", "xtn", "#", ",,", ";ext=", "; EXT = ", ";"]),
              st.from_regex(r"[0-9]{1,10}", fullmatch=True)),
))
def test_the_extension_precheck_lets_through_every_cell_with_an_extension(cell: str) -> None:
    # split_extension looks for an extension only in cells the one-character-class precheck passes.
    if _EXTENSION.search(cell):
        assert _MAYBE_EXTENSION.search(cell)
