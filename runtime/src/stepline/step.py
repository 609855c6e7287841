"""The step runtime: one delivery of one CloudEvent to one function.

A delivery (1) parses the packet, (2) in one round trip skips at once if its event id is
in the inbox and marks the process running, (3) renders the step's config and validates
it against the function's config model, (4) runs the handler, then (5) records the
outcome through :mod:`stepline.lifecycle.outcomes` — each one transaction that starts
with the inbox row, so a second delivery of the same event changes nothing. The jobs an
outcome may have ended are checked after its commit, by the lifecycle's unit of work.

Here too are the capabilities a handler's context and a trigger use (stored connections,
child jobs, starts, dead letters), so functions never touch the pool themselves."""

from __future__ import annotations

import logging
import traceback
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from cachetools import TTLCache
from cloudevents.core.base import BaseCloudEvent
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ValidationError

from stepline import lifecycle, templates
from stepline.context import ChildJob, Context, Handler, RawHttp, StoredConnection, Trigger, Waiting
from stepline.db import connection, dumps, fetch_all, fetch_one
from stepline.definition import Step, Version
from stepline.errors import DatabaseUnavailable, MalformedEvent, PermanentError, TemporaryError
from stepline.lifecycle import Delivery, Duplicate, Outcome, outcomes
from stepline.lifecycle.outcomes import Begun, Outcomes
from stepline.lifecycle.quota import OverQuota, take
from stepline.messages import plan
from stepline.packet import Packet, describe, packet_from_event
from stepline.secrets import SecretBox
from stepline.settings import Settings
from stepline.triggering import TriggerCapabilities

log = logging.getLogger(__name__)

OUTPUT_MAX_BYTES = 8 * 1024 * 1024
CONNECTION_CACHE_S = 5.0
CONNECTION_CACHE_SIZE = 256
MAX_CALL_DEPTH = 5  # Workflow.call nests at most this deep: a workflow cannot call itself for ever


class StepRuntime(TriggerCapabilities):
    def __init__(self, *, pool: AsyncConnectionPool, handler: Handler | Trigger | RawHttp,
                 settings: Settings) -> None:
        self.pool = pool
        self.handler = handler
        self.settings = settings
        self.consumer = handler.spec.name
        self.versions = lifecycle.Versions()
        self.starter = lifecycle.Starter(pool, self.versions)
        self.outcomes = Outcomes(pool)
        self._connections: TTLCache[tuple[uuid.UUID, str], StoredConnection] = TTLCache(
            CONNECTION_CACHE_SIZE, CONNECTION_CACHE_S)

    async def deliver(self, event: BaseCloudEvent) -> Outcome:
        try:
            packet = packet_from_event(event)
        except MalformedEvent as exc:
            await self.dead_letter(event, reason=str(exc))
            raise
        delivery = Delivery(self.consumer, event, packet)
        begun = await self._begin(delivery)
        if isinstance(begun, Outcome):
            return begun
        return await self._run(delivery, *begun)

    async def _begin(self, delivery: Delivery) -> Outcome | tuple[Step, Version, Begun]:
        """Everything before the handler in one round trip, shared with the deliveries
        that begin at the same moment (the version's steps are cached): the inbox looked
        at, the process and its job loaded, admission asked, the process marked running."""
        packet = delivery.packet
        try:
            version = await self.versions.load(self.pool, packet.workflow.id,
                                               packet.workflow.version)
        except PermanentError as exc:
            return await self._malformed(delivery, str(exc))
        step = version.by_id(packet.step.id)
        if step is None or not self._serves(step.function):
            return await self._malformed(
                delivery, f"step {packet.step.key!r} is not a {self.consumer} step of this version")
        begun = await self.outcomes.begin(delivery)
        if begun.seen:
            return Outcome.DUPLICATE
        if begun.status is None or not begun.ours:
            return await self._malformed(
                delivery, f"process {packet.process.id} does not exist in account "
                f"{packet.account.id}")
        if begun.job_status == "cancelled" or begun.status == "cancelled":
            return await self.outcomes.cancel(delivery)
        if begun.status in ("succeeded", "failed"):
            return Outcome.DUPLICATE
        if begun.refused:
            return await self.outcomes.fail(delivery, logs=[], error=error(
                "refused", begun.refused, packet))
        return step, version, begun

    def _serves(self, function: str) -> bool:
        """A handler serves its own function, or those its ``serves`` accepts (the one
        handler of every published service)."""
        serves = getattr(self.handler, "serves", None)
        return serves(function) if serves is not None else function == self.consumer

    async def _malformed(self, delivery: Delivery, reason: str) -> Outcome:
        await self.dead_letter(delivery.event, reason=reason)
        raise MalformedEvent(reason)

    async def _run(self, delivery: Delivery, step: Step, version: Version, begun: Begun
                   ) -> Outcome:
        packet = delivery.packet
        ctx: Context[Any] = Context(packet=packet, step=step, config=None, runtime=self)
        try:
            ctx.config = await self.config_of(step, packet)
            if self._in_transaction(ctx.config):
                return await self._run_in_transaction(ctx, delivery, version)
            result = await self.handler.run(ctx)
            if isinstance(result, Waiting):
                ctx.log(result.reason)
                return await self.outcomes.wait(delivery, logs=ctx.logs)
            output, messages = plan(step, result, version)
            check_size(output)
            outcome, _ = await self.outcomes.succeed(delivery, begun, output=output,
                                                     messages=messages, version=version,
                                                     logs=ctx.logs)
            return outcome
        except DatabaseUnavailable:
            raise
        except psycopg.DataError as exc:  # a value jsonb cannot hold: a NUL in a text, say
            return await self._fail(ctx, delivery, error(
                "unstorable", f"the step's output cannot be stored: {exc}", packet))
        except TemporaryError as exc:
            return await self._temporary(ctx, delivery, exc)
        except PermanentError as exc:
            return await self._fail(ctx, delivery, error("permanent", str(exc), packet))
        except Exception as exc:  # a handler bug fails the process; it must not crash the host
            log.exception("handler of %s failed", self.consumer)
            detail = error("unexpected", f"{type(exc).__name__}: {exc}", packet)
            detail["traceback"] = traceback.format_exc(limit=8)
            return await self._fail(ctx, delivery, detail)

    async def config_of(self, step: Step, packet: Packet) -> Any:
        """The step's config rendered over the packet (bounded: :mod:`stepline.templates`),
        then typed by the function's config model, so the catalog's defaults and rules
        hold when the step runs too."""
        rendered = await templates.render(step.config, packet.model_dump(mode="json"),
                                          verbatim=self.handler.spec.verbatim)
        model: type[BaseModel] | None = getattr(self.handler.spec, "config", None)
        if model is None:
            return rendered
        try:
            return model.model_validate(rendered)
        except ValidationError as exc:
            raise PermanentError(f"the rendered config is invalid: {describe(exc, 'config')}"
                                 ) from exc

    def _in_transaction(self, config: Any) -> bool:
        """Whether the handler's work must commit with the outbox (Database.query on the
        platform database)."""
        check = getattr(self.handler, "in_transaction", None)
        return bool(check and check(config))

    async def _run_in_transaction(self, ctx: Context[Any], delivery: Delivery,
                                  version: Version) -> Outcome:
        try:
            async with connection(self.pool) as conn, outcomes.counted(conn, delivery) as unit:
                await self._require_operator(conn, ctx.packet)
                ctx.transaction = conn
                result = await self.handler.run(ctx)
                output, messages = plan(ctx.step, result, version)
                check_size(output)
                if messages:
                    await take(conn, ctx.packet.account.id, len(messages))
                await outcomes.succeed_within(unit, delivery, output=output, messages=messages,
                                              version=version, logs=ctx.logs)
        except Duplicate:
            return Outcome.DUPLICATE
        except OverQuota as exc:  # nothing of the transaction stays: the step fails alone
            return await self._fail(ctx, delivery, error("refused", str(exc), ctx.packet))
        return Outcome.SUCCEEDED

    async def _require_operator(self, conn: psycopg.AsyncConnection, packet: Packet) -> None:
        row = await fetch_one(conn, "account_is_operator", account_id=packet.account.id)
        if not (row and row["is_operator"]):
            raise PermanentError(
                f"{self.consumer} in the platform's own transaction (no connection) is for "
                "operator accounts only")

    async def _temporary(self, ctx: Context[Any], delivery: Delivery,
                         exc: TemporaryError) -> Outcome:
        packet, policy = ctx.packet, ctx.step.retry
        if packet.attempt >= policy.attempts:
            message = f"gave up after {packet.attempt} attempt(s): {exc}"
            return await self._fail(ctx, delivery, error("exhausted", message, packet))
        delay = exc.delay_s if exc.delay_s is not None else policy.delay_s(packet.attempt)
        ctx.log(f"attempt {packet.attempt} failed, retrying in {delay:.1f}s: {exc}", "warning")
        return await self.outcomes.retry(delivery, error=error("temporary", str(exc), packet),
                                         due=datetime.now(UTC) + timedelta(seconds=delay),
                                         logs=ctx.logs)

    async def _fail(self, ctx: Context[Any], delivery: Delivery, detail: dict[str, Any]
                    ) -> Outcome:
        return await self.outcomes.fail(delivery, error=detail, logs=ctx.logs)

    # -- capabilities, for contexts and triggers --------------------------------------

    async def dead_letter(self, event: BaseCloudEvent, *, reason: str) -> None:
        """Keep an event nobody can act on, with the reason."""
        letter = lifecycle.DeadLetter.of_event(self.consumer, event, reason=reason)
        async with connection(self.pool) as conn:
            await lifecycle.keep(conn, letter)

    async def start(self, target: lifecycle.StepTarget | lifecycle.WorkflowTarget,
                    **options: Any) -> lifecycle.Started | lifecycle.Refusal:
        return await self.starter.start(target, **options)

    async def stored_connection(self, account_id: uuid.UUID, name: str, *,
                                kind: str | None = None) -> StoredConnection:
        """The account's connection, its secret opened; kept a few seconds, so that the
        items of a fan-out do not each read and decrypt it (a changed connection is used
        within :data:`CONNECTION_CACHE_S`)."""
        stored = self._connections.get((account_id, name))
        if stored is None:
            stored = self._connections[account_id, name] = await self._load_connection(
                account_id, name)
        if kind is not None and stored.kind != kind:
            raise PermanentError(f"connection {name!r} is {stored.kind}, not {kind}")
        return stored

    async def _load_connection(self, account_id: uuid.UUID, name: str) -> StoredConnection:
        async with connection(self.pool) as conn:
            row = await fetch_one(conn, "connection_by_name", account_id=account_id, name=name)
        if row is None:
            raise PermanentError(f"connection {name!r} does not exist in this account")
        secret = SecretBox(self.settings.secret_key).open(row["secret"]) if row["secret"] else {}
        return StoredConnection(name=name, kind=row["kind"], config=row["config"], secret=secret)

    async def child_job(self, process_id: uuid.UUID) -> ChildJob | None:
        async with connection(self.pool) as conn:
            child = await fetch_one(conn, "child_job", process_id=process_id)
            if child is None:
                return None
            outputs = []
            if child["status"] == "succeeded":
                rows = await fetch_all(conn, "job_result", job_id=child["id"])
                outputs = [r["output"] for r in rows]
        return ChildJob(id=child["id"], status=child["status"], outputs=outputs)

    async def start_child(self, packet: Packet, workflow_id: uuid.UUID, payload: Any
                          ) -> lifecycle.Started:
        parent, run = await self._call(packet)
        started = await self.start(
            lifecycle.WorkflowTarget(workflow_id, packet.account.id), payload=payload,
            trigger="call", idempotency_key=f"call:{packet.process.id}:{run}", parent=parent)
        if isinstance(started, lifecycle.Refusal):
            raise PermanentError(f"the child job cannot start: {started.message}")
        return started

    async def start_service(self, packet: Packet, name: str, payload: Any
                            ) -> lifecycle.Started:
        """The child job runs in the publisher's account: no user of the caller's goes
        with it."""
        parent, run = await self._call(packet)
        started = await self.start(
            lifecycle.ServiceTarget(name, packet.account.id), payload=payload,
            trigger="service", idempotency_key=f"call:{packet.process.id}:{run}", parent=parent)
        if isinstance(started, lifecycle.Refusal):
            raise PermanentError(started.message)
        return started

    async def _call(self, packet: Packet) -> tuple[lifecycle.Parent, str]:
        """The calling process as a child job's parent (refused past the depth limit),
        and its run: one child per run of the process, however often it is delivered."""
        async with connection(self.pool) as conn:
            call = await fetch_one(conn, "call_context", process_id=packet.process.id)
        depth = call["depth"] + 1
        if depth > MAX_CALL_DEPTH:
            raise PermanentError(f"calls nest deeper than {MAX_CALL_DEPTH}: refused")
        run = call["started_at"].isoformat() if call["started_at"] else "first"
        return lifecycle.Parent(packet.process.id, depth), run

def check_size(output: Any) -> None:
    """A step's output (and so the messages it sends on) is at most
    :data:`OUTPUT_MAX_BYTES` of JSON (documented in docs/operations.md, Limits)."""
    size = len(dumps(output))
    if size > OUTPUT_MAX_BYTES:
        raise PermanentError(f"the step's output is {size} bytes of JSON: at most "
                             f"{OUTPUT_MAX_BYTES} are kept and sent on")


def error(kind: str, message: str, packet: Packet) -> dict[str, Any]:
    return {"type": kind, "message": message, "attempt": packet.attempt}
