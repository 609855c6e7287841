"""The one module that talks to Kubernetes (import-linter holds every other module to
it). The official client is synchronous: each call runs in a worker thread through
:func:`asyncio.to_thread`, objects travel as plain dicts, and the client's exceptions
become :mod:`~stepline_control.schedules.errors` here and nowhere else.

The calls are exactly the verbs of ``knative/base/reconciler-verbs.json``: get, list,
watch, create, patch and delete, on ``pingsources.sources.knative.dev``,
``cronjobs.batch`` and ``rabbitmqsources.sources.knative.dev`` of one namespace, through
``CustomObjectsApi``, which speaks the plain REST paths of any group; and on the core
``secrets`` a Queue step's RabbitmqSource reads its broker from, through ``CoreV1Api``
(its objects made plain dicts here too)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

from stepline_control.schedules.errors import (
    KubernetesRefused,
    KubernetesUnavailable,
    ObjectExists,
)

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0
CALL_TIMEOUT_S = 30.0
# a watch idle this long is reopened (the API server ends its own after about as long)
WATCH_TIMEOUT_S = 300
WATCH_RECONNECT_S = 2.0
MERGE_PATCH = "application/merge-patch+json"


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


PINGSOURCES = Resource("sources.knative.dev", "v1", "pingsources", "PingSource")
CRONJOBS = Resource("batch", "v1", "cronjobs", "CronJob")
RABBITMQSOURCES = Resource("sources.knative.dev", "v1alpha1", "rabbitmqsources",
                           "RabbitmqSource")
SECRETS = Resource("", "v1", "secrets", "Secret")  # the core group

WatchEvent = Callable[[str, dict[str, Any]], None]


def api_client(host: str | None = None) -> client.ApiClient:
    """A client for ``host``; without one, the pod's service account, then kubeconfig."""
    configuration = client.Configuration()
    if host:
        configuration.host = host
    else:
        try:
            config.load_incluster_config(client_configuration=configuration)
        except ConfigException:
            config.load_kube_config(client_configuration=configuration)
    return client.ApiClient(configuration)


@contextmanager
def translated(verb: str, resource: Resource, name: str | None = None) -> Iterator[None]:
    what = (f"{verb} {resource.plural}" + (f".{resource.group}" if resource.group else "")
            + (f"/{name}" if name else ""))
    try:
        yield
    except client.ApiException as exc:
        message = f"{what}: {exc.status} {exc.reason}: {exc.body or ''}"[:1000]
        kind = ObjectExists if exc.status == 409 else KubernetesRefused
        raise kind(message, status=exc.status or 0) from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise KubernetesUnavailable(f"{what}: {exc}") from exc


class KubeApi:
    """The schedule objects of one namespace, as dicts."""

    def __init__(self, api: client.ApiClient, *, namespace: str) -> None:
        self._client = api
        self._objects = client.CustomObjectsApi(api)
        self._core = client.CoreV1Api(api)
        self.namespace = namespace

    def close(self) -> None:
        self._client.close()

    async def _call(self, verb: str, resource: Resource, method: Callable[..., Any], *args: Any,
                    name: str | None = None, timeout_s: float = CALL_TIMEOUT_S,
                    **kwargs: Any) -> Any:
        call = partial(method, resource.group, resource.version, self.namespace,
                       resource.plural, *args, _request_timeout=(CONNECT_TIMEOUT_S, timeout_s),
                       **kwargs)
        with translated(verb, resource, name):
            return await asyncio.to_thread(call)

    async def _core_call(self, verb: str, method: Callable[..., Any], *args: Any,
                         name: str | None = None, **kwargs: Any) -> Any:
        """A core ``secrets`` call (name first, then namespace, as CoreV1Api orders
        them), its answer made a plain dict."""
        call = partial(method, *args, _request_timeout=(CONNECT_TIMEOUT_S, CALL_TIMEOUT_S),
                       **kwargs)
        with translated(verb, SECRETS, name):
            found = await asyncio.to_thread(call)
        return self._client.sanitize_for_serialization(found)

    async def list(self, resource: Resource, *, label_selector: str) -> list[dict[str, Any]]:
        if resource is SECRETS:
            found = await self._core_call("list", self._core.list_namespaced_secret,
                                          self.namespace, label_selector=label_selector)
        else:
            found = await self._call("list", resource,
                                     self._objects.list_namespaced_custom_object,
                                     label_selector=label_selector)
        return list(found.get("items") or [])

    async def get(self, resource: Resource, name: str) -> dict[str, Any] | None:
        try:
            if resource is SECRETS:
                return await self._core_call("get", self._core.read_namespaced_secret, name,
                                             self.namespace, name=name)
            return await self._call("get", resource, self._objects.get_namespaced_custom_object,
                                    name, name=name)
        except KubernetesRefused as exc:
            if exc.status == 404:
                return None
            raise

    async def create(self, resource: Resource, body: dict[str, Any]) -> None:
        name = body["metadata"]["name"]
        if resource is SECRETS:
            await self._core_call("create", self._core.create_namespaced_secret,
                                  self.namespace, body, name=name)
            return
        await self._call("create", resource, self._objects.create_namespaced_custom_object,
                         body, name=name)

    async def patch(self, resource: Resource, name: str, body: dict[str, Any]) -> None:
        """A JSON merge patch: lists (a pod's containers) are replaced whole."""
        if resource is SECRETS:
            await self._core_call("patch", self._core.patch_namespaced_secret, name,
                                  self.namespace, body, name=name, _content_type=MERGE_PATCH)
            return
        await self._call("patch", resource, self._objects.patch_namespaced_custom_object,
                         name, body, name=name, _content_type=MERGE_PATCH)

    async def delete(self, resource: Resource, name: str) -> None:
        """Gone already counts as deleted."""
        try:
            if resource is SECRETS:
                await self._core_call("delete", self._core.delete_namespaced_secret, name,
                                      self.namespace, name=name)
                return
            await self._call("delete", resource,
                             self._objects.delete_namespaced_custom_object, name, name=name,
                             propagation_policy="Background")
        except KubernetesRefused as exc:
            if exc.status != 404:
                raise

    async def watch(self, resource: Resource, *, label_selector: str,
                    on_event: WatchEvent) -> None:
        """Calls ``on_event(type, object)`` in the event loop for every change to the
        matching objects, reconnecting when a stream ends, until cancelled."""
        loop = asyncio.get_running_loop()

        def deliver(kind: str, obj: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(on_event, kind, obj)

        while True:
            try:
                response = await self._call(
                    "watch", resource, self._objects.list_namespaced_custom_object,
                    label_selector=label_selector, watch=True, timeout_seconds=WATCH_TIMEOUT_S,
                    timeout_s=WATCH_TIMEOUT_S + CONNECT_TIMEOUT_S, _preload_content=False)
                try:
                    await asyncio.to_thread(read_events, response, deliver)
                finally:
                    # a cancelled watch leaves its thread blocked in a read: this unblocks it.
                    # A stream that has just ended was released already, and shutdown()
                    # raises: raised here, that error replaced a cancellation, and the
                    # loop watched on for ever while the reconciler waited for it to stop
                    with contextlib.suppress(Exception):
                        response.shutdown()
                    response.release_conn()
            except Exception as exc:  # the periodic passes go on without the watch meanwhile
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise asyncio.CancelledError from exc
                log.warning("watching %s failed, retrying: %s", resource.plural, exc)
            # an ended stream is reopened, never in a tight loop
            await asyncio.sleep(WATCH_RECONNECT_S)


def read_events(response: urllib3.response.BaseHTTPResponse, deliver: WatchEvent) -> None:
    """Reads a watch stream line by line until it ends or is shut down."""
    try:
        for line in iter(response.readline, b""):
            if line.strip():
                event = json.loads(line)
                deliver(event.get("type", ""), event.get("object") or {})
    except (urllib3.exceptions.HTTPError, OSError, ValueError, RuntimeError) as exc:
        # a shut-down stream, a dropped connection, or an event loop already closed
        log.debug("watch stream ended: %r", exc)
