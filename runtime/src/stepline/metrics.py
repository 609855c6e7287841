"""A function's Prometheus metrics and the small server that exposes them.

Per delivery the host does one counter increment and one histogram observation, both
on children bound ahead of time: nothing else happens on the hot path.

Why a port of its own instead of ``GET /metrics`` on the function's port: func-python's
``cloudevent`` middleware decodes every request that is not a health probe as a
CloudEvent and answers 400 before the host sees it, and a Webhook's port is reachable
from the internet through its Knative route. A second port is reached only at the pod's
address; Knative routes nothing to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from stepline.errors import ConfigurationError

ADDRESS_ENV = "STEPLINE_METRICS_ADDRESS"
# Knative Serving sets K_SERVICE in every revision's container (its runtime contract)
KNATIVE_ENV = "K_SERVICE"
# not one of queue-proxy's ports (8012, 8022, 8112, 9090, 9091), which share the pod
KNATIVE_METRICS_PORT = 9095
# up to the longest function timeout (RdStation.getLeads: 600 s)
DURATION_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                      60.0, 120.0, 300.0, 600.0)


def result_of_status(status: int) -> str:
    """The ``result`` of a delivery nothing was recorded for, from the status answered:
    ``rejected`` (4xx: the transport gives it up), ``unavailable`` (503: the transport
    tries again) or ``error`` (any other 5xx: unexpected, given up)."""
    if status < 400:
        return "succeeded"
    if status < 500:
        return "rejected"
    return "unavailable" if status == 503 else "error"


class FunctionMetrics:
    """The metrics of one function's host, in a registry of its own."""

    def __init__(self, function: str) -> None:
        self.function = function
        self.registry = CollectorRegistry(auto_describe=True)
        self._deliveries = Counter(
            "stepline_function_deliveries",
            "Deliveries answered by the function, by result (a step outcome: succeeded, "
            "waiting, failed, retry_scheduled, duplicate, cancelled; or rejected, "
            "unavailable, error when nothing was recorded) and HTTP status",
            ["function", "result", "status"], registry=self.registry)
        self._duration = Histogram(
            "stepline_function_delivery_duration_seconds",
            "Time from receiving a delivery to answering it (handler and step transaction)",
            ["function"], buckets=DURATION_BUCKETS_S, registry=self.registry,
        ).labels(function)
        self._children: dict[tuple[str, int], Counter] = {}

    def observe(self, result: str, status: int, seconds: float) -> None:
        child = self._children.get((result, status))
        if child is None:
            child = self._deliveries.labels(self.function, result, str(status))
            self._children[(result, status)] = child
        child.inc()
        self._duration.observe(seconds)


def metrics_address(env: Mapping[str, str]) -> tuple[str, int] | None:
    """Where to serve ``/metrics``: ``STEPLINE_METRICS_ADDRESS`` (``host:port``; empty
    turns it off); else, under Knative Serving, every interface on port 9095; else
    nowhere (one machine runs many functions side by side: each needs its own port)."""
    value = env.get(ADDRESS_ENV)
    if value is None:
        value = f"0.0.0.0:{KNATIVE_METRICS_PORT}" if KNATIVE_ENV in env else ""
    if not value:
        return None
    host, _, port = value.rpartition(":")
    if not port.isdigit():
        raise ConfigurationError(f"{ADDRESS_ENV} must be host:port, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def serve(registry: CollectorRegistry, address: tuple[str, int]) -> WSGIServer:
    """Serve the registry at ``http://host:port/metrics`` from a daemon thread; the
    caller shuts the returned server down."""
    server, _ = start_http_server(address[1], addr=address[0], registry=registry)
    return server
