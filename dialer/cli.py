"""The ``dialer`` command line (Typer + Rich).

``--json`` output is a documented contract (README, "JSON output"): keys are only
ever added, never renamed.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Annotated, Any

import redis
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import metrics, reports
from . import preview as preview_mod
from .config import load_config
from .errors import DialerError, UserError
from .reports import Format
from .settings import get_settings
from .store import Store
from .tables import status_table
from .webhooks import check_endpoints


def _lazy(name: str) -> ModuleType:
    """``name``, imported on its first attribute access (the importlib recipe): the heavy modules
    campaigns, ingest and the doctor need (pandas, phonenumbers, livekit) cost a report export
    half a second of start-up before its work begins."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.loader is not None
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


if TYPE_CHECKING:
    from . import control, ingest, webhook_sender
    from . import doctor as doctor_mod
else:
    control, doctor_mod, ingest, webhook_sender = (
        _lazy(f"{__package__}.{name}") for name in ("control", "doctor", "ingest", "webhook_sender"))

app = typer.Typer(help="Batch outbound dialer for AI voice agents.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
campaign_app = typer.Typer(help="Create, inspect and run campaigns.", no_args_is_help=True)
dnc_app = typer.Typer(help="The do-not-call list.", no_args_is_help=True)
app.add_typer(campaign_app, name="campaign")
app.add_typer(dnc_app, name="dnc")
report_app = typer.Typer(help="Outcome reports: export and summary.", no_args_is_help=True)
app.add_typer(report_app, name="report")
sandbox_app = typer.Typer(help="The embedded LiveKit emulator with simulated callees.",
                          no_args_is_help=True)
app.add_typer(sandbox_app, name="sandbox")
metrics_app = typer.Typer(help="Prometheus metrics of every campaign, worker and trunk.", no_args_is_help=True)
app.add_typer(metrics_app, name="metrics")
api_app = typer.Typer(help="The HTTP API and dashboard.", no_args_is_help=True)
app.add_typer(api_app, name="api")
api_key_app = typer.Typer(help="API keys for the HTTP API (stored only as hashes).", no_args_is_help=True)
app.add_typer(api_key_app, name="api-key")
webhooks_app = typer.Typer(help="Webhook deliveries: failed ones, and sending them again.", no_args_is_help=True)
app.add_typer(webhooks_app, name="webhooks")

console = Console()
#: Messages to stderr never wrap: scripts read errors as one line.
err_console = Console(stderr=True, soft_wrap=True)


JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def open_store() -> Store:
    settings = get_settings()
    store = Store.from_url(settings.redis_url)
    try:
        store.redis.ping()
    except redis.exceptions.ConnectionError:
        raise UserError(
            f"cannot reach Redis at {settings.redis_url}: start redis-server or set REDIS_URL"
        ) from None
    return store


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


# -- campaign ----------------------------------------------------------------------


@campaign_app.command("create")
def campaign_create(
    file: Annotated[Path, typer.Argument(help="The contacts CSV.")],
    config: Annotated[Path, typer.Option("--config", "-c", help="The campaign config YAML.")],
    name: Annotated[str | None, typer.Option(help="Campaign name (overrides the config's).")] = None,
    region: Annotated[str | None, typer.Option(help="Default region for national numbers, e.g. US.")] = None,
    phone_column: Annotated[list[str] | None, typer.Option(
        help="A column holding phone numbers; repeat it for several, the one to dial first first "
             "(default: the config's phone_columns, else every phone column found).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a draft campaign from a CSV of contacts and a config file."""
    settings = get_settings()
    campaign_config = load_config(config, {"name": name, "default_region": region})
    check_endpoints(campaign_config.webhooks, settings.dialer_webhook_allow_private, settings.env_secret)
    store = open_store()
    with Progress(
        TextColumn("[bold]ingest[/]"),
        BarColumn(),
        TextColumn("{task.completed:,} rows"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=as_json or not err_console.is_terminal,
    ) as bar:
        task = bar.add_task("ingest", total=None)
        summary = ingest.ingest_file(
            store,
            file,
            campaign_config,
            phone_column=phone_column,
            max_bytes=settings.max_upload_bytes,
            progress=lambda rows: bar.advance(task, rows),
        )
    if as_json:
        print_json(summary.to_json_dict())
        return
    table = Table(title=f"Campaign {summary.campaign_id} ({summary.name}) created as draft")
    table.add_column("bucket")
    table.add_column("rows", justify="right")
    for bucket, count in summary.counts().items():
        table.add_row(bucket, f"{count:,}")
    for reason, count in sorted(summary.reject_reasons.items()):
        table.add_row(f"  rejected: {reason}", f"{count:,}")
    console.print(table)
    if summary.rejected or summary.duplicates or summary.suppressed:
        console.print(
            f"See the skipped rows with: dialer campaign rejects {summary.campaign_id} "
            "-o rejects.csv [--all]"
        )


@campaign_app.command("list")
def campaign_list(as_json: JsonFlag = False) -> None:
    """List campaigns, oldest first."""
    campaigns = control.list_campaigns(open_store())
    if as_json:
        print_json(campaigns)
        return
    table = Table()
    for column in ("id", "name", "state", "contacts", "rows"):
        table.add_column(column)
    for item in campaigns:
        table.add_row(item["campaign_id"], item["name"], item["state"], f"{item['accepted']:,}",
                      f"{item['rows']:,}")
    console.print(table)


@campaign_app.command("show")
def campaign_show(campaign_id: str, as_json: JsonFlag = False) -> None:
    """Show a campaign's config and ingest summary."""
    store = open_store()
    if as_json:
        print_json(control.show(store, campaign_id))
        return
    record = store.get_campaign(campaign_id)
    table = Table(title=f"Campaign {record.id}", show_header=False)
    table.add_column("field")
    table.add_column("value")
    table.add_row("name", record.name)
    table.add_row("state", record.state.value + (f" ({record.pause_reason})" if record.pause_reason else ""))
    table.add_row("source", record.source)
    table.add_row("phone columns", ", ".join(record.phone_columns or [record.phone_column]))
    for key, count in record.counts.items():
        table.add_row(key, f"{count:,}")
    for reason, count in sorted(record.reject_reasons.items()):
        table.add_row(f"  rejected: {reason}", f"{count:,}")
    cfg = record.config
    window = cfg.calling_window
    table.add_row("calling window", f"{window.start}-{window.end} {','.join(window.days)} (recipient's time)")
    table.add_row("limits", f"{cfg.max_concurrent_calls} concurrent, {cfg.calls_per_second:g}/s, "
                            f"{cfg.max_attempts} attempts, ring {cfg.ring_timeout_s}s")
    for hook in cfg.webhooks:
        table.add_row("webhook", f"{hook.url} ({', '.join(hook.events)}; secret in ${hook.secret_env})")
    console.print(table)


@campaign_app.command("rejects")
def campaign_rejects(
    campaign_id: str,
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the CSV.")],
    include_all: Annotated[bool, typer.Option("--all", help="Include duplicates and DNC-suppressed rows.")] = False,
) -> None:
    """Write the rejected rows, with their row numbers and reasons, to a CSV."""
    store = open_store()
    store.get_campaign(campaign_id)
    try:
        handle = output.open("w", newline="", encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write {output}: {exc.strerror}") from None
    with handle:
        written = control.write_rejects(store, campaign_id, handle, include_all)
    err_console.print(f"wrote {written:,} rows to {output}")


@campaign_app.command("start")
def campaign_start(campaign_id: str) -> None:
    """Start dialing a draft campaign."""
    control.start(open_store(), get_settings(), campaign_id)
    console.print(f"campaign {campaign_id} is running")


@campaign_app.command("pause")
def campaign_pause(campaign_id: str) -> None:
    """Stop placing new calls; calls in progress finish."""
    control.pause(open_store(), campaign_id)
    console.print(f"campaign {campaign_id} is paused")


@campaign_app.command("resume")
def campaign_resume(campaign_id: str) -> None:
    """Resume a paused campaign."""
    control.resume(open_store(), campaign_id)
    console.print(f"campaign {campaign_id} is running")


@campaign_app.command("cancel")
def campaign_cancel(campaign_id: str) -> None:
    """Cancel for good: contacts not yet dialed get the outcome `cancelled`."""
    cancelled = control.cancel(open_store(), get_settings(), campaign_id)
    console.print(f"campaign {campaign_id} is cancelled ({cancelled:,} contacts not dialed)")


def _status(store: Store, campaign_id: str) -> dict[str, Any]:
    return control.status(store, campaign_id, stale_after_s=get_settings().dialer_heartbeat_stale_s)


@campaign_app.command("preview")
def campaign_preview(
    campaign_id: str,
    avg_call_s: Annotated[float, typer.Option(help="Assumed length of a call (ringing and talking), seconds.")]
    = preview_mod.DEFAULT_AVG_CALL_S,
    as_json: JsonFlag = False,
) -> None:
    """Before start: who can be called now, who waits for their window and until when, and how long it takes."""
    if avg_call_s <= 0:
        raise UserError("--avg-call-s must be more than 0")
    result = preview_mod.preview(open_store(), campaign_id, get_settings().now(), avg_call_s)
    if as_json:
        print_json(result.to_json_dict())
        return
    console.print(f"{result.waiting:,} of {result.contacts:,} contacts still to call: {result.callable_now:,} "
                  f"callable now, {result.waiting_for_window:,} waiting for their window, "
                  f"{result.blocked:,} blocked (no common window)")
    table = Table()
    for column in ("time zones", "contacts", "window opens (UTC)"):
        table.add_column(column)
    for group in result.groups:
        table.add_row(group.time_zones, f"{group.contacts:,}", group.opens_at or "open now")
    console.print(table)
    hours = result.estimated_duration_s / 3600
    console.print(f"at {result.calls_per_second:g} calls/s and {result.max_concurrent_calls} at once "
                  f"({result.avg_call_s:g} s a call): about {hours:.1f} h for a first attempt to each, "
                  "windows permitting")


@campaign_app.command("status")
def campaign_status(campaign_id: str, as_json: JsonFlag = False) -> None:
    """Progress: contacts per state and per final outcome, calls in flight, attempts."""
    data = _status(open_store(), campaign_id)
    if as_json:
        print_json(data)
    else:
        console.print(status_table(data))


@campaign_app.command("wait")
def campaign_wait(
    campaign_id: str,
    timeout: Annotated[float | None, typer.Option(help="Give up after this many seconds.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Show live progress until every contact has its final outcome (exit 1 on timeout or pause)."""
    store = open_store()
    data = watch(store, campaign_id, timeout, show=not as_json)
    if as_json:
        print_json(data)
    else:
        console.print(status_table(data))
    if data["state"] == "paused":
        err_console.print(f"[yellow]campaign paused:[/] {data.get('pause_reason') or ''}")
        raise typer.Exit(1)
    if data["final"] < data["contacts"] and data["state"] != "cancelled":
        err_console.print("[yellow]timed out[/]: the campaign is still going")
        raise typer.Exit(1)


def watch(store: Store, campaign_id: str, timeout: float | None, show: bool) -> dict[str, Any]:
    """``control.wait`` with a live progress bar on stderr, saying once why nothing moves."""
    told: list[str] = []
    with Progress(
        TextColumn("[bold]{task.description}[/]"),
        BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,} final"),
        TextColumn("{task.fields[in_flight]} in flight, {task.fields[attempts]} attempts"),
        TimeElapsedColumn(),
        console=err_console,
        disable=not show,
    ) as bar:
        task = bar.add_task("", total=0, in_flight=0, attempts=0)

        def update(data: dict[str, Any]) -> None:
            nonlocal told
            bar.update(task, total=data["contacts"], completed=data["final"], description=data["state"],
                       in_flight=data["in_flight"], attempts=data["attempts"])
            for problem in data["problems"]:
                if problem not in told:
                    err_console.print(f"[yellow]warning:[/] {problem}", highlight=False)
            told = data["problems"]

        return control.wait(store, campaign_id, timeout, update,
                            stale_after_s=get_settings().dialer_heartbeat_stale_s)


# -- do-not-call list ------------------------------------------------------------------


RegionOption = Annotated[str, typer.Option(help="Region for numbers in national format.")]


def _report_bad(bad: list[tuple[str, str]]) -> None:
    for raw, why in bad:
        err_console.print(f"[yellow]skipped[/] {raw!r}: {why}")


@dnc_app.command("add")
def dnc_add(numbers: list[str], region: RegionOption = "US") -> None:
    """Add numbers to the do-not-call list."""
    added, checked = control.dnc_add(open_store(), numbers, region)
    _report_bad(checked.invalid)
    console.print(f"added {added} number(s) to the do-not-call list")
    if checked.invalid:
        raise typer.Exit(1)


@dnc_app.command("remove")
def dnc_remove(numbers: list[str], region: RegionOption = "US") -> None:
    """Remove numbers from the do-not-call list."""
    removed, checked = control.dnc_remove(open_store(), numbers, region)
    _report_bad(checked.invalid)
    console.print(f"removed {removed} number(s) from the do-not-call list")
    if checked.invalid:
        raise typer.Exit(1)


@dnc_app.command("import")
def dnc_import(file: Path, region: RegionOption = "US", as_json: JsonFlag = False) -> None:
    """Import numbers from a CSV (a phone column) or a text file (one number a line)."""
    result = control.dnc_import(open_store(), file, region, get_settings().max_upload_bytes)
    if as_json:
        print_json(result)
        return
    _report_bad([(item["value"], item["reason"]) for item in result["invalid"]])
    console.print(f"read {result['read']:,}, added {result['added']:,} new, {len(result['invalid']):,} invalid")


@dnc_app.command("list")
def dnc_list(as_json: JsonFlag = False) -> None:
    """Print every number on the do-not-call list."""
    numbers = control.dnc_list(open_store())
    if as_json:
        print_json(numbers)
        return
    for number in numbers:
        console.print(number)


@dnc_app.command("check")
def dnc_check(number: str, region: RegionOption = "US", as_json: JsonFlag = False) -> None:
    """Tell whether a number is on the do-not-call list (exit 0 if it is, 1 if not)."""
    e164, listed = control.dnc_check(open_store(), number, region)
    if as_json:
        print_json({"number": e164, "listed": listed})
    else:
        console.print(f"{e164} is {'on' if listed else 'not on'} the do-not-call list")
    raise typer.Exit(0 if listed else 1)


@report_app.command("export")
def report_export(
    campaign_id: str,
    fmt: Annotated[Format | None, typer.Option("--format", "-f", help="csv, xlsx, parquet or json "
                                               "(default: from the -o extension, else csv).")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Where to write the report.")] = None,
    attempts: Annotated[bool, typer.Option("--attempts", help="One row per attempt instead of per contact.")] = False,
    tz: Annotated[str, typer.Option("--tz", help="Time zone of the report's times (IANA name).")] = "UTC",
) -> None:
    """Export one row per contact: its CSV columns, outcome, attempts, SIP result, disposition, times."""
    if fmt is None:
        suffix = output.suffix.lower().lstrip(".") if output else ""
        fmt = Format(suffix) if suffix in {f.value for f in Format} else Format.CSV
    path = output or reports.default_path(campaign_id, fmt, attempts)
    store = open_store()
    record = store.get_campaign(campaign_id)
    with Progress(TextColumn("[bold]export[/]"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,}"),
                  TimeElapsedColumn(), console=err_console, transient=True,
                  disable=not err_console.is_terminal) as bar:
        task = bar.add_task("export", total=record.counts["accepted"] if not attempts else None)
        rows = reports.export(store, campaign_id, fmt, path, attempts=attempts, timezone=tz,
                              progress=lambda n: bar.advance(task, n))
    err_console.print(f"wrote {rows:,} rows to {path} ({fmt.value}; times in {tz})")


@report_app.command("summary")
def report_summary(
    campaign_id: str,
    as_json: JsonFlag = False,
    chart: Annotated[Path | None, typer.Option("--chart", help="Also draw the outcome mix and calls "
                                               "per hour to this PNG.")] = None,
) -> None:
    """Counts and rates: dialed, connected, answer rate, outcome mix, dispositions, talk time, hours."""
    from .summary import draw_chart, summarise

    data = summarise(open_store(), campaign_id)
    if chart:
        draw_chart(data, chart)
    if as_json:
        print_json(data)
        return
    table = Table(title=f"Campaign {data['campaign_id']} ({data['name']}): {data['state']}", show_header=False)
    table.add_column("")
    table.add_column("", justify="right")
    talk = data["talk_s"]
    for label, value in [
        ("contacts", f"{data['contacts']:,}"),
        ("dialed", f"{data['dialed']:,}"),
        ("connected", f"{data['connected']:,} ({data['connect_rate']:.1%})"),
        ("answered by a person", f"{data['answered']:,} ({data['answer_rate']:.1%})"),
        ("attempts", f"{data['attempts']:,} ({data['attempts_per_contact']:.2f} per dialed contact)"),
        ("talk time", f"mean {talk['mean']:.1f}s, median {talk['median']:.1f}s over {talk['calls']:,} calls"),
    ]:
        table.add_row(label, value)
    for outcome, count in data["outcomes"].items():
        if count:
            table.add_row(f"  {outcome}", f"{count:,}")
    for state, count in data["not_final"].items():
        table.add_row(f"  ({state})", f"{count:,}")
    for disposition, count in data["dispositions"].items():
        table.add_row(f"  disposition: {disposition}", f"{count:,}")
    console.print(table)
    busiest = max(range(24), key=lambda hour: data["calls_by_local_hour"][hour])
    if any(data["calls_by_local_hour"]):
        console.print(f"busiest local hour: {busiest:02d}:00 ({data['calls_by_local_hour'][busiest]:,} attempts)")
    if chart:
        console.print(f"chart written to {chart}")


SANDBOX_DEFAULT_PORT = 7880
SANDBOX_DEFAULT_KEY = "devkey"
SANDBOX_DEFAULT_SECRET = "sandbox-secret-change-me"


@sandbox_app.command("serve")
def sandbox_serve(
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = SANDBOX_DEFAULT_PORT,
    scenario: Annotated[Path | None, typer.Option(help="Scenario YAML (default: the built-in one).")] = None,
) -> None:
    """Serve the LiveKit API subset the dialer uses, with callees simulated from a scenario.

    Uses LIVEKIT_API_KEY / LIVEKIT_API_SECRET when set; simulated conversations are
    written to the Redis at REDIS_URL through the agent's finalise path.
    """
    from .sandbox import ScenarioError, load_scenario, serve
    from .sandbox_sink import make_sink

    settings = get_settings()
    key = settings.livekit_api_key or SANDBOX_DEFAULT_KEY
    secret = settings.livekit_api_secret or SANDBOX_DEFAULT_SECRET
    try:
        load_scenario(scenario)  # a bad scenario stops before the port is bound
    except ScenarioError as exc:
        raise UserError(str(exc)) from None
    err_console.print(f"export LIVEKIT_URL=http://{host}:{port} LIVEKIT_API_KEY={key} "
                      "LIVEKIT_API_SECRET=<the secret you set>" if settings.livekit_api_secret else
                      f"export LIVEKIT_URL=http://{host}:{port} LIVEKIT_API_KEY={key} "
                      f"LIVEKIT_API_SECRET={secret}")
    serve(host, port, scenario, key, secret, conversation_sink=make_sink(open_store()))


@metrics_app.command("serve")
def metrics_serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = metrics.DEFAULT_PORT,
) -> None:
    """Serve /metrics for Prometheus (read from Redis at each scrape)."""
    store = open_store()
    err_console.print(f"metrics on http://{host}:{port}/metrics")
    try:
        metrics.serve(store, host, port)
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    except KeyboardInterrupt:
        pass


# -- webhooks ----------------------------------------------------------------------


def _deliveries_table(title: str, deliveries: list[dict[str, Any]]) -> Table:
    table = Table(title=title)
    for column in ("event id", "type", "url", "tries", "last answer", "created", "last try"):
        table.add_column(column, overflow="fold")
    for item in deliveries:
        answer = item["last_error"] or (str(item["last_status"]) if item["last_status"] else "")
        table.add_row(item["event_id"], item["type"], item["url"], str(item["tries"]), answer,
                      item["created_at"] or "", item["last_try_at"] or "")
    return table


@webhooks_app.command("failed")
def webhooks_failed(campaign_id: str, as_json: JsonFlag = False) -> None:
    """List a campaign's webhook deliveries that failed for good (retried past the horizon)."""
    deliveries = webhook_sender.failed(open_store(), campaign_id)
    if as_json:
        print_json(deliveries)
        return
    if not deliveries:
        console.print(f"no failed webhook deliveries in campaign {campaign_id}")
        return
    console.print(_deliveries_table(f"Failed webhook deliveries of campaign {campaign_id}", deliveries))
    console.print(f"Send them again with: dialer webhooks replay {campaign_id} [--event EVENT_ID]")


@webhooks_app.command("replay")
def webhooks_replay(
    campaign_id: str,
    event: Annotated[str | None, typer.Option("--event", help="Only this event id (webhook-id).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Send failed webhook deliveries again (all of the campaign's, or one event's), with a new retry horizon."""
    queued = webhook_sender.replay(open_store(), campaign_id, event)
    if as_json:
        print_json(queued)
        return
    console.print(f"{len(queued)} webhook deliver{'y' if len(queued) == 1 else 'ies'} queued again")


@app.command("doctor")
def doctor(as_json: JsonFlag = False) -> None:
    """Check Redis, workers, beat, the pacer, LiveKit and the trunk; say what to fix (exit 1 on a failure)."""
    checks = doctor_mod.run_checks(get_settings())
    failed = any(check.verdict is doctor_mod.Verdict.FAIL for check in checks)
    if as_json:
        print_json({"ok": not failed, "checks": [check.to_json_dict() for check in checks]})
    else:
        table = Table(title="dialer doctor")
        for column in ("check", "", "detail", "what to do"):
            table.add_column(column, overflow="fold")
        verdict = doctor_mod.Verdict
        marks = {verdict.OK: "[green]ok[/]", verdict.WARN: "[yellow]warn[/]", verdict.FAIL: "[red]FAIL[/]"}
        for check in checks:
            table.add_row(check.name, marks[check.verdict], check.detail, check.fix)
        console.print(table)
    if failed:
        raise typer.Exit(1)


API_DEFAULT_PORT = 8000
API_SHUTDOWN_GRACE_S = 5


@api_app.command("serve")
def api_serve(
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = API_DEFAULT_PORT,
) -> None:
    """Serve the HTTP API (/v1, docs at /docs) and the dashboard (/) on uvicorn."""
    import uvicorn

    from .api import create_app

    settings = get_settings()
    open_store()  # a clear error now rather than on the first request
    err_console.print(f"dashboard and API at http://{host}:{port}/ (docs at /docs); "
                      "create a key with: dialer api-key create NAME")
    # Open event streams would hold a shutdown forever; they get a few seconds to close.
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info", access_log=False,
                timeout_graceful_shutdown=API_SHUTDOWN_GRACE_S)


@api_key_app.command("create")
def api_key_create(
    name: Annotated[str, typer.Argument(help="Who or what the key is for.")],
    read_only: Annotated[bool, typer.Option("--read-only",
                                            help="May read, never upload, control or change DNC.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Create an API key and print it once: only its hash is stored."""
    from . import auth

    key, secret = auth.create_key(open_store(), name, read_only)
    if as_json:
        print_json({**key.to_json_dict(), "key": secret})
        return
    err_console.print(f"API key {key.id} ({key.name}{', read-only' if read_only else ''}); "
                      "it is shown only now, store it safely:")
    sys.stdout.write(secret + "\n")


@api_key_app.command("list")
def api_key_list(as_json: JsonFlag = False) -> None:
    """List API keys (names and ids; the keys themselves are not stored)."""
    from . import auth

    keys = auth.list_keys(open_store())
    if as_json:
        print_json([key.to_json_dict() for key in keys])
        return
    table = Table()
    for column in ("id", "name", "access", "created"):
        table.add_column(column)
    for key in keys:
        created = time.strftime("%Y-%m-%d %H:%M", time.gmtime(key.created_at))
        table.add_row(key.id, key.name, "read-only" if key.read_only else "full", created + " UTC")
    console.print(table)


@api_key_app.command("revoke")
def api_key_revoke(
    id_or_name: Annotated[str, typer.Argument(help="A key id, or a name (revokes every key of it).")],
) -> None:
    """Revoke API keys; sessions opened with them end too."""
    from . import auth

    for key in auth.revoke_key(open_store(), id_or_name):
        console.print(f"revoked API key {key.id} ({key.name})")


@app.command("demo")
def demo(
    csv_file: Annotated[Path | None, typer.Option("--csv", help="Contacts CSV.")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="Campaign config YAML.")] = None,
) -> None:
    """Run the example campaign end to end on local services started for the purpose."""
    from .demo import run_demo

    run_demo(console, csv_file=csv_file, config_file=config)


def main() -> None:
    """Entry point: user mistakes print a message, never a traceback."""
    try:
        app()
    except UserError as exc:
        err_console.print(f"[red]error:[/] {exc}", highlight=False)
        sys.exit(exc.exit_code)
    except DialerError as exc:
        err_console.print(f"[red]error:[/] {exc}", highlight=False)
        sys.exit(1)
    except redis.exceptions.ConnectionError as exc:
        err_console.print(f"[red]error:[/] lost the connection to Redis: {exc}", highlight=False)
        sys.exit(1)
