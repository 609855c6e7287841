"""The Kubernetes objects a schedule becomes, as plain dicts: a Knative PingSource, or a
``batch/v1`` CronJob whose pod sends the same CloudEvent. Pure functions, no I/O.

Ownership is in the labels: ``app.kubernetes.io/managed-by: stepline`` and the step's id.
The reconciler lists, patches and deletes only objects that carry both."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from stepline_control.schedules.desired import DesiredSchedule
from stepline_control.schedules.events import ping_event, tick_data
from stepline_control.schedules.options import ScheduleOptions

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "stepline"
STEP_LABEL = "stepline.io/step-id"
WORKFLOW_LABEL = "stepline.io/workflow-id"
COMPONENT_LABEL = "app.kubernetes.io/component"
OWNED_SELECTOR = f"{MANAGED_BY}={MANAGER},{STEP_LABEL}"
SINK_API_VERSION = "serving.knative.dev/v1"

# A CronJob names each Job "<cronjob>-<scheduled time in minutes since the epoch>" and the
# Job labels its pod with that name: the pod recovers the exact scheduled minute from it
# (however late it starts, however often it is retried), and uses the Job's name as the
# event id, the same for every retry of one tick.
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
TICK_SCRIPT = """set -eu
minutes="${JOB_NAME##*-}"
time="$(date -u -d "@$((minutes * 60))" +%Y-%m-%dT%H:%M:%SZ)"
url="$1"; data="$2"; shift 2
for header do set -- "$@" -H "$header"; shift; done
exec curl -sS --fail-with-body --max-time 30 --retry 5 --retry-connrefused \\
  -X POST "$url" -H "ce-id: $JOB_NAME" -H "ce-time: $time" "$@" --data-binary "$data"
"""
TICK_PLACEHOLDER_TIME = datetime(2000, 1, 1, tzinfo=UTC)
STARTING_DEADLINE_S = 60
ACTIVE_DEADLINE_S = 300
JOB_TTL_S = 3600
TICK_BACKOFF_LIMIT = 2


def labels(schedule: DesiredSchedule) -> dict[str, str]:
    return {MANAGED_BY: MANAGER, COMPONENT_LABEL: "schedule",
            STEP_LABEL: str(schedule.step_id), WORKFLOW_LABEL: str(schedule.workflow_id)}


def metadata(name: str, schedule: DesiredSchedule, options: ScheduleOptions) -> dict[str, Any]:
    return {"name": name, "namespace": options.namespace, "labels": labels(schedule)}


def is_owned(obj: Mapping[str, Any]) -> bool:
    found = (obj.get("metadata") or {}).get("labels") or {}
    return found.get(MANAGED_BY) == MANAGER and bool(found.get(STEP_LABEL))


def pingsource(name: str, schedule: DesiredSchedule, options: ScheduleOptions) -> dict[str, Any]:
    return {
        "apiVersion": "sources.knative.dev/v1",
        "kind": "PingSource",
        "metadata": metadata(name, schedule, options),
        "spec": {
            "schedule": schedule.schedule,
            "timezone": schedule.timezone,
            "contentType": "application/json",
            "data": tick_data(schedule.step_id, schedule.workflow_id),
            "sink": {"ref": {"apiVersion": SINK_API_VERSION, "kind": "Service",
                             "name": options.sink_of(schedule.function),
                             "namespace": options.namespace}},
        },
    }


def tick_command(name: str, schedule: DesiredSchedule, options: ScheduleOptions) -> list[str]:
    """``sh -c`` with the event's fixed parts as arguments (never pasted into the script):
    the same headers and body as :func:`ping_event`, id and time filled in by the pod."""
    headers, body = ping_event(schedule.step_id, schedule.workflow_id, TICK_PLACEHOLDER_TIME,
                               options.namespace, name, event_id="-")
    fixed = [f"{key}: {value}" for key, value in sorted(headers.items())
             if key not in ("ce-id", "ce-time")]
    return ["/bin/sh", "-c", TICK_SCRIPT, "tick", options.url_of(schedule.function), body.decode(),
            *fixed]


def tick_pod(name: str, schedule: DesiredSchedule, options: ScheduleOptions) -> dict[str, Any]:
    uid = options.tick_user_id
    return {
        "metadata": {"labels": labels(schedule)},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "securityContext": {"runAsNonRoot": True, "runAsUser": uid, "runAsGroup": uid,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "tick",
                "image": options.tick_image,
                "command": tick_command(name, schedule, options),
                "env": [{"name": "JOB_NAME", "valueFrom": {"fieldRef": {
                    "fieldPath": f"metadata.labels['{JOB_NAME_LABEL}']"}}}],
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"},
                              "limits": {"memory": "32Mi"}},
                "securityContext": {"allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True, "runAsNonRoot": True,
                                    "capabilities": {"drop": ["ALL"]}},
            }],
        },
    }


def cronjob(name: str, schedule: DesiredSchedule, options: ScheduleOptions) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": metadata(name, schedule, options),
        "spec": {
            "schedule": schedule.schedule,
            "timeZone": schedule.timezone,
            "suspend": schedule.paused,
            # each tick stands alone, as a PingSource's do; a late one is dropped, not sent
            "concurrencyPolicy": "Allow",
            "startingDeadlineSeconds": STARTING_DEADLINE_S,
            "successfulJobsHistoryLimit": 1,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "metadata": {"labels": labels(schedule)},
                "spec": {
                    "backoffLimit": TICK_BACKOFF_LIMIT,
                    "activeDeadlineSeconds": ACTIVE_DEADLINE_S,
                    "ttlSecondsAfterFinished": JOB_TTL_S,
                    "template": tick_pod(name, schedule, options),
                },
            },
        },
    }


def covers(actual: Any, desired: Any) -> bool:
    """Whether ``actual`` holds everything ``desired`` says. Fields the API server or a
    webhook defaults (and ``desired`` does not name) do not count as drift; lists must
    match item by item."""
    if isinstance(desired, Mapping):
        return isinstance(actual, Mapping) and all(
            covers(actual.get(key), value) for key, value in desired.items())
    if isinstance(desired, list):
        return (isinstance(actual, list) and len(actual) == len(desired)
                and all(covers(a, d) for a, d in zip(actual, desired, strict=True)))
    return actual == desired


def drifted(actual: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    return not (covers(actual.get("spec"), desired["spec"])
                and covers((actual.get("metadata") or {}).get("labels"),
                           desired["metadata"]["labels"]))


def repair_patch(desired: Mapping[str, Any]) -> dict[str, Any]:
    """The merge patch that puts our labels and spec back."""
    return {"metadata": {"labels": dict(desired["metadata"]["labels"])},
            "spec": dict(desired["spec"])}
