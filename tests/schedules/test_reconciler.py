"""The reconciler against kmock's in-memory Kubernetes API server (real HTTP, the real
client), with workflows made through the control plane on a real PostgreSQL."""

from __future__ import annotations

import copy
from functools import partial
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from stepline_control.schedules import objects
from stepline_control.schedules.desired import load_desired
from stepline_control.schedules.events import object_name, tick_data
from stepline_control.schedules.kube import CRONJOBS, PINGSOURCES, KubeApi
from stepline_control.schedules.options import ScheduleOptions
from stepline_control.schedules.reconciler import BACKENDS, Reconciler

from .helpers import (
    NAMESPACE,
    Intruder,
    call,
    cron_workflow,
    replace_schedule,
    schedule_of,
    stored,
)

Sessions = async_sessionmaker[AsyncSession]


def reconciler(backend: str, kube: KubeApi, sessions: Sessions,
               options: ScheduleOptions) -> Reconciler:
    return Reconciler(kube=kube, backend=BACKENDS[backend], load=partial(load_desired, sessions),
                      options=options)


async def test_pingsources_follow_create_update_pause_resume_delete(
        api: httpx.AsyncClient, sessions: Sessions, kube: KubeApi, kmock: Any,
        options: ScheduleOptions) -> None:
    rec = reconciler("pingsource", kube, sessions, options)
    workflow_id = await cron_workflow(api, "*/5 * * * *", "America/Sao_Paulo")
    schedule = await schedule_of(sessions, workflow_id)
    name = object_name(schedule.step_id)

    assert (await rec.reconcile_once()).created == [name]
    source = stored(kmock, "pingsources")[name]
    assert source["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "stepline", "app.kubernetes.io/component": "schedule",
        "stepline.io/step-id": str(schedule.step_id),
        "stepline.io/workflow-id": workflow_id}
    assert source["spec"] == {
        "schedule": "*/5 * * * *", "timezone": "America/Sao_Paulo",
        "contentType": "application/json",
        "data": tick_data(schedule.step_id, workflow_id),
        "sink": {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service",
                         "name": "cronjob", "namespace": NAMESPACE}}}
    assert not (await rec.reconcile_once()).changed, "a converged pass changes nothing"

    await replace_schedule(api, workflow_id, "30 9 * * 1-5", "Asia/Kolkata")
    assert (await schedule_of(sessions, workflow_id)).step_id == schedule.step_id
    assert (await rec.reconcile_once()).patched == [name]
    spec = stored(kmock, "pingsources")[name]["spec"]
    assert (spec["schedule"], spec["timezone"]) == ("30 9 * * 1-5", "Asia/Kolkata")

    await call(api, "POST", f"/v1/workflows/{workflow_id}/pause")
    assert (await rec.reconcile_once()).deleted == [name], "a PingSource cannot be suspended"
    assert stored(kmock, "pingsources") == {}

    await call(api, "POST", f"/v1/workflows/{workflow_id}/resume")
    assert (await rec.reconcile_once()).created == [name]
    assert stored(kmock, "pingsources")[name]["spec"]["schedule"] == "30 9 * * 1-5"

    await call(api, "POST", f"/v1/workflows/{workflow_id}/block")
    assert (await rec.reconcile_once()).deleted == [name], "a blocked workflow does not tick"
    await call(api, "POST", f"/v1/workflows/{workflow_id}/unblock")
    assert (await rec.reconcile_once()).created == [name]

    await call(api, "DELETE", f"/v1/workflows/{workflow_id}")
    assert (await rec.reconcile_once()).deleted == [name]
    assert stored(kmock, "pingsources") == {}


async def test_cronjobs_follow_create_update_pause_resume_delete(
        api: httpx.AsyncClient, sessions: Sessions, kube: KubeApi, kmock: Any,
        options: ScheduleOptions) -> None:
    rec = reconciler("cronjob", kube, sessions, options)
    workflow_id = await cron_workflow(api, "*/5 * * * *", "America/Sao_Paulo")
    schedule = await schedule_of(sessions, workflow_id)
    name = object_name(schedule.step_id)

    assert (await rec.reconcile_once()).created == [name]
    spec = stored(kmock, "cronjobs")[name]["spec"]
    assert (spec["schedule"], spec["timeZone"], spec["suspend"]) == (
        "*/5 * * * *", "America/Sao_Paulo", False)
    command = spec["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[4:6] == [options.cluster_function_url,
                            tick_data(schedule.step_id, workflow_id)]
    assert not (await rec.reconcile_once()).changed

    await replace_schedule(api, workflow_id, "0 6 * * *", "Europe/Lisbon")
    assert (await rec.reconcile_once()).patched == [name]
    spec = stored(kmock, "cronjobs")[name]["spec"]
    assert (spec["schedule"], spec["timeZone"]) == ("0 6 * * *", "Europe/Lisbon")

    await call(api, "POST", f"/v1/workflows/{workflow_id}/pause")
    assert (await rec.reconcile_once()).patched == [name]
    assert stored(kmock, "cronjobs")[name]["spec"]["suspend"] is True

    await call(api, "POST", f"/v1/workflows/{workflow_id}/resume")
    assert (await rec.reconcile_once()).patched == [name]
    assert stored(kmock, "cronjobs")[name]["spec"]["suspend"] is False

    await call(api, "DELETE", f"/v1/workflows/{workflow_id}")
    assert (await rec.reconcile_once()).deleted == [name]
    assert stored(kmock, "cronjobs") == {}


@pytest.mark.parametrize("backend", ["pingsource", "cronjob"])
async def test_drift_is_repaired(backend: str, api: httpx.AsyncClient, sessions: Sessions,
                                 kube: KubeApi, kmock: Any, options: ScheduleOptions) -> None:
    rec = reconciler(backend, kube, sessions, options)
    resource = BACKENDS[backend].resource
    workflow_id = await cron_workflow(api, "*/5 * * * *", "America/Sao_Paulo")
    name = object_name((await schedule_of(sessions, workflow_id)).step_id)
    await rec.reconcile_once()
    original = stored(kmock, resource.plural)[name]

    async with Intruder(kmock) as intruder:
        # edited: its schedule, and (CronJob) what its pod runs
        tamper: dict[str, Any] = {"spec": {"schedule": "* * * * *"}}
        if resource == CRONJOBS:
            tamper["spec"]["suspend"] = True
            tamper["spec"]["jobTemplate"] = {"spec": {"template": {"spec": {"containers": [
                {"name": "tick", "image": "evil:latest"}]}}}}
        await intruder.patch(resource, name, tamper)
        assert (await rec.reconcile_once()).patched == [name]
        assert stored(kmock, resource.plural)[name] == original

        # deleted
        await intruder.delete(resource, name)
        assert (await rec.reconcile_once()).created == [name]
        assert stored(kmock, resource.plural)[name] == original

        # our step label removed: no longer listed as ours, but still managed by us
        await intruder.patch(resource, name, {"metadata": {"labels": {
            objects.STEP_LABEL: None}}})
        assert (await rec.reconcile_once()).adopted == [name]
        assert stored(kmock, resource.plural)[name] == original

        # every label removed: nothing says it is ours any more, so it is left alone
        await intruder.patch(resource, name, {"metadata": {"labels": {
            key: None for key in original["metadata"]["labels"]}}})
        stripped = stored(kmock, resource.plural)[name]
        assert (await rec.reconcile_once()).conflicts == [name]
        assert stored(kmock, resource.plural)[name] == stripped


@pytest.mark.parametrize("backend", ["pingsource", "cronjob"])
async def test_objects_of_other_owners_are_left_alone(
        backend: str, api: httpx.AsyncClient, sessions: Sessions, kube: KubeApi, kmock: Any,
        options: ScheduleOptions) -> None:
    rec = reconciler(backend, kube, sessions, options)
    resource = BACKENDS[backend].resource
    template = objects.cronjob if resource == CRONJOBS else objects.pingsource
    schedule = await schedule_of(sessions, await cron_workflow(api))
    theirs = copy.deepcopy(template("theirs", schedule, options))
    theirs["metadata"]["labels"] = {"app.kubernetes.io/managed-by": "argocd",
                                    objects.STEP_LABEL: str(schedule.step_id)}
    unlabelled = copy.deepcopy(template("unlabelled", schedule, options))
    del unlabelled["metadata"]["labels"]
    async with Intruder(kmock) as intruder:
        for body in (theirs, unlabelled):
            await intruder.create(resource, body)
    before = {name: obj for name, obj in stored(kmock, resource.plural).items()}

    result = await rec.reconcile_once()
    assert result.created == [object_name(schedule.step_id)]
    assert result.deleted == result.patched == []
    after = stored(kmock, resource.plural)
    assert {name: after[name] for name in before} == before

    await call(api, "DELETE", f"/v1/workflows/{schedule.workflow_id}")
    assert (await rec.reconcile_once()).deleted == [object_name(schedule.step_id)]
    assert stored(kmock, resource.plural) == before


async def test_a_step_that_is_not_the_entry_has_no_schedule(
        api: httpx.AsyncClient, sessions: Sessions, kube: KubeApi, kmock: Any,
        options: ScheduleOptions) -> None:
    """Only the entry step of the current version counts: a workflow that no longer
    starts with its CronJob loses the schedule."""
    rec = reconciler("pingsource", kube, sessions, options)
    workflow_id = await cron_workflow(api)
    await rec.reconcile_once()
    current = await call(api, "GET", f"/v1/workflows/{workflow_id}")
    await call(api, "PUT", f"/v1/workflows/{workflow_id}", json={
        "name": current["name"],
        "steps": [{"key": "start", "function": "Manual", "next": "t"},
                  {"key": "t", "function": "Transform", "config": {"expression": "@"},
                   "output": None}]})
    assert len((await rec.reconcile_once()).deleted) == 1
    assert stored(kmock, PINGSOURCES.plural) == {}
