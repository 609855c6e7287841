"""Fixtures of the schedule tests: the platform database with workflows made through
the control plane, an in-memory Kubernetes API server over HTTP (kmock), and a local
recorder of the ticks the ticker POSTs."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from stepline.settings import sqlalchemy_url
from stepline_control.schedules.options import ScheduleOptions
from support import control_plane

from .helpers import NAMESPACE, Recorder

IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_async_engine(sqlalchemy_url(database_url))
    try:
        yield async_sessionmaker(engine, expire_on_commit=False)
    finally:
        await engine.dispose()


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The control plane in this process, as an operator."""
    async with control_plane(database_url) as client:
        yield client


@pytest.fixture
def options() -> ScheduleOptions:
    return ScheduleOptions(namespace=NAMESPACE, interval_s=0.2, watch=False,
                           function_url="http://cronjob.stepline.svc.cluster.local",
                           refresh_s=5.0, retry_delays_s=(0.05, 0.05, 0.05))


@pytest.fixture
async def kube(kmock: Any) -> AsyncIterator[Any]:
    """The adapter, talking HTTP to kmock's in-memory API server."""
    from stepline_control.schedules.kube import CRONJOBS, PINGSOURCES, KubeApi, api_client

    for resource in (PINGSOURCES, CRONJOBS):
        kmock.resources[f"{resource.group}/{resource.version}/{resource.plural}"] = {}
    adapter = KubeApi(api_client(str(kmock.url)), namespace=NAMESPACE)
    try:
        yield adapter
    finally:
        adapter.close()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    with Recorder() as running:
        yield running


def _missing(what: str) -> None:
    """Locally a missing tool skips; in CI (CI=true) it fails, as tests/knative does."""
    if IN_CI:
        pytest.fail(what)
    pytest.skip(what)


@pytest.fixture(scope="session")
def pingsource_schema() -> dict[str, Any]:
    """The PingSource CRD's schema from shared/, closed to unknown fields (as
    tests/knative reads it), with the root fields every custom resource has."""
    from knative import checks

    path = checks.shared_dir() / "schemas" / "knative" / "sources.knative.dev_v1_PingSource.json"
    if not path.is_file():
        _missing(f"{path} not found (set STEPLINE_SHARED_DIR)")
    schema = checks.strict(json.loads(path.read_text(encoding="utf-8")))
    schema["properties"].update({"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                                 "metadata": {"type": "object"}})
    return schema


@pytest.fixture(scope="session")
def kubernetes_validate() -> Any:
    try:
        import kubernetes_validate
    except ImportError:
        _missing("kubernetes-validate is not installed")
    return kubernetes_validate
