"""The Queue steps in a cluster: one RabbitmqSource per Queue step, with the Secret it
reads the tenant's broker from, kept by a level-triggered reconciler
(:mod:`.reconciler`, pure objects in :mod:`.objects`, the Kubernetes calls in the
schedules' one adapter) — in the ``pingsource`` and ``cronjob`` modes of
``STEPLINE_SCHEDULER``, the cluster's. On one machine (``local``) the platform consumes
each Queue step's queue itself instead (``stepline-queue-sources``).

Wired like the schedules, in the control plane's lifespan::

    sources.start(app.state, settings)
    ...
    await sources.stop(app.state)

and poked with them after a workflow or an account changes."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from stepline.lifecycle import triggers
from stepline.queue_sources import QueueSource, queue_sources
from stepline.secrets import SecretBox
from stepline.settings import Settings
from stepline_control.schedules.kept import Kept
from stepline_control.schedules.options import ScheduleOptions
from stepline_control.sessions import driver_connection

TASK_NAME = "stepline-queue-sources"
_KEPT = Kept("queue_sources", TASK_NAME)


def loader(sessions: async_sessionmaker[AsyncSession], key: str | None):
    async def load() -> list[QueueSource]:
        async with sessions() as session:
            return await queue_sources(await driver_connection(session), SecretBox(key))
    return load


def reporter(sessions: async_sessionmaker[AsyncSession]):
    async def report(step_id: uuid.UUID, state: triggers.State, error: str | None) -> None:
        async with sessions() as session:
            await triggers.report(await driver_connection(session), step_id, state, error=error)
            await session.commit()
    return report


def build(settings: Settings, sessions: async_sessionmaker[AsyncSession], *,
          options: ScheduleOptions | None = None, kube: Any = None) -> Any:
    """The reconciler, or None on one machine (``STEPLINE_SCHEDULER=local``)."""
    if settings.scheduler == "local":
        return None
    from stepline_control.schedules.kube import KubeApi, api_client
    from stepline_control.sources.reconciler import QueueSourceReconciler

    options = options or ScheduleOptions()
    kube = kube or KubeApi(api_client(options.kube_host), namespace=options.namespace)
    return QueueSourceReconciler(kube=kube, load=loader(sessions, settings.secret_key),
                                 report=reporter(sessions), options=options,
                                 allowed=settings.allowed_networks)


def start(state: Any, settings: Settings, **extra: Any) -> asyncio.Task[None] | None:
    return _KEPT.start(state, build(settings, state.sessions, **extra),
                       started="queue sources reconciled in the cluster")


def poke(state: Any) -> None:
    _KEPT.poke(state)


async def stop(state: Any) -> None:
    await _KEPT.stop(state)
