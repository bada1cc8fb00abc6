"""Phone normalisation speed: the fast path against phonenumbers alone, on the same cells.

    python bench/phones.py [--rows 1000000] [--reference-rows 100000] [--seed 7]

Generates campaign-like phone cells for US, GB and DE contacts (national and
international formats, spaces, dashes, dots, parentheses, a "(0)" trunk prefix,
about 2% bad cells), each with its campaign's default region, and times
``PhoneNormalizer.normalize`` over all of them and ``normalize_reference`` (pure
phonenumbers) over the first ``--reference-rows``, checking that both gave the
same answer on every row timed with both. ``--reference-rows all`` times
phonenumbers over every row too (about a minute per million).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import phonenumbers

from dialer.phones import PhoneInfo, PhoneNormalizer, PhoneRejected

Outcome = PhoneInfo | tuple[str, str]
Row = tuple[str, object]

#: national significant number shapes: (leading digits, digits to add at random)
GB_SHAPES = [("207946", 4), ("207", 7), ("203", 7), ("161", 7), ("1413", 6), ("7400", 6),
             ("7412", 6), ("7507", 6), ("7830", 6), ("7123", 6)]
DE_SHAPES = [("30", 7), ("30", 8), ("89", 7), ("40", 8), ("221", 7), ("151", 8),
             ("160", 7), ("170", 7), ("176", 8), ("157", 8)]
BAD_CELLS = ["", "n/a", "call back later", "4.4207946E+11", "202-555-0147 x12", "0",
             "+44 20 7946", "555-0142", "+999 123 4567", "1-800-FLOWERS"]


def us_area_codes() -> list[str]:
    """Area codes phonenumbers accepts for US fixed lines."""
    return [
        str(npa) for npa in range(200, 1000)
        if phonenumbers.is_valid_number_for_region(
            phonenumbers.parse(f"+1{npa}2345678"), "US"
        )
    ]


def us_cell(rnd: random.Random, area_codes: list[str]) -> str:
    npa, nxx = rnd.choice(area_codes), str(rnd.randint(200, 999))
    line = f"{rnd.randrange(10000):04d}"
    shape = rnd.randrange(9)
    if shape == 0:
        return f"({npa}) {nxx}-{line}"
    if shape == 1:
        return f"{npa}-{nxx}-{line}"
    if shape == 2:
        return f"{npa}.{nxx}.{line}"
    if shape == 3:
        return f"{npa}{nxx}{line}"
    if shape == 4:
        return f"1-{npa}-{nxx}-{line}"
    if shape == 5:
        return f"1{npa}{nxx}{line}"
    if shape == 6:
        return f"+1 {npa} {nxx} {line}"
    if shape == 7:
        return f"+1{npa}{nxx}{line}"
    return f"001 {npa} {nxx} {line}"


def europe_cell(rnd: random.Random, code: str, shapes: list[tuple[str, int]]) -> str:
    lead, free = rnd.choice(shapes)
    nsn = lead + "".join(rnd.choice("0123456789") for _ in range(free))
    head, tail = nsn[: len(lead)], nsn[len(lead):]
    shape = rnd.randrange(8)
    if shape == 0:
        return f"0{head} {tail}"
    if shape == 1:
        return f"0{nsn}"
    if shape == 2:
        return f"0{head}/{tail}" if code == "49" else f"0{head}-{tail}"
    if shape == 3:
        return f"+{code} {head} {tail}"
    if shape == 4:
        return f"+{code}{nsn}"
    if shape == 5:
        return f"+{code} (0){head} {tail}"
    if shape == 6:
        return f"00{code} {head} {tail}"
    return f"{code}{nsn}"


def generate(rows: int, seed: int) -> list[Row]:
    rnd = random.Random(seed)
    area_codes = us_area_codes()
    cells: list[Row] = []
    for _ in range(rows):
        pick = rnd.random()
        if pick < 0.02:
            cells.append(("US", rnd.choice(BAD_CELLS)))
        elif pick < 0.50:
            cells.append(("US", us_cell(rnd, area_codes)))
        elif pick < 0.75:
            cells.append(("GB", europe_cell(rnd, "44", GB_SHAPES)))
        else:
            cells.append(("DE", europe_cell(rnd, "49", DE_SHAPES)))
    return cells


def run(cells: list[Row], method: Callable[[PhoneNormalizer], Callable[[object], PhoneInfo]],
        keep: int) -> tuple[float, list[Outcome], Counter[str], int]:
    normalizers = {region: PhoneNormalizer(region) for region in ("US", "GB", "DE")}
    calls = {region: method(normalizer) for region, normalizer in normalizers.items()}
    kept: list[Outcome] = []
    rejected: Counter[str] = Counter()
    started = time.perf_counter()
    for index, (region, cell) in enumerate(cells):
        try:
            info: Outcome = calls[region](cell)
        except PhoneRejected as exc:
            rejected[exc.reason.value] += 1
            info = (exc.reason.value, exc.detail)
        if index < keep:
            kept.append(info)
    elapsed = time.perf_counter() - started
    return elapsed, kept, rejected, sum(n.fallbacks for n in normalizers.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reference-rows", default="100000",
                        help="rows to time phonenumbers on, or 'all'")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    reference_rows = args.rows if args.reference_rows == "all" else int(args.reference_rows)
    reference_rows = min(reference_rows, args.rows)

    cells = generate(args.rows, args.seed)
    print(f"{len(cells):,} cells (US 48%, GB 25%, DE 25%, bad 2%), seed {args.seed}")

    fast_s, fast_kept, rejected, fallbacks = run(
        cells, lambda n: n.normalize, keep=reference_rows
    )
    print(f"fast path      {fast_s:7.2f} s  {len(cells) / fast_s:>10,.0f} rows/s  "
          f"fallback to phonenumbers {fallbacks / len(cells):.2%} of rows")
    print("rejected       " + ", ".join(f"{reason} {count:,}" for reason, count in
                                         sorted(rejected.items())))

    ref_s, ref_kept, _, _ = run(
        cells[:reference_rows], lambda n: n.normalize_reference, keep=reference_rows
    )
    print(f"phonenumbers   {ref_s:7.2f} s  {reference_rows / ref_s:>10,.0f} rows/s  "
          f"({reference_rows:,} rows)")
    print(f"speed-up       {(len(cells) / fast_s) / (reference_rows / ref_s):.1f}x")
    differ = [i for i, (a, b) in enumerate(zip(fast_kept, ref_kept, strict=True)) if a != b]
    if differ:
        first = differ[0]
        print(f"DIFFERENT on {len(differ):,} of {reference_rows:,} rows, first {cells[first]!r}: "
              f"{fast_kept[first]!r} != {ref_kept[first]!r}")
        raise SystemExit(1)
    print(f"identical      on all {reference_rows:,} rows compared")


if __name__ == "__main__":
    main()
