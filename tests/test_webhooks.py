"""Webhooks: config checks, one event per fact, signed deliveries retried with backoff to a real
local HTTP receiver, failed deliveries listed and replayed, and a silent receiver that cannot
slow the campaign down."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from api import api_server, new_key
from conftest import run_cli, wait_for
from invariants import assert_dial_invariants
from pipeline import create_campaign, run_to_end, sandbox, settings_for, workers
from prometheus_client import generate_latest

from dialer import webhook_sender
from dialer.config import parse_config
from dialer.errors import ConfigError
from dialer.ingest import ingest_file
from dialer.metrics import make_registry
from dialer.models import AttemptState, CampaignState, Outcome
from dialer.settings import Settings
from dialer.store import Store
from dialer.webhooks import check_endpoints, signature

SECRET_ENV = "TEST_WEBHOOK_SECRET"
SECRET = "whsec_" + base64.b64encode(b"a test key of thirty-two bytes!!").decode()
NOW = 1_800_000_000.0


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float
    status: int


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1 that answers 500 to its first ``fail_first`` requests, then 200;
    with ``silent`` it accepts every request and never answers."""

    fail_first: int = 0
    silent: bool = False
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)
    url: str = ""

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("content-length") or 0))
        with self.lock:
            status = 500 if len(self.requests) < self.fail_first else 200
            self.requests.append(Received({k.lower(): v for k, v in handler.headers.items()}, body,
                                          time.monotonic(), status))
        if self.silent:
            self.stopping.wait(60)
            return
        answer = b"" if status == 200 else b"try later " * 1_000
        handler.send_response(status)
        handler.send_header("content-length", str(len(answer)))
        handler.end_headers()
        handler.wfile.write(answer)

    def delivered(self) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.status == 200 and not self.silent]

    def event_ids(self, kind: str) -> set[str]:
        return {r.headers["webhook-id"] for r in self.delivered() if json.loads(r.body)["type"] == kind}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    recv = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            recv.handle(self)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    recv.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield recv
    recv.stopping.set()
    server.shutdown()
    server.server_close()


def verifies(request: Received, secret: str = SECRET) -> bool:
    """What a receiver does (README, "Webhooks"): HMAC over id.timestamp.body with the decoded key."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{request.headers['webhook-id']}.{request.headers['webhook-timestamp']}.".encode() + request.body
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(hmac.compare_digest(expected, sig) for sig in request.headers["webhook-signature"].split())


def hooks(url: str, *events: str) -> dict[str, Any]:
    return {"webhooks": [{"url": url, "events": list(events) or ["call.completed", "contact.finalized",
                                                                 "campaign.completed", "contact.opted_out"],
                          "secret_env": SECRET_ENV}]}


def settings(**overrides: Any) -> Settings:
    base: dict[str, Any] = {"dialer_webhook_allow_private": True, "dialer_webhook_backoff_s": 0.05,
                            "dialer_webhook_timeout_s": 2.0}
    return Settings(**{**base, **overrides})


# -- the config ----------------------------------------------------------------------------


def test_a_webhook_url_must_be_http_or_https() -> None:
    with pytest.raises(ConfigError, match=r"webhooks\.0\.url: 'ftp://example\.com/x' is not an http"):
        parse_config({"name": "x", **hooks("ftp://example.com/x")})


def test_a_webhook_needs_known_events() -> None:
    with pytest.raises(ConfigError, match=r"webhooks\.0\.events\.0"):
        parse_config({"name": "x", **hooks("https://example.com/x", "call.started")})
    with pytest.raises(ConfigError, match=r"webhooks\.0\.events"):
        parse_config({"name": "x", "webhooks": [{"url": "https://example.com/x", "events": [],
                                                  "secret_env": SECRET_ENV}]})


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/x", "http://localhost/x", "https://10.1.2.3/x",
                                 "http://169.254.169.254/latest", "http://[::1]/x", "http://192.168.0.10/x"])
def test_a_private_url_is_refused_unless_allowed(url: str) -> None:
    endpoints = parse_config({"name": "x", **hooks(url)}).webhooks
    with pytest.raises(ConfigError, match="DIALER_WEBHOOK_ALLOW_PRIVATE=true"):
        check_endpoints(endpoints, False, lambda name: SECRET)
    check_endpoints(endpoints, True, lambda name: SECRET)


def test_a_missing_secret_says_which_variable_to_set() -> None:
    endpoints = parse_config({"name": "x", **hooks("http://127.0.0.1/x")}).webhooks
    with pytest.raises(ConfigError, match=f"environment variable {SECRET_ENV} .* is not set"):
        check_endpoints(endpoints, True, lambda name: None)


def test_the_cli_refuses_a_private_url_before_storing_anything(redis_url: str, tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({"name": "x", **hooks("http://127.0.0.1:9/x")}))
    contacts = tmp_path / "c.csv"
    contacts.write_text("phone\n+12025550100\n")
    refused = run_cli(redis_url, "campaign", "create", str(contacts), "-c", str(config), **{SECRET_ENV: SECRET})
    assert refused.returncode == 2
    assert "DIALER_WEBHOOK_ALLOW_PRIVATE" in refused.stderr and "Traceback" not in refused.stderr
    allowed = run_cli(redis_url, "campaign", "create", str(contacts), "-c", str(config), "--json",
                      **{SECRET_ENV: SECRET, "DIALER_WEBHOOK_ALLOW_PRIVATE": "true"})
    assert allowed.returncode == 0, allowed.stderr
    shown = run_cli(redis_url, "campaign", "show", json.loads(allowed.stdout)["campaign_id"])
    assert "http://127.0.0.1:9/x" in shown.stdout and f"${SECRET_ENV}" in shown.stdout
    assert SECRET not in shown.stdout


def test_the_signature_matches_the_standard_webhooks_test_vector() -> None:
    # The example of the Standard Webhooks reference libraries' tests.
    assert signature("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
                     b'{"test": 2432232314}') == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


# -- emission and delivery, without Celery -------------------------------------------------


def make_campaign(store: Store, tmp_path: Path, url: str, count: int = 2, *events: str) -> str:
    path = tmp_path / f"c{len(list(tmp_path.iterdir()))}.csv"
    path.write_text("phone\n" + "".join(f"202-555-{100 + i:04d}\n" for i in range(count)))
    summary = ingest_file(store, path, parse_config({"name": "t", **hooks(url, *events)}), max_bytes=2**20)
    cid = summary.campaign_id
    store.set_trunk(cid, "ST_test")
    store.set_state(cid, [CampaignState.DRAFT], CampaignState.RUNNING)
    return cid


def end_call(store: Store, cid: str, contact_id: int, outcome: Outcome = Outcome.ANSWERED) -> str:
    member = store.queue_attempts(cid, "ST_test", [contact_id], now=NOW, lease_s=60, max_concurrent=10,
                                  trunk_max_concurrent=0)[0]
    store.transition(cid, member, [AttemptState.QUEUED], AttemptState.DIALING, 60, claim="t")
    for _ in range(2):  # a finalise run twice (a retry through an outage) ends the attempt once
        store.finalise(cid, member, [AttemptState.DIALING], now=NOW, verdict="final", outcome=outcome, counts=True,
                       result={"outcome": outcome.value, "disposition": "completed"})
    return member


def test_each_fact_writes_one_event(store: Store, tmp_path: Path) -> None:
    cid = make_campaign(store, tmp_path, "http://127.0.0.1:9/x", 2)
    end_call(store, cid, 2)
    end_call(store, cid, 3, Outcome.OPTED_OUT)
    events = [json.loads(raw) for raw in store.webhook_events(100)]
    assert sorted(e["type"] for e in events) == ["call.completed", "call.completed", "campaign.completed",
                                                 "contact.finalized", "contact.finalized", "contact.opted_out"]
    assert store.campaign_state(cid) == "completed"


def test_an_event_names_the_number_the_call_went_to(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "two.csv"
    path.write_text("phone,mobile\n202-555-0100,202-555-0120\n")
    config = parse_config({"name": "t", "alternate_numbers": "next_on_failure", **hooks("http://127.0.0.1:9/x")})
    cid = ingest_file(store, path, config, max_bytes=2**20).campaign_id
    store.set_trunk(cid, "ST_test")
    store.set_state(cid, [CampaignState.DRAFT], CampaignState.RUNNING)
    member = store.queue_attempts(cid, "ST_test", [2], now=NOW, lease_s=60, max_concurrent=10,
                                  trunk_max_concurrent=0)[0]
    store.transition(cid, member, [AttemptState.QUEUED], AttemptState.DIALING, 60, claim="t")
    store.finalise(cid, member, [AttemptState.DIALING], now=NOW, verdict="final", outcome=Outcome.OPTED_OUT,
                   counts=True, fields={"number": "+12025550120", "number_index": 1}, numbers=2,
                   result={"outcome": "opted_out"})
    events = {event.type.value: event for event in map(webhook_sender.Event.parse, store.webhook_events(100))}
    record = store.get_campaign(cid)
    for kind in ("call.completed", "contact.opted_out"):
        data = webhook_sender.event_data(store, record, events[kind])
        assert (data["phone_e164"], data["phone_used"]) == ("+12025550100", "+12025550120")


def test_contacts_a_cancel_finalises_get_their_event(store: Store, tmp_path: Path) -> None:
    cid = make_campaign(store, tmp_path, "http://127.0.0.1:9/x", 3, "contact.finalized")
    end_call(store, cid, 2)
    store.set_state(cid, [CampaignState.RUNNING], CampaignState.CANCELLED)
    assert store.cancel_waiting(cid, NOW, batch=1) == 2
    events = [json.loads(raw) for raw in store.webhook_events(100)]
    assert [(e["contact"], e["outcome"]) for e in events] == [(2, "answered"), (3, "cancelled"), (4, "cancelled")]
    assert len({webhook_sender.Event.parse(raw).id for raw in store.webhook_events(100)}) == 3


def test_a_campaign_without_webhooks_writes_no_events(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("phone\n202-555-0100\n")
    cid = ingest_file(store, path, parse_config({"name": "t"}), max_bytes=2**20).campaign_id
    store.set_trunk(cid, "ST_test")
    store.set_state(cid, [CampaignState.DRAFT], CampaignState.RUNNING)
    end_call(store, cid, 2)
    assert store.webhook_outbox_size() == 0


def run_dispatcher(store: Store, conf: Settings, until: float = 10.0) -> list[str]:
    """Dispatch and deliver inline (what the beat task and the delivery tasks do) until nothing is
    pending; returns each try's result."""
    results: list[str] = []
    deadline = time.monotonic() + until
    with webhook_sender.http_client(conf) as client:
        while time.monotonic() < deadline:
            claimed: list[tuple[str, str]] = []
            webhook_sender.dispatch(store, conf, lambda cid, did, into=claimed: into.append((cid, did)), "test")
            for cid, did in claimed:
                results.append(webhook_sender.deliver(store, conf, client, cid, did))
            if not claimed and store.webhook_outbox_size() == 0 and not store.redis.zcard("dialer:webhooks:due"):
                break
            time.sleep(0.01)
    return results


def test_failed_tries_are_retried_with_backoff_under_one_id(
    store: Store, tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    receiver.fail_first = 3
    cid = make_campaign(store, tmp_path, receiver.url, 1, "call.completed")
    end_call(store, cid, 2)
    results = run_dispatcher(store, settings(dialer_webhook_backoff_s=0.2))
    assert results == ["retry", "retry", "retry", "delivered"]
    ids = {r.headers["webhook-id"] for r in receiver.requests}
    assert len(ids) == 1 and ids.pop().startswith("msg_")
    assert all(verifies(r) for r in receiver.requests)
    assert len({r.body for r in receiver.requests}) == 1  # every try sends the same bytes
    gaps = [b.at - a.at for a, b in zip(receiver.requests, receiver.requests[1:], strict=False)]
    assert [round(g, 1) >= want for g, want in zip(gaps, (0.2, 0.4, 0.8), strict=True)] == [True] * 3
    body = json.loads(receiver.requests[-1].body)
    assert body["type"] == "call.completed" and body["data"]["call_id"] == f"{cid}:2:1"
    assert body["data"]["outcome"] == "answered" and body["data"]["phone_e164"] == "+12025550100"
    assert webhook_sender.counts(store, cid) == {"created": 1, "delivered": 1, "failed": 0, "failed_total": 0,
                                                 "replayed": 0, "pending": 0}
    scraped = generate_latest(make_registry(store)).decode()
    assert f'dialer_webhook_deliveries_total{{campaign="{cid}",result="delivered"}} 1.0' in scraped
    assert f'dialer_webhook_deliveries_pending{{campaign="{cid}"}} 0.0' in scraped


def test_one_delivery_task_goes_on_with_the_next_due_ones(
    store: Store, tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With one slot in flight, deliveries still flow at the receiver's pace, not one per dispatcher tick.
    monkeypatch.setenv(SECRET_ENV, SECRET)
    cid = make_campaign(store, tmp_path, receiver.url, 10, "call.completed")
    for contact_id in range(2, 12):
        end_call(store, cid, contact_id)
    conf = settings(dialer_webhook_max_in_flight=1)
    claimed: list[tuple[str, str]] = []
    webhook_sender.dispatch(store, conf, lambda c, d: claimed.append((c, d)), "test")
    assert len(claimed) == 1
    with webhook_sender.http_client(conf) as client:
        assert webhook_sender.deliver_and_continue(store, conf, client, *claimed[0]) == 10
    assert len(receiver.event_ids("call.completed")) == 10
    assert store.webhooks_in_flight() == 0 and webhook_sender.counts(store, cid)["pending"] == 0


def test_a_delivery_whose_record_is_gone_is_never_claimed_again(
    store: Store, tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    cid = make_campaign(store, tmp_path, receiver.url, 1, "call.completed")
    end_call(store, cid, 2)
    claimed: list[tuple[str, str]] = []
    webhook_sender.dispatch(store, settings(), lambda c, d: claimed.append((c, d)), "test")
    store.discard_campaign(cid)  # e.g. removed while its delivery task waited in the queue
    with webhook_sender.http_client(settings()) as client:
        assert webhook_sender.deliver(store, settings(), client, *claimed[0]) == "skipped:delivered"
    assert store.webhooks_in_flight() == 0 and not store.redis.zcard("dialer:webhooks:due")
    assert receiver.requests == []


def test_a_delivery_to_a_private_address_is_refused_at_send_time(
    store: Store, tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    cid = make_campaign(store, tmp_path, receiver.url, 1, "call.completed")
    end_call(store, cid, 2)
    results = run_dispatcher(store, settings(dialer_webhook_allow_private=False, dialer_webhook_horizon_s=0.01))
    assert results == ["failed"] and receiver.requests == []
    assert "DIALER_WEBHOOK_ALLOW_PRIVATE" in webhook_sender.failed(store, cid)[0]["last_error"]


def test_failed_deliveries_are_listed_and_replayed_from_the_cli(
    store: Store, redis_url: str, tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    receiver.fail_first = 1_000
    cid = make_campaign(store, tmp_path, receiver.url, 1, "call.completed", "contact.finalized")
    end_call(store, cid, 2)
    results = run_dispatcher(store, settings(dialer_webhook_horizon_s=0.5))
    assert results.count("failed") == 2 and "delivered" not in results

    listed = run_cli(redis_url, "webhooks", "failed", cid, "--json")
    assert listed.returncode == 0, listed.stderr
    failed = json.loads(listed.stdout)
    assert sorted(d["type"] for d in failed) == ["call.completed", "contact.finalized"]
    assert all(d["last_status"] == 500 and d["tries"] >= 3 for d in failed)
    assert failed[0]["last_error"].startswith("HTTP 500: try later") and len(failed[0]["last_error"]) < 220
    table = run_cli(redis_url, "webhooks", "failed", cid)
    assert failed[0]["event_id"] in table.stdout

    receiver.fail_first = 0
    receiver.requests.clear()
    one = failed[0]["event_id"]
    replayed = run_cli(redis_url, "webhooks", "replay", cid, "--event", one, "--json")
    assert replayed.returncode == 0, replayed.stderr
    assert [d["event_id"] for d in json.loads(replayed.stdout)] == [one]
    assert run_dispatcher(store, settings()) == ["delivered"]
    assert [r.headers["webhook-id"] for r in receiver.requests] == [one]
    assert [d["event_id"] for d in webhook_sender.failed(store, cid)] == [failed[1]["event_id"]]

    status = json.loads(run_cli(redis_url, "campaign", "status", cid, "--json").stdout)
    assert status["webhooks"]["failed"] == 1 and status["webhooks"]["delivered"] == 1
    table = " ".join(run_cli(redis_url, "campaign", "status", cid).stdout.split())  # the caption wraps
    assert f"1 failed (see `dialer webhooks failed {cid}`)" in table

    unknown = run_cli(redis_url, "webhooks", "replay", cid, "--event", "msg_nope")
    assert unknown.returncode == 3 and "no failed webhook delivery" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    missing = run_cli(redis_url, "webhooks", "failed", "nosuchcampaign")
    assert missing.returncode == 3 and "Traceback" not in missing.stderr


# -- end to end: real Celery workers and the sandbox ----------------------------------------

#: answer; busy, busy, answer; opt out; decline (the sandbox's built-in scenario)
NUMBERS = ["+12025550100", "+12025550103", "+12025550113", "+12025550108"]


def worker_env(**extra: str) -> dict[str, str]:
    return {SECRET_ENV: SECRET, "DIALER_WEBHOOK_ALLOW_PRIVATE": "true", "DIALER_WEBHOOK_BACKOFF_S": "0.2",
            **extra}


def test_a_campaign_sends_one_signed_event_per_fact_despite_failures(
    redis_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    receiver.fail_first = 4
    store = Store.from_url(redis_url)
    with sandbox(redis_url, tmp_path) as box, workers(redis_url, box, tmp_path, **worker_env()):
        cid = create_campaign(store, tmp_path, NUMBERS, max_attempts=3, **hooks(receiver.url))
        status = run_to_end(store, settings_for(redis_url, box), cid, timeout_s=90)
        wait_for(lambda: receiver.event_ids("campaign.completed") and webhook_sender.counts(store, cid)["pending"] == 0,
                 timeout_s=30, interval_s=0.1, what="every webhook delivered")
        calls = box.calls()
    assert status["state"] == "completed"
    assert_dial_invariants(calls, store, cid)
    dialed = [a for _, a in store.redis.hscan_iter(f"dialer:campaign:{cid}:attempts")
              if json.loads(a).get("invite_sent") is not False]
    assert len(receiver.event_ids("call.completed")) == len(dialed) == 6
    assert len(receiver.event_ids("contact.finalized")) == len(NUMBERS)
    assert len(receiver.event_ids("contact.opted_out")) == 1
    assert len(receiver.event_ids("campaign.completed")) == 1
    # One logical event per fact: every id was delivered exactly once, the failed tries' ids again later.
    delivered = [r.headers["webhook-id"] for r in receiver.delivered()]
    assert len(delivered) == len(set(delivered)) == 6 + 4 + 1 + 1
    assert {r.headers["webhook-id"] for r in receiver.requests[:4]} <= set(delivered)
    assert all(verifies(r) for r in receiver.requests)
    finalized = {json.loads(r.body)["data"]["phone_e164"]: json.loads(r.body)["data"]["outcome"]
                 for r in receiver.delivered() if json.loads(r.body)["type"] == "contact.finalized"}
    assert finalized == {"+12025550100": "answered", "+12025550103": "answered", "+12025550113": "opted_out",
                         "+12025550108": "declined"}


def test_a_receiver_that_never_answers_does_not_delay_the_campaign(
    redis_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    receiver.silent = True
    store = Store.from_url(redis_url)
    def numbers(first: int, count: int = 20) -> list[str]:
        return [f"+1202555{n:04d}" for n in range(first, first + count)]  # the scenario's default: answer

    env = worker_env(DIALER_WEBHOOK_TIMEOUT_S="5")
    with sandbox(redis_url, tmp_path) as box, workers(redis_url, box, tmp_path, **env):
        conf = settings_for(redis_url, box)
        run_to_end(store, conf, create_campaign(store, tmp_path, numbers(190, 2)), timeout_s=60)  # warm up
        started = time.monotonic()
        quiet = create_campaign(store, tmp_path, numbers(150), calls_per_second=10)
        run_to_end(store, conf, quiet, timeout_s=90)
        baseline_s = time.monotonic() - started
        started = time.monotonic()
        hooked = create_campaign(store, tmp_path, numbers(170), calls_per_second=10, **hooks(receiver.url))
        status = run_to_end(store, conf, hooked, timeout_s=90)
        hooked_s = time.monotonic() - started
        calls = box.calls()
        stuck = len(receiver.requests)
    assert status["state"] == "completed"
    assert stuck > 0  # deliveries were hanging on the receiver while the campaign ran
    print(f"campaign of 20 calls: {baseline_s:.1f} s without webhooks, {hooked_s:.1f} s with a silent receiver")
    assert hooked_s < baseline_s * 1.5 + 2.0, (baseline_s, hooked_s)
    assert_dial_invariants(calls, store, [quiet, hooked])


# -- the HTTP API -------------------------------------------------------------------------------


def test_the_api_refuses_a_private_url_and_lists_and_replays_failed_deliveries(
    store: Store, redis_url: str, tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    receiver.fail_first = 1_000
    cid = make_campaign(store, tmp_path, receiver.url, 1, "contact.finalized")
    end_call(store, cid, 2)
    assert run_dispatcher(store, settings(dialer_webhook_horizon_s=0.1)).count("failed") == 1
    with api_server(redis_url, tmp_path, **{SECRET_ENV: SECRET}) as api, api.client(new_key(redis_url)) as client:
        refused = client.post("/v1/campaigns", files={"file": ("c.csv", b"phone\n+12025550100\n", "text/csv")},
                              data={"config": json.dumps({"name": "x", **hooks("http://127.0.0.1:9/x")})})
        listed = client.get(f"/v1/campaigns/{cid}/webhooks/failed")
        replayed = client.post(f"/v1/campaigns/{cid}/webhooks/replay")
        unknown = client.get("/v1/campaigns/nosuch/webhooks/failed")
    assert refused.status_code == 422 and "DIALER_WEBHOOK_ALLOW_PRIVATE" in refused.json()["error"]["message"]
    assert listed.status_code == 200 and [d["type"] for d in listed.json()] == ["contact.finalized"]
    assert replayed.status_code == 200 and replayed.json()[0]["state"] == "pending"
    assert unknown.status_code == 404
    assert webhook_sender.failed(store, cid) == []
