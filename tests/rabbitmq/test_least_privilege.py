"""Least privilege on the real RabbitMQ: a vhost of its own, and one user per role with
exactly the permissions ``stepline_relay.topology.permission_table`` (docs/rabbitmq.md)
gives it. The topology user declares the topology with ``stepline-relay --declare-only``;
then the relay's user can publish (confirmed) and nothing else, a consumer's user can read
its own queue and nothing else, the dead-letter recorder's user reads the dead-letter
queue only, and a small job runs end to end with the users split so. The prod overlay's
RabbitMQ users are checked against the same table, and the AMQP URL's TLS options are
checked against a local TLS server.

Users are created in one ``rabbitmqctl import_definitions`` (each rabbitmqctl call costs
about a second) and deleted with the vhost at the end."""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import json
import logging
import os
import re
import ssl
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from stepline.packet import EVENT_TYPE
from stepline_relay.amqp import Broker, Consumer, Delivery, Publisher, check, declare
from stepline_relay.amqp_url import redact, url_problems, url_with
from stepline_relay.mapping import to_amqp
from stepline_relay.rabbitmq import RabbitmqTransport
from stepline_relay.topology import (
    Permissions,
    Topology,
    consumer_permissions,
    dead_letter_permissions,
    permission_table,
    platform_functions,
    relay_permissions,
    setup_permissions,
)
from stepline_relay.transport import TransportUnavailable
from support import control_plane

from .broker import (
    AMQP_URL,
    BrokerPlatform,
    Summary,
    Vhost,
    assert_each_item_once,
    make_items_table,
    rabbitmqctl,
    start_fanout_job,
    wait_for_job_end,
    wait_for_log,
)

ROOT = Path(__file__).resolve().parents[2]
PROD = ROOT / "knative" / "overlays" / "prod"
TOPOLOGY = Topology(functions=platform_functions())
JOB_FUNCTIONS = ("Transform", "Database.query")
ITEMS = 5
REFUSED = "ACCESS_REFUSED"


def event() -> tuple[dict[str, str], dict]:
    attributes = {"specversion": "1.0", "id": str(uuid.uuid4()), "type": EVENT_TYPE,
                  "source": "/stepline/test", "datacontenttype": "application/json"}
    return attributes, {"payload": {"n": 1}}


def password_hash(password: str) -> str:
    """RabbitMQ's default (rabbit_password_hashing_sha256): base64(salt + sha256(salt +
    password)) with a 4-byte salt."""
    salt = os.urandom(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


@dataclass(frozen=True)
class User:
    name: str
    password: str
    url: str


@dataclass(frozen=True)
class Access:
    """The vhost and one user per role, with the table's permissions."""

    vhost: Vhost
    users: dict[str, User]

    def url(self, role: str) -> str:
        return self.users[role].url

    def broker(self, role: str) -> Broker:
        return Broker(self.url(role), name=f"least-privilege {role}")


ROLES: dict[str, Permissions] = {
    "topology": setup_permissions(TOPOLOGY),
    "relay": relay_permissions(TOPOLOGY),
    "dead-letters": dead_letter_permissions(TOPOLOGY),
    "transform": consumer_permissions(TOPOLOGY, ["Transform"]),  # one RabbitmqSource's
    "dispatch": consumer_permissions(TOPOLOGY, JOB_FUNCTIONS),  # the one-machine dispatcher's
}


def definitions(vhost: str, users: dict[str, User]) -> dict:
    """The vhost, the users and their permissions (guest's too: it cleans up)."""
    permissions = [{"user": user.name, "vhost": vhost, **vars(ROLES[role])}
                   for role, user in users.items()]
    permissions.append({"user": "guest", "vhost": vhost,
                        "configure": ".*", "write": ".*", "read": ".*"})
    return {
        "vhosts": [{"name": vhost}],
        "users": [{"name": user.name, "password_hash": password_hash(user.password),
                   "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": []}
                  for user in users.values()],
        "permissions": permissions,
    }


def import_definitions(document: dict) -> None:
    """One rabbitmqctl call for them all. The file must be readable by the broker's own
    user (3.10's CLI cannot read "-"); it holds salted hashes of throwaway passwords."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "definitions.json"
        path.write_text(json.dumps(document))
        Path(folder).chmod(0o755)
        path.chmod(0o644)
        rabbitmqctl("import_definitions", str(path))


def rabbitmqctl_all(*commands: tuple[str, ...]) -> None:
    """Several rabbitmqctl commands at once (each one is a second of CLI start-up)."""
    processes = [subprocess.Popen(["rabbitmqctl", "-q", *args], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True) for args in commands]
    errors = [p.communicate(timeout=60)[1] for p in processes]
    failures = [error for p, error in zip(processes, errors, strict=True) if p.returncode]
    assert not failures, failures


@pytest.fixture(scope="module")
def access(rabbitmq: str) -> Iterator[Access]:
    suffix = uuid.uuid4().hex[:10]
    vhost = Vhost(f"stepline-lp-{suffix}")
    users = {}
    for role in ROLES:
        name, password = f"stepline-lp-{role}-{suffix}", uuid.uuid4().hex
        users[role] = User(name, password, url_with(vhost.url, user=name, password=password))
    import_definitions(definitions(vhost.name, users))
    try:
        made = Access(vhost, users)
        declared = setup(made)
        assert declared.returncode == 0, declared.stdout + declared.stderr
        yield made
    finally:
        rabbitmqctl_all(("delete_vhost", vhost.name),
                        *(("delete_user", user.name) for user in users.values()))


def setup(access: Access, role: str = "topology") -> subprocess.CompletedProcess:
    """``stepline-relay --declare-only`` as ``role``: the one-shot topology setup."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEPLINE_")}
    env["STEPLINE_AMQP_URL"] = access.url(role)
    return subprocess.run([sys.executable, "-m", "stepline_relay.cli", "--declare-only"],
                          env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
async def brokers(access: Access) -> AsyncIterator[dict[str, Broker]]:
    opened = {role: access.broker(role) for role in ROLES}
    yield opened
    for broker in opened.values():
        await broker.close()


async def next_delivery(consumer: Consumer, timeout_s: float = 10.0) -> Delivery:
    delivery = await asyncio.wait_for(consumer.get(asyncio.Event()), timeout_s)
    assert delivery is not None
    return delivery


async def consume_refused(broker: Broker, queue: str) -> str:
    with pytest.raises(TransportUnavailable) as refused:
        async with Consumer(broker, queue, prefetch=1):
            pass
    return str(refused.value)


# ---- the table itself


def test_each_role_may_touch_exactly_its_own_names() -> None:
    names = {*TOPOLOGY.names(), "amq.default", "", "Transform2", "xTransform",
             "stepline.stepsx", "stepline-steps", "stepline.dead-letters.x"}

    def matched(pattern: str) -> set[str]:
        return {n for n in names if pattern and re.search(pattern, n)}

    setup_ = setup_permissions(TOPOLOGY)
    for pattern in (setup_.configure, setup_.write, setup_.read):
        assert matched(pattern) == set(TOPOLOGY.names())
    relay = relay_permissions(TOPOLOGY)
    assert (relay.configure, relay.read) == ("", "")
    assert matched(relay.write) == {"stepline.steps"}
    source = consumer_permissions(TOPOLOGY, ["Transform"])
    assert (source.configure, source.write, matched(source.read)) == ("", "", {"Transform"})
    dead = dead_letter_permissions(TOPOLOGY)
    assert (dead.configure, dead.write) == ("", "")
    assert matched(dead.read) == {"stepline.dead-letters"}
    table = permission_table(TOPOLOGY)
    assert table["stepline-source-database-query"].read == r"^Database\.query$"
    assert len(table) == 3 + len(TOPOLOGY.functions)


# ---- the topology user declares, the others may not


def test_setup_declared_the_topology_and_a_relay_user_may_not(access: Access) -> None:
    listed = rabbitmqctl("list_bindings", "-p", access.vhost.name,
                         "source_name", "destination_name", "routing_key")
    bindings = {tuple(line.split("\t")) for line in listed.splitlines() if line.strip()}
    for queue in TOPOLOGY.queues():
        assert ("stepline.steps", queue, queue) in bindings
    assert ("stepline.dead-letters", "stepline.dead-letters", "") in bindings
    refused = setup(access, "relay")
    assert refused.returncode != 0
    assert "may not declare" in refused.stderr
    assert access.users["relay"].password not in refused.stdout + refused.stderr


async def test_the_relay_user_publishes_confirmed_but_may_not_declare_or_consume(
    access: Access, brokers: dict[str, Broker], caplog: pytest.LogCaptureFixture
) -> None:
    relay = brokers["relay"]
    attributes, data = event()
    publisher = Publisher(relay, exchange=TOPOLOGY.steps_exchange)
    assert await publisher.publish([("Transform", to_amqp(attributes, data))]) == [None]
    # RabbitMQ's default exchange is not Stepline's: the relay may not write there
    [error] = await Publisher(relay).publish([("Transform", to_amqp(*event()))])
    assert error is not None and REFUSED in error
    with caplog.at_level(logging.WARNING, logger="stepline_relay.amqp"):
        assert await declare(relay, TOPOLOGY) is False  # refused, then checked
    assert "may not declare" in caplog.text and access.users["relay"].name in caplog.text
    assert REFUSED in await consume_refused(relay, "Transform")
    assert REFUSED in await consume_refused(relay, TOPOLOGY.dead_letter_queue)
    # the published message arrived whole, for the Transform source's user
    async with Consumer(brokers["transform"], "Transform", prefetch=1) as consumer:
        delivery = await next_delivery(consumer)
        assert delivery.message.headers["ce-id"] == attributes["id"]
        assert await consumer.ack(delivery)


async def test_a_source_user_reads_its_own_queue_only(brokers: dict[str, Broker]) -> None:
    transform = brokers["transform"]
    assert REFUSED in await consume_refused(transform, "Database.query")
    assert REFUSED in await consume_refused(transform, TOPOLOGY.dead_letter_queue)
    [error] = await Publisher(transform, exchange=TOPOLOGY.steps_exchange).publish(
        [("Transform", to_amqp(*event()))])
    assert error is not None and REFUSED in error
    assert await declare(transform, Topology(functions=("Transform",))) is False
    # what it rejects dead-letters (the broker's doing, no permission of its own)...
    attributes, data = event()
    await Publisher(brokers["relay"], exchange=TOPOLOGY.steps_exchange).publish(
        [("Transform", to_amqp(attributes, data))])
    async with Consumer(transform, "Transform", prefetch=1) as consumer:
        assert await consumer.reject(await next_delivery(consumer))
    # ...and only the dead-letter recorder's user reads it there
    dead_letters = brokers["dead-letters"]
    assert REFUSED in await consume_refused(dead_letters, "Transform")
    async with Consumer(dead_letters, TOPOLOGY.dead_letter_queue, prefetch=1) as consumer:
        dead = await next_delivery(consumer)
        assert dead.message.headers["ce-id"] == attributes["id"]
        assert dead.deaths[0].queue == "Transform"
        assert await consumer.ack(dead)


async def test_a_relay_that_may_not_declare_waits_for_the_topology(
    brokers: dict[str, Broker],
) -> None:
    relay = brokers["relay"]
    elsewhere = Topology(functions=("Transform",), prefix="undeclared.")
    with pytest.raises(TransportUnavailable, match="--declare-only"):
        await check(relay, elsewhere)
    transport = RabbitmqTransport(broker=relay, functions=("Transform",),
                                  prefix="undeclared.", declare=False)
    with pytest.raises(TransportUnavailable, match="no exchange 'undeclared.stepline.steps'"):
        await transport.ready()  # the relay claims nothing until the setup has run
    ready = RabbitmqTransport(broker=relay, functions=platform_functions(), declare=False)
    await ready.ready()
    assert ready.topology is not None


# ---- a whole job, the users split


@pytest.mark.slow
async def test_a_small_job_runs_end_to_end_with_the_users_split(
    access: Access, database_url: str, empty_database_url: str, tmp_path: Path
) -> None:
    make_items_table(empty_database_url)
    platform = BrokerPlatform(database_url=database_url, vhost=access.vhost, log_dir=tmp_path)
    try:
        for name in JOB_FUNCTIONS:
            platform.add_function(name)
        platform.start_functions()
        relay = platform.start_relay(env={
            "STEPLINE_AMQP_URL": access.url("relay"),
            "STEPLINE_AMQP_DEAD_LETTERS_URL": access.url("dead-letters"),
            "STEPLINE_AMQP_DECLARE": "false"})
        wait_for_log(relay, "topology checked, not declared")
        # the dispatcher tries to declare its queues, is refused, and checks them instead
        dispatcher = platform.start_dispatcher(env={"STEPLINE_AMQP_URL": access.url("dispatch")})
        async with control_plane(database_url) as client:
            job_id = await start_fanout_job(client, empty_database_url, ITEMS)
            await wait_for_job_end(platform, job_id)
    finally:
        platform.stop()
    assert_each_item_once(Summary.of(database_url, empty_database_url, job_id), ITEMS)
    logs = {child.name: child.log_path.read_text() for child in (relay, dispatcher)}
    assert "may not declare" in logs["dispatch"], logs["dispatch"][-2000:]
    assert f"RabbitMQ at amqp://{access.users['relay'].name}:******@" in logs["relay-1"]
    for user in access.users.values():
        assert all(user.password not in log for log in logs.values())


# ---- the prod overlay's users have exactly the table's permissions


def prod_objects() -> list[dict]:
    documents = []
    for path in sorted(PROD.glob("rabbitmq-*.yaml")):
        documents += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return documents


def test_the_prod_overlay_grants_exactly_the_table() -> None:
    objects = prod_objects()
    users = {o["metadata"]["name"]: o for o in objects if o["kind"] == "User"}
    granted = {o["spec"]["userReference"]["name"]: o["spec"] for o in objects
               if o["kind"] == "Permission"}
    table = permission_table(TOPOLOGY)
    del table["stepline-topology"]  # in the cluster the topology operator declares
    assert set(users) == set(granted) == set(table)
    for name, permissions in table.items():
        spec = granted[name]
        assert spec["vhost"] == "stepline"
        assert spec["permissions"] == {k: v for k, v in vars(permissions).items() if v}, name
        assert not users[name]["spec"].get("tags"), f"{name} needs no management tag"


def test_the_prod_overlay_declares_what_the_relay_would() -> None:
    objects = prod_objects()
    quorum = Topology(functions=platform_functions(), queue_type="quorum")
    queues = {o["spec"]["name"]: o["spec"] for o in objects if o["kind"] == "Queue"}
    assert set(queues) == {quorum.dead_letter_queue, *quorum.queues()}
    for name in quorum.queues():
        assert queues[name]["type"] == "quorum" and queues[name]["durable"] is True
        arguments = {k: v for k, v in quorum.function_queue_arguments().items()
                     if k != "x-queue-type"}
        assert queues[name]["arguments"] == arguments, name
    exchanges = {o["spec"]["name"]: o["spec"]["type"] for o in objects
                 if o["kind"] == "Exchange"}
    assert exchanges == {"stepline.steps": "direct", "stepline.dead-letters": "fanout"}
    bindings = {(o["spec"]["source"], o["spec"]["destination"], o["spec"].get("routingKey", ""))
                for o in objects if o["kind"] == "Binding"}
    assert bindings == {("stepline.steps", q, q) for q in quorum.queues()} | {
        ("stepline.dead-letters", "stepline.dead-letters", "")}
    for obj in objects:
        if obj["kind"] in {"Exchange", "Queue", "Binding", "Permission"}:
            assert obj["spec"]["vhost"] == "stepline", obj["metadata"]["name"]


# ---- TLS: the URL's options reach the connection


@dataclass
class Pki:
    ca: Path
    other_ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _cert(name: str, key: ec.EllipticCurvePrivateKey, issuer: tuple | None = None,
          *, ca: bool = False) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_cert, issuer_key = issuer or (None, key)
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(subject)
               .issuer_name(issuer_cert.subject if issuer_cert else subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(hours=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            encipher_only=False, decipher_only=False), critical=True)
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")

    def write(name: str, data: bytes) -> Path:
        (folder / name).write_bytes(data)
        return folder / name

    def pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    ca_key, other_key, server_key, client_key = _key(), _key(), _key(), _key()
    ca = _cert("stepline test CA", ca_key, ca=True)
    pem = serialization.Encoding.PEM
    return Pki(
        ca=write("ca.crt", ca.public_bytes(pem)),
        other_ca=write("other.crt", _cert("another CA", other_key, ca=True).public_bytes(pem)),
        server_cert=write("server.crt", _cert("localhost", server_key, (ca, ca_key))
                          .public_bytes(pem)),
        server_key=write("server.key", pem_key(server_key)),
        client_cert=write("client.crt", _cert("stepline-relay", client_key, (ca, ca_key))
                          .public_bytes(pem)),
        client_key=write("client.key", pem_key(client_key)),
    )


@dataclass
class Seen:
    header: bytes = b""
    client: str | None = None


@pytest.fixture
async def tls_server(pki: Pki) -> AsyncIterator[tuple[int, Seen]]:
    """A TLS listener that wants a client certificate from the CA, reads the AMQP
    protocol header and hangs up: enough to see what the client sent, and how."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca))
    context.load_cert_chain(pki.server_cert, pki.server_key)
    context.verify_mode = ssl.CERT_REQUIRED
    seen = Seen()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peercert") or {}
        seen.client = dict(x[0] for x in peer.get("subject", ())).get("commonName")
        try:
            seen.header = await asyncio.wait_for(reader.readexactly(8), 5)
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "localhost", 0, ssl=context)
    yield server.sockets[0].getsockname()[1], seen
    server.close()
    await server.wait_closed()


def tls_url(port: int, pki: Pki, *, ca: Path) -> str:
    return (f"amqps://stepline-relay:s3cret-pw@localhost:{port}/stepline?cafile={ca}"
            f"&certfile={pki.client_cert}&keyfile={pki.client_key}")


async def test_tls_options_reach_the_connection(
    tls_server: tuple[int, Seen], pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    port, seen = tls_server
    url = tls_url(port, pki, ca=pki.ca)
    assert url_problems(url) == []
    broker = Broker(url, name="tls test", connect_timeout_s=5)
    with caplog.at_level(logging.DEBUG), pytest.raises(TransportUnavailable) as failed:
        await broker.connection()  # the "server" hangs up after the header
    await broker.close()
    # the server's certificate was checked against cafile, the client's came from
    # certfile/keyfile, and AMQP went over that TLS connection
    assert seen.client == "stepline-relay"
    assert seen.header == b"AMQP\x00\x00\x09\x01"
    assert "s3cret-pw" not in str(failed.value) + caplog.text + repr(broker)


async def test_tls_refuses_a_server_its_cafile_does_not_vouch_for(
    tls_server: tuple[int, Seen], pki: Pki
) -> None:
    port, seen = tls_server
    broker = Broker(tls_url(port, pki, ca=pki.other_ca), name="tls test", connect_timeout_s=5)
    with pytest.raises(TransportUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
        await broker.connection()
    await broker.close()
    assert seen.header == b""


def test_url_problems_and_redaction(pki: Pki) -> None:
    assert url_problems(f"amqps://u:p@rabbit:5671/stepline?cafile={pki.ca}") == []
    assert url_problems("amqp://u:p@rabbit/stepline?heartbeat=30&name=relay") == []
    [plain] = url_problems(f"amqp://u:p@rabbit/stepline?cafile={pki.ca}")
    assert "TLS option(s) cafile need an amqps:// URL" in plain
    problems = url_problems("amqps://u:p@rabbit/stepline?cafile=/nowhere/ca.crt"
                            f"&keyfile={pki.client_key}&ca_file=x")
    assert any("no file '/nowhere/ca.crt'" in p for p in problems)
    assert any("keyfile without certfile" in p for p in problems)
    assert any("unknown option(s) ca_file" in p for p in problems)
    assert url_problems("http://rabbit/") == ["the scheme must be amqp or amqps, not 'http'"]
    assert url_problems("amqp://u:p@rabbit:56x72/") == ["bad port in 'rabbit:56x72'"]
    assert redact("amqps://relay:p%40ss@rabbit:5671/stepline?cafile=/ca") == (
        "amqps://relay:******@rabbit:5671/stepline?cafile=/ca")
    assert redact(AMQP_URL.replace("guest:guest@", "")) == AMQP_URL.replace("guest:guest@", "")
    assert url_with("amqp://guest:guest@h:5672/v%2Fx", user="a b", password="p@ss/") == (
        "amqp://a%20b:p%40ss%2F@h:5672/v%2Fx")


def test_the_docs_show_the_table_the_code_grants() -> None:
    text = (ROOT / "docs" / "rabbitmq.md").read_text()
    table = permission_table(TOPOLOGY)
    for user in ("stepline-topology", "stepline-relay", "stepline-dead-letters"):
        for pattern in vars(table[user]).values():
            assert not pattern or pattern in text, (user, pattern)
    assert table["stepline-source-database-query"].read in text
