"""Prometheus metrics, read from Redis at scrape time.

Every number lives in Redis already (the ledger's counters, the leases, the heartbeats), so
one collector in any process sees the whole deployment, however many workers there are,
and nothing is lost when a worker restarts. `dialer metrics serve` exposes it; an HTTP app
can mount ``make_registry`` the same way.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from . import webhook_sender
from .errors import NotFoundError
from .models import CampaignState
from .pacer import pace_factor
from .store import INGEST_COUNTERS, Store

DEFAULT_PORT = 9108
#: Campaigns reported per scrape (the most recent ones); older ended campaigns drop out.
MAX_CAMPAIGNS = 200


class DialerCollector(Collector):
    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        store = self.store
        contacts = GaugeMetricFamily("dialer_campaign_contacts", "Contacts per campaign by state",
                                     labels=["campaign", "state"])
        outcomes = CounterMetricFamily("dialer_campaign_outcomes", "Contacts per campaign by final outcome",
                                       labels=["campaign", "outcome"])
        attempts = CounterMetricFamily("dialer_attempts", "Ended attempts by result and SIP code",
                                       labels=["campaign", "result", "sip_code"])
        in_flight = GaugeMetricFamily("dialer_calls_in_flight", "Attempts queued, dialing or in a call",
                                      labels=["campaign"])
        lag = GaugeMetricFamily("dialer_pacer_lag_seconds",
                                "How long the oldest due contact of a running campaign has waited",
                                labels=["campaign"])
        ingest = GaugeMetricFamily("dialer_ingest_rows", "Rows of a campaign's file by what became of them",
                                   labels=["campaign", "kind"])
        hooks = CounterMetricFamily("dialer_webhook_deliveries",
                                    "Webhook deliveries per campaign by result (failed: past the retry horizon; "
                                    "replayed: sent again by hand)", labels=["campaign", "result"])
        hooks_pending = GaugeMetricFamily("dialer_webhook_deliveries_pending",
                                          "Webhook deliveries waiting for a try or in one", labels=["campaign"])
        trunks: set[str] = set()
        now = store.server_time()
        for cid in store.recent_campaign_ids(MAX_CAMPAIGNS):
            try:
                record = store.get_campaign(cid)
            except NotFoundError:
                continue
            progress = store.progress(cid)
            flying = store.in_flight(cid)
            final = progress.get("final", 0)
            accepted = record.counts["accepted"]
            for state, value in (("final", final), ("in_flight", flying),
                                 ("pending", max(0, accepted - final - flying))):
                contacts.add_metric([cid, state], value)
            for key, value in progress.items():
                if key.startswith("outcome:"):
                    outcomes.add_metric([cid, key.split(":", 1)[1]], value)
                elif key.startswith("attempts:"):
                    _, result, code = key.split(":", 2)
                    attempts.add_metric([cid, result, code], value)
            in_flight.add_metric([cid], flying)
            if record.config.webhooks:
                counted = webhook_sender.counts(store, cid)
                for result in ("created", "delivered", "failed_total", "replayed"):
                    hooks.add_metric([cid, result.removesuffix("_total")], counted[result])
                hooks_pending.add_metric([cid], counted["pending"])
            for kind in INGEST_COUNTERS:
                ingest.add_metric([cid, kind], record.counts[kind])
            if record.state is CampaignState.RUNNING:
                trunks.add(store.trunk_of(cid))
                oldest = store.next_due_at(cid)
                lag.add_metric([cid], max(0.0, now - oldest) if oldest is not None else 0.0)
        yield from (contacts, outcomes, attempts, in_flight, lag, ingest, hooks, hooks_pending)
        yield GaugeMetricFamily("dialer_webhook_outbox_events", "Webhook events not yet fanned out to deliveries",
                                value=store.webhook_outbox_size())
        yield GaugeMetricFamily("dialer_webhook_deliveries_in_flight", "Webhook deliveries being tried right now",
                                value=store.webhooks_in_flight())

        trunk_calls = GaugeMetricFamily("dialer_trunk_calls_in_flight", "Attempts in flight on a trunk",
                                        labels=["trunk"])
        trunk_pace = GaugeMetricFamily("dialer_trunk_pace_factor",
                                       "Share of the configured rates a trunk may use (below 1 after capacity "
                                       "refusals)", labels=["trunk"])
        for trunk in sorted(trunks):
            trunk_calls.add_metric([trunk], store.trunk_in_flight(trunk))
            trunk_pace.add_metric([trunk], pace_factor(store, trunk))
        yield from (trunk_calls, trunk_pace)

        heartbeats = GaugeMetricFamily("dialer_heartbeat_age_seconds",
                                       "Seconds since a worker, beat, pacer or reconciler run was last seen",
                                       labels=["role", "process"])
        for role in ("worker", "beat", "pacer", "reconciler"):
            for name, age in store.heartbeat_ages(role).items():
                heartbeats.add_metric([role, name], age)
        yield heartbeats

        buckets, total = store.histogram("dial_latency_s")
        ordered = sorted(buckets.items(), key=lambda item: math.inf if item[0] == "inf" else float(item[0]))
        yield HistogramMetricFamily(
            "dialer_dial_latency_seconds", "Time from a dial task's claim to its first INVITE",
            buckets=[("+Inf" if bound == "inf" else bound, count) for bound, count in ordered] or [("+Inf", 0)],
            sum_value=total,
        )


def make_registry(store: Store) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DialerCollector(store))
    return registry


def serve(store: Store, host: str, port: int) -> None:
    """Serve /metrics until interrupted."""
    server, thread = start_http_server(port, addr=host, registry=make_registry(store))
    try:
        thread.join()
    finally:
        server.shutdown()
