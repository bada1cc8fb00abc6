"""Rich tables the CLI and ``dialer demo`` print."""

from __future__ import annotations

from typing import Any

from rich.table import Table


def status_table(data: dict[str, Any]) -> Table:
    """A campaign's ``control.status`` as a table."""
    state = data["state"] + (f" ({data['pause_reason']})" if data.get("pause_reason") else "")
    table = Table(title=f"Campaign {data['campaign_id']} ({data['name']}): {state}")
    table.add_column("")
    table.add_column("contacts", justify="right")
    for key in ("contacts", "final", "in_flight", "pending", "attempts"):
        table.add_row(key, f"{data[key]:,}")
    for outcome, count in data["outcomes"].items():
        if count:
            table.add_row(f"  {outcome}", f"{count:,}")
    notes = list(data.get("problems", []))
    if data.get("trunk_pace_factor", 1) < 1:
        notes.append(f"trunk backing off after capacity refusals: {data['effective_calls_per_second']} "
                     f"calls/s ({data['trunk_pace_factor']:.0%} of the configured rate)")
    hooks = data.get("webhooks")
    if hooks and (hooks["failed"] or hooks["pending"]):
        notes.append(f"webhooks: {hooks['delivered']:,} delivered, {hooks['pending']:,} pending, {hooks['failed']:,} "
                     f"failed" + (f" (see `dialer webhooks failed {data['campaign_id']}`)" if hooks["failed"] else ""))
    table.caption = "\n".join(notes) or None
    return table
