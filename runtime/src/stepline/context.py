"""What a function's handler sees and may do: the packet, its step, its config (typed by
the function's config model, validated after the templates were rendered), a log, and
capabilities — a stored connection by name and kind, the step's child job, a service
call — so that no function reaches into the platform's pool or tables. Exported to
function authors by :mod:`stepline.sdk`."""

from __future__ import annotations

import ipaddress
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

import psycopg
from cloudevents.core.base import BaseCloudEvent

from stepline.catalog import FunctionSpec
from stepline.definition import Step
from stepline.errors import PermanentError
from stepline.lifecycle import Refusal, Seen, Started, StepTarget, WorkflowTarget
from stepline.lifecycle.triggers import State
from stepline.packet import Packet
from stepline.settings import Settings

ConfigT = TypeVar("ConfigT")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class StoredConnection:
    name: str
    kind: str
    config: dict[str, Any]
    secret: dict[str, Any]


@dataclass(frozen=True)
class Waiting:
    """A handler's answer when its result comes later (Workflow.call's child job): the
    process stays running, holding no worker, until it is delivered again."""

    reason: str


@dataclass(frozen=True)
class ChildJob:
    """The job a step started and waits for (Workflow.call)."""

    id: uuid.UUID
    status: str
    outputs: list[Any]  # the outputs of its last steps, once it succeeded

    def result(self, what: str) -> Any:
        """What the waiting step makes of it (``what`` names it in messages): still
        :class:`Waiting` while it runs, a permanent error if it ended otherwise than
        succeeded, else its result — its one output, or the array of them when several."""
        if self.status == "running":
            return Waiting(f"{what} is still running")
        if self.status != "succeeded":
            raise PermanentError(f"{what} ended {self.status}")
        return self.outputs[0] if len(self.outputs) == 1 else self.outputs


class Capabilities(Protocol):
    """What the step runtime does for a context (:class:`stepline.step.StepRuntime`)."""

    settings: Settings

    async def stored_connection(self, account_id: uuid.UUID, name: str, *,
                                kind: str | None = None) -> StoredConnection: ...

    async def child_job(self, process_id: uuid.UUID) -> ChildJob | None: ...

    async def start_child(self, packet: Packet, workflow_id: uuid.UUID, payload: Any
                          ) -> Started: ...

    async def start_service(self, packet: Packet, name: str, payload: Any) -> Started: ...


@dataclass
class Context(Generic[ConfigT]):
    packet: Packet
    step: Step
    config: ConfigT
    runtime: Capabilities = field(repr=False)
    # only for a handler that runs in the step's own transaction (``in_transaction``)
    transaction: psycopg.AsyncConnection | None = field(default=None, repr=False)
    logs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def payload(self) -> Any:
        return self.packet.payload

    @property
    def idempotency_key(self) -> str:
        """The stable key of this delivery: the process id, the same on every redelivery
        of the message, every retry attempt of the step and a retry from the API, and
        different for every other message or step. The effect ledger keys its rows by
        it and Http.request sends it as ``Idempotency-Key``."""
        return str(self.packet.process.id)

    def effect_key(self, part: str | None = None) -> str:
        """The key of one of several effects of this delivery (``part``: say a page
        number): ``<idempotency_key>:<part>``, or the delivery's key without a part."""
        return self.idempotency_key if part is None else f"{self.idempotency_key}:{part}"

    @property
    def allowed_networks(self) -> list[Network]:
        """Private networks an operator lets this platform's outbound calls reach."""
        return self.runtime.settings.allowed_networks

    def log(self, message: str, level: str = "info", **fields: Any) -> None:
        # a NUL character cannot be stored: a log line quoting one must not fail the step
        self.logs.append({"at": datetime.now(UTC).isoformat(), "level": level,
                          "message": message.replace("\x00", "\ufffd"), **fields})

    async def connection(self, name: str, *, kind: str | None = None) -> StoredConnection:
        """The account's connection ``name`` with its secret opened; a permanent error if
        there is none, or it is not of ``kind``."""
        return await self.runtime.stored_connection(self.packet.account.id, name, kind=kind)

    async def child_job(self) -> ChildJob | None:
        """The job this step started earlier (:meth:`start_child`), or None."""
        return await self.runtime.child_job(self.packet.process.id)

    async def start_child(self, workflow_id: uuid.UUID, payload: Any) -> Started:
        """Start a workflow of this account as this step's child job, once per process
        however often this runs; its end delivers this step again. A refusal (blocked,
        paused, quota, too deep) is the step's permanent error."""
        return await self.runtime.start_child(self.packet, workflow_id, payload)

    async def start_service(self, name: str, payload: Any) -> Started:
        """Call the published service ``name`` with ``payload`` as this step's child job,
        once per process: it runs in the publisher's account, and its end delivers this
        step again (read it with :meth:`child_job`). A call the service refuses (unknown,
        unpublished, private, an input its schema rejects, its publisher blocked or over
        quota) is the step's permanent error, and is not billed."""
        return await self.runtime.start_service(self.packet, name, payload)


class Handler(Protocol):
    """An action function: ``run`` returns the step's result (or :class:`Waiting`, or a
    :class:`stepline.messages.Route`), or raises PermanentError / TemporaryError."""

    spec: FunctionSpec

    async def run(self, ctx: Context[Any]) -> Any: ...


@dataclass(frozen=True)
class TriggerStep:
    """A live trigger step as its consumer or poller sees it (Queue, Email)."""

    id: uuid.UUID
    function: str
    workflow_id: uuid.UUID
    account_id: uuid.UUID
    config: dict[str, Any]
    cursor: dict[str, Any] | None  # how far a poller has read its source
    stopped: bool  # paused or blocked: nothing may start now


class TriggerRuntime(Protocol):
    """What a trigger function may do: start jobs, and keep what it cannot act on. A
    trigger that reaches a source of its own (a queue, a mailbox) also starts each
    event's job with its keys (:meth:`fire`), keeps what cannot start one as a dead
    letter of its step (:meth:`reject`), reports how its source is (:meth:`report`) and
    opens the step's connection (:meth:`connection`)."""

    settings: Settings

    async def start(self, target: StepTarget | WorkflowTarget, **options: Any
                    ) -> Started | Refusal: ...

    async def dead_letter(self, event: BaseCloudEvent, *, reason: str) -> None: ...

    async def fire(self, target: StepTarget, **options: Any) -> Started | Refusal | Seen: ...

    async def reject(self, step: TriggerStep, *, key: str, reason: str,
                     headers: dict[str, str], body: str | None,
                     cursor: dict[str, Any] | None = None) -> None: ...

    async def trigger_step(self, step_id: uuid.UUID, function: str) -> TriggerStep | None: ...

    async def report(self, step_id: uuid.UUID, state: State, *, error: str | None = None
                     ) -> None: ...

    async def move_cursor(self, step_id: uuid.UUID, cursor: dict[str, Any]) -> None: ...

    async def connection(self, account_id: uuid.UUID, name: str, *, kind: str
                         ) -> StoredConnection: ...


@runtime_checkable
class Trigger(Protocol):
    """A trigger function (CronJob): its events are not packets but starts of jobs; it
    answers with what it did (``{"outcome": "started", "job_id": ...}``)."""

    spec: FunctionSpec

    async def fire(self, runtime: TriggerRuntime, event: BaseCloudEvent) -> dict[str, Any]: ...


@runtime_checkable
class RawHttp(Protocol):
    """A function served with func's ``invoke: http`` (Webhook): it reads the request
    itself and answers ``(status, body)``."""

    spec: FunctionSpec

    async def http(self, runtime: TriggerRuntime, scope: dict[str, Any], body: bytes
                   ) -> tuple[int, dict[str, Any]]: ...
