"""A queue message, as the RabbitmqSource adapter delivers it, made into its job's start
(functions/queue/function/message.py): pure."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cloudevents.core.v1.event import CloudEvent

from .queue_function import message


def event(**attributes: object) -> CloudEvent:
    base = {"id": "order-7", "type": "dev.knative.rabbitmq.event",
            "source": "/apis/v1/namespaces/stepline/rabbitmqsources/q#orders",
            "specversion": "1.0", "datacontenttype": "application/json",
            "time": datetime(2026, 12, 1, tzinfo=UTC)}
    return CloudEvent(attributes={**base, **attributes}, data=None)


def test_a_json_message_is_its_payload_keyed_by_its_id() -> None:
    read = message.read(event(tenant="acme"), b'{"order": 7}', queue="orders", format="json")
    assert read.payload == {"order": 7}
    assert read.key == "amqp:order-7"
    assert read.trigger == {
        "queue": "orders", "message_id": "order-7", "content_type": "application/json",
        "time": "2026-12-01T00:00:00+00:00", "type": "dev.knative.rabbitmq.event",
        "source": "/apis/v1/namespaces/stepline/rabbitmqsources/q#orders",
        "headers": {"tenant": "acme"}}


@pytest.mark.parametrize("body", [b"<order>7</order>", b"", b"\xff\xfe", b'{"open": '])
def test_a_json_step_refuses_what_is_not_json(body: bytes) -> None:
    with pytest.raises(message.NotJson, match='format: "text"'):
        message.read(event(), body, queue="orders", format="json")


def test_a_text_step_takes_any_bytes() -> None:
    assert message.read(event(), "olá".encode(), queue="q", format="text").payload == {
        "text": "olá"}
    assert message.read(event(), b"\xff", queue="q", format="text").payload == {"text": "\ufffd"}


def test_an_id_too_long_for_a_key_is_digested_the_same_way_each_time() -> None:
    long_id = "x" * 250
    key = message.idempotency_key(long_id)
    assert key.startswith("amqp:sha256:") and len(key) <= message.MAX_KEY
    assert key == message.idempotency_key(long_id) != message.idempotency_key("y" * 250)
