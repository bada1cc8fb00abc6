"""The HTTP API against a real uvicorn server, a real Redis and (end to end) a real worker and the sandbox."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml
from api import ApiServer, api_server, new_key
from conftest import ROOT, RedisServer, run_cli, wait_for
from pipeline import FAST, sandbox, workers

from dialer import auth
from dialer.config import load_config
from dialer.ingest import ingest_file
from dialer.store import Store

EXAMPLE_CSV = ROOT / "campaigns" / "example.csv"
EXAMPLE_YAML = ROOT / "campaigns" / "example.yaml"
DEMO_YAML = ROOT / "campaigns" / "demo.yaml"
MAX_UPLOAD_MB = "1"


@pytest.fixture(scope="module")
def server(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """One API (no worker, no LiveKit) for the tests of what the API itself refuses."""
    with api_server(redis_server.url, tmp_path_factory.mktemp("api"), DIALER_MAX_UPLOAD_MB=MAX_UPLOAD_MB) as api:
        yield api


@pytest.fixture
def key(redis_url: str) -> str:
    return new_key(redis_url)


def upload(client: httpx.Client, content: bytes, config: str, filename: str = "contacts.csv",
           **fields: str) -> httpx.Response:
    return client.post("/v1/campaigns", files={"file": (filename, content, "text/csv")},
                       data={"config": config, **fields})


def nothing_stored(redis_url: str, api: ApiServer) -> bool:
    client = redis.Redis.from_url(redis_url)
    leftover = [k for k in client.keys("*") if k != auth.AuthKeys.api_keys.encode()]
    files = list(api.upload_dir.rglob("*")) if api.upload_dir.exists() else []
    return not leftover and not files


def error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    return dict(body["error"])


def test_every_v1_route_wants_a_key(server: ApiServer, redis_url: str) -> None:
    with server.client() as anonymous:
        assert error(anonymous.get("/v1/campaigns"), 401)["code"] == "unauthorized"
    with server.client("dk_nothere_secret") as wrong:
        assert error(wrong.get("/v1/dnc"), 401)["message"] == "invalid API key"
    with server.client(new_key(redis_url)) as good:
        assert good.get("/v1/campaigns").json() == []


def test_a_revoked_key_is_refused(server: ApiServer, redis_url: str) -> None:
    secret = new_key(redis_url)
    result = run_cli(redis_url, "api-key", "revoke", "test")
    assert result.returncode == 0, result.stderr
    with server.client(secret) as client:
        error(client.get("/v1/campaigns"), 401)


def test_a_read_only_key_reads_but_cannot_change_anything(server: ApiServer, redis_url: str) -> None:
    with server.client(new_key(redis_url, read_only=True)) as client:
        assert client.get("/v1/dnc").status_code == 200
        assert "read-only" in error(client.post("/v1/dnc", json={"numbers": ["+12025550143"]}), 403)["message"]
        error(upload(client, EXAMPLE_CSV.read_bytes(), EXAMPLE_YAML.read_text()), 403)
        error(client.post("/v1/campaigns/abc/start"), 403)
    assert nothing_stored(redis_url, server)


def test_api_key_create_prints_the_key_once_and_stores_only_its_hash(server: ApiServer, redis_url: str) -> None:
    result = run_cli(redis_url, "api-key", "create", "crm", "--json")
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    raw = redis.Redis.from_url(redis_url).hgetall(auth.AuthKeys.api_keys)
    assert created["key"].encode() not in b"".join([*raw.keys(), *raw.values()])
    with server.client(created["key"]) as client:
        assert client.get("/v1/campaigns").status_code == 200
    listed = json.loads(run_cli(redis_url, "api-key", "list", "--json").stdout)
    assert [(k["name"], k["read_only"]) for k in listed] == [("crm", False)]
    assert created["key"] not in server.log


def test_an_empty_file_is_refused_and_nothing_is_stored(server: ApiServer, redis_url: str, key: str) -> None:
    with server.client(key) as client:
        message = error(upload(client, b"", EXAMPLE_YAML.read_text()), 422)["message"]
    assert message.startswith("contacts.csv is empty")
    assert nothing_stored(redis_url, server)


def test_a_binary_file_is_refused_with_the_cli_message(server: ApiServer, redis_url: str, key: str) -> None:
    with server.client(key) as client:
        message = error(upload(client, b"PK\x03\x04" + bytes(200), EXAMPLE_YAML.read_text(), "book.xlsx"), 422)
    assert message["message"] == "book.xlsx is not a CSV file: it is a ZIP archive (an .xlsx workbook?); " \
                                 "save it as CSV first"
    assert nothing_stored(redis_url, server)


def test_an_oversize_upload_is_413_and_nothing_is_stored(server: ApiServer, redis_url: str, key: str) -> None:
    rows = b"phone,first_name\n" + b"".join(b"+1202555%04d,Name\n" % (i % 10_000) for i in range(80_000))
    assert len(rows) > 1.1 * 2**20
    with server.client(key) as client:
        assert "DIALER_MAX_UPLOAD_MB" in error(upload(client, rows, "name: big"), 413)["message"]
    assert nothing_stored(redis_url, server)


def test_a_malformed_config_is_422_naming_the_field(server: ApiServer, redis_url: str, key: str) -> None:
    with server.client(key) as client:
        bad_value = error(upload(client, EXAMPLE_CSV.read_bytes(), "name: x\nmax_attempts: zero\n"), 422)
        nested = error(upload(client, EXAMPLE_CSV.read_bytes(),
                              json.dumps({"name": "x", "retry_delay_s": {"busy": -1}})), 422)
        not_yaml = error(upload(client, EXAMPLE_CSV.read_bytes(), "name: [unclosed"), 422)
    assert bad_value["code"] == "invalid_config" and "max_attempts:" in bad_value["message"]
    assert "retry_delay_s.busy:" in nested["message"]
    assert "not valid YAML" in not_yaml["message"]
    assert nothing_stored(redis_url, server)


def test_no_phone_column_is_422_with_the_cli_message(server: ApiServer, redis_url: str, key: str,
                                                      tmp_path: Path) -> None:
    csv_path = tmp_path / "people.csv"
    csv_path.write_text("name,email\nAda,ada@example.com\n")
    cli = run_cli(redis_url, "campaign", "create", str(csv_path), "--config", str(EXAMPLE_YAML))
    with server.client(key) as client:
        message = error(upload(client, csv_path.read_bytes(), EXAMPLE_YAML.read_text(), "people.csv"), 422)
    assert cli.returncode != 0
    cli_message = " ".join(cli.stderr.removeprefix("error: ").split()).replace(str(csv_path), "people.csv")
    assert message["message"] == cli_message
    assert nothing_stored(redis_url, server)


def test_phone_column_may_be_sent_more_than_once(server: ApiServer, redis_url: str, key: str) -> None:
    content = b"First Name,Phone Number,Mobile Phone Number\r\nAda,202-555-0130,202-555-0131\r\n"
    with server.client(key) as client:
        response = client.post("/v1/campaigns", files={"file": ("hubspot.csv", content, "text/csv")},
                               data={"config": "name: Two columns",
                                     "phone_column": ["Mobile Phone Number", "Work Phone"]})
    assert "no phone column named 'Work Phone'" in error(response, 422)["message"]
    assert nothing_stored(redis_url, server)


def test_an_unknown_id_is_404(server: ApiServer, key: str) -> None:
    with server.client(key) as client:
        for method, path in [("GET", "/v1/campaigns/nope"), ("GET", "/v1/campaigns/nope/status"),
                             ("GET", "/v1/campaigns/nope/events"), ("GET", "/v1/campaigns/nope/report"),
                             ("GET", "/v1/campaigns/nope/rejects"), ("GET", "/v1/campaigns/nope/summary"),
                             ("POST", "/v1/campaigns/nope/pause")]:
            assert error(client.request(method, path), 404)["code"] == "not_found", path


def test_an_action_the_state_forbids_is_409_naming_the_state(server: ApiServer, store: Store, key: str) -> None:
    cid = ingest_file(store, EXAMPLE_CSV, load_config(EXAMPLE_YAML), max_bytes=2**24).campaign_id
    with server.client(key) as client:
        assert client.post(f"/v1/campaigns/{cid}/cancel").json()["state"] == "cancelled"
        refused = error(client.post(f"/v1/campaigns/{cid}/resume"), 409)
    assert refused == {"code": "wrong_state", "message": f"campaign {cid} is cancelled; cannot make it running"}


def test_dnc_add_list_remove_and_import(server: ApiServer, key: str) -> None:
    with server.client(key) as client:
        added = client.post("/v1/dnc", json={"numbers": ["(202) 555-0143", "12345"]}).json()
        assert added["added"] == 1 and [i["value"] for i in added["invalid"]] == ["12345"]
        assert client.get("/v1/dnc").json() == {"count": 1, "numbers": ["+12025550143"]}
        imported = client.post("/v1/dnc/import", files={"file": ("dnc.txt", b"202-555-0144\n202-555-0143\n")})
        assert imported.json() == {"read": 2, "valid": 2, "added": 1, "invalid": []}
        assert client.request("DELETE", "/v1/dnc", json={"numbers": ["+12025550143"]}).json()["removed"] == 1
        assert client.get("/v1/dnc").json()["numbers"] == ["+12025550144"]


def _sse(client: httpx.Client, path: str) -> list[dict[str, Any]]:
    """Read a Server-Sent Events stream to its ``end`` event; the ``status`` payloads."""
    snapshots, event = [], ""
    with client.stream("GET", path, timeout=90) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: ") and event == "status":
                snapshots.append(json.loads(line.removeprefix("data: ")))
            elif line.startswith("data: ") and event == "end":
                break
    return snapshots


def test_upload_start_watch_and_download_the_report_the_cli_exports(redis_url: str, tmp_path: Path) -> None:
    config = {**yaml.safe_load(DEMO_YAML.read_text()), **FAST, "calls_per_second": 5, "max_concurrent_calls": 3}
    key = new_key(redis_url)
    with sandbox(redis_url, tmp_path) as box, workers(redis_url, box, tmp_path), \
            api_server(redis_url, tmp_path, **box.env) as api, api.client(key) as client:
        created = upload(client, EXAMPLE_CSV.read_bytes(), json.dumps(config), "example.csv")
        assert created.status_code == 202, created.text
        body = created.json()
        assert body["state"] == "ingesting" and body["status_url"] == f"/v1/campaigns/{body['campaign_id']}"
        shown = wait_for(lambda: _drafted(client, body["status_url"]), timeout_s=30, what="the ingest")
        assert (shown["accepted"], shown["rejected"], shown["duplicates"], shown["source"]) == \
            (18, 1, 1, "example.csv")
        cid = body["campaign_id"]
        rejects = list(csv.DictReader(io.StringIO(client.get(f"/v1/campaigns/{cid}/rejects").text)))
        assert [(r["row"], r["reason"]) for r in rejects] == [("21", "invalid_number")]

        assert client.post(f"/v1/campaigns/{cid}/start").json()["state"] == "running"
        snapshots = _sse(client, f"/v1/campaigns/{cid}/events")
        finals = [s["final"] for s in snapshots]
        assert finals == sorted(finals) and len(set(finals)) > 2, finals
        assert snapshots[-1]["state"] == "completed" and snapshots[-1]["final"] == 18
        assert client.get(f"/v1/campaigns/{cid}/status").json() == snapshots[-1]
        assert json.loads(run_cli(redis_url, "campaign", "status", cid, "--json").stdout) == snapshots[-1]
        assert json.loads(run_cli(redis_url, "campaign", "show", cid, "--json").stdout) == \
            client.get(f"/v1/campaigns/{cid}").json()

        report = client.get(f"/v1/campaigns/{cid}/report", params={"format": "csv", "tz": "America/New_York"})
        assert report.status_code == 200 and report.headers["content-type"].startswith("text/csv")
        exported = tmp_path / "cli.csv"
        cli = run_cli(redis_url, "report", "export", cid, "-o", str(exported), "--tz", "America/New_York")
        assert cli.returncode == 0, cli.stderr
        assert report.content == exported.read_bytes()
        assert len(list(csv.DictReader(io.StringIO(report.text)))) == 18
        for fmt, magic in [("xlsx", b"PK"), ("parquet", b"PAR1")]:
            assert client.get(f"/v1/campaigns/{cid}/report", params={"format": fmt}).content.startswith(magic)
        attempts = client.get(f"/v1/campaigns/{cid}/report", params={"format": "json", "attempts": "true"})
        assert len(attempts.json()["rows"]) >= 18
        assert client.get(f"/v1/campaigns/{cid}/summary").json()["contacts"] == 18
        rows = csv.DictReader(io.StringIO(report.content.decode("utf-8-sig")))
        answered = next(row for row in rows if row["outcome"] == "answered")
        one = client.get(f"/v1/campaigns/{cid}/contacts/{answered['contact_id']}").json()
        assert one["outcome"] == "answered" and one["attempts"][-1]["result"]["transcript"], one
        assert error(client.get(f"/v1/campaigns/{cid}/contacts/999"), 404)["code"] == "not_found"
        assert client.get(f"/v1/campaigns/{cid}/summary.png").content.startswith(b"\x89PNG")
    assert "+1202555" not in api.log


def _drafted(client: httpx.Client, url: str) -> dict[str, Any] | None:
    shown = client.get(url).json()
    assert shown["state"] in ("ingesting", "draft"), shown
    return shown if shown["state"] == "draft" else None


def test_an_upload_whose_ingest_fails_says_why_and_leaves_no_campaign(redis_url: str, tmp_path: Path) -> None:
    key = new_key(redis_url)
    with sandbox(redis_url, tmp_path) as box, workers(redis_url, box, tmp_path), \
            api_server(redis_url, tmp_path, **box.env) as api, api.client(key) as client:
        created = upload(client, b"phone,first_name\n", "name: header only").json()
        failed = wait_for(lambda: _settled(client, created["status_url"]), timeout_s=30, what="the ingest")
        assert failed["state"] == "failed" and failed["error"] == "contacts.csv has a header but no data rows"
        assert client.get("/v1/campaigns").json() == []
        assert list(api.upload_dir.rglob("*.csv")) == []


def _settled(client: httpx.Client, url: str) -> dict[str, Any] | None:
    shown = client.get(url).json()
    return shown if shown["state"] != "ingesting" else None


def test_a_dashboard_session_is_an_httponly_strict_cookie_and_changes_need_its_csrf_token(
        server: ApiServer, key: str) -> None:
    with server.client(follow_redirects=False) as browser:
        refused = browser.post("/session", data={"key": "dk_no_such_key"})
        assert refused.status_code == 401 and "set-cookie" not in refused.headers
        signed_in = browser.post("/session", data={"key": key})
        assert signed_in.status_code == 303
        cookie = signed_in.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        page = browser.get("/").text
        csrf = page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
        assert browser.get("/v1/campaigns").status_code == 200
        assert error(browser.post("/v1/dnc", json={"numbers": ["+12025550143"]}), 403)["code"] == "forbidden"
        allowed = browser.post("/v1/dnc", json={"numbers": ["+12025550143"]}, headers={"X-CSRF-Token": csrf})
        assert allowed.status_code == 200 and allowed.json()["added"] == 1
