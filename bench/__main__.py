"""``make bench``: measure this machine's raw limits, the relay's figures and the whole
platform's in one run, print them side by side and then issue 16's goals table, and
keep them as JSON under ``bench/results/``.

Needs this machine's PostgreSQL and RabbitMQ (``STEPLINE_BENCH_ADMIN_URL``,
``STEPLINE_BENCH_AMQP_URL``); makes a scratch database and queues of its own and
removes them at the end."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiormq
import psycopg
from alembic import command
from alembic.config import Config

from bench import accounting, e2e, goals, ledger, raw
from bench.relay import (
    DISPATCHED,
    FUNCTION,
    dispatch_rate,
    drain_rate,
    idle_to_delivered_ms,
    sample_row,
    summary_ms,
)
from bench.stack import FUNCTIONS
from stepline_control.onemachine.children import function_child
from stepline_relay.amqp import Broker, delete
from stepline_relay.mapping import from_amqp, to_amqp, to_http
from stepline_relay.onemachine.dispatcher import DispatchOptions
from stepline_relay.relay import RelayOptions
from stepline_relay.topology import Topology

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
ADMIN_URL = os.environ.get("STEPLINE_BENCH_ADMIN_URL",
                           "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_URL = os.environ.get("STEPLINE_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
ROUNDS = 4  # publish and relay figures alternate; the best of each is compared
MESSAGES = 10_000
IN_FLIGHT = 256
PREFETCH = 256
COMMITS = 2_000
POSTS = 5_000
HTTPX_POSTS = 2_000
DISPATCH = DispatchOptions(parallelism=16, prefetch=100)
HTTP_CONNECTIONS = 16
LATENCY_SAMPLES = 50
IDLE_S = 0.05
RELAY = RelayOptions()  # the relay as it ships: 4 pumps, 256 rows a batch


@contextmanager
def scratch_database(*, migrated: bool = True) -> Iterator[str]:
    name = f"stepline_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    try:
        if migrated:
            config = Config(str(ROOT / "migrations" / "alembic.ini"))
            config.attributes["url"] = url
            config.attributes["configure_logger"] = False
            command.upgrade(config, "head")
        yield url
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextmanager
def echo_server() -> Iterator[tuple[str, int]]:
    child = function_child("bench-echo", ROOT / "bench" / "echo", env={})
    child.start().wait_ready()
    try:
        host, port = child.env["LISTEN_ADDRESS"].rsplit(":", 1)
        yield host, int(port)
    finally:
        child.stop()


async def server_versions(database_url: str) -> dict[str, str]:
    connection = await aiormq.connect(AMQP_URL)
    rabbitmq = connection.server_properties.get("version", "?")
    await connection.close()
    with psycopg.connect(database_url) as conn:
        postgres = conn.execute("SHOW server_version").fetchone()[0]
    version = rabbitmq.decode() if isinstance(rabbitmq, bytes) else str(rabbitmq)
    return {"rabbitmq": version, "postgresql": postgres}


async def measure(database_url: str, host: str, port: int) -> dict[str, Any]:
    prefix = f"bench-{uuid.uuid4().hex[:8]}."
    message = to_amqp(sample_row(0)["attributes"], sample_row(0)["data"])
    request = to_http(from_amqp(message, queue=FUNCTION))
    results: dict[str, Any] = {"publish": [], "relay": []}
    running = None
    try:
        for round_ in range(ROUNDS):
            queue = f"{prefix}raw"
            results["publish"].append(await raw.confirmed_publish(
                AMQP_URL, queue, message, MESSAGES, IN_FLIGHT))
            if round_ == 0:
                results["consume"] = await raw.consume_and_ack(AMQP_URL, queue, MESSAGES,
                                                               PREFETCH)
            await purge(queue)
            rate, running = await drain_rate(database_url, AMQP_URL, prefix, MESSAGES, RELAY)
            results["relay"].append(rate)
            if round_ < ROUNDS - 1:
                await running.halt()
                await purge(prefix + FUNCTION)
        results["latency_ms"], results["commit_ms"] = await idle_to_delivered_ms(
            database_url, AMQP_URL, prefix + FUNCTION, LATENCY_SAMPLES, IDLE_S)
        results["commit"] = raw.single_row_commits(database_url, COMMITS)
        results["http_minimal"] = await raw.http_posts_minimal(host, port, request, POSTS,
                                                               HTTP_CONNECTIONS)
        url = f"http://{host}:{port}/"
        results["http_aiohttp"] = await raw.http_posts_aiohttp(url, request, POSTS,
                                                               HTTP_CONNECTIONS)
        results["http_httpx"] = await raw.http_posts_httpx(url, request, HTTPX_POSTS,
                                                           HTTP_CONNECTIONS)
        results["dispatch"] = await dispatch_rate(AMQP_URL, prefix, message, url, POSTS,
                                                  DISPATCH)
    finally:
        if running is not None:
            await running.halt()
        await cleanup(prefix)
    return results


async def purge(queue: str) -> None:
    connection = await aiormq.connect(AMQP_URL)
    channel = await connection.channel()
    await channel.queue_purge(queue)
    await connection.close()


async def cleanup(prefix: str) -> None:
    broker = Broker(AMQP_URL, name="bench cleanup")
    await delete(broker, Topology(functions=(FUNCTION, DISPATCHED, "raw"), prefix=prefix))
    await broker.close()


def report(results: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    publish = max(r.per_s for r in results["publish"])
    relay = max(r.per_s for r in results["relay"])
    latency = summary_ms(results["latency_ms"])
    commit = summary_ms(results["commit_ms"])
    figures = {
        "raw": {
            "confirmed_publish_per_s": publish,
            "consume_ack_per_s": results["consume"].per_s,
            "single_row_commit_per_s": results["commit"].per_s,
            "http_post_func_python_per_s": results["http_minimal"].per_s,
            "http_post_func_python_aiohttp_per_s": results["http_aiohttp"].per_s,
            "http_post_func_python_httpx_per_s": results["http_httpx"].per_s,
        },
        "dispatcher": {"messages_per_s": results["dispatch"].per_s,
                       "ratio_to_http_post": results["dispatch"].per_s
                       / results["http_minimal"].per_s},
        "relay": {"rows_per_s": relay, "ratio_to_confirmed_publish": relay / publish,
                  "idle_commit_to_delivered_ms": latency, "writer_insert_commit_ms": commit},
        "rounds": {"publish_per_s": [r.per_s for r in results["publish"]],
                   "relay_rows_per_s": [r.per_s for r in results["relay"]]},
        "settings": {"messages": MESSAGES, "in_flight": IN_FLIGHT, "prefetch": PREFETCH,
                     "commits": COMMITS, "posts": POSTS, "http_connections": HTTP_CONNECTIONS,
                     "relay_pumps": RELAY.pumps, "relay_batch": RELAY.batch_size,
                     "latency_samples": LATENCY_SAMPLES},
        "context": context,
    }
    rows = [
        ("raw: persistent publish, confirmed, 256 in flight", f"{publish:,.0f} msg/s"),
        ("raw: consume + ack, prefetch 256", f"{results['consume'].per_s:,.0f} msg/s"),
        ("raw: single-row INSERT + COMMIT, one connection",
         f"{results['commit'].per_s:,.0f} commits/s"),
        ("raw: HTTP POST to func-python, 16 connections",
         f"{results['http_minimal'].per_s:,.0f} req/s"),
        ("    the same with aiohttp (the dispatcher's client)",
         f"{results['http_aiohttp'].per_s:,.0f} req/s"),
        ("    the same with httpx, for comparison",
         f"{results['http_httpx'].per_s:,.0f} req/s"),
        (f"relay: outbox rows -> RabbitMQ ({RELAY.pumps} pumps x {RELAY.batch_size})",
         f"{relay:,.0f} rows/s = {relay / publish:.0%} of the raw publish"),
        (f"dispatcher: queue -> func-python ({DISPATCH.parallelism} in parallel)",
         f"{results['dispatch'].per_s:,.0f} msg/s = "
         f"{results['dispatch'].per_s / results['http_minimal'].per_s:.0%} of the raw POST"),
        ("relay: one row, idle, from its commit to a consumer",
         f"median {latency['median']:.1f} ms, p95 {latency['p95']:.1f} ms "
         f"(the writer's INSERT + COMMIT: median {commit['median']:.1f} ms)"),
    ]
    width = max(len(label) for label, _ in rows) + 2
    print(f"\nStepline bench, {context['when']} — {context['cpus']} CPUs, RabbitMQ "
          f"{context['rabbitmq']}, PostgreSQL {context['postgresql']}")
    for label, value in rows:
        print(f"  {label:<{width}}{value}")
    return figures


def main() -> None:
    started = time.perf_counter()
    context: dict[str, Any] = {
        "when": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "cpus": os.cpu_count(),
        "python": platform.python_version(), "load_before": load_average(),
    }
    with scratch_database() as database_url, echo_server() as (host, port):
        context |= asyncio.run(server_versions(database_url))
        results = asyncio.run(measure(database_url, host, port))
    figures = report(results, context)
    if os.environ.get("STEPLINE_BENCH_E2E", "1") != "0":
        print("\nEnd to end, the whole platform, every step durable:", flush=True)
        platform_results = e2e.measure(scratch_database, AMQP_URL, ADMIN_URL)
        raw_limits = goals.Raw(
            publish=figures["raw"]["confirmed_publish_per_s"],
            consume=figures["raw"]["consume_ack_per_s"],
            commit=figures["raw"]["single_row_commit_per_s"],
            post=figures["raw"]["http_post_func_python_per_s"],
            commit_ms=figures["relay"]["writer_insert_commit_ms"]["median"])
        rows = goals.goals(platform_results, raw_limits, figures["relay"]["rows_per_s"],
                           chain_steps=e2e.CHAIN_STEPS, fanout_items=e2e.FANOUT_ITEMS,
                           functions=FUNCTIONS)
        goals.print_goals(rows)
        print_cpu(platform_results)
        print_peers(latest_peers())
        figures["end_to_end"] = {"goals": [asdict(g) for g in rows],
                                 "details": platform_results}
    if os.environ.get("STEPLINE_BENCH_LEDGER", "1") != "0":
        print("\nThe effect ledger's cost (Database.query on a customer's PostgreSQL):",
              flush=True)
        figures["ledger"] = ledger.measure(ADMIN_URL)
        for label, value in ledger.rows(figures["ledger"]):
            print(f"  {label:<50}{value}")
    context["load_after"] = load_average()
    context["seconds"] = round(time.perf_counter() - started, 1)
    print(f"  load average {context['load_before']} before, {context['load_after']} after")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"bench-{context['when'].replace(':', '')}.json"
    out.write_text(json.dumps(figures, indent=2, default=str) + "\n")
    print(f"  ({context['seconds']}s; written to {out.relative_to(ROOT)})")


NOT_COUNTED = {
    accounting.DRIVER: "the bench's own",
    accounting.PG_OTHERS: "other agents' databases",
    accounting.PG_EXITED: "whose is unknown, mostly other agents' short connections",
}


def print_cpu(results: dict[str, Any]) -> None:
    """Where each step's CPU went, per process group, and the driver's own cost."""
    for mode, run in results.items():
        t = run["throughput"]
        groups = sorted(t["cpu_ms_per_step"].items(), key=lambda kv: -kv[1])
        print(f"\n  CPU per step, {mode} ({t['steps']:,} steps in {t['seconds']:.0f} s), ms:")
        for name, ms in groups:
            note = f"  (not counted: {NOT_COUNTED.get(name, 'not a step')})" \
                if name in t["cpu_not_counted"] else ""
            print(f"    {name:<40}{ms:6.2f}{note}")
        print(f"    the driver: {t['driver_ms_per_post']:.3f} ms of CPU a POST, "
              f"{t['driver_core_share']:.0%} of a core ({t['posts']:,} POSTs)")


def latest_peers() -> dict[str, Any] | None:
    found = sorted(RESULTS.glob("peers-*.json"))
    return json.loads(found[-1].read_text()) if found else None


def print_peers(peers: dict[str, Any] | None) -> None:
    """The n8n row, from the last ``make bench-peers`` (n8n is not started here: its
    install and start-up alone would take this bench's whole time)."""
    if peers is None:
        print("\n  n8n side by side: no result yet (make bench-peers)")
        return
    print(f"\n  n8n side by side, from make bench-peers at {peers['context']['when']}:")
    for line in peers["lines"]:
        print(f"    {line}")


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
