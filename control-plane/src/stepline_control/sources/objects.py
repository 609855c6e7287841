"""The Kubernetes objects a Queue step becomes in a cluster, as plain dicts: a
RabbitmqSource that consumes the step's queue on the tenant's broker and POSTs each
message to the ``queue`` function at ``/{step_id}``, and the Secret it reads that broker
from, made from the step's ``amqp`` connection. Pure functions, no I/O.

The Secret holds what eventing-rabbitmq's ``connectionSecret`` is read for: ``uri`` (the
host, ``https://`` before it for TLS: the adapter then speaks amqps), ``port``,
``username`` and ``password``. The queue is ``predeclared``: the source checks it and
never declares or changes it. A RabbitmqSource's spec cannot change once created (its
admission webhook refuses), so a source that drifted is deleted and made again; a Secret
is patched. Ownership is in the labels, as for the schedules."""

from __future__ import annotations

import base64
from typing import Any

from stepline.queue_sources import QueueSource
from stepline_control.schedules.objects import (
    COMPONENT_LABEL,
    MANAGED_BY,
    MANAGER,
    SINK_API_VERSION,
    STEP_LABEL,
    WORKFLOW_LABEL,
    covers,
)
from stepline_control.schedules.options import ScheduleOptions

NAME_PREFIX = "stepline-queue-"
COMPONENT = "queue-source"
OWNED_SELECTOR = f"{MANAGED_BY}={MANAGER},{COMPONENT_LABEL}={COMPONENT}"
# the adapter's HTTP sender: 5 retries, exponential from 1 s (what the platform's own
# function sources use, knative/base/functions)
DELIVERY = {"retry": 5, "backoffPolicy": "exponential", "backoffDelay": "PT1S"}


def name_of(source: QueueSource) -> str:
    """The source's and its Secret's name (52 characters, DNS-safe)."""
    return f"{NAME_PREFIX}{source.step_id}"


def labels(source: QueueSource) -> dict[str, str]:
    return {MANAGED_BY: MANAGER, COMPONENT_LABEL: COMPONENT,
            STEP_LABEL: str(source.step_id), WORKFLOW_LABEL: str(source.workflow_id)}


def is_owned(obj: dict[str, Any]) -> bool:
    found = (obj.get("metadata") or {}).get("labels") or {}
    return (found.get(MANAGED_BY) == MANAGER and found.get(COMPONENT_LABEL) == COMPONENT
            and bool(found.get(STEP_LABEL)))


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def secret(source: QueueSource, options: ScheduleOptions) -> dict[str, Any]:
    broker = source.broker
    assert broker is not None, "a source with a problem has no objects"
    uri = f"https://{broker.host}" if broker.tls else broker.host
    data = {"uri": uri, "port": str(broker.port), "username": broker.user,
            "password": broker.password}
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name_of(source), "namespace": options.namespace,
                         "labels": labels(source)},
            "data": {key: _b64(value) for key, value in data.items()}}


def rabbitmq_source(source: QueueSource, options: ScheduleOptions) -> dict[str, Any]:
    broker = source.broker
    assert broker is not None, "a source with a problem has no objects"
    return {
        "apiVersion": "sources.knative.dev/v1alpha1",
        "kind": "RabbitmqSource",
        "metadata": {"name": name_of(source), "namespace": options.namespace,
                     "labels": labels(source)},
        "spec": {
            "rabbitmqClusterReference": {"connectionSecret": {"name": name_of(source)},
                                         "namespace": options.namespace},
            "rabbitmqResourcesConfig": {"predeclared": True, "queueName": source.queue,
                                        "vhost": broker.vhost, "parallelism": source.prefetch},
            "delivery": dict(DELIVERY),
            "sink": {"ref": {"apiVersion": SINK_API_VERSION, "kind": "Service",
                             "name": options.queue_sink_service,
                             "namespace": options.namespace},
                     "uri": f"/{source.step_id}"},
        },
    }


def drifted(actual: dict[str, Any], desired: dict[str, Any], field: str) -> bool:
    """Whether ``actual`` lost any of ``desired``'s ``field`` (spec, data) or labels."""
    return not (covers(actual.get(field), desired[field])
                and covers((actual.get("metadata") or {}).get("labels"),
                           desired["metadata"]["labels"]))


def readiness(obj: dict[str, Any]) -> tuple[bool, str] | None:
    """A RabbitmqSource's Ready condition: (ready, why not), or None before it has one."""
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            why = ": ".join(filter(None, (condition.get("reason"), condition.get("message"))))
            return condition.get("status") == "True", why or "not ready"
    return None
