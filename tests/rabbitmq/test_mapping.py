"""The CloudEvent <-> AMQP mapping is pure: it is checked here without a broker, against
what eventing-rabbitmq's adapter reads."""

from __future__ import annotations

import json
import uuid

import pytest
from cloudevents.core.bindings import http, rabbitmq

from stepline.packet import EVENT_TYPE, to_cloudevent
from stepline_relay.mapping import (
    PLAIN_MESSAGE_TYPE,
    AmqpMessage,
    Death,
    MappingError,
    deaths_of,
    event_to_amqp,
    from_amqp,
    header_text,
    plain_id,
    to_amqp,
    to_http,
)
from stepline_relay.topology import Topology, parse_version, resolve_queue_type

EVENT_ID = str(uuid.uuid4())
ATTRIBUTES = {
    "specversion": "1.0", "id": EVENT_ID, "type": EVENT_TYPE,
    "source": "/stepline/workflows/w/steps/save", "subject": "p",
    "datacontenttype": "application/json", "time": "2026-01-02T03:04:05.678901+00:00",
    "jobid": "j", "processid": "p", "attempt": "2",
}
DATA = {"payload": {"id": 7, "name": "ação"}, "attempt": 2}


def test_every_attribute_is_a_ce_string_header_datacontenttype_included() -> None:
    message = to_amqp(ATTRIBUTES, DATA)
    assert message.headers == {
        "ce-specversion": "1.0", "ce-id": EVENT_ID, "ce-type": EVENT_TYPE,
        "ce-source": "/stepline/workflows/w/steps/save", "ce-subject": "p",
        "ce-datacontenttype": "application/json", "ce-time": "2026-01-02T03:04:05.678901Z",
        "ce-jobid": "j", "ce-processid": "p", "ce-attempt": "2",
    }
    assert all(isinstance(v, str) for v in message.headers.values())
    assert message.content_type == "application/json"
    assert message.message_id == EVENT_ID
    assert json.loads(message.body) == DATA


def test_the_message_is_cloudevents_rabbitmq_binding_plus_ce_datacontenttype() -> None:
    """cloudevents 2.2's binding puts datacontenttype only in the AMQP property, which
    the adapter ignores in binary mode; ours adds the header and is otherwise the same,
    whether written from the row (the relay's fast path) or from a CloudEvent."""
    ours = to_amqp(ATTRIBUTES, DATA)
    event = to_cloudevent(ATTRIBUTES, DATA)
    theirs = rabbitmq.to_binary_event(event)
    assert "ce-datacontenttype" not in theirs.headers
    assert {**theirs.headers, "ce-datacontenttype": theirs.content_type} == dict(ours.headers)
    assert (theirs.content_type, json.loads(theirs.body)) == (ours.content_type, DATA)
    assert event_to_amqp(event) == ours


@pytest.mark.parametrize("data", [{"a": [1, 2.5, None, True]}, "text", None])
def test_data_is_written_as_the_binding_writes_it(data: object) -> None:
    ours = to_amqp(ATTRIBUTES, data)
    assert ours.body == rabbitmq.to_binary_event(to_cloudevent(ATTRIBUTES, data)).body


def test_an_array_is_written_as_json() -> None:
    """(cloudevents 2.2 writes a top-level array with ``str()``, which is no JSON; a packet
    is always an object, so the difference never reaches the wire.)"""
    assert json.loads(to_amqp(ATTRIBUTES, [1, "two"]).body) == [1, "two"]


def test_a_message_comes_back_as_the_same_event() -> None:
    event = from_amqp(to_amqp(ATTRIBUTES, DATA), queue="Database.query")
    assert event.get_id() == EVENT_ID and event.get_type() == EVENT_TYPE
    assert event.get_attributes()["datacontenttype"] == "application/json"
    assert event.get_extension("attempt") == "2"
    assert event.get_data() == DATA


def test_binary_mode_takes_datacontenttype_from_the_header_not_the_property() -> None:
    message = to_amqp(ATTRIBUTES, DATA)
    odd = AmqpMessage(headers=message.headers, body=message.body, content_type="text/plain",
                      message_id=message.message_id)
    assert from_amqp(odd, queue="q").get_attributes()["datacontenttype"] == "application/json"


def test_header_names_are_read_case_insensitively() -> None:
    message = to_amqp(ATTRIBUTES, DATA)
    shouting = AmqpMessage(headers={k.upper(): v for k, v in message.headers.items()},
                           body=message.body, content_type=None)
    assert from_amqp(shouting, queue="q").get_id() == EVENT_ID


def test_structured_mode_is_read_from_the_content_type() -> None:
    event = from_amqp(to_amqp(ATTRIBUTES, DATA), queue="q")
    structured = rabbitmq.to_structured_event(event)
    message = AmqpMessage(headers={}, body=structured.body,
                          content_type=structured.content_type)
    assert from_amqp(message, queue="q").get_id() == EVENT_ID


def test_a_message_that_is_no_cloudevent_is_wrapped_as_the_adapter_wraps_it() -> None:
    plain = AmqpMessage(headers={"x-custom": "1"}, body=b'{"a": 1}',
                        content_type="application/json", message_id="m-1")
    event = from_amqp(plain, queue="Transform")
    assert event.get_type() == PLAIN_MESSAGE_TYPE
    assert event.get_id() == "m-1" and event.get_source() == "/stepline/queues/Transform"
    assert event.get_data() == b'{"a": 1}'  # passed on as it came, with its content type
    assert to_http(event).headers["content-type"] == "application/json"


def test_the_http_request_is_binary_mode() -> None:
    request = to_http(from_amqp(to_amqp(ATTRIBUTES, DATA), queue="q"))
    assert request.headers["content-type"] == "application/json"
    assert request.headers["ce-id"] == EVENT_ID and request.headers["ce-attempt"] == "2"
    assert json.loads(request.body) == DATA
    back = http.from_binary_event(http.HTTPMessage(headers=dict(request.headers),
                                                   body=request.body))
    assert back.get_data() == DATA and back.get_id() == EVENT_ID


@pytest.mark.parametrize("name", ["job_id", "JobId", "job-id", "x" * 21])
def test_extension_names_must_be_lower_case_alphanumeric(name: str) -> None:
    with pytest.raises(MappingError, match=name):
        to_amqp({**ATTRIBUTES, name: "1"}, DATA)


@pytest.mark.parametrize("broken", [{"source": None}, {"id": ""}, {"type": 3},
                                    {"specversion": "0.3"}])
def test_an_attribute_set_that_is_no_cloudevent_is_a_mapping_error(broken: dict) -> None:
    attributes = {**ATTRIBUTES, **broken}
    with pytest.raises(MappingError):
        to_amqp({k: v for k, v in attributes.items() if v is not None}, DATA)


def test_x_death_is_read_most_recent_first() -> None:
    raw = [{"count": 2, "reason": b"rejected", "queue": "Transform", "exchange": ""},
           {"count": 1, "reason": "expired", "queue": "other"}, "junk"]
    assert deaths_of(raw) == (Death("Transform", "rejected", 2), Death("other", "expired", 1))
    assert deaths_of(None) == ()


def test_header_values_are_text() -> None:
    assert header_text(b"abc") == "abc" and header_text(3) == "3"


def test_the_topology_names_one_queue_per_function_and_one_dead_letter_queue() -> None:
    topology = Topology(functions=("Http.request", "Transform"))
    assert list(topology.queues()) == ["Http.request", "Transform"]
    assert topology.dead_letter_queue == topology.dead_letter_exchange == "stepline.dead-letters"
    assert topology.function_queue_arguments() == {
        "x-dead-letter-exchange": "stepline.dead-letters"}
    prefixed = Topology(functions=("Transform",), queue_type="quorum", prefix="t1.")
    assert list(prefixed.queues()) == ["t1.Transform"]
    assert prefixed.function_of("t1.Transform") == "Transform"
    assert prefixed.function_queue_arguments() == {
        "x-dead-letter-exchange": "t1.stepline.dead-letters", "x-queue-type": "quorum",
        "x-overflow": "reject-publish", "x-dead-letter-strategy": "at-least-once"}
    assert prefixed.dead_letter_queue_arguments() == {"x-queue-type": "quorum"}


def test_auto_picks_quorum_queues_where_the_server_has_them() -> None:
    assert resolve_queue_type("auto", parse_version("3.10.8")) == "quorum"
    assert resolve_queue_type("auto", parse_version("3.7.28")) == "classic"
    assert resolve_queue_type("auto", None) == "classic"
    assert resolve_queue_type("classic", (3, 12)) == "classic"
    assert parse_version(b"4.0.0-rc.1") == (4, 0, 0)
    with pytest.raises(ValueError):
        resolve_queue_type("stream", None)


def test_a_message_without_an_id_is_named_by_a_digest_the_same_at_every_delivery() -> None:
    """The adapter makes up a new id at each delivery; the stand-in digests the message,
    so a Queue step recognises it when it comes again (its RabbitMQ x- headers, which a
    dead-lettering changes, are not read)."""
    plain = AmqpMessage(headers={"tenant": "a"}, body=b'{"a": 1}',
                        content_type="application/json")
    again = AmqpMessage(headers={"tenant": "a", "x-death": "[...]"}, body=b'{"a": 1}',
                        content_type="application/json")
    other = AmqpMessage(headers={"tenant": "b"}, body=b'{"a": 1}',
                        content_type="application/json")
    first = from_amqp(plain, queue="orders").get_id()
    assert first.startswith("sha256:") and len(first) == len("sha256:") + 64
    assert from_amqp(again, queue="orders").get_id() == first
    assert from_amqp(other, queue="orders").get_id() != first
    named = AmqpMessage(headers={}, body=b"{}", message_id="m-7")
    assert plain_id(named) == "m-7"
