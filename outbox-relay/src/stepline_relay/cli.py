"""``stepline-relay``: run the relay with the transport the settings call for.

With ``STEPLINE_AMQP_URL`` set it publishes to RabbitMQ (declaring the topology first)
and, unless ``--no-dead-letters``, also records what reaches the dead-letter queue;
without it, it POSTs straight to the functions (``STEPLINE_FUNCTION_URLS``)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from psycopg_pool import AsyncConnectionPool

from stepline.db import create_pool
from stepline.settings import Settings
from stepline_relay import health
from stepline_relay.amqp import Broker
from stepline_relay.deadletters import DeadLetterRecorder
from stepline_relay.http import HttpTransport
from stepline_relay.rabbitmq import RabbitmqTransport
from stepline_relay.relay import Relay, RelayOptions, relay_name, soft_commit_conninfo
from stepline_relay.settings import AmqpSettings, RelaySettings
from stepline_relay.topology import Topology, platform_functions
from stepline_relay.transport import Transport

POOL_MAX_SIZE = 10
RECORDER_POOL_MAX_SIZE = 2
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
STOP_TIMEOUT_S = 10.0


def make_transport(settings: Settings, amqp: AmqpSettings, *, name: str) -> Transport:
    if amqp.url:
        return RabbitmqTransport(
            broker=Broker(amqp.url, name=f"stepline-relay {name}"),
            functions=platform_functions(), queue_type=amqp.queue_type,
            prefix=amqp.queue_prefix,
        )
    return HttpTransport(function_urls=settings.function_urls)


def dead_letter_recorder(amqp: AmqpSettings, pool: AsyncConnectionPool, *,
                         name: str) -> DeadLetterRecorder:
    assert amqp.url
    return DeadLetterRecorder(
        broker=Broker(amqp.url, name=f"stepline-dead-letters {name}"), pool=pool,
        topology=Topology(functions=platform_functions(), prefix=amqp.queue_prefix),
    )


def stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def serve(settings: Settings, amqp: AmqpSettings, options: RelayOptions, *,
                dead_letters: bool = True, metrics_port: int | None = None) -> None:
    url = settings.require_database_url()
    pool = create_pool(soft_commit_conninfo(url), max_size=POOL_MAX_SIZE)
    await pool.open(wait=False)
    name = relay_name()
    transport = make_transport(settings, amqp, name=name)
    stop = stop_on_signals()
    relay = Relay(database_url=url, pool=pool, transport=transport, options=options, name=name)
    runs = [relay.run(stop)]
    recorder = None
    if amqp.url and dead_letters:
        # records acknowledged to RabbitMQ must be durable: a pool of ordinary commits
        recorder_pool = create_pool(url, max_size=RECORDER_POOL_MAX_SIZE)
        await recorder_pool.open(wait=False)
        recorder = dead_letter_recorder(amqp, recorder_pool, name=name)
        runs.append(recorder.run(stop))
    runner = None
    if metrics_port is not None:
        runner = await health.serve(health.app(relay, recorder), port=metrics_port)
    logging.getLogger(__name__).info(
        "relay %s started (%s)", name, "RabbitMQ" if amqp.url else "HTTP")
    try:
        await asyncio.gather(*runs)
    finally:
        if runner is not None:
            await runner.cleanup()
        await transport.close()
        if recorder is not None:
            await recorder.broker.close()
            await recorder.pool.close()
        await pool.close()


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level, format=LOG_FORMAT)
    logging.getLogger("aiormq").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="stepline-relay", description=__doc__)
    parser.add_argument("--pumps", type=int, default=RelayOptions.pumps)
    parser.add_argument("--batch-size", type=int, default=RelayOptions.batch_size)
    parser.add_argument("--lease-s", type=float, default=RelayOptions.lease_s)
    parser.add_argument("--no-dead-letters", action="store_true",
                        help="RabbitMQ mode: leave the dead-letter queue to another process")
    parser.add_argument("--metrics-port", type=int, default=None,
                        help="serve /healthz and /metrics on this port "
                             "(default: STEPLINE_RELAY_METRICS_PORT, else none)")
    args = parser.parse_args(argv)
    settings = Settings()
    configure_logging(settings)
    options = RelayOptions(pumps=args.pumps, batch_size=args.batch_size, lease_s=args.lease_s)
    metrics_port = args.metrics_port or RelaySettings().metrics_port
    asyncio.run(serve(settings, AmqpSettings(), options, dead_letters=not args.no_dead_letters,
                      metrics_port=metrics_port))


if __name__ == "__main__":
    main()
