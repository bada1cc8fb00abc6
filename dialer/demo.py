"""``dialer demo``: the example campaign end to end on local services started for the purpose.

It uses the Redis at REDIS_URL when one answers (else a throwaway redis-server),
starts the sandbox and a Celery worker with beat, runs the campaign to the end
with live progress, prints the outcomes and stops everything it started.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import auth, control, reports
from .config import load_config
from .ingest import ingest_file
from .services import (
    answers,
    free_port,
    local_redis,
    project_file,
    redis_reachable,
    sandbox_ready,
    stop_process,
    wait_until,
)
from .settings import Settings, get_settings
from .store import Store
from .tables import status_table

DEMO_KEY = "demo-key"
DEMO_SECRET = "demo-secret-not-for-production"
DEMO_TRUNK = "ST_sandbox_demo"
DEMO_TIMEOUT_S = 120.0
POLL_S = 0.5


@contextlib.contextmanager
def _process(args: list[str], env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log_path.open("wb") as log:
        process = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   cwd=project_file())
        try:
            yield process
        finally:
            stop_process(process)


def run_demo(console: Console, csv_file: Path | None = None, config_file: Path | None = None) -> None:
    csv_path = csv_file or project_file("campaigns", "example.csv")
    campaign_config = load_config(config_file or project_file("campaigns", "demo.yaml"))
    with contextlib.ExitStack() as stack:
        redis_url = get_settings().redis_url
        if redis_reachable(redis_url):
            console.print(f"using Redis at {redis_url}")
        else:
            redis_url = stack.enter_context(local_redis())
            console.print(f"started redis-server at {redis_url}")
        port = free_port()
        settings = Settings(redis_url=redis_url, livekit_url=f"http://127.0.0.1:{port}",
                            livekit_api_key=DEMO_KEY, livekit_api_secret=DEMO_SECRET,
                            sip_outbound_trunk_id=DEMO_TRUNK, dialer_worker_concurrency=50)
        env = {**os.environ, "REDIS_URL": redis_url, "LIVEKIT_URL": settings.livekit_url or "",
               "LIVEKIT_API_KEY": DEMO_KEY, "LIVEKIT_API_SECRET": DEMO_SECRET,
               "SIP_OUTBOUND_TRUNK_ID": DEMO_TRUNK, "DIALER_WORKER_CONCURRENCY": "50"}
        logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dialer-demo-")))
        stack.enter_context(_process(
            [sys.executable, "-m", "dialer", "sandbox", "serve", "--port", str(port)], env,
            logs / "sandbox.log"))
        wait_until(lambda: sandbox_ready(settings.livekit_url or ""), 20, "the sandbox")
        console.print(f"started the sandbox at {settings.livekit_url}")
        stack.enter_context(_process(
            [sys.executable, "-m", "celery", "-A", "dialer", "worker", "-B", "--loglevel", "INFO",
             "--schedule", str(logs / "beat-schedule"), "--without-mingle", "--without-gossip"],
            env, logs / "worker.log"))
        console.print("started a Celery worker with beat")

        store = Store.from_url(redis_url)
        api_url = _start_api(stack, env, logs, store, console)
        summary = ingest_file(store, csv_path, campaign_config, max_bytes=settings.max_upload_bytes)
        console.print(f"created campaign {summary.campaign_id} from {csv_path.name}: "
                      f"{summary.accepted} accepted, {summary.rejected} rejected, "
                      f"{summary.duplicates} duplicates, {summary.suppressed} suppressed")
        console.print(f"watch it live at {api_url}/campaigns/{summary.campaign_id}")
        control.start(store, settings, summary.campaign_id)
        data = _watch(console, store, summary.campaign_id)
        console.print(status_table(data))
        console.print(_contact_table(store, summary.campaign_id))
        if data["state"] != "completed":
            worker_log = (logs / "worker.log").read_text(errors="replace")[-3000:]
            console.print(f"[red]the demo campaign did not complete ({data['state']})[/]\n{worker_log}")
            raise SystemExit(1)
        report = project_file("reports", f"demo-{summary.campaign_id}.csv")
        report.parent.mkdir(exist_ok=True)
        rows = reports.export(store, summary.campaign_id, reports.Format.CSV, report)
        console.print(f"wrote the outcome report ({rows} contacts) to {report}")


def _start_api(stack: contextlib.ExitStack, env: dict[str, str], logs: Path, store: Store,
               console: Console) -> str:
    """The HTTP API and dashboard, with a key made for this run and revoked when it ends."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    stack.enter_context(_process(
        [sys.executable, "-m", "dialer", "api", "serve", "--port", str(port)], env, logs / "api.log"))
    wait_until(lambda: answers(f"{url}/healthz"), 30, "the HTTP API")
    key, secret = auth.create_key(store, "make demo")
    stack.callback(auth.revoke_key, store, key.id)
    console.print(f"started the dashboard at {url}/ (API docs at {url}/docs); "
                  f"sign in with this one-time key, valid while the demo runs:\n  {secret}")
    return url


def _watch(console: Console, store: Store, cid: str) -> dict[str, Any]:
    with Progress(TextColumn("[bold]{task.description}[/]"), BarColumn(),
                  TextColumn("{task.completed:,}/{task.total:,} final"), TimeElapsedColumn(),
                  console=console) as bar:
        task = bar.add_task("", total=0)

        def update(data: dict[str, Any]) -> None:
            bar.update(task, total=data["contacts"], completed=data["final"], description=data["state"])

        return control.wait(store, cid, DEMO_TIMEOUT_S, update, poll_s=POLL_S)


def _contact_table(store: Store, cid: str) -> Table:
    table = Table(title="Outcome per contact")
    for column in ("row", "number", "name", "outcome", "attempts", "last result"):
        table.add_column(column)
    statuses = dict(store.iter_statuses(cid))
    ids = sorted(statuses)
    for contact_id, contact in zip(ids, store.contacts(cid, ids), strict=True):
        status = statuses[contact_id]
        variables = (contact or {}).get("variables", {})
        table.add_row(str(contact_id), (contact or {}).get("phone_e164", ""),
                      f"{variables.get('first_name', '')} {variables.get('last_name', '')}".strip(),
                      status.get("outcome", status.get("state", "")), str(status.get("attempts", 0)),
                      str(status.get("last_reason", "")))
    return table
