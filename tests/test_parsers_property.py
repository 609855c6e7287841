"""The parsers of what arrives from outside, fuzzed: a Webhook call's headers and body
(:func:`stepline.webhooks.parse`) and a delivered packet
(:func:`stepline.packet.packet_from_event`) either parse or raise
:class:`MalformedEvent` — never another exception, never a stall. Each example runs in
a bounded worker, so one that would hang fails as an overrun instead of hanging the run
(the limit is generous: it bounds, it does not time)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stepline.bounded import Limits, Overrun, Pool
from stepline.errors import MalformedEvent
from stepline.packet import EVENT_TYPE, Packet, packet_from_event, to_cloudevent
from stepline.webhooks import Call, parse

EXAMPLE_LIMIT_S = 30.0
SETTINGS = settings(max_examples=150, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=10,
)


def nested(depth: int, opener: bytes) -> bytes:
    if opener == b"[":
        return b"[" * depth + b"1" + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.integers(min_value=1, max_value=100_000).map(lambda n: b"[" * n),
    st.integers(min_value=1, max_value=5_000).flatmap(
        lambda n: st.sampled_from([nested(n, b"["), nested(n, b"{")])),
    st.just(b'{"specversion": "1.0", "id": "1", "source": "s", "type": "t", "data": '
            + b"[" * 50_000 + b"}"),
)
header_names = st.sampled_from(["content-type", "ce-id", "ce-source", "ce-type",
                                "ce-specversion", "ce-time", "ce-datacontenttype",
                                "idempotency-key", "x-other"])
header_values = st.one_of(st.text(max_size=30), st.sampled_from(
    ["application/json", "application/cloudevents+json", "1.0", "0.3", "2.0",
     "2024-01-01T00:00:00Z", "not a time", "text/plain; charset=utf-8"]))
headers = st.dictionaries(header_names, header_values, max_size=7)


@pytest.fixture(scope="module")
def pool() -> Iterator[Pool]:
    pool = Pool(Limits(timeout_s=EXAMPLE_LIMIT_S, workers=1))
    yield pool
    pool.close()


async def bounded(pool: Pool, fn: Any, *args: Any) -> Any:
    """``fn(*args)`` in the worker: its value, MalformedEvent re-raised; a stall fails."""
    try:
        return await pool.run(fn, *args, what=fn.__name__)
    except Overrun as exc:
        pytest.fail(f"{fn.__name__} did not finish: {exc}")


def test_webhook_calls_parse_or_are_malformed(pool: Pool) -> None:
    @SETTINGS
    @given(headers=headers, body=bodies)
    def check(headers: dict[str, str], body: bytes) -> None:
        try:
            call = asyncio.run(bounded(pool, parse, headers, body))
        except MalformedEvent:
            return
        assert isinstance(call, Call)
        json.dumps(call.payload)  # what was accepted can be written as JSON

    check()


def plausible_packet() -> st.SearchStrategy[dict[str, Any]]:
    ref = st.fixed_dictionaries({"id": st.uuids().map(str)})
    return st.fixed_dictionaries(
        {"payload": json_values, "account": ref, "job": ref,
         "workflow": st.fixed_dictionaries({"id": st.uuids().map(str),
                                            "version": st.integers(-2, 5)}),
         "step": st.fixed_dictionaries({"id": st.uuids().map(str), "key": st.text(max_size=5)}),
         "process": ref},
        optional={"attempt": st.one_of(st.integers(-1, 5), st.text(max_size=3)),
                  "user": st.one_of(st.none(), ref), "surprise": json_values})


def deep(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


datas = st.one_of(
    json_values, plausible_packet(), st.binary(max_size=20), st.text(max_size=20),
    st.integers(1, 900).map(deep),
    plausible_packet().flatmap(lambda p: st.integers(1, 900).map(
        lambda n: {**p, "payload": deep(n)})),
    plausible_packet().flatmap(lambda p: st.sampled_from(sorted(p)).map(
        lambda k: {key: v for key, v in p.items() if key != k})),
)


def test_delivered_packets_parse_or_are_malformed(pool: Pool) -> None:
    @SETTINGS
    @given(data=datas, event_type=st.sampled_from([EVENT_TYPE, "other.type"]))
    def check(data: Any, event_type: str) -> None:
        event = to_cloudevent({"specversion": "1.0", "id": str(uuid.uuid4()),
                               "type": event_type, "source": "/fuzz"}, data)
        try:
            packet = asyncio.run(bounded(pool, packet_from_event, event))
        except MalformedEvent:
            return
        assert isinstance(packet, Packet) and event_type == EVENT_TYPE

    check()
