"""The dashboard's HTML, rendered on the server; ``static/dashboard.js`` adds live updates and actions."""

from __future__ import annotations

from html import escape
from typing import Any

from ..models import Outcome

STATE_LABELS = {"ingesting": "ingesting", "draft": "ready to start", "running": "running", "paused": "paused",
                "completed": "completed", "cancelled": "cancelled", "failed": "ingest failed"}


def _page(title: str, body: str, csrf: str = "", signed_in: bool = False) -> str:
    nav = ('<nav><a href="/">Campaigns</a><a href="/dnc">Do-not-call list</a><a href="/docs">API docs</a>'
           '<form method="post" action="/logout"><input type="hidden" name="csrf" value="'
           f'{escape(csrf)}"><button class="link">Sign out</button></form></nav>') if signed_in else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="csrf-token" content="{escape(csrf)}">
<title>{escape(title)} - Outbound dialer</title>
<link rel="stylesheet" href="/static/dashboard.css"><script src="/static/dashboard.js" defer></script>
</head><body><header><a class="brand" href="/">Outbound dialer</a>{nav}</header>
<main>{body}</main></body></html>"""


def sign_in(error: str = "") -> str:
    message = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    return _page("Sign in", f"""<section class="card narrow"><h1>Sign in</h1>
<p>Paste an API key. Create one on the server with <code>dialer api-key create NAME</code>.</p>{message}
<form method="post" action="/session"><label>API key <input type="password" name="key" autocomplete="off"
required autofocus></label><button type="submit">Sign in</button></form></section>""")


def _state(state: str) -> str:
    return f'<span class="state state-{escape(state)}">{escape(STATE_LABELS.get(state, state))}</span>'


def home(campaigns: list[dict[str, Any]], csrf: str, read_only: bool) -> str:
    rows = "".join(
        f'<tr><td><a href="/campaigns/{escape(c["campaign_id"])}">{escape(c["name"])}</a></td>'
        f'<td>{_state(c["state"])}</td><td class="num">{c["accepted"]:,}</td><td class="num">{c["rows"]:,}</td>'
        f'<td><code>{escape(c["campaign_id"])}</code></td></tr>'
        for c in reversed(campaigns)
    ) or '<tr><td colspan="5" class="muted">No campaigns yet: upload one below.</td></tr>'
    upload = "" if read_only else UPLOAD_FORM
    return _page("Campaigns", f"""<h1>Campaigns</h1>
<table class="list"><thead><tr><th>name</th><th>state</th><th class="num">contacts</th><th class="num">rows</th>
<th>id</th></tr></thead><tbody>{rows}</tbody></table>{upload}""", csrf, signed_in=True)


UPLOAD_FORM = """<section class="card"><h2>New campaign</h2>
<form id="upload" class="upload">
<label class="wide">Contacts CSV <input type="file" name="file" accept=".csv,text/csv,text/plain" required></label>
<label>Name <input name="name" placeholder="Spring reminders"></label>
<label>Default region <input name="region" placeholder="US" maxlength="2"></label>
<label>Calling window from <input name="window_start" placeholder="09:00"></label>
<label>to <input name="window_end" placeholder="20:00"></label>
<label>Concurrent calls <input name="max_concurrent_calls" type="number" min="1" placeholder="10"></label>
<label>Calls per second <input name="calls_per_second" type="number" min="0.01" step="any" placeholder="1"></label>
<label>Attempts per contact <input name="max_attempts" type="number" min="1" placeholder="3"></label>
<label>Retry after busy (s) <input name="retry_busy" type="number" min="0" step="any" placeholder="900"></label>
<label>Retry after no answer (s) <input name="retry_no_answer" type="number" min="0" step="any"
 placeholder="3600"></label>
<label>Retry after carrier error (s) <input name="retry_carrier_error" type="number" min="0" step="any"
 placeholder="300"></label>
<label>Ring timeout (s) <input name="ring_timeout_s" type="number" min="1" placeholder="30"></label>
<label class="wide">Greeting <input name="greeting" placeholder="Hi {first_name}, ..."></label>
<label class="wide">Agent instructions <textarea name="instructions" rows="3"
 placeholder="You are a friendly assistant..."></textarea></label>
<label class="wide">Everything else (YAML; the fields above win)
<textarea name="yaml" rows="8" spellcheck="false" placeholder="name: Spring reminders&#10;caller_id: '+12025550199'">
</textarea></label>
<p class="error wide" id="upload-error" role="alert" hidden></p>
<button type="submit" class="wide">Upload and check</button>
</form></section>"""


def campaign(data: dict[str, Any], csrf: str, read_only: bool) -> str:
    cid = escape(data["campaign_id"])
    state = data["state"]
    if state in ("ingesting", "failed"):
        detail = (f'<p class="error" role="alert">{escape(data.get("error") or "")}</p>' if state == "failed"
                  else '<p class="muted">Checking every row: this page updates when it is done.</p>')
        return _page("Campaign", f"""<h1>Upload <code>{cid}</code> {_state(state)}</h1>
<section class="card" id="ingest" data-campaign="{cid}" data-state="{escape(state)}">
<p>File: {escape(data.get("source") or "")}</p>{detail}</section>""", csrf, signed_in=True)
    reasons = "".join(f"<li>{escape(reason)}: {count:,}</li>" for reason, count in data["reject_reasons"].items())
    skipped = data["rejected"] + data["duplicates"] + data["suppressed"]
    rejects = (f'<a class="button secondary" href="/v1/campaigns/{cid}/rejects?all=true" download>'
               f"Download skipped rows (CSV)</a>") if skipped else ""
    controls = "" if read_only else """<div class="controls" id="controls">
<button data-action="start">Start</button><button data-action="pause">Pause</button>
<button data-action="resume">Resume</button><button data-action="cancel" class="danger">Cancel</button></div>"""
    outcome_rows = "".join(
        f'<div class="bar-row" data-outcome="{o.value}"><span>{o.value.replace("_", " ")}</span>'
        f'<span class="bar"><i></i></span><b class="num" data-count="{o.value}">0</b></div>'
        for o in Outcome
    )
    downloads = "".join(
        f'<a class="button secondary" href="/v1/campaigns/{cid}/report?format={fmt}" download>{fmt.upper()}</a>'
        for fmt in ("csv", "xlsx", "parquet", "json")
    )
    return _page(data["name"], f"""<div class="title"><h1>{escape(data["name"])}</h1>
<span id="state">{_state(state)}</span></div>
<p class="muted" id="pause-reason"></p>
<div id="campaign" data-campaign="{cid}" data-state="{escape(state)}"></div>
<section class="card"><h2>Ingest</h2><div class="stats">
<div><b>{data["rows"]:,}</b><span>rows read</span></div><div><b>{data["accepted"]:,}</b><span>accepted</span></div>
<div><b>{data["rejected"]:,}</b><span>rejected</span></div><div><b>{data["duplicates"]:,}</b><span>duplicates</span></div>
<div><b>{data["suppressed"]:,}</b><span>on the DNC list</span></div></div>
<ul class="reasons">{reasons}</ul>{rejects}</section>
<section class="card"><h2>Progress</h2>{controls}
<div class="progress" role="progressbar" aria-valuemin="0" aria-valuemax="100"><i id="progress-bar"></i></div>
<div class="stats">
<div><b data-field="final">0</b><span>done</span></div>
<div><b data-field="in_flight">0</b><span>calls in flight</span></div>
<div><b data-field="pending">0</b><span>waiting</span></div>
<div><b data-field="attempts">0</b><span>attempts</span></div>
<div><b data-field="contacts">{data["accepted"]:,}</b><span>contacts</span></div></div>
<h3>Outcomes</h3><div class="bars">{outcome_rows}</div></section>
<section class="card"><h2>A contact's calls</h2>
<form id="contact-open" class="inline"><label>CSV row number <input name="row" type="number" min="2"
required placeholder="2"></label><button class="secondary">Open</button></form>
<p class="error" id="contact-error" role="alert" hidden></p><div id="contact"></div></section>
<section class="card"><h2>Report</h2><p>One row per contact, with its outcome, attempts, disposition and
transcript.</p><div class="downloads">{downloads}</div>
<img id="chart" alt="Outcomes and calls per local hour" hidden></section>""", csrf, signed_in=True)


def dnc(numbers: list[str], csrf: str, read_only: bool) -> str:
    items = "".join(
        f'<li><code>{escape(n)}</code>' + ("" if read_only else
                                           f' <button class="link" data-remove="{escape(n)}">remove</button>')
        + "</li>" for n in numbers[:1000]
    ) or '<li class="muted">The list is empty.</li>'
    more = f'<p class="muted">and {len(numbers) - 1000:,} more</p>' if len(numbers) > 1000 else ""
    form = "" if read_only else """<form id="dnc-add" class="inline"><label>Add numbers
<input name="numbers" placeholder="+1 202 555 0143, 202-555-0144" required></label>
<label>Region <input name="region" value="US" maxlength="2" size="3"></label><button>Add</button></form>
<p class="error" id="dnc-error" role="alert" hidden></p>"""
    return _page("Do-not-call list", f"""<h1>Do-not-call list <small id="dnc-count">{len(numbers):,}
numbers</small></h1><section class="card">{form}<ul class="numbers" id="dnc-list">{items}</ul>{more}</section>""",
                 csrf, signed_in=True)
