"""What the reconciler sends the Kubernetes API: only the verbs its Role grants, and
bodies the API server (and Knative's webhooks) accept. The calls are read from kmock's
own request log, not from the adapter."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import httpx
from jsonschema import Draft4Validator
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from stepline_control.schedules import objects
from stepline_control.schedules.events import object_name
from stepline_control.schedules.kube import CRONJOBS, PINGSOURCES, KubeApi
from stepline_control.schedules.options import ScheduleOptions

from .helpers import (
    Intruder,
    call,
    cron_workflow,
    eventually,
    replace_schedule,
    schedule_of,
    stored,
)
from .test_reconciler import reconciler

Sessions = async_sessionmaker[AsyncSession]
VERBS = {"LIST": "list", "WATCH": "watch", "FETCH": "get", "CREATE": "create",
         "UPDATE": "patch", "DELETE": "delete"}
KUBERNETES_VERSION = "1.35"


def adapter_requests(kmock: Any) -> list[Any]:
    return [request for request in kmock
            if {k.lower(): v for k, v in request.headers.items()}.get("user-agent")
            != Intruder.USER_AGENT]


async def run_loop(backend: str, api: httpx.AsyncClient, sessions: Sessions, kube: KubeApi,
                   kmock: Any, options: ScheduleOptions) -> None:
    """A workflow's life under the running reconciler; drift is repaired by the watch
    alone (the periodic pass is a minute away)."""
    rec = reconciler(backend, kube, sessions,
                     options.model_copy(update={"watch": True, "interval_s": 60.0}))
    resource = PINGSOURCES if backend == "pingsource" else CRONJOBS
    task = asyncio.create_task(rec.run())
    try:
        workflow_id = await cron_workflow(api, name=f"cron {backend}")
        name = object_name((await schedule_of(sessions, workflow_id)).step_id)
        rec.poke()
        await eventually(lambda: name in stored(kmock, resource.plural), "created")
        original = stored(kmock, resource.plural)[name]
        async with Intruder(kmock) as intruder:
            await intruder.patch(resource, name, {"spec": {"schedule": "* * * * *"}})
            await eventually(lambda: stored(kmock, resource.plural)[name] == original,
                             "an edit repaired, woken by the watch")
            await intruder.patch(resource, name,
                                 {"metadata": {"labels": {objects.STEP_LABEL: None}}})
            await eventually(lambda: stored(kmock, resource.plural)[name] == original,
                             "a removed label put back")
        await call(api, "POST", f"/v1/workflows/{workflow_id}/pause")
        rec.poke()
        if backend == "pingsource":
            await eventually(lambda: name not in stored(kmock, resource.plural), "paused")
        else:
            await eventually(lambda: stored(kmock, resource.plural)[name]["spec"]["suspend"],
                             "suspended")
        await call(api, "DELETE", f"/v1/workflows/{workflow_id}")
        rec.poke()
        await eventually(lambda: name not in stored(kmock, resource.plural), "deleted")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_the_reconciler_uses_exactly_the_verbs_its_role_grants(
        api: httpx.AsyncClient, sessions: Sessions, kube: KubeApi, kmock: Any,
        options: ScheduleOptions) -> None:
    from knative import checks

    for backend in ("pingsource", "cronjob"):
        await run_loop(backend, api, sessions, kube, kmock, options)
    sent = adapter_requests(kmock)
    assert all(request.resource is not None for request in sent), "only resource calls"
    assert all(request.method.value == "PATCH" for request in sent
               if request.action.name == "UPDATE"), "updates are patches, never PUT"
    used = {(r.resource.group, r.resource.plural, VERBS[r.action.name]) for r in sent}
    granted = json.loads((checks.KNATIVE_DIR / "base" / "reconciler-verbs.json").read_text())
    # the Queue steps' sources are another reconciler's (tests/sources)
    assert used == {(rule["group"], rule["resource"], verb)
                    for rule in granted for verb in rule["verbs"]
                    if rule["resource"] in ("pingsources", "cronjobs")}


def as_object(request: Any) -> dict[str, Any]:
    """A create's body, or the object a patch's body describes."""
    body = request.data
    if request.action.name == "CREATE":
        return body
    resource = PINGSOURCES if request.resource.plural == "pingsources" else CRONJOBS
    return {"apiVersion": resource.api_version, "kind": resource.kind,
            "metadata": {"name": request.name, "namespace": request.namespace,
                         **body["metadata"]},
            "spec": body["spec"]}


async def test_the_bodies_sent_validate_against_the_schemas(
        api: httpx.AsyncClient, sessions: Sessions, kube: KubeApi, kmock: Any,
        options: ScheduleOptions, pingsource_schema: dict[str, Any],
        kubernetes_validate: Any) -> None:
    recs = [reconciler(backend, kube, sessions, options) for backend in ("pingsource", "cronjob")]
    workflow_id = await cron_workflow(api, "*/5 * * * *", "America/Sao_Paulo")
    for rec in recs:
        await rec.reconcile_once()
    await replace_schedule(api, workflow_id, "15 9 * * 1-5", "Asia/Kolkata")
    for rec in recs:
        assert (await rec.reconcile_once()).patched
    await call(api, "POST", f"/v1/workflows/{workflow_id}/pause")
    for rec in recs:
        await rec.reconcile_once()

    sent = [as_object(r) for r in adapter_requests(kmock)
            if r.action.name in ("CREATE", "UPDATE")]
    assert sorted(obj["kind"] for obj in sent) == ["CronJob"] * 3 + ["PingSource"] * 2
    for obj in sent:
        if obj["kind"] == "PingSource":
            errors = [e.message for e in Draft4Validator(pingsource_schema).iter_errors(obj)]
            assert errors == [], errors
            assert "dataBase64" not in obj["spec"], "data and dataBase64 exclude each other"
        else:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
            assert len(obj["metadata"]["name"]) <= 52, "a CronJob's Jobs add 11 characters"
