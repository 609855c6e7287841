"""The schedules of ``CronJob`` and ``Email`` steps: every such step that is the entry of
a workflow's current version ticks — a CronJob step on its cron schedule, an Email step
every ``every`` seconds — and each tick is the CloudEvent a Knative PingSource sends
(:mod:`.events`) to the step's function: the ``CronJob`` function starts the job, the
``Email`` function polls the mailbox. ``STEPLINE_SCHEDULER`` picks who sends the ticks:

- ``local`` — an in-process ticker (:mod:`.ticker`) POSTs them to the function's URL;
- ``pingsource`` — a reconciler (:mod:`.reconciler`) keeps a PingSource per schedule;
- ``cronjob`` — the same reconciler keeps a ``batch/v1`` CronJob per schedule.

The control plane wires it in its lifespan::

    app.state.schedules_task = schedules.start(app.state, settings)
    ...
    await schedules.stop(app.state)

and calls ``schedules.poke(app.state)`` after a workflow or an account changes, so the
schedules follow at once instead of at the next periodic pass. Only :mod:`.kube` imports
the Kubernetes client, and only the cluster backends import :mod:`.kube`."""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from stepline.settings import Settings
from stepline_control.schedules.desired import CRON_FUNCTION, TICKED, load_desired
from stepline_control.schedules.errors import SchedulesError
from stepline_control.schedules.kept import Kept
from stepline_control.schedules.options import ScheduleOptions

log = logging.getLogger(__name__)

TASK_NAME = "stepline-schedules"
_KEPT = Kept("schedules", TASK_NAME)

__all__ = ["ScheduleOptions", "Scheduler", "SchedulesError", "build", "poke", "start", "stop"]


class Scheduler(Protocol):
    async def run(self) -> None:
        """Keep the schedules until cancelled."""

    def poke(self) -> None:
        """Follow the database now rather than at the next periodic look."""

    async def aclose(self) -> None: ...


def build(settings: Settings, sessions: async_sessionmaker[AsyncSession], *,
          options: ScheduleOptions | None = None, **extra: Any) -> Scheduler | None:
    """The scheduler ``settings.scheduler`` names, or None when the local ticker has no
    function to send to (``settings.function_urls`` names neither ``CronJob`` nor
    ``Email``). ``extra``
    reaches the scheduler's constructor (a test's clock, or its Kubernetes client)."""
    options = options or ScheduleOptions()
    load = partial(load_desired, sessions)
    if settings.scheduler == "local":
        url = settings.function_urls.get(CRON_FUNCTION)
        if not any(f in settings.function_urls for f in TICKED):
            log.info("no URL for the %s functions: schedules do not tick", ", ".join(TICKED))
            return None
        from stepline_control.schedules.ticker import Ticker

        return Ticker(load=load, url=url, options=options, urls=settings.function_urls,
                      **extra)
    from stepline_control.schedules.kube import KubeApi, api_client
    from stepline_control.schedules.reconciler import BACKENDS, Reconciler

    kube = extra.pop("kube", None) or KubeApi(api_client(options.kube_host),
                                              namespace=options.namespace)
    return Reconciler(kube=kube, backend=BACKENDS[settings.scheduler], load=load,
                      options=options, **extra)


def start(state: Any, settings: Settings, *, options: ScheduleOptions | None = None,
          **extra: Any) -> asyncio.Task[None] | None:
    """Builds the scheduler over ``state.sessions`` and runs it as a task; both are kept
    on ``state`` (``state.schedules``, ``state.schedules_task``) for :func:`poke` and
    :func:`stop`."""
    return _KEPT.start(state, build(settings, state.sessions, options=options, **extra),
                       started=f"schedules started ({settings.scheduler})")


def poke(state: Any) -> None:
    """Make the schedules follow the database now (after a workflow or account change)."""
    _KEPT.poke(state)


async def stop(state: Any) -> None:
    await _KEPT.stop(state)
