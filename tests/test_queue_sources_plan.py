"""The one-machine Queue consumers' plan, and the rows they are made from: pure. A new
Queue step gets a consumer, a changed one (queue, prefetch, broker, password) is stopped
and started again, a gone one (paused, blocked, deleted) is stopped; a step whose
connection is missing, of another kind or unreadable is a problem its health shows."""

from __future__ import annotations

import uuid
from typing import Any

from cryptography.fernet import Fernet

from stepline.queue_sources import Broker, QueueSource, source_of
from stepline.secrets import SecretBox
from stepline_relay.onemachine.sources import plan

BOX = SecretBox(Fernet.generate_key().decode())


def source(step: uuid.UUID, **changes: Any) -> QueueSource:
    broker = Broker(host="mq", port=5672, vhost="/", tls=False, user="u", password="p")
    base = {"step_id": step, "workflow_id": step, "account_id": step, "queue": "orders",
            "prefetch": 10, "broker": broker}
    return QueueSource(**{**base, **changes})


def test_the_plan_starts_new_restarts_changed_and_stops_gone_consumers() -> None:
    kept, changed, gone, new = (uuid.uuid4() for _ in range(4))
    running = {kept: source(kept), changed: source(changed), gone: source(gone)}
    rotated = Broker(host="mq", port=5672, vhost="/", tls=False, user="u", password="new")
    desired = {kept: source(kept), changed: source(changed, broker=rotated), new: source(new)}
    todo = plan(desired, running)
    assert {s.step_id for s in todo.start} == {changed, new}
    assert set(todo.stop) == {changed, gone}
    assert plan(desired, desired).start == [] and plan(desired, desired).stop == []


def row(**changes: Any) -> dict[str, Any]:
    step = uuid.uuid4()
    base = {"step_id": step, "workflow_id": step, "account_id": step,
            "config": {"connection": "broker", "queue": "orders", "prefetch": 5},
            "connection_kind": "amqp",
            "connection_config": {"host": "mq.example.com", "vhost": "shop", "tls": True},
            "connection_secret": BOX.seal({"user": "shop", "password": "s3cret"})}
    return {**base, **changes}


def test_a_row_becomes_a_source_with_its_broker_or_its_problem() -> None:
    made = source_of(row(), BOX)
    assert (made.queue, made.prefetch, made.problem) == ("orders", 5, None)
    assert made.broker == Broker(host="mq.example.com", port=5671, vhost="shop", tls=True,
                                 user="shop", password="s3cret")
    assert "s3cret" not in repr(made)
    missing = source_of(row(connection_kind=None), BOX)
    assert missing.broker is None and missing.problem == "no connection named 'broker'"
    other = source_of(row(connection_kind="imap"), BOX)
    assert other.problem == "connection 'broker' is imap, not amqp"
    sealed_elsewhere = SecretBox(Fernet.generate_key().decode()).seal({"user": "u"})
    unreadable = source_of(row(connection_secret=sealed_elsewhere), BOX)
    assert unreadable.broker is None and "decrypted" in (unreadable.problem or "")
