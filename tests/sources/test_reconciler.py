"""The reconciler of the Queue steps' RabbitmqSources against kmock's in-memory API
server: one source per Queue step (its Secret made from the step's amqp connection)
sinking into the queue function at /{step_id}; a paused workflow's source removed (its
messages wait in the queue); drift repaired (a source remade, since its spec cannot
change; a Secret patched); a host the address guard refuses gets nothing; the step's
health read from the source's Ready condition; every body valid against the CRD's
schema, every call a verb the Role grants."""

from __future__ import annotations

import base64
import ipaddress
import json
from typing import Any

import httpx
from jsonschema import Draft4Validator
from schedules.helpers import call, stored
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from stepline_control import sources
from stepline_control.schedules.kube import SECRETS, KubeApi
from stepline_control.schedules.options import ScheduleOptions
from stepline_control.sources import objects
from stepline_control.sources.reconciler import QueueSourceReconciler
from support import SECRET_KEY, create_workflow

Sessions = async_sessionmaker[AsyncSession]
BROKER_NET = [ipaddress.ip_network("203.0.113.0/24")]  # the tenant's, allowed by an operator
VERBS = {"LIST": "list", "WATCH": "watch", "FETCH": "get", "CREATE": "create",
         "UPDATE": "patch", "DELETE": "delete"}


def reconciler(kube: KubeApi, sessions: Sessions, options: ScheduleOptions
               ) -> QueueSourceReconciler:
    return QueueSourceReconciler(kube=kube, load=sources.loader(sessions, SECRET_KEY),
                                 report=sources.reporter(sessions), options=options,
                                 allowed=BROKER_NET)


def connection(host: str = "203.0.113.7", password: str = "s3cret", tls: bool = True
               ) -> dict[str, Any]:
    return {"name": "broker", "kind": "amqp",
            "config": {"host": host, "vhost": "shop", "tls": tls},
            "secret": {"user": "shop", "password": password}}


def queue_steps(queue: str = "orders", prefetch: int = 20) -> list[dict[str, Any]]:
    return [{"key": "in", "function": "Queue", "output": None,
             "config": {"connection": "broker", "queue": queue, "prefetch": prefetch}}]


async def queue_workflow(api: httpx.AsyncClient, **conn: Any) -> dict[str, Any]:
    await call(api, "POST", "/v1/connections", json=connection(**conn))
    return await create_workflow(api, queue_steps(), name="orders")


def decoded(secret: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


async def test_a_queue_step_is_a_rabbitmq_source_and_its_secret(
        api: httpx.AsyncClient, sessions: Sessions, kube: KubeApi, kmock: Any,
        options: ScheduleOptions, rabbitmqsource_schema: dict[str, Any],
        kubernetes_validate: Any) -> None:
    workflow = await queue_workflow(api)
    step_id = workflow["steps"][0]["id"]
    name = f"stepline-queue-{step_id}"
    result = await reconciler(kube, sessions, options).reconcile_once()
    assert sorted(result.created) == [f"RabbitmqSource/{name}", f"Secret/{name}"]
    source = stored(kmock, "rabbitmqsources")[name]
    assert source["spec"]["rabbitmqResourcesConfig"] == {
        "predeclared": True, "queueName": "orders", "vhost": "shop", "parallelism": 20}
    assert source["spec"]["sink"] == {
        "ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "queue",
                "namespace": "stepline"}, "uri": f"/{step_id}"}
    assert source["spec"]["rabbitmqClusterReference"]["connectionSecret"] == {"name": name}
    assert source["metadata"]["labels"]["stepline.io/step-id"] == step_id
    errors = [e.message for e in Draft4Validator(rabbitmqsource_schema).iter_errors(source)]
    assert errors == [], errors
    secret = stored(kmock, "secrets")[name]
    assert decoded(secret) == {"uri": "https://203.0.113.7", "port": "5671",
                               "username": "shop", "password": "s3cret"}
    kubernetes_validate.validate({k: secret[k] for k in ("apiVersion", "kind", "metadata",
                                                         "type", "data")},
                                 "1.35", strict=True)
    again = await reconciler(kube, sessions, options).reconcile_once()
    assert not again.changed  # level-triggered: nothing to do twice


async def test_pause_drift_and_deletion_are_followed(
        api: httpx.AsyncClient, sessions: Sessions, kube: KubeApi, kmock: Any,
        options: ScheduleOptions) -> None:
    workflow = await queue_workflow(api)
    name = f"stepline-queue-{workflow['steps'][0]['id']}"
    rec = reconciler(kube, sessions, options)
    await rec.reconcile_once()
    await call(api, "POST", f"/v1/workflows/{workflow['id']}/pause")
    assert sorted((await rec.reconcile_once()).deleted) == [f"RabbitmqSource/{name}",
                                                            f"Secret/{name}"]
    assert name not in stored(kmock, "rabbitmqsources")
    await call(api, "POST", f"/v1/workflows/{workflow['id']}/resume")
    await rec.reconcile_once()
    assert name in stored(kmock, "rabbitmqsources")
    # a new password: the Secret is patched; a new queue: the source is remade
    connections = (await call(api, "GET", "/v1/connections"))["items"]
    await call(api, "DELETE", f"/v1/connections/{connections[0]['id']}")
    await call(api, "POST", "/v1/connections", json=connection(password="rotated"))
    await call(api, "PUT", f"/v1/workflows/{workflow['id']}",
               json={"name": "orders", "steps": queue_steps(queue="orders-v2")})
    changed = await rec.reconcile_once()
    assert changed.patched == [f"Secret/{name}"]
    assert changed.deleted == [f"RabbitmqSource/{name}"]
    assert decoded(stored(kmock, "secrets")[name])["password"] == "rotated"
    assert (await rec.reconcile_once()).created == [f"RabbitmqSource/{name}"]
    source = stored(kmock, "rabbitmqsources")[name]
    assert source["spec"]["rabbitmqResourcesConfig"]["queueName"] == "orders-v2"
    await call(api, "DELETE", f"/v1/workflows/{workflow['id']}")
    await rec.reconcile_once()
    assert name not in stored(kmock, "rabbitmqsources") and name not in stored(kmock, "secrets")


async def test_a_host_the_guard_refuses_gets_no_source_and_a_failing_health(
        api: httpx.AsyncClient, sessions: Sessions, kube: KubeApi, kmock: Any,
        options: ScheduleOptions) -> None:
    workflow = await queue_workflow(api, host="127.0.0.1", tls=False)
    await reconciler(kube, sessions, options).reconcile_once()
    assert stored(kmock, "rabbitmqsources") == {} and stored(kmock, "secrets") == {}
    health = (await call(api, "GET", f"/v1/steps/{workflow['steps'][0]['id']}"))["health"]
    assert health["state"] == "failing" and "loopback" in health["error"]


async def test_the_health_follows_the_source_s_ready_condition(
        api: httpx.AsyncClient, sessions: Sessions, kube: KubeApi, kmock: Any,
        options: ScheduleOptions) -> None:
    workflow = await queue_workflow(api)
    step_id = workflow["steps"][0]["id"]
    name = f"stepline-queue-{step_id}"
    rec = reconciler(kube, sessions, options)
    await rec.reconcile_once()
    key = next(k for k in kmock.objects if k[2] == name and k[0].plural == "rabbitmqsources")
    not_ready = {"type": "Ready", "status": "False", "reason": "DeploymentUnavailable",
                 "message": "the adapter cannot reach the broker"}
    kmock.objects[key] = {**stored(kmock, "rabbitmqsources")[name],
                          "status": {"conditions": [not_ready]}}
    await rec.reconcile_once()
    failing = (await call(api, "GET", f"/v1/steps/{step_id}"))["health"]
    kmock.objects[key] = {**stored(kmock, "rabbitmqsources")[name],
                          "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    await rec.reconcile_once()
    connected = (await call(api, "GET", f"/v1/steps/{step_id}"))["health"]
    assert failing["state"] == "failing" and "cannot reach the broker" in failing["error"]
    assert connected["state"] == "connected" and connected["error"] is None


async def test_objects_of_other_owners_are_left_alone_and_only_granted_verbs_are_used(
        api: httpx.AsyncClient, sessions: Sessions, kube: KubeApi, kmock: Any,
        options: ScheduleOptions) -> None:
    from knative import checks

    other = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
             "metadata": {"name": "someone-elses", "namespace": "stepline",
                          "labels": {"app.kubernetes.io/component": objects.COMPONENT}},
             "data": {"k": base64.b64encode(b"v").decode()}}
    await kube.create(SECRETS, other)
    workflow = await queue_workflow(api)
    rec = reconciler(kube, sessions, options)
    await rec.reconcile_once()
    await call(api, "POST", f"/v1/workflows/{workflow['id']}/pause")
    await rec.reconcile_once()
    assert "someone-elses" in stored(kmock, "secrets")
    sent = [r for r in kmock if r.resource is not None][1:]  # the test's own create first
    used = {(r.resource.group, r.resource.plural, VERBS[r.action.name]) for r in sent}
    granted = json.loads((checks.KNATIVE_DIR / "base" / "reconciler-verbs.json").read_text())
    mine = {(g["group"], g["resource"], v) for g in granted for v in g["verbs"]
            if g["resource"] in ("rabbitmqsources", "secrets")}
    assert used <= mine and {v for _, _, v in used} >= {"list", "create", "delete"}
