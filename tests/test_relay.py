"""The relay in one-machine mode against real processes: each row delivered once by
two relays side by side, nothing lost when one is SIGKILLed mid-run, rows held until
``not_before``, and a row no function will take kept as a dead letter."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pytest

from stepline.packet import BATCH_TYPE
from stepline_control.onemachine.children import relay_child
from support import (
    ItemsApi,
    LocalHttp,
    Reply,
    all_processes,
    child_env,
    control_plane,
    create_workflow,
    eventually,
    json_reply,
    platform,
    postgres_connection,
    wait_for_job,
)

pytestmark = pytest.mark.slow


class Recorder(LocalHttp):
    """A stand-in function that records the CloudEvent ids it receives, and when, and
    answers each with ``status`` (a batch event: each event it carries, in its answer)."""

    def __init__(self, status: int = 200, delay_s: float = 0.0, per_event: bool = False
                 ) -> None:
        self.received: Counter[str] = Counter()
        self.arrived: dict[str, float] = {}
        self.status, self.delay_s, self._lock = status, delay_s, threading.Lock()
        self.per_event = per_event
        super().__init__(self._respond)
        self.url = self.base + "/"

    def _respond(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        batch = headers.get("ce-type") == BATCH_TYPE
        ids = [e["attributes"]["id"] for e in json.loads(body)] if batch else [headers["ce-id"]]
        time.sleep(self.delay_s * (len(ids) if self.per_event else 1))
        with self._lock:
            for event_id in ids:
                self.received[event_id] += 1
                self.arrived.setdefault(event_id, time.time())
        if not batch:
            return self.status, {}, b""
        return json_reply(200, {"results": [{"id": i, "status": self.status} for i in ids]})


def insert_rows(
    url: str, n: int, *, destination: str = "Transform", not_before_s: float = 0.0, data: Any = None
) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in range(n)]
    attributes = {
        "specversion": "1.0",
        "type": "dev.stepline.process.v1",
        "source": "/tests",
        "datacontenttype": "application/json",
    }
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO outbox (event_id, destination, attributes, data, not_before) "
            "SELECT e, %s, %s::jsonb || jsonb_build_object('id', e::text), %s, "
            "now() + make_interval(secs => %s) FROM unnest(%s::uuid[]) AS e",
            (destination, json.dumps(attributes), json.dumps(data or {"n": 1}), not_before_s, ids),
        )
    return ids


def outbox_status(url: str) -> Counter[str]:
    with psycopg.connect(url) as conn:
        return Counter(dict(conn.execute("SELECT status, count(*) FROM outbox GROUP BY status")))


def start_relays(url: str, recorder: Recorder, n: int, tmp_path: Path, *args: str):
    env = child_env(url, STEPLINE_FUNCTION_URLS=json.dumps({"Transform": recorder.url}))
    return [relay_child(env=env, log_dir=tmp_path, args=list(args)).start() for _ in range(n)]


def listening(url: str) -> int:
    """How many relays listen for the outbox's NOTIFY on this database."""
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                            "current_database() AND query LIKE 'LISTEN %%'").fetchone()[0]


def test_two_relays_side_by_side_deliver_each_row_once(database_url: str, tmp_path: Path) -> None:
    # a batch takes its stand-in function a while per event, as real work does
    recorder = Recorder(delay_s=0.002, per_event=True)
    relays = start_relays(database_url, recorder, 2, tmp_path, "--batch-size", "50")
    # both relays wait for the rows' one NOTIFY: each is sure to take a share
    eventually(lambda: listening(database_url) == 2, 30, "both relays listening")
    ids = insert_rows(database_url, 1500)
    try:
        eventually(lambda: outbox_status(database_url)["sent"] == 1500, 60, "all rows sent")
    finally:
        for relay in relays:
            relay.stop()
        recorder.close()
    assert sorted(recorder.received) == sorted(ids)
    assert set(recorder.received.values()) == {1}
    with psycopg.connect(database_url) as conn:
        by_relay = dict(conn.execute("SELECT claimed_by, count(*) FROM outbox GROUP BY 1"))
    assert len(by_relay) == 2, f"both relays should have taken a share: {by_relay}"


def test_a_row_is_held_until_not_before(database_url: str, tmp_path: Path) -> None:
    recorder = Recorder()
    [relay] = start_relays(database_url, recorder, 1, tmp_path)
    hold_s = 1.5
    try:
        [warm_up] = insert_rows(database_url, 1)
        eventually(lambda: warm_up in recorder.received, 30, "the relay up")
        inserted_at = time.time()
        [later] = insert_rows(database_url, 1, not_before_s=hold_s)
        [now] = insert_rows(database_url, 1)
        eventually(lambda: later in recorder.received, 30, "the held row delivered")
    finally:
        relay.stop()
        recorder.close()
    assert recorder.arrived[now] < recorder.arrived[later]
    assert recorder.arrived[later] >= inserted_at + hold_s


def test_a_row_refused_with_a_non_retried_status_is_kept_as_a_dead_letter(
    database_url: str, tmp_path: Path
) -> None:
    recorder = Recorder(status=400)
    [event_id] = insert_rows(database_url, 1)
    [relay] = start_relays(database_url, recorder, 1, tmp_path)
    try:
        eventually(lambda: outbox_status(database_url)["dead"] == 1, 10, "the row dead")
    finally:
        relay.stop()
        recorder.close()
    with psycopg.connect(database_url) as conn:
        origin, reason, event = conn.execute(
            "SELECT origin, reason, event_id FROM dead_letters"
        ).fetchone()
    assert (origin, event) == ("relay", event_id) and "answered 400" in reason


async def test_the_relay_killed_mid_run_loses_nothing_and_doubles_nothing(
    database_url: str, empty_database_url: str, tmp_path: Path
) -> None:
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)")
    steps = [
        {"key": "start", "function": "Manual", "next": "fetch"},
        {
            "key": "fetch",
            "function": "Http.request",
            "config": {"url": "", "items_path": "items"},
            "output": "multiple",
            "next": "save",
        },
        {
            "key": "save",
            "function": "Database.query",
            "output": None,
            "config": {
                "connection": "crm",
                "result": "rowcount",
                "sql": "INSERT INTO items (id, name) VALUES (:id, :name)",
            },
        },
    ]
    with (
        ItemsApi(300) as api,
        platform(database_url, ["Http.request", "Database.query"], tmp_path, relays=0) as running,
    ):
        steps[1]["config"]["url"] = api.url
        async with control_plane(database_url) as client:
            await client.post("/v1/connections", json=postgres_connection(empty_database_url))
            workflow = await create_workflow(client, steps)
            relay = running.start_relay("--batch-size", "20", "--lease-s", "2")
            started = await client.post(f"/v1/workflows/{workflow['id']}/jobs", json={})
            eventually(
                lambda: 0 < outbox_status(database_url)["sent"] < 250,
                30,
                "the relay part-way through",
            )
            relay.kill()
            killed_at = outbox_status(database_url)
            running.start_relay("--batch-size", "20", "--lease-s", "2")
            job = await wait_for_job(client, started.json()["id"])
            processes = await all_processes(client, job["id"])
            # rows the killed relay delivered but never marked stay leased until the
            # lease runs out; the new relay then delivers them again, the inbox finds
            # them done, and they are marked sent: the job may well end before that
            eventually(lambda: outbox_status(database_url) == Counter({"sent": 301}), 30,
                       "every outbox row marked sent")
    assert killed_at["pending"] > 0, "the kill must land mid-run"
    assert job["status"] == "succeeded"
    assert len(processes) == 302 and {p["status"] for p in processes} == {"succeeded"}
    with psycopg.connect(empty_database_url) as conn:
        assert conn.execute("SELECT count(*) FROM items").fetchone()[0] == 300
