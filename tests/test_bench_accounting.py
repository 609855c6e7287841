"""The bench's own helpers, which its figures rest on: the CPU accounting against real
processes (a child that burns a known amount of CPU, this machine's PostgreSQL), the
cheap driver against a real HTTP server, the goals table's verdicts and n8n's
workflow shape. No timings are asserted: CPU seconds are compared with what the
process itself counted."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import psycopg
import pytest
from conftest import ADMIN_URL

# bench/ is not an installed package (``make bench`` runs it as ``python -m bench`` from
# the checkout), so the checkout goes on the path for its imports
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import accounting, goals, n8n  # noqa: E402
from bench.driver import DriverError, Poster, paced  # noqa: E402

# burns CPU until it has used ~0.3 s of its own, says how much, then waits to be ended
BURNER = """
import sys, time
while time.process_time() < 0.3:
    sum(range(1000))
print(time.process_time(), flush=True)
sys.stdin.read()
"""


@pytest.fixture
def burner() -> Iterator[subprocess.Popen]:
    with subprocess.Popen([sys.executable, "-c", BURNER], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True) as child:
        yield child
        child.kill()


def test_a_childs_cpu_lands_in_its_group(burner: subprocess.Popen) -> None:
    before = accounting.take({"burner": accounting.tree(burner.pid)})
    own = float(burner.stdout.readline())  # it has burnt its share
    after = accounting.take({"burner": accounting.tree(burner.pid)})
    counted = accounting.spent(before, after)["burner"]
    already = before.cpu[(burner.pid, psutil.Process(burner.pid).create_time())][1]
    # psutil reads the kernel's clock ticks: the two agree to a few ticks
    assert counted + already == pytest.approx(own, abs=0.05)


def test_a_process_born_in_the_window_counts_from_zero(burner: subprocess.Popen) -> None:
    own = float(burner.stdout.readline())
    after = accounting.take({"burner": accounting.tree(burner.pid)})
    assert accounting.spent(accounting.Snapshot(), after)["burner"] == pytest.approx(
        own, abs=0.05)


def test_a_reused_pid_is_another_process() -> None:
    before = accounting.Snapshot({(42, 1.0): ("a", 5.0)})
    after = accounting.Snapshot({(42, 2.0): ("a", 0.5)})  # same pid, started later
    assert accounting.spent(before, after) == {"a": 0.5}


def test_per_step_leaves_out_what_a_step_does_not_use() -> None:
    cpu = accounting.per_step_ms({"relay": 1.0, "neighbours": 3.0}, 1000, counted={"relay"})
    assert cpu["groups"] == {"relay": 1.0, "neighbours": 3.0}
    assert cpu["total"] == 1.0
    assert cpu["not_counted"] == ["neighbours"]


def test_postgres_processes_are_told_apart() -> None:
    groups = accounting.classify_postgres(
        [(1, None), (2, "ours"), (3, "theirs"), (4, "ours")], {"ours"}, {4})
    assert groups == {1: accounting.PG_SERVER, 2: accounting.PG_OURS,
                      3: accounting.PG_OTHERS, 4: accounting.DRIVER}


def test_the_meter_reads_the_whole_postgres_cluster(database_url: str) -> None:
    name = database_url.rsplit("/", 1)[1]
    with psycopg.connect(database_url) as ours, psycopg.connect(database_url) as driver:
        ours_pid = ours.execute("SELECT pg_backend_pid()").fetchone()[0]
        driver_pid = driver.execute("SELECT pg_backend_pid()").fetchone()[0]
        meter = accounting.Meter(children={}, admin_url=ADMIN_URL, databases={name},
                                 driver_backends={driver_pid})
        groups = {pid: group for (pid, _), (group, _) in meter.snapshot().cpu.items()}
    assert groups[ours_pid] == accounting.PG_OURS
    assert groups[driver_pid] == accounting.DRIVER
    server = {psutil.Process(pid).name() for pid, g in groups.items()
              if g == accounting.PG_SERVER and pid > 0}
    assert server, "the WAL writer, checkpointer and postmaster are counted"
    assert any(pid < 0 for pid in groups), "exited backends are read from the postmaster"
    assert accounting.RABBITMQ not in meter.counted()


async def serve_once(status: int, *, chunked: bool = False, close: bool = False,
                     connections: list | None = None) -> tuple[asyncio.Server, str]:
    """A server that echoes each POST's body, with a length or in two chunks; with
    ``close``, it closes each connection after its first answer, as a server does with
    a connection kept idle too long."""
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if connections is not None:
            connections.append(writer)
        while (head := await reader.readuntil(b"\r\n\r\n")):
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            body = await reader.readexactly(length)
            if chunked:
                a, b = body[:3], body[3:]
                writer.write(b"HTTP/1.1 %d X\r\ntransfer-encoding: chunked\r\n\r\n"
                             b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n"
                             % (status, len(a), a, len(b), b))
            else:
                writer.write(b"HTTP/1.1 %d X\r\ncontent-length: %d\r\n\r\n%s"
                             % (status, len(body), body))
            await writer.drain()
            if close:
                writer.close()
                return

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("chunked", [False, True])
async def test_the_driver_keeps_its_connections_and_reads_the_answers(chunked: bool) -> None:
    connections: list = []
    server, url = await serve_once(201, chunked=chunked, connections=connections)
    async with server:
        poster = Poster(url, "t0ken", "/v1/x", {"n": 1})

        async def finished() -> int:  # the echo's "execution" ends with its answer
            return poster.sent

        answers = await paced(poster, finished, clients=3, total=10, poll_s=0.001)
        await poster.close()
    assert answers == [b'{"n": 1}'] * 10
    assert poster.sent == 10
    assert 1 <= len(connections) <= 3, "never more than the clients at once"


async def test_the_driver_sends_again_when_a_kept_connection_was_closed() -> None:
    connections: list = []
    server, url = await serve_once(202, close=True, connections=connections)
    async with server:
        poster = Poster(url, None, "/", {"n": 2})
        answers = [await poster.post() for _ in range(3)]
        await poster.close()
    assert answers == [b'{"n": 2}'] * 3
    assert len(connections) == 3


async def test_the_driver_raises_on_an_error_status() -> None:
    server, url = await serve_once(503)
    async with server:
        poster = Poster(url, None, "/", {})
        with pytest.raises(DriverError, match="503"):
            await poster.post()
        await poster.close()


def test_a_goal_is_judged_and_compared_with_its_raw_limit() -> None:
    raw = goals.Raw(publish=4000, consume=5000, commit=3000, post=2500, commit_ms=2.0)
    results = {mode: {"throughput": {"steps_per_s": rate}}
               for mode, rate in (("one-machine", 1250.0), ("rabbitmq", 500.0))}
    one, mq = goals.rate_goals(results, raw)
    assert (one.met, one.ratio, one.raw) == (True, 0.5, "POST 2,500/s")
    assert (mq.met, mq.ratio) == (False, 0.2)
    assert goals.relay_goal(3000, raw).met is False  # 0.75x the raw publish


def test_the_n8n_workflow_is_a_webhook_then_a_chain_of_no_ops() -> None:
    flow = n8n.webhook_chain("c", "path", 3)
    assert [node["type"] for node in flow["nodes"]] == [
        "n8n-nodes-base.webhook", *["n8n-nodes-base.noOp"] * 3]
    hops = [(a, links["main"][0][0]["node"]) for a, links in flow["connections"].items()]
    assert hops == [("Webhook", "Step 1"), ("Step 1", "Step 2"), ("Step 2", "Step 3")]
