"""The relay's probe and metrics endpoint (``--metrics-port``): ``/healthz`` answers 200
while the relay works and 503 saying why not; ``/metrics`` is Prometheus' text format,
read from the relay's counters at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from stepline_relay.deadletters import DeadLetterRecorder
from stepline_relay.relay import Relay

# an idle pump asks the database for the next due row every poll interval (5 s)
STALE_AFTER_S = 60.0
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class RelayCollector(Collector):
    def __init__(self, relay: Relay, recorder: DeadLetterRecorder | None) -> None:
        self.relay, self.recorder = relay, recorder

    def collect(self) -> Iterator[Metric]:
        rows = CounterMetricFamily("stepline_relay_rows", "Outbox rows handled, by result",
                                   labels=["result"])
        rows.add_metric(["sent"], self.relay.delivered)
        rows.add_metric(["retried"], self.relay.retried)
        rows.add_metric(["dead"], self.relay.buried)
        yield rows
        if self.recorder is not None:
            yield CounterMetricFamily("stepline_relay_dead_letters_recorded",
                                      "Messages from the dead-letter queue recorded",
                                      value=self.recorder.recorded)


def app(relay: Relay, recorder: DeadLetterRecorder | None = None) -> web.Application:
    registry = CollectorRegistry()
    registry.register(RelayCollector(relay, recorder))

    async def healthz(_: web.Request) -> web.Response:
        problem = relay.healthy(stale_after_s=STALE_AFTER_S)
        if problem is None:
            return web.json_response({"status": "ok"})
        return web.json_response({"status": "unavailable", "reason": problem}, status=503)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"content-type": CONTENT_TYPE})

    application = web.Application()
    application.router.add_get("/healthz", healthz)
    application.router.add_get("/metrics", metrics)
    return application


async def serve(application: web.Application, *, port: int) -> web.AppRunner:
    """Start serving on all interfaces (a probe comes from the kubelet); the caller
    cleans the returned runner up."""
    runner = web.AppRunner(application, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port).start()
    return runner
