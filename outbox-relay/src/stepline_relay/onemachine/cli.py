"""``stepline-dispatch``: on one machine, do what a RabbitmqSource per function queue does
in the cluster: consume each function's queue and POST its CloudEvents to the
function's server (see :mod:`stepline_relay.onemachine.dispatcher`).

    stepline-dispatch Transform=http://127.0.0.1:8101/ Database.query=http://127.0.0.1:8102/

With no FUNCTION=URL argument, the map comes from ``STEPLINE_FUNCTION_URLS`` (JSON).
Needs ``STEPLINE_AMQP_URL``; declares the queues it consumes (idempotently), so it may
start before the relay. ``--dead-letters`` also records what reaches the dead-letter
queue (needs ``STEPLINE_DATABASE_URL``; the relay does it too unless told not to).
``--metrics-port`` serves ``/healthz`` and ``/metrics`` as the relay does."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Mapping

import uvloop

from stepline.db import create_pool
from stepline.settings import Settings
from stepline_relay import health
from stepline_relay.amqp import Broker, declare
from stepline_relay.backoff import retrying
from stepline_relay.cli import configure_logging, dead_letter_recorder, stop_on_signals
from stepline_relay.onemachine.dispatcher import (
    Dispatcher,
    DispatchMetrics,
    DispatchOptions,
    http_session,
)
from stepline_relay.settings import AmqpSettings
from stepline_relay.topology import Topology, resolve_queue_type
from stepline_relay.transport import TransportUnavailable

POOL_MAX_SIZE = 4
RECONNECT_FIRST_S = 0.5
RECONNECT_MAX_S = 10.0


def command(function_urls: Mapping[str, str], *, dead_letters: bool = False,
            options: DispatchOptions | None = None, metrics_port: int | None = None) -> list[str]:
    """The argv that runs dispatchers for ``function_urls`` (for a process supervisor)."""
    options = options or DispatchOptions()
    argv = [sys.executable, "-m", "stepline_relay.onemachine.cli",
            *(f"{name}={url}" for name, url in function_urls.items()),
            "--parallelism", str(options.parallelism), "--prefetch", str(options.prefetch),
            "--retries", str(options.retries),
            "--backoff-delay-s", str(options.backoff_delay_s),
            "--request-timeout-s", str(options.request_timeout_s)]
    if metrics_port is not None:
        argv += ["--metrics-port", str(metrics_port)]
    return argv + (["--dead-letters"] if dead_letters else [])


async def declare_when_reachable(broker: Broker, amqp: AmqpSettings, functions: tuple[str, ...],
                                 stop: asyncio.Event) -> Topology:
    try:
        async for attempt in retrying("declaring the topology", TransportUnavailable,
                                      first_s=RECONNECT_FIRST_S, max_s=RECONNECT_MAX_S,
                                      until=stop):
            with attempt:
                queue_type = resolve_queue_type(amqp.queue_type, await broker.server_version())
                topology = Topology(functions=functions, prefix=amqp.queue_prefix,
                                    queue_type=queue_type)
                await declare(broker, topology)
    except TransportUnavailable as exc:
        raise SystemExit(f"stopped before RabbitMQ was reachable: {exc}") from exc
    return topology


def parse_targets(pairs: list[str], fallback: Mapping[str, str]) -> dict[str, str]:
    targets = {}
    for pair in pairs:
        name, sep, url = pair.partition("=")
        if not sep or not name or not url:
            raise SystemExit(f"expected FUNCTION=URL, got {pair!r}")
        targets[name] = url
    return targets or dict(fallback)


async def serve(settings: Settings, amqp: AmqpSettings, targets: dict[str, str],
                options: DispatchOptions, *, dead_letters: bool,
                metrics_port: int | None = None) -> None:
    if not amqp.url:
        raise SystemExit("STEPLINE_AMQP_URL is not set")
    broker = Broker(amqp.url, name="stepline-dispatch")
    stop = stop_on_signals()
    topology = await declare_when_reachable(broker, amqp, tuple(targets), stop)
    sessions = [http_session(options) for _ in targets]
    metrics = DispatchMetrics()
    pool = runner = None
    try:
        runs = [Dispatcher(broker=broker, queue=topology.queue(name), url=url, session=session,
                           options=options, function=name, metrics=metrics).run(stop)
                for (name, url), session in zip(targets.items(), sessions, strict=True)]
        if dead_letters:
            pool = create_pool(settings.require_database_url(), max_size=POOL_MAX_SIZE)
            await pool.open(wait=False)
            recorder = dead_letter_recorder(amqp, pool, name="dispatch")
            metrics.registry.register(health.DeadLetterCollector(recorder))
            runs.append(recorder.run(stop))
        if metrics_port is not None:
            runner = await health.serve(health.metrics_app(metrics.registry), port=metrics_port)
        logging.getLogger(__name__).info("dispatching %s", ", ".join(
            f"{topology.queue(name)} -> {url}" for name, url in targets.items()))
        await asyncio.gather(*runs)
    finally:
        if runner is not None:
            await runner.cleanup()
        await broker.close()
        for session in sessions:
            await session.close()
        if pool is not None:
            await pool.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="stepline-dispatch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="*", metavar="FUNCTION=URL")
    parser.add_argument("--parallelism", type=int, default=DispatchOptions.parallelism)
    parser.add_argument("--prefetch", type=int, default=DispatchOptions.prefetch)
    parser.add_argument("--retries", type=int, default=DispatchOptions.retries)
    parser.add_argument("--backoff-delay-s", type=float, default=DispatchOptions.backoff_delay_s)
    parser.add_argument("--request-timeout-s", type=float,
                        default=DispatchOptions.request_timeout_s)
    parser.add_argument("--dead-letters", action="store_true",
                        help="also record what reaches the dead-letter queue")
    parser.add_argument("--metrics-port", type=int, default=None,
                        help="serve /healthz and /metrics on this port")
    args = parser.parse_args(argv)
    settings = Settings()
    configure_logging(settings)
    targets = parse_targets(args.targets, settings.function_urls)
    if not targets:
        parser.error("no FUNCTION=URL given and STEPLINE_FUNCTION_URLS is empty")
    options = DispatchOptions(
        parallelism=args.parallelism, prefetch=args.prefetch, retries=args.retries,
        backoff_delay_s=args.backoff_delay_s, request_timeout_s=args.request_timeout_s,
    )
    uvloop.run(serve(settings, AmqpSettings(), targets, options,
                      dead_letters=args.dead_letters, metrics_port=args.metrics_port))


if __name__ == "__main__":
    main()
