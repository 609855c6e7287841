"""``stepline-relay``: run the relay with the transport the settings call for.

With ``STEPLINE_AMQP_URL`` set it publishes to RabbitMQ (declaring the topology first,
unless ``--no-declare`` or its user may not) and, unless ``--no-dead-letters``, also
records what reaches the dead-letter queue (as ``STEPLINE_AMQP_DEAD_LETTERS_URL``'s user
when set); without it, it POSTs straight to the functions (``STEPLINE_FUNCTION_URLS``).

``--declare-only`` declares the RabbitMQ topology and exits (the one-shot setup, as a user
that may configure it); ``--print-permissions`` prints the ``rabbitmqctl`` commands that
give each of Stepline's RabbitMQ users exactly what it needs (docs/rabbitmq.md)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import shlex
import signal

import uvloop
from psycopg_pool import AsyncConnectionPool

from stepline.db import create_pool
from stepline.settings import Settings
from stepline_relay import health
from stepline_relay.amqp import Broker, declare
from stepline_relay.amqp_url import redact, unverified, url_problems, vhost_of
from stepline_relay.backoff import retrying
from stepline_relay.dead_letter_queue import DeadLetterRecorder
from stepline_relay.http import HttpTransport
from stepline_relay.rabbitmq import RabbitmqTransport
from stepline_relay.relay import Relay, RelayOptions, relay_name, soft_commit_conninfo
from stepline_relay.settings import AmqpSettings, RelaySettings
from stepline_relay.topology import (
    Topology,
    permission_table,
    platform_functions,
    resolve_queue_type,
)
from stepline_relay.transport import Transport, TransportUnavailable

POOL_MAX_SIZE = 10
RECORDER_POOL_MAX_SIZE = 2
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
STOP_TIMEOUT_S = 10.0
# how long --declare-only waits for a broker that is not reachable yet (one starting)
DECLARE_WAIT_S = 120.0
DECLARE_BACKOFF_FIRST_S = 0.5
DECLARE_BACKOFF_MAX_S = 10.0
DEFAULT_VHOST = "stepline"

log = logging.getLogger(__name__)


def make_transport(settings: Settings, amqp: AmqpSettings, *, name: str,
                   declare_topology: bool = True) -> Transport:
    if amqp.url:
        return RabbitmqTransport(
            broker=Broker(amqp.url, name=f"stepline-relay {name}"),
            functions=platform_functions(), queue_type=amqp.queue_type,
            prefix=amqp.queue_prefix, declare=declare_topology and amqp.declare,
        )
    return HttpTransport(function_urls=settings.function_urls)


def dead_letter_recorder(amqp: AmqpSettings, pool: AsyncConnectionPool, *,
                         name: str) -> DeadLetterRecorder:
    url = amqp.dead_letters_url or amqp.url
    assert url
    return DeadLetterRecorder(
        broker=Broker(url, name=f"stepline-dead-letters {name}"), pool=pool,
        topology=Topology(functions=platform_functions(), prefix=amqp.queue_prefix),
    )


def check_urls(amqp: AmqpSettings) -> None:
    """Refuse to start on a URL that cannot work; warn about one that works unsafely.
    Only the redacted form of a URL is ever printed."""
    urls = {"STEPLINE_AMQP_URL": amqp.url, "STEPLINE_AMQP_DEAD_LETTERS_URL": amqp.dead_letters_url}
    for variable, url in urls.items():
        if not url:
            continue
        problems = url_problems(url)
        if problems:
            raise SystemExit(f"{variable} ({redact(url)}): {'; '.join(problems)}")
        if unverified(url):
            log.warning("%s turns off the check of RabbitMQ's certificate (no_verify_ssl): "
                        "anyone on the path can pose as the broker", variable)


def stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def serve(settings: Settings, amqp: AmqpSettings, options: RelayOptions, *,
                dead_letters: bool = True, metrics_port: int | None = None,
                declare_topology: bool = True) -> None:
    url = settings.require_database_url()
    pool = create_pool(soft_commit_conninfo(url), max_size=POOL_MAX_SIZE)
    await pool.open(wait=False)
    name = relay_name()
    transport = make_transport(settings, amqp, name=name, declare_topology=declare_topology)
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
    log.info("relay %s started (%s)", name,
             f"RabbitMQ at {redact(amqp.url)}" if amqp.url else "HTTP")
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


async def declare_only(amqp: AmqpSettings, *, wait_s: float = DECLARE_WAIT_S) -> None:
    """Declare the topology once, waiting for a broker that is still starting; exit
    non-zero if this user may not declare it."""
    assert amqp.url
    broker = Broker(amqp.url, name="stepline-relay --declare-only")
    try:
        async for attempt in retrying("declaring the topology", TransportUnavailable,
                                      first_s=DECLARE_BACKOFF_FIRST_S,
                                      max_s=DECLARE_BACKOFF_MAX_S, within_s=wait_s):
            with attempt:
                queue_type = resolve_queue_type(amqp.queue_type, await broker.server_version())
                topology = Topology(functions=platform_functions(), queue_type=queue_type,
                                    prefix=amqp.queue_prefix)
                declared = await declare(broker, topology)
    except TransportUnavailable as exc:
        raise SystemExit(f"could not declare the topology: {exc}") from exc
    finally:
        await broker.close()
    if not declared:
        raise SystemExit(f"RabbitMQ user {broker.user!r} may not declare the topology in "
                         f"vhost {broker.vhost!r}: use a user with the permissions that "
                         "--print-permissions gives stepline-topology")
    log.info("RabbitMQ topology declared in vhost %r: %s (%s queues)", broker.vhost,
             ", ".join(topology.names()), topology.queue_type)


def permission_commands(amqp: AmqpSettings) -> list[str]:
    """``rabbitmqctl set_permissions`` for each of Stepline's users, in the vhost of
    ``STEPLINE_AMQP_URL`` (``stepline`` when unset)."""
    vhost = vhost_of(amqp.url) if amqp.url else DEFAULT_VHOST
    topology = Topology(functions=platform_functions(), prefix=amqp.queue_prefix)
    return [shlex.join(["rabbitmqctl", "set_permissions", "-p", vhost, user,
                        p.configure, p.write, p.read])
            for user, p in permission_table(topology).items()]


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level, format=LOG_FORMAT)
    logging.getLogger("aiormq").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="stepline-relay", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pumps", type=int, default=RelayOptions.pumps)
    parser.add_argument("--batch-size", type=int, default=RelayOptions.batch_size)
    parser.add_argument("--lease-s", type=float, default=RelayOptions.lease_s)
    parser.add_argument("--no-dead-letters", action="store_true",
                        help="RabbitMQ mode: leave the dead-letter queue to another process")
    parser.add_argument("--no-declare", action="store_true",
                        help="RabbitMQ mode: only check that the topology is there, never "
                             "declare it (as STEPLINE_AMQP_DECLARE=false)")
    parser.add_argument("--declare-only", action="store_true",
                        help="declare the RabbitMQ topology and exit (a user that may)")
    parser.add_argument("--print-permissions", action="store_true",
                        help="print the rabbitmqctl commands that give each of Stepline's "
                             "RabbitMQ users its permissions, and exit")
    parser.add_argument("--metrics-port", type=int, default=None,
                        help="serve /healthz and /metrics on this port "
                             "(default: STEPLINE_RELAY_METRICS_PORT, else none)")
    args = parser.parse_args(argv)
    amqp = AmqpSettings()
    if args.print_permissions:
        print("\n".join(permission_commands(amqp)))
        return
    settings = Settings()
    configure_logging(settings)
    check_urls(amqp)
    if args.declare_only:
        if not amqp.url:
            parser.error("--declare-only needs STEPLINE_AMQP_URL")
        asyncio.run(declare_only(amqp))
        return
    options = RelayOptions(pumps=args.pumps, batch_size=args.batch_size, lease_s=args.lease_s)
    metrics_port = args.metrics_port or RelaySettings().metrics_port
    uvloop.run(serve(settings, amqp, options, dead_letters=not args.no_dead_letters,
                      metrics_port=metrics_port, declare_topology=not args.no_declare))


if __name__ == "__main__":
    main()
