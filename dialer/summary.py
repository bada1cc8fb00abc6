"""The campaign summary: counts and rates over the same rows the export writes."""

from __future__ import annotations

import statistics
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import UserError
from .models import Outcome
from .reports import ReportSpec, iter_contact_batches
from .store import Store
from .window import zone

#: Outcomes where someone (or something) picked up.
CONNECTED = frozenset({Outcome.ANSWERED.value, Outcome.VOICEMAIL.value, Outcome.OPTED_OUT.value,
                       Outcome.SHUTDOWN.value})
#: Outcomes where a person picked up.
HUMAN = frozenset({Outcome.ANSWERED.value, Outcome.OPTED_OUT.value})


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def summarise(store: Store, cid: str) -> dict[str, Any]:
    """The documented ``report summary --json`` object."""
    record = store.get_campaign(cid)
    spec = ReportSpec(record, "UTC", attempts=False, full_transcript=False)
    outcomes: Counter[str] = Counter()
    dispositions: Counter[str] = Counter()
    talk: list[float] = []
    contacts = dialed = dials = charged = 0
    zones_by_contact: dict[int, str] = {}
    with store.snapshot(cid) as snapshot:
        for columns in iter_contact_batches(store, snapshot, spec):
            for contact_id, outcome, dial_count, charged_count, disposition, answered_at, talk_s, zones in zip(
                columns["contact_id"], columns["outcome"], columns["dials"], columns["attempts"],
                columns["disposition"], columns["answered_at"], columns["talk_s"], columns["time_zones"],
                strict=True,
            ):
                contacts += 1
                outcomes[outcome] += 1
                dials += dial_count
                charged += charged_count
                dialed += dial_count > 0
                if disposition:
                    dispositions[disposition] += 1
                if outcome in HUMAN and answered_at is not None:
                    talk.append(talk_s)
                zones_by_contact[contact_id] = (zones.split() or ["UTC"])[0]
        by_hour = [0] * 24
        callers: dict[str, Counter[str]] = {}
        for member, attempt in snapshot.iter_attempts():
            started = attempt.get("dial_started_at")
            if started is None or attempt.get("invite_sent") is False:
                continue
            if attempt.get("caller_id"):
                caller = callers.setdefault(attempt["caller_id"], Counter())
                caller["attempts"] += 1
                caller["answered"] += bool(attempt.get("answered_at"))
                caller["spam_flagged"] += bool(attempt.get("spam_flagged"))
            contact_id = int(member.partition(":")[0])
            local = datetime.fromtimestamp(float(started), UTC).astimezone(
                zone(zones_by_contact.get(contact_id, "UTC")))
            by_hour[local.hour] += 1
    connected = sum(outcomes[name] for name in CONNECTED)
    human = sum(outcomes[name] for name in HUMAN)
    return {
        "campaign_id": cid,
        "name": record.name,
        "state": record.state.value,
        "contacts": contacts,
        "final": sum(outcomes[o.value] for o in Outcome),
        "dialed": dialed,
        "attempts": dials,
        "charged_attempts": charged,
        "connected": connected,
        "answered": human,
        "connect_rate": _rate(connected, dialed),
        "answer_rate": _rate(human, dialed),
        "attempts_per_contact": round(dials / dialed, 3) if dialed else 0.0,
        "outcomes": {o.value: outcomes[o.value] for o in Outcome},
        "not_final": {state: count for state, count in outcomes.items() if state not in {o.value for o in Outcome}},
        "dispositions": dict(dispositions.most_common()),
        "talk_s": {
            "calls": len(talk),
            "total": round(sum(talk), 1),
            "mean": round(statistics.fmean(talk), 1) if talk else 0.0,
            "median": round(statistics.median(talk), 1) if talk else 0.0,
        },
        "calls_by_local_hour": by_hour,
        # Per caller ID of the pool: a number the networks flag as spam (607/608) shows here first.
        "caller_ids": {
            number: {"attempts": c["attempts"], "answered": c["answered"],
                     "answer_rate": _rate(c["answered"], c["attempts"]), "spam_flagged": c["spam_flagged"]}
            for number, c in sorted(callers.items())
        },
    }


def draw_chart(summary: dict[str, Any], path: Path) -> None:
    """Outcome mix and calls per local hour, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (mix, hours) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [1, 1.3]})
    names = [name for name, count in summary["outcomes"].items() if count]
    counts = [summary["outcomes"][name] for name in names]
    mix.barh(names[::-1], counts[::-1], color="#3b7dd8")
    mix.set_title("Outcome mix (contacts)")
    mix.set_xlabel("contacts")
    for y, count in enumerate(counts[::-1]):
        mix.text(count, y, f" {count}", va="center")
    hours.plot(range(24), summary["calls_by_local_hour"], marker="o", color="#d8663b")
    hours.set_xticks(range(0, 24, 2))
    hours.set_xlim(-0.5, 23.5)
    hours.set_title("Calls by hour of the recipient's local day")
    hours.set_xlabel("local hour")
    hours.set_ylabel("dial attempts")
    hours.grid(alpha=0.3)
    figure.suptitle(f"{summary['name']} ({summary['campaign_id']}): "
                    f"{summary['dialed']} dialed, answer rate {summary['answer_rate']:.0%}")
    figure.tight_layout()
    try:
        figure.savefig(path, dpi=110)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        plt.close(figure)
