"""The jobs list as the web UI asks for it, with 100,000 jobs in the database.

A fresh database on this machine's PostgreSQL is migrated and filled in bulk (a few
workflows, 30 days of jobs with mixed statuses, three processes each); the control plane
serves it over real HTTP; the UI's first page (``GET /v1/jobs?limit=50``, with and
without the filters the Jobs screen offers) is timed end to end, median and p95 of
``REQUESTS`` requests each. The target (issue 6) is a median under 200 ms. Slow cases
get their query plan printed, to show which index is missing.

Run: ``.venv/bin/python -m bench.ui_jobs_list`` (``--jobs``, ``--requests``, ``--json``).
``STEPLINE_BENCH_ADMIN_URL`` (else ``STEPLINE_TEST_ADMIN_URL``) names the server."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import uvicorn
from alembic import command
from alembic.config import Config
from cryptography.fernet import Fernet

from stepline_control.app import create_app
from stepline_control.config import ControlSettings
from stepline_control.onemachine.children import free_port

ROOT = Path(__file__).resolve().parents[1]
ADMIN_URL = os.environ.get("STEPLINE_BENCH_ADMIN_URL") or os.environ.get(
    "STEPLINE_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TOKEN = "stl_bench_ui_operator_token"
JOBS = 100_000
PROCESSES_PER_JOB = 3
WORKFLOWS = 4
DAYS = 30
REQUESTS = 50
WARMUP = 5
PAGE = 50
TARGET_MEDIAN_MS = 200.0

# the jobs, newest first (g = 1 is the newest): the newest few hundred still running,
# then 88 % succeeded, 7 % failed, 3 % cancelled, 2 % running; workflows weighted
# 50/30/10/10 so one filter is broad and another narrow
FILL_JOBS = """
INSERT INTO jobs (account_id, workflow_id, workflow_version_id, version, status, trigger,
                  payload, created_at, finished_at, error)
SELECT %(account)s, w.workflow_id, w.version_id, 1, s.status, 'manual',
       jsonb_build_object('n', g), t.created_at,
       CASE WHEN s.status = 'running' THEN NULL
            ELSE t.created_at + interval '1 second' * (1 + g %% 20) END,
       CASE WHEN s.status = 'failed' THEN 'a process failed' END
FROM generate_series(1, %(jobs)s) AS g
CROSS JOIN LATERAL (SELECT now() - %(span)s * (g::float8 / %(jobs)s) AS created_at) AS t
CROSS JOIN LATERAL (SELECT CASE
        WHEN g <= 300 THEN 'running'
        WHEN r < 0.88 THEN 'succeeded' WHEN r < 0.95 THEN 'failed'
        WHEN r < 0.98 THEN 'cancelled' ELSE 'running' END AS status
    FROM (SELECT random() + 0 * g AS r) AS rnd) AS s
CROSS JOIN LATERAL (SELECT (%(workflows)s::uuid[])[i] AS workflow_id,
                           (%(versions)s::uuid[])[i] AS version_id
    FROM (SELECT CASE WHEN g %% 10 < 5 THEN 1 WHEN g %% 10 < 8 THEN 2
                      WHEN g %% 10 < 9 THEN 3 ELSE 4 END AS i) AS pick) AS w
"""

# per job: its entry process, then two Transform processes under it
FILL_PROCESSES = """
INSERT INTO processes (job_id, account_id, workflow_version_id, step_id, step_key, function,
                       status, attempt, input, output, created_at, started_at, finished_at)
SELECT j.id, j.account_id, j.workflow_version_id, st.id, st.key, st.function,
       CASE WHEN n = 1 OR j.status = 'succeeded' THEN 'succeeded'
            WHEN n = 2 AND j.status = 'failed' THEN 'failed'
            WHEN j.status = 'running' THEN 'pending'
            WHEN j.status = 'cancelled' THEN 'cancelled'
            ELSE 'succeeded' END,
       1, '{"n": 1}'::jsonb, '{"ok": true}'::jsonb,
       j.created_at + n * interval '10 milliseconds', j.created_at, j.finished_at
FROM jobs AS j
CROSS JOIN generate_series(1, %(per_job)s) AS n
JOIN steps AS st ON st.workflow_version_id = j.workflow_version_id
                AND st.key = CASE WHEN n = 1 THEN 'start' ELSE 'shape' END
"""

PLAN_SQL = """
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
SELECT * FROM jobs WHERE account_id = %(account)s {filters}
ORDER BY created_at DESC, id DESC LIMIT 51
"""


def migrate(url: str) -> None:
    config = Config(str(ROOT / "migrations" / "alembic.ini"))
    config.attributes["url"] = url
    config.attributes["configure_logger"] = False
    command.upgrade(config, "head")


@contextmanager
def database() -> Iterator[str]:
    name = f"stepline_bench_ui_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        url = ADMIN_URL.rsplit("/", 1)[0] + "/" + name
        migrate(url)
        yield url
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextmanager
def control_plane(url: str) -> Iterator[str]:
    """The control plane over real HTTP, retention off (it must not prune mid-run)."""
    settings = ControlSettings(database_url=url, bootstrap_token=TOKEN,
                               secret_key=Fernet.generate_key().decode(), retention_days=0,
                               log_level="WARNING")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on", ws="none"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the control plane did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def create_workflows(client: httpx.Client) -> list[str]:
    project = client.post("/v1/projects", json={"name": "Bench"}).json()["id"]
    ids = []
    for i in range(WORKFLOWS):
        response = client.post("/v1/workflows", json={
            "project_id": project, "name": f"Workflow {i + 1}",
            "steps": [{"key": "start", "function": "Manual", "next": "shape"},
                      {"key": "shape", "function": "Transform",
                       "config": {"expression": "@"}, "output": None}]})
        response.raise_for_status()
        ids.append(response.json()["id"])
    return ids


def fill(url: str, workflow_ids: list[str], jobs: int) -> tuple[str, float]:
    """Bulk-insert the jobs and their processes; returns the account id and seconds."""
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        account = conn.execute("SELECT account_id FROM workflows LIMIT 1").fetchone()[0]
        versions = [conn.execute("SELECT id FROM workflow_versions WHERE workflow_id = %s",
                                 (w,)).fetchone()[0] for w in workflow_ids]
        conn.execute(FILL_JOBS, {"account": account, "jobs": jobs, "span": timedelta(days=DAYS),
                                 "workflows": workflow_ids, "versions": versions})
        conn.execute(FILL_PROCESSES, {"per_job": PROCESSES_PER_JOB})
        conn.execute("VACUUM ANALYZE jobs")
        conn.execute("VACUUM ANALYZE processes")
    return str(account), time.perf_counter() - started


def cases(client: httpx.Client, workflow_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The first pages the Jobs screen asks for: as opened, then each filter."""
    now = datetime.now(UTC)
    day = {"from": (now - timedelta(days=10)).isoformat(),
           "to": (now - timedelta(days=9)).isoformat()}
    first = client.get("/v1/jobs", params={"limit": PAGE}).json()
    return {
        "no filter": {},
        "status=failed": {"status": "failed"},
        "status=cancelled": {"status": "cancelled"},
        "status=running": {"status": "running"},
        "workflow (50 % of jobs)": {"workflow_id": workflow_ids[0]},
        "workflow (10 % of jobs)": {"workflow_id": workflow_ids[3]},
        "workflow + status=failed": {"workflow_id": workflow_ids[3], "status": "failed"},
        "one day, 10 days ago": day,
        "one day + status=cancelled": {**day, "status": "cancelled"},
        "second page (cursor)": {"cursor": first["next_cursor"]},
    }


def dashboard_cases(client: httpx.Client) -> dict[str, dict[str, Any]]:
    """What the dashboard asks for (500 per page): the jobs of 14 days by status, the
    newest 500 for the busiest workflows, the usage per day."""
    since = (datetime.now(UTC) - timedelta(days=13)).date().isoformat() + "T00:00:00Z"
    return {
        "dashboard: failed, 14 days": {"status": "failed", "from": since, "limit": 500},
        "dashboard: cancelled, 14 d": {"status": "cancelled", "from": since, "limit": 500},
        "dashboard: running": {"status": "running", "limit": 500},
        "dashboard: newest 500": {"from": since, "limit": 500},
    }


def time_case(client: httpx.Client, params: dict[str, Any], requests: int,
              path: str = "/v1/jobs") -> dict[str, Any]:
    query = {"limit": PAGE, **params}
    for _ in range(WARMUP):
        client.get(path, params=query).raise_for_status()
    timings, rows = [], 0
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(path, params=query)
        timings.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
        body = response.json()
        rows = len(body["items"]) if "items" in body else len(body.get("days", []))
    timings.sort()
    return {"rows": rows, "median_ms": statistics.median(timings),
            "p95_ms": timings[max(0, round(0.95 * len(timings)) - 1)], "max_ms": timings[-1]}


def plan(url: str, account: str, params: dict[str, Any]) -> str:
    filters, values = "", {"account": account}
    if "status" in params:
        filters += " AND status = %(status)s"
        values["status"] = params["status"]
    if "workflow_id" in params:
        filters += " AND workflow_id = %(workflow_id)s"
        values["workflow_id"] = params["workflow_id"]
    if "from" in params:
        filters += " AND created_at >= %(from)s AND created_at < %(to)s"
        values["from"], values["to"] = params["from"], params["to"]
    with psycopg.connect(url) as conn:
        rows = conn.execute(PLAN_SQL.format(filters=filters), values).fetchall()
    return "\n".join(f"      {r[0]}" for r in rows)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=JOBS)
    parser.add_argument("--requests", type=int, default=REQUESTS)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)

    with database() as url, control_plane(url) as base, httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as client:
        workflow_ids = create_workflows(client)
        account, fill_s = fill(url, workflow_ids, args.jobs)
        with psycopg.connect(url) as conn:
            counts = dict(conn.execute("SELECT status, count(*) FROM jobs GROUP BY status"))
            processes = conn.execute("SELECT count(*) FROM processes").fetchone()[0]
        by_status = ", ".join(f"{s} {n:,}" for s, n in sorted(counts.items()))
        print(f"ui_jobs_list: {sum(counts.values()):,} jobs ({by_status}), {processes:,} "
              f"processes, {WORKFLOWS} workflows over {DAYS} days; filled in {fill_s:.1f} s")
        print(f"GET /v1/jobs?limit={PAGE} through the real API, {args.requests} requests each "
              f"after {WARMUP} warm-up (target: median < {TARGET_MEDIAN_MS:.0f} ms)\n")
        print(f"  {'first page of':<28} {'rows':>5} {'median ms':>10} {'p95 ms':>8} {'max ms':>8}")
        results: dict[str, Any] = {}
        slow: list[tuple[str, dict[str, Any]]] = []
        for name, params in cases(client, workflow_ids).items():
            figures = time_case(client, params, args.requests)
            results[name] = figures
            mark = "" if figures["median_ms"] < TARGET_MEDIAN_MS else "  <- over target"
            print(f"  {name:<28} {figures['rows']:>5} {figures['median_ms']:>10.1f} "
                  f"{figures['p95_ms']:>8.1f} {figures['max_ms']:>8.1f}{mark}")
            if figures["median_ms"] >= TARGET_MEDIAN_MS:
                slow.append((name, params))
        few = max(5, args.requests // 5)
        print(f"\n  the dashboard's requests ({few} each; not the 200 ms target)")
        dashboard: dict[str, Any] = {}
        for name, params in dashboard_cases(client).items():
            figures = time_case(client, params, few)
            dashboard[name] = figures
            print(f"  {name:<28} {figures['rows']:>5} {figures['median_ms']:>10.1f} "
                  f"{figures['p95_ms']:>8.1f} {figures['max_ms']:>8.1f}")
        usage = time_case(client, {}, few, path="/v1/usage")
        dashboard["usage (this month)"] = usage
        print(f"  {'usage (this month)':<28} {usage['rows']:>5} {usage['median_ms']:>10.1f} "
              f"{usage['p95_ms']:>8.1f} {usage['max_ms']:>8.1f}")
        for name, params in slow:
            print(f"\n  plan of the slow case '{name}':")
            print(plan(url, account, {k: v for k, v in params.items() if k != "cursor"}))
        summary = {"jobs": sum(counts.values()), "processes": processes, "fill_s": fill_s,
                   "requests": args.requests, "page": PAGE, "cases": results,
                   "dashboard": dashboard,
                   "slow": [name for name, _ in slow]}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
