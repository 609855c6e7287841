"""The level-triggered reconciler of the ``pingsource`` and ``cronjob`` backends.

Each pass reads the desired schedules from the database and the objects this control
plane owns from the cluster (by label), then creates what is missing, patches what
drifted, and deletes its own objects whose step is gone. Objects of other owners are never
touched, even when they carry a name the reconciler would use. Passes run every
``interval_s``, at once when :meth:`Reconciler.poke` is called (after a workflow changes),
and shortly after a watch sees any owned object change (drift is repaired in moments).
A failed pass is logged and the next one starts from scratch: nothing is remembered
between passes, so nothing can go stale."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from stepline_control.schedules import objects
from stepline_control.schedules.desired import DesiredSchedule
from stepline_control.schedules.errors import ObjectExists, SchedulesError
from stepline_control.schedules.events import object_name
from stepline_control.schedules.kube import CRONJOBS, PINGSOURCES, KubeApi, Resource
from stepline_control.schedules.options import ScheduleOptions

log = logging.getLogger(__name__)

# events from the watch arrive in bursts (our own writes among them): one pass for a burst
DEBOUNCE_S = 0.2

Body = dict[str, Any]
LoadDesired = Callable[[], Awaitable[list[DesiredSchedule]]]


class Backend(Protocol):
    resource: Resource

    def desired(self, schedules: Iterable[DesiredSchedule], options: ScheduleOptions
                ) -> dict[str, Body]: ...


class PingSourceBackend:
    """A PingSource per running schedule. A PingSource cannot be suspended, so a paused
    schedule has none."""

    resource = PINGSOURCES

    def desired(self, schedules: Iterable[DesiredSchedule], options: ScheduleOptions
                ) -> dict[str, Body]:
        return {name: objects.pingsource(name, s, options)
                for s in schedules if not s.paused
                for name in [object_name(s.step_id)]}


class CronJobBackend:
    """A CronJob per schedule, suspended while paused."""

    resource = CRONJOBS

    def desired(self, schedules: Iterable[DesiredSchedule], options: ScheduleOptions
                ) -> dict[str, Body]:
        return {name: objects.cronjob(name, s, options)
                for s in schedules for name in [object_name(s.step_id)]}


BACKENDS: dict[str, Backend] = {"pingsource": PingSourceBackend(), "cronjob": CronJobBackend()}


@dataclass(frozen=True)
class Plan:
    create: list[Body]
    patch: list[tuple[str, Body]]
    delete: list[str]


def plan(desired: dict[str, Body], actual: Iterable[Body]) -> Plan:
    """What to do to make the owned objects match ``desired``; others are left out."""
    owned = {obj["metadata"]["name"]: obj for obj in actual if objects.is_owned(obj)}
    return Plan(
        create=[body for name, body in desired.items() if name not in owned],
        patch=[(name, objects.repair_patch(body)) for name, body in desired.items()
               if name in owned and objects.drifted(owned[name], body)],
        delete=[name for name in owned if name not in desired],
    )


@dataclass
class PassResult:
    created: list[str] = field(default_factory=list)
    patched: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    # ours by label but not listed (a label was removed): put back
    adopted: list[str] = field(default_factory=list)
    # a name we need is held by an object of another owner: left alone
    conflicts: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.patched or self.deleted or self.adopted)


class Reconciler:
    def __init__(self, *, kube: KubeApi, backend: Backend, load: LoadDesired,
                 options: ScheduleOptions) -> None:
        self._kube, self._backend, self._load, self._options = kube, backend, load, options
        self._wake = asyncio.Event()

    def poke(self) -> None:
        """Run a pass now (a workflow changed), not at the next interval."""
        self._wake.set()

    async def aclose(self) -> None:
        self._kube.close()

    async def reconcile_once(self) -> PassResult:
        desired = self._backend.desired(await self._load(), self._options)
        resource = self._backend.resource
        actual = await self._kube.list(resource, label_selector=objects.OWNED_SELECTOR)
        todo = plan(desired, actual)
        result = PassResult()
        for body in todo.create:
            await self._apply(result, "create", body["metadata"]["name"], self._create(body))
        for name, patch in todo.patch:
            await self._apply(result, "patch", name, self._kube.patch(resource, name, patch))
        for name in todo.delete:
            await self._apply(result, "delete", name, self._kube.delete(resource, name))
        if result.changed or result.conflicts or result.failed:
            log.info("schedules reconciled: %s", result)
        return result

    async def _create(self, body: Body) -> str:
        try:
            await self._kube.create(self._backend.resource, body)
            return "created"
        except ObjectExists:
            return await self._adopt(body)

    async def _adopt(self, body: Body) -> str:
        """The name is taken by an object the list did not return: ours if it still says
        it is managed by us (then its labels and spec are put back), else another's."""
        name = body["metadata"]["name"]
        found = await self._kube.get(self._backend.resource, name)
        labels = ((found or {}).get("metadata") or {}).get("labels") or {}
        if labels.get(objects.MANAGED_BY) != objects.MANAGER:
            log.warning("%s %s exists and is not managed by Stepline: left alone",
                        self._backend.resource.kind, name)
            return "conflicts"
        await self._kube.patch(self._backend.resource, name, objects.repair_patch(body))
        return "adopted"

    async def _apply(self, result: PassResult, verb: str, name: str,
                     call: Awaitable[str | None]) -> None:
        try:
            outcome = await call
        except SchedulesError as exc:
            log.error("could not %s %s %s: %s", verb, self._backend.resource.kind, name, exc)
            result.failed.append(name)
            return
        default = {"create": "created", "patch": "patched", "delete": "deleted"}[verb]
        getattr(result, outcome or default).append(name)

    async def run(self) -> None:
        """Passes until cancelled; a watch on the owned objects hastens the next one."""
        watch = None
        if self._options.watch:
            watch = asyncio.create_task(self._kube.watch(
                self._backend.resource, label_selector=objects.OWNED_SELECTOR,
                on_event=lambda _type, _obj: self.poke()), name="stepline-schedules-watch")
        try:
            while True:
                self._wake.clear()
                try:
                    await self.reconcile_once()
                except Exception:  # a control loop outlives any one failure
                    log.exception("schedule reconciliation failed; retrying")
                await self._wait()
        finally:
            if watch is not None:
                watch.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watch

    async def _wait(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self._options.interval_s)
            await asyncio.sleep(DEBOUNCE_S)
