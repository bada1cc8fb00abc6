"""What the benchmarks share: timing a subprocess with its peak memory, and the figure rows of `make bench`.

A figure row is one JSON object per line, appended to the file named by ``--json-out`` (or
the ``BENCH_JSON`` environment variable, which `make bench` sets for every script):

    {"figure": "report CSV, 1,000,000 contacts", "unit": "s", "ours": 9.1, "peer": 41.0,
     "ratio": 0.22, "target": "<= 0.5x peer", "met": true,
     "ours_rss_mib": 410, "peer_rss_mib": 3900, "note": "..."}

``figure``, ``ours``, ``unit``, ``target`` and ``met`` are required; ``peer``, ``ratio``,
the RSS figures, ``ours_cpu_s`` / ``peer_cpu_s`` (CPU seconds: on a shared machine they
drift less than wall time) and ``note`` may be null or absent. ``bench/table.py`` prints them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

#: How often the summed RSS of a measured process tree is sampled.
RSS_SAMPLE_S = 0.25


@dataclass(frozen=True)
class Measured:
    """One subprocess run: wall time, the largest single process's peak RSS, the tree's peak sum."""

    seconds: float
    peak_rss_mib: float
    tree_rss_mib: float
    returncode: int
    stderr: str
    capped: bool = False
    #: CPU time (user + system) of the process and the children it waited for.
    cpu_s: float = 0.0


def _tree_rss(process: psutil.Process) -> int:
    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_info().rss
        except psutil.Error:
            continue
    return total


def run_measured(argv: Sequence[str], *, env: dict[str, str] | None = None, stdout: Any = subprocess.DEVNULL,
                 timeout_s: float | None = None) -> Measured:
    """Run ``argv`` to its end (or kill it after ``timeout_s``); peak RSS from the kernel and sampled."""
    with tempfile.TemporaryFile() as stderr:
        started = time.perf_counter()
        process = subprocess.Popen(list(argv), env=env, stdout=stdout, stderr=stderr)
        watched = psutil.Process(process.pid)
        peak_tree = 0
        done = threading.Event()
        capped = threading.Event()

        def sample() -> None:
            nonlocal peak_tree
            while not done.wait(RSS_SAMPLE_S):
                try:
                    peak_tree = max(peak_tree, _tree_rss(watched))
                except psutil.Error:
                    return
                if timeout_s is not None and time.perf_counter() - started > timeout_s:
                    capped.set()
                    for member in [*watched.children(recursive=True), watched]:
                        try:
                            member.kill()
                        except psutil.Error:
                            continue
                    return

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - started
        done.set()
        sampler.join()
        process.returncode = os.waitstatus_to_exitcode(status)
        stderr.seek(0)
        text = stderr.read().decode(errors="replace")
    peak = usage.ru_maxrss / 1024  # KiB on Linux: the largest single process of the tree
    return Measured(elapsed, peak, max(peak_tree / 2**20, peak), process.returncode, text, capped.is_set(),
                    usage.ru_utime + usage.ru_stime)


def add_json_out(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json-out", type=Path, default=os.environ.get("BENCH_JSON") or None,
                        help="append the figure rows here as JSON lines (default: $BENCH_JSON)")


def ratio(ours: float, peer: float | None) -> float | None:
    return None if not peer else round(ours / peer, 3)


def emit(row: dict[str, Any], json_out: Path | None) -> None:
    """Print one figure row and append it to ``json_out``."""
    for name in ("figure", "ours", "unit", "target", "met"):
        if name not in row:
            raise ValueError(f"a figure row needs {name!r}: {row}")
    line = json.dumps(row)
    print(f"FIGURE {line}", flush=True)
    if json_out is not None:
        with json_out.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
