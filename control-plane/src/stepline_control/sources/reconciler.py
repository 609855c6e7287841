"""The level-triggered reconciler of the Queue steps' RabbitmqSources (in a cluster; on one
machine the platform consumes the queues itself, ``stepline_relay.onemachine.sources``).

Each pass reads the Queue steps to consume (``stepline.queue_sources``: live, neither
paused nor blocked) and the objects this control plane owns (by label), then creates
what is missing, patches a Secret that drifted, deletes a RabbitmqSource that drifted
(its spec cannot change: the next pass makes it again) and deletes its own objects whose
step is gone — so a paused workflow's messages wait in its queue. The broker's host goes
through the platform's address guard first: a host it refuses gets no source. Then each
step's health is reported from what the cluster says of its source (its Ready
condition), or from why it has none, every pass: the reconciler's silence reads as
failing too."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from stepline.errors import PermanentError, SteplineError
from stepline.lifecycle import triggers
from stepline.net import Network, check_url
from stepline.queue_sources import QueueSource
from stepline_control.schedules.errors import SchedulesError
from stepline_control.schedules.kube import RABBITMQSOURCES, SECRETS, KubeApi, Resource
from stepline_control.schedules.options import ScheduleOptions
from stepline_control.sources import objects

log = logging.getLogger(__name__)

DEBOUNCE_S = 0.2
Body = dict[str, Any]
LoadSources = Callable[[], Awaitable[list[QueueSource]]]
Report = Callable[[uuid.UUID, triggers.State, str | None], Awaitable[None]]


@dataclass(frozen=True)
class Plan:
    create: list[tuple[Resource, Body]]
    patch: list[tuple[Resource, str, Body]]
    delete: list[tuple[Resource, str]]


def desired_objects(sources: Iterable[QueueSource], options: ScheduleOptions
                    ) -> tuple[dict[str, Body], dict[str, Body]]:
    """The RabbitmqSources and Secrets wanted, by name: one each per source with a broker."""
    usable = [s for s in sources if s.broker is not None and s.problem is None]
    return ({objects.name_of(s): objects.rabbitmq_source(s, options) for s in usable},
            {objects.name_of(s): objects.secret(s, options) for s in usable})


def plan(sources: dict[str, Body], secrets: dict[str, Body], actual_sources: Iterable[Body],
         actual_secrets: Iterable[Body]) -> Plan:
    """What to do so that the owned objects match (others are left out)."""
    have_sources = {o["metadata"]["name"]: o for o in actual_sources if objects.is_owned(o)}
    have_secrets = {o["metadata"]["name"]: o for o in actual_secrets if objects.is_owned(o)}
    drifted = [n for n, body in sources.items()
               if n in have_sources and objects.drifted(have_sources[n], body, "spec")]
    return Plan(
        create=[(SECRETS, b) for n, b in secrets.items() if n not in have_secrets]
        + [(RABBITMQSOURCES, b) for n, b in sources.items() if n not in have_sources],
        patch=[(SECRETS, n, {"metadata": {"labels": b["metadata"]["labels"]}, "data": b["data"]})
               for n, b in secrets.items()
               if n in have_secrets and objects.drifted(have_secrets[n], b, "data")],
        delete=[(RABBITMQSOURCES, n) for n in have_sources if n not in sources or n in drifted]
        + [(SECRETS, n) for n in have_secrets if n not in secrets],
    )


def health_of(source: QueueSource, actual: Body | None) -> tuple[triggers.State, str | None] | None:
    """What the step's health is by its source: None while the cluster has said nothing."""
    if source.problem is not None:
        return "failing", source.problem
    found = objects.readiness(actual) if actual is not None else None
    if found is None:
        return None
    ready, why = found
    return ("connected", None) if ready else ("failing", f"RabbitmqSource not ready: {why}")


def guard_url(host: str, port: int) -> str:
    """The broker as the URL the address guard checks (it checks URLs)."""
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


@dataclass
class PassResult:
    created: list[str] = field(default_factory=list)
    patched: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.patched or self.deleted or self.failed)


class QueueSourceReconciler:
    def __init__(self, *, kube: KubeApi, load: LoadSources, report: Report,
                 options: ScheduleOptions, allowed: list[Network]) -> None:
        self._kube, self._load, self._report = kube, load, report
        self._options, self._allowed = options, allowed
        self._wake = asyncio.Event()

    def poke(self) -> None:
        self._wake.set()

    async def aclose(self) -> None:
        self._kube.close()

    async def guarded(self) -> list[QueueSource]:
        """The sources, each broker host through the address guard: a refused one is a
        problem, never a source in the cluster."""
        checked = []
        for source in await self._load():
            if source.broker is not None and source.problem is None:
                try:
                    await check_url(guard_url(source.broker.host, source.broker.port),
                                    self._allowed)
                except PermanentError as exc:
                    source = replace(source, problem=str(exc))
                except SteplineError:  # a name that does not resolve now: the source says
                    pass
            checked.append(source)
        return checked

    async def reconcile_once(self) -> PassResult:
        sources = await self.guarded()
        wanted_sources, wanted_secrets = desired_objects(sources, self._options)
        actual_sources = await self._kube.list(RABBITMQSOURCES,
                                               label_selector=objects.OWNED_SELECTOR)
        actual_secrets = await self._kube.list(SECRETS, label_selector=objects.OWNED_SELECTOR)
        result = await self._apply(plan(wanted_sources, wanted_secrets, actual_sources,
                                        actual_secrets))
        if result.changed:
            log.info("queue sources reconciled: %s", result)
        by_name = {o["metadata"]["name"]: o for o in actual_sources}
        await self._report_health(sources, by_name)
        return result

    async def _apply(self, todo: Plan) -> PassResult:
        result = PassResult()
        for resource, body in todo.create:
            await self._do(result.created, result, resource, body["metadata"]["name"],
                           self._kube.create(resource, body))
        for resource, name, body in todo.patch:
            await self._do(result.patched, result, resource, name,
                           self._kube.patch(resource, name, body))
        for resource, name in todo.delete:
            await self._do(result.deleted, result, resource, name,
                           self._kube.delete(resource, name))
        return result

    async def _do(self, done: list[str], result: PassResult, resource: Resource, name: str,
                  call: Awaitable[None]) -> None:
        try:
            await call
        except SchedulesError as exc:
            log.error("could not change %s %s: %s", resource.kind, name, exc)
            result.failed.append(f"{resource.kind}/{name}")
            return
        done.append(f"{resource.kind}/{name}")

    async def _report_health(self, sources: list[QueueSource], actual: dict[str, Body]) -> None:
        for source in sources:
            found = health_of(source, actual.get(objects.name_of(source)))
            if found is not None:
                try:
                    await self._report(source.step_id, *found)
                except SteplineError as exc:
                    log.warning("health of Queue step %s not recorded: %s", source.step_id, exc)

    async def run(self) -> None:
        """Passes until cancelled; a watch on the owned sources hastens the next one (a
        source that became Ready, one that drifted)."""
        watch = None
        if self._options.watch:
            watch = asyncio.create_task(self._kube.watch(
                RABBITMQSOURCES, label_selector=objects.OWNED_SELECTOR,
                on_event=lambda _type, _obj: self.poke()), name="stepline-queue-sources-watch")
        try:
            while True:
                self._wake.clear()
                try:
                    await self.reconcile_once()
                except Exception:  # a control loop outlives any one failure
                    log.exception("queue source reconciliation failed; retrying")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._options.interval_s)
                    await asyncio.sleep(DEBOUNCE_S)
        finally:
            if watch is not None:
                watch.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watch
