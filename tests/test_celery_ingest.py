"""The ingest also runs as a Celery task on a real worker."""

from __future__ import annotations

import shutil
from pathlib import Path

from celery import Celery
from conftest import ROOT, wait_for
from workers import running_worker

from dialer.config import load_config
from dialer.store import Store


def test_ingest_task_creates_the_campaign_on_a_real_worker(redis_url: str, tmp_path: Path) -> None:
    upload = tmp_path / "upload.csv"
    shutil.copy(ROOT / "campaigns" / "example.csv", upload)
    config = load_config(ROOT / "campaigns" / "example.yaml").model_dump(mode="json")
    producer = Celery(broker=redis_url)
    store = Store.from_url(redis_url)
    with running_worker(redis_url, "--concurrency", "2"):
        producer.send_task("dialer.tasks.ingest_upload", args=[str(upload), config], queue="ingest")
        campaigns = wait_for(store.list_campaigns, timeout_s=30, what="the ingest task")
    assert [(c.name, c.counts["accepted"]) for c in campaigns] == [("Spring reminders", 18)]
