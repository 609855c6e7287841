"""Fixtures of the Queue steps' source reconciler: the schedules' fixtures (the control
plane, its sessions, kmock's in-memory API server) with the RabbitmqSources and the
core Secrets registered in it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from schedules.conftest import _missing, api, kubernetes_validate, options, sessions  # noqa: F401

NAMESPACE = "stepline"


@pytest.fixture
async def kube(kmock: Any) -> AsyncIterator[Any]:
    from stepline_control.schedules.kube import RABBITMQSOURCES, SECRETS, KubeApi, api_client

    kmock.resources[f"{RABBITMQSOURCES.group}/{RABBITMQSOURCES.version}/"
                    f"{RABBITMQSOURCES.plural}"] = {}
    kmock.resources[f"{SECRETS.version}/{SECRETS.plural}"] = {}
    adapter = KubeApi(api_client(str(kmock.url)), namespace=NAMESPACE)
    try:
        yield adapter
    finally:
        adapter.close()


@pytest.fixture(scope="session")
def rabbitmqsource_schema() -> dict[str, Any]:
    """The RabbitmqSource CRD's schema from shared/, closed to unknown fields."""
    from knative import checks

    path = (checks.shared_dir() / "schemas" / "knative"
            / "sources.knative.dev_v1alpha1_RabbitmqSource.json")
    if not path.is_file():
        _missing(f"{path} not found (set STEPLINE_SHARED_DIR)")
    schema = checks.strict(json.loads(path.read_text(encoding="utf-8")))
    schema["properties"].update({"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                                 "metadata": {"type": "object"}})
    return schema
