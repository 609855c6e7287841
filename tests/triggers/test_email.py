"""The Email trigger against a real Dovecot: each new message starts exactly one job with
the brief's payload, flagged ``\\Seen`` after its start committed; the same message
(UIDVALIDITY + UID, or its Message-ID) never starts a second one — not after a crash
between the start and the flag, not when the server restarts mid-poll; a wrong password
or an unreachable server is the step's failing health, tried again after a backoff.

The Email function runs in this process on the platform's real runtime (real PostgreSQL,
real IMAP) where a test must cut a poll at an exact point, and as its own server, ticked
by the control plane's local scheduler, where it must run as it does on one machine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from cloudevents.core.bindings.http import HTTPMessage, from_http_event

from stepline.db import create_pool
from stepline.settings import Settings
from stepline.step import StepRuntime
from stepline_control.onemachine.children import function_child, function_folders, url_of
from stepline_control.schedules.events import ping_event
from support import SECRET_KEY, child_env, control_plane, create_workflow, settings_for

from .dovecot import Dovecot
from .email_function import func
from .test_mailbox import mail

LOCAL = "127.0.0.0/8"


def imap_connection(server: Dovecot, *, password: str | None = None) -> dict[str, Any]:
    return {"name": "mail", "kind": "imap",
            "config": {"host": "127.0.0.1", "port": server.port, "tls": "none"},
            "secret": {"user": "alice", "password": password or server.users["alice"]}}


def email_steps(**config: Any) -> list[dict[str, Any]]:
    """One Email step whose job ends at once: a job per message, counted."""
    return [{"key": "mail", "function": "Email", "output": None,
             "config": {"connection": "mail", **config}}]


def tick(step_id: str, workflow_id: str) -> Any:
    """A PingSource's tick for the step, as the Email function receives it."""
    headers, body = ping_event(step_id, workflow_id, datetime.now(UTC), "stepline", "test")
    return from_http_event(HTTPMessage(headers=headers, body=body))


def jobs(database_url: str) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT idempotency_key, payload, trigger_data FROM jobs "
                            "ORDER BY created_at").fetchall()


class Runtime:
    """The Email function's handler on the platform's own step runtime, in this process."""

    def __init__(self, database_url: str, handler: Any) -> None:
        settings = Settings(database_url=database_url, secret_key=SECRET_KEY,
                            http_allow_cidrs=LOCAL)
        self.handler = handler
        self.runtime = StepRuntime(pool=create_pool(database_url), handler=handler,
                                   settings=settings)

    async def tick(self, workflow: dict[str, Any]) -> dict[str, Any]:
        return await self.handler.fire(self.runtime, tick(workflow["steps"][0]["id"],
                                                          workflow["id"]))


@asynccontextmanager
async def email_runtime(database_url: str, handler: Any | None = None
                        ) -> AsyncIterator[Runtime]:
    running = Runtime(database_url, handler or func.Email())
    await running.runtime.pool.open()
    try:
        yield running
    finally:
        await running.runtime.pool.close()


async def email_workflow(client: httpx.AsyncClient, server: Dovecot, **config: Any
                         ) -> dict[str, Any]:
    created = await client.post("/v1/connections", json=imap_connection(server))
    assert created.status_code == 201, created.text
    return await create_workflow(client, email_steps(**config), name="mail")


async def health_of(client: httpx.AsyncClient, workflow: dict[str, Any]) -> dict[str, Any]:
    return (await client.get(f"/v1/steps/{workflow['steps'][0]['id']}")).json()["health"]


async def test_each_new_message_starts_one_job_and_is_then_seen(
        database_url: str, dovecot: Dovecot) -> None:
    uids = [dovecot.append("alice", mail(f"order {n}")) for n in range(3)]
    async with control_plane(database_url) as client, email_runtime(database_url) as email:
        workflow = await email_workflow(client, dovecot)
        first = await email.tick(workflow)
        second = await email.tick(workflow)
        health = await health_of(client, workflow)
    assert first == {"outcome": "polled", "started": 3, "duplicates": 0, "rejected": 0}
    assert second["started"] == 0  # UNSEEN: nothing new
    found = jobs(database_url)
    assert [payload["subject"] for _, payload, _ in found] == ["order 0", "order 1", "order 2"]
    key, payload, trigger = found[0]
    assert key.startswith("imap:") and key.endswith(f":{uids[0]}")
    assert payload["from"] == {"name": "", "address": "dave@example.com"}
    assert payload["message_id"] == "<order-0@example.com>"
    assert trigger == {"mailbox": "INBOX", "uidvalidity": trigger["uidvalidity"], "uid": uids[0]}
    for uid in uids:
        assert b"\\Seen" in dovecot.flags("alice", uid)
    assert health["state"] == "connected" and health["started"] == 3, health
    assert health["last_event_at"] is not None


class CrashAfterStart(func.Email):
    """Dies (as a killed process would) right after the first message's start
    committed, before its ``\\Seen`` flag is set."""

    async def poll_once(self, runtime: Any, step: Any) -> dict[str, Any]:
        fire = runtime.fire

        async def fire_then_die(*args: Any, **kwargs: Any) -> Any:
            await fire(*args, **kwargs)
            raise asyncio.CancelledError("killed between the start and \\Seen")

        runtime.fire = fire_then_die
        try:
            return await super().poll_once(runtime, step)
        finally:
            runtime.fire = fire


async def test_a_crash_between_the_start_and_seen_starts_nothing_twice(
        database_url: str, dovecot: Dovecot) -> None:
    uid = dovecot.append("alice", mail("order 1"))
    async with control_plane(database_url) as client:
        workflow = await email_workflow(client, dovecot)
        async with email_runtime(database_url, CrashAfterStart()) as crashing:
            with pytest.raises(asyncio.CancelledError):
                await crashing.tick(workflow)
        assert b"\\Seen" not in dovecot.flags("alice", uid)
        assert len(jobs(database_url)) == 1
        async with email_runtime(database_url) as email:
            again = await email.tick(workflow)
        health = await health_of(client, workflow)
    assert again == {"outcome": "polled", "started": 0, "duplicates": 1, "rejected": 0}
    assert len(jobs(database_url)) == 1
    assert b"\\Seen" in dovecot.flags("alice", uid)
    assert (health["started"], health["duplicates"]) == (1, 1)


async def test_the_same_message_id_in_another_message_starts_nothing(
        database_url: str, dovecot: Dovecot) -> None:
    dovecot.append("alice", mail("order 1"))
    async with control_plane(database_url) as client, email_runtime(database_url) as email:
        workflow = await email_workflow(client, dovecot)
        await email.tick(workflow)
        dovecot.append("alice", mail("order 1"))  # delivered again: a new UID, same Message-ID
        dovecot.append("alice", mail("order 2"))
        again = await email.tick(workflow)
    assert (again["started"], again["duplicates"]) == (1, 1)
    assert [p["subject"] for _, p, _ in jobs(database_url)] == ["order 1", "order 2"]


class RestartMidPoll(func.Email):
    """Restarts the IMAP server after ``after`` messages of the poll started."""

    def __init__(self, server: Dovecot, after: int) -> None:
        super().__init__()
        self.server, self.after, self.seen = server, after, 0

    async def poll_once(self, runtime: Any, step: Any) -> dict[str, Any]:
        fire = runtime.fire

        async def fire_and_count(*args: Any, **kwargs: Any) -> Any:
            started = await fire(*args, **kwargs)
            self.seen += 1
            if self.seen == self.after:
                await asyncio.to_thread(self.server.restart)
            return started

        runtime.fire = fire_and_count
        try:
            return await super().poll_once(runtime, step)
        finally:
            runtime.fire = fire


async def test_the_server_restarted_mid_poll_loses_and_doubles_nothing(
        database_url: str, dovecot: Dovecot) -> None:
    total = 20
    uids = [dovecot.append("alice", mail(f"order {n}")) for n in range(total)]
    now = [0.0]
    handler = RestartMidPoll(dovecot, after=7)
    handler.clock = lambda: now[0]
    async with control_plane(database_url) as client, email_runtime(database_url,
                                                                    handler) as email:
        workflow = await email_workflow(client, dovecot, every=5)
        broken = await email.tick(workflow)
        failing = await health_of(client, workflow)
        backing_off = await email.tick(workflow)
        now[0] += 5.0  # the backoff's first wait, on the handler's own clock
        handler.after = -1
        resumed = await email.tick(workflow)
        health = await health_of(client, workflow)
    assert broken["outcome"] == "failing" and "closed the connection" in broken["error"]
    assert failing["state"] == "failing" and failing["since"] is not None
    assert backing_off["outcome"] == "backing off"
    assert resumed["outcome"] == "polled"
    assert resumed["started"] + resumed["duplicates"] == total - 6
    found = jobs(database_url)
    assert len(found) == total
    assert sorted(p["subject"] for _, p, _ in found) == sorted(f"order {n}" for n in range(total))
    for uid in uids:
        assert b"\\Seen" in dovecot.flags("alice", uid)
    assert health["state"] == "connected" and health["started"] == total


async def test_a_wrong_password_is_failing_and_tried_again_after_a_backoff(
        database_url: str, dovecot: Dovecot) -> None:
    dovecot.append("alice", mail("order 1"))
    now = [0.0]
    handler = func.Email(clock=lambda: now[0])
    async with control_plane(database_url) as client, email_runtime(database_url,
                                                                    handler) as email:
        wrong = imap_connection(dovecot, password="wrong")
        created = await client.post("/v1/connections", json=wrong)
        workflow = await create_workflow(client, email_steps(every=10), name="mail")
        answers = [await email.tick(workflow)]
        first = await health_of(client, workflow)
        now[0] += 5
        answers.append(await email.tick(workflow))  # within the 10 s backoff: not tried
        now[0] += 10
        answers.append(await email.tick(workflow))  # tried: fails again, waits 20 s now
        later = await health_of(client, workflow)
        await client.delete(f"/v1/connections/{created.json()['id']}")
        await client.post("/v1/connections", json=imap_connection(dovecot))
        now[0] += 19
        answers.append(await email.tick(workflow))
        now[0] += 1
        answers.append(await email.tick(workflow))
        fixed = await health_of(client, workflow)
    assert [a["outcome"] for a in answers] == ["failing", "backing off", "failing",
                                               "backing off", "polled"]
    assert answers[2]["retry_in_s"] == 20
    assert first["state"] == "failing" and "authentication failed" in first["error"]
    assert later["since"] == first["since"]  # one run of failures, since its first
    assert fixed["state"] == "connected" and fixed["error"] is None and fixed["started"] == 1


async def test_an_unreachable_server_is_failing(database_url: str, dovecot: Dovecot) -> None:
    async with control_plane(database_url) as client, email_runtime(database_url) as email:
        workflow = await email_workflow(client, dovecot)
        dovecot.stop()
        answer = await email.tick(workflow)
        health = await health_of(client, workflow)
    assert answer["outcome"] == "failing"
    assert health["state"] == "failing" and "127.0.0.1" in health["error"]


async def test_a_refused_start_is_kept_as_a_dead_letter_of_the_step(
        database_url: str, dovecot: Dovecot) -> None:
    dovecot.append("alice", mail("order 1"))
    async with control_plane(database_url) as client, email_runtime(database_url) as email:
        workflow = await email_workflow(client, dovecot)
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("UPDATE accounts SET monthly_quota = 0")
        answer = await email.tick(workflow)
        health = await health_of(client, workflow)
    assert answer["rejected"] == 1 and jobs(database_url) == []
    with psycopg.connect(database_url) as conn:
        reason, headers = conn.execute("SELECT reason, headers FROM dead_letters").fetchone()
    assert "quota" in reason and headers["subject"] == "order 1"
    assert health["dead_letters"] == 1


async def wait_for(what: str, check: Callable[[], Any], timeout_s: float = 60.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        if found := check():
            return found
        await asyncio.sleep(0.2)
    raise TimeoutError(f"{what} not reached in {timeout_s}s")


async def test_the_local_scheduler_ticks_the_email_function(
        database_url: str, dovecot: Dovecot, tmp_path: Path) -> None:
    server = function_child("Email", function_folders()["Email"], env=child_env(database_url),
                            log_dir=tmp_path).start().wait_ready()
    try:
        settings = settings_for(database_url, function_urls={"Email": url_of(server)})
        async with control_plane(database_url, settings=settings) as client:
            workflow = await email_workflow(client, dovecot, every=5)
            dovecot.append("alice", mail("order 1"))
            await wait_for("a job", lambda: jobs(database_url))
            await client.post(f"/v1/workflows/{workflow['id']}/pause")
            await asyncio.sleep(1.0)
            dovecot.append("alice", mail("order 2"))
            await asyncio.sleep(7.0)  # more than a tick: a paused step is not polled
            assert len(jobs(database_url)) == 1
            assert (await health_of(client, workflow))["state"] == "idle"
            await client.post(f"/v1/workflows/{workflow['id']}/resume")
            await wait_for("the second job", lambda: len(jobs(database_url)) == 2)
    finally:
        server.stop()
