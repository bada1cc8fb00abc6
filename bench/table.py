"""Print the figure rows the benchmarks wrote (JSON lines, see ``bench/figures.py``) as one table.

    python bench/table.py [FILE.jsonl ...]      (default: $BENCH_JSON)

Any script can add rows: one JSON object a line with ``figure``, ``ours``, ``unit``,
``target`` and ``met``, and optionally ``peer``, ``ratio``, ``ours_rss_mib``,
``peer_rss_mib``, ``ours_cpu_s``, ``peer_cpu_s`` and ``note``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

HEADER = ["figure", "ours", "peer", "ratio", "target", "met?", "RSS ours / peer", "CPU ours / peer", "note"]


def _number(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    text = f"{value:,.3g}" if isinstance(value, float) and abs(value) < 10 else f"{value:,}"
    return f"{text} {unit}".rstrip()


def cells(row: dict[str, Any]) -> list[str]:
    unit = row.get("unit", "")
    rss = "-" if row.get("ours_rss_mib") is None else \
        f"{_number(row.get('ours_rss_mib'))} / {_number(row.get('peer_rss_mib'))} MiB"
    met = {True: "yes", False: "**no**"}.get(row.get("met"), "-")
    share = "-" if row.get("ratio") is None else f"{row['ratio']:.2f}x"
    cpu = "-" if row.get("ours_cpu_s") is None else \
        f"{_number(row.get('ours_cpu_s'))} / {_number(row.get('peer_cpu_s'))} s"
    return [str(row["figure"]), _number(row["ours"], unit), _number(row.get("peer"), unit), share,
            str(row["target"]), met, rss, cpu, str(row.get("note") or "")]


def read_rows(paths: list[Path]) -> list[dict[str, Any]]:
    rows = []
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rows.append(json.loads(line))
    return rows


def render(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in cells(row)) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    paths = [Path(arg) for arg in sys.argv[1:]] or ([Path(os.environ["BENCH_JSON"])] if "BENCH_JSON" in os.environ
                                                    else [])
    if not paths:
        raise SystemExit("usage: bench/table.py FILE.jsonl ... (or set BENCH_JSON)")
    rows = read_rows(paths)
    if not rows:
        raise SystemExit(f"no figure rows in {', '.join(map(str, paths))}")
    print(render(rows))
    missed = [row["figure"] for row in rows if row.get("met") is False]
    if missed:
        print(f"\n{len(missed)} of {len(rows)} figures missed their target: {'; '.join(missed)}")
        return
    print(f"\nall {len(rows)} figures met their targets")


if __name__ == "__main__":
    main()
