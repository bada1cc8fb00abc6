"""``dialer demo``: the example campaign on local services started for the purpose."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .config import load_config
from .ingest import ingest_file
from .services import local_redis, project_file, redis_reachable
from .settings import Settings, get_settings
from .store import Store


def run_demo(console: Console, csv_file: Path | None = None, config_file: Path | None = None) -> None:
    settings = get_settings()
    csv_path = csv_file or project_file("campaigns", "example.csv")
    config_path = config_file or project_file("campaigns", "demo.yaml")
    campaign_config = load_config(config_path)
    with contextlib.ExitStack() as stack:
        redis_url = settings.redis_url
        if redis_reachable(redis_url):
            console.print(f"using Redis at {redis_url}")
        else:
            redis_url = stack.enter_context(local_redis())
            console.print(f"started redis-server at {redis_url}")
        os.environ["REDIS_URL"] = redis_url
        settings = Settings(redis_url=redis_url)
        store = Store.from_url(redis_url)
        summary = ingest_file(
            store, csv_path, campaign_config, max_bytes=settings.max_upload_bytes
        )
        table = Table(title=f"Campaign {summary.campaign_id} ({summary.name}) from {csv_path.name}")
        table.add_column("bucket")
        table.add_column("rows", justify="right")
        for bucket, count in summary.counts().items():
            table.add_row(bucket, str(count))
        for reason, count in sorted(summary.reject_reasons.items()):
            table.add_row(f"  rejected: {reason}", str(count))
        console.print(table)
