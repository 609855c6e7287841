"""The pure pieces, without servers: the packet's CloudEvent form, templates, the plan
of what a process sends on, retry backoff, the SSRF guard, SQL parameters."""

from __future__ import annotations

import importlib.util
import ipaddress
import uuid
from pathlib import Path

import pytest
from cloudevents.core.bindings.http import HTTPMessage, from_http_event, to_binary_event

from stepline import templates
from stepline.definition import RetryPolicy, Step, Version
from stepline.errors import MalformedEvent, PermanentError
from stepline.messages import Route, plan
from stepline.net import AddressRefused, check_address, check_url
from stepline.packet import (
    EVENT_TYPE,
    Packet,
    ProcessRef,
    Ref,
    StepRef,
    WorkflowRef,
    event_attributes,
    packet_from_event,
    to_cloudevent,
)

ROOT = Path(__file__).resolve().parents[1]


def load_function_module(slug: str):
    spec = importlib.util.spec_from_file_location(
        f"func_{slug.replace('-', '_')}", ROOT / "functions" / slug / "function" / "func.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def a_packet(payload=None) -> Packet:
    return Packet(
        payload=payload if payload is not None else {"a": 1},
        account=Ref(id=uuid.uuid4()),
        job=Ref(id=uuid.uuid4()),
        workflow=WorkflowRef(id=uuid.uuid4(), version=3),
        step=StepRef(id=uuid.uuid4(), key="fetch"),
        process=ProcessRef(id=uuid.uuid4()),
    )


def a_step(key: str, output="single", next_key=None) -> Step:
    return Step(
        id=uuid.uuid4(),
        workflow_id=uuid.uuid4(),
        key=key,
        name=None,
        function="Transform",
        config={},
        next_key=next_key,
        output=output,
        retry=RetryPolicy(),
    )


class TestPacket:
    def test_round_trips_through_binary_http(self) -> None:
        packet, event_id = a_packet(), uuid.uuid4()
        message = to_binary_event(
            to_cloudevent(
                event_attributes(packet, event_id=event_id), packet.model_dump(mode="json")
            )
        )
        assert message.headers["ce-id"] == str(event_id)
        assert message.headers["ce-type"] == EVENT_TYPE
        event = from_http_event(HTTPMessage(headers=message.headers, body=message.body))
        assert packet_from_event(event) == packet

    def test_extension_names_are_lowercase_alphanumeric(self) -> None:
        attributes = event_attributes(a_packet(), event_id=uuid.uuid4())
        assert all(name.isalnum() and name.islower() for name in attributes)

    def test_child_packets_point_to_their_parent(self) -> None:
        parent = a_packet()
        child = parent.for_step(
            step_id=uuid.uuid4(), step_key="save", payload=[1], process_id=uuid.uuid4()
        )
        assert child.process.parent_id == parent.process.id and child.attempt == 1
        assert child.job == parent.job and child.payload == [1]

    @pytest.mark.parametrize(
        "data,needle",
        [
            ({"payload": 1}, "account"),
            ("text", "not JSON"),
            ({"payload": 1, "attempt": 0, "account": {"id": "x"}}, "account.id"),
        ],
    )
    def test_malformed_data_is_named(self, data, needle) -> None:
        packet = a_packet()
        attributes = event_attributes(packet, event_id=uuid.uuid4())
        with pytest.raises(MalformedEvent, match=needle):
            packet_from_event(to_cloudevent(attributes, data))


class TestTemplates:
    CONTEXT = {"payload": {"id": 7, "name": "Ana", "tags": ["a"]}}

    async def test_a_whole_expression_keeps_its_type(self) -> None:
        assert await templates.render(
            {"x": "{{ payload.id }}", "t": "{{ payload.tags }}"}, self.CONTEXT
        ) == {"x": 7, "t": ["a"]}

    async def test_text_with_expressions_renders_to_a_string(self) -> None:
        assert await templates.render(["id={{ payload.id }}"], self.CONTEXT) == ["id=7"]

    async def test_undefined_names_are_a_permanent_error_naming_the_field(self) -> None:
        with pytest.raises(PermanentError, match=r"config\.url"):
            await templates.render({"url": "{{ payload.nope }}"}, self.CONTEXT)

    async def test_the_sandbox_refuses_internals(self) -> None:
        with pytest.raises(PermanentError):
            await templates.render({"x": "{{ payload.__class__.__mro__ }}"}, self.CONTEXT)

    def test_a_template_that_does_not_parse_is_found_before_storing(self) -> None:
        with pytest.raises(templates.TemplateError) as caught:
            templates.check({"headers": {"a": "{{ payload. }}"}})
        assert caught.value.path == "config.headers.a"


class TestPlan:
    def version(self, *steps: Step) -> Version:
        return Version(id=uuid.uuid4(), number=1, entry_key=steps[0].key,
                       steps={s.key: s for s in steps})

    def test_single_multiple_and_null(self) -> None:
        save = a_step("save", output=None)
        one = a_step("fetch", "single", "save")
        many = a_step("fetch", "multiple", "save")
        end = a_step("fetch", None, None)
        assert [m.payload for m in plan(one, [1, 2], self.version(one, save))[1]] == [[1, 2]]
        assert [m.payload for m in plan(many, [1, 2], self.version(many, save))[1]] == [1, 2]
        assert plan(many, [], self.version(many, save))[1] == []
        assert plan(end, {"x": 1}, self.version(end))[1] == []

    def test_a_non_array_under_multiple_is_a_clear_failure(self) -> None:
        many = a_step("fetch", "multiple", "save")
        with pytest.raises(PermanentError, match="'fetch' has output 'multiple'.*dict"):
            plan(many, {"x": 1}, self.version(many, a_step("save")))

    def test_a_route_overrides_next(self) -> None:
        cond, hot = a_step("hot?", "single", None), a_step("hot")
        [message] = plan(cond, Route("hot", {"s": 9}), self.version(cond, hot))[1]
        assert message.step.key == "hot" and message.payload == {"s": 9}
        assert plan(cond, Route(None, {}), self.version(cond, hot))[1] == []


def test_retry_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(attempts=10, backoff_s=1, factor=2, max_backoff_s=5)
    assert [policy.delay_s(n) for n in range(1, 6)] == [1, 2, 4, 5, 5]


class TestSsrfGuard:
    @pytest.mark.parametrize(
        "ip",
        [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "169.254.169.254",
            "::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "0.0.0.0",
        ],
    )
    def test_non_public_addresses_are_refused(self, ip: str) -> None:
        with pytest.raises(AddressRefused):
            check_address(ip, [])

    @pytest.mark.parametrize(
        "ip",
        [
            "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
            "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
            "64:ff9b:1:a00:0:100::",  # local-use NAT64 (/48) of 10.0.0.1
            "2002:c0a8:1::1",  # 6to4 of 192.168.0.1
            "2002:7f00:1::",  # 6to4 of 127.0.0.1
            "::7f00:1",  # IPv4-compatible 127.0.0.1
            "::a00:1",  # IPv4-compatible 10.0.0.1
            "2001:0:4136:e378:8000:63bf:f5ff:fffe",  # Teredo, client 10.0.0.1
            "2001:0:7f00:1:8000:63bf:3fff:fdd2",  # Teredo, server 127.0.0.1
        ],
    )
    def test_ipv4_embedded_in_ipv6_is_judged_by_the_ipv4(self, ip: str) -> None:
        with pytest.raises(AddressRefused):
            check_address(ip, [])

    @pytest.mark.parametrize(
        "ip", ["64:ff9b::808:808", "2002:808:808::1", "::ffff:8.8.8.8", "2606:4700::1111"]
    )
    def test_embedded_public_ipv4_and_public_ipv6_pass(self, ip: str) -> None:
        check_address(ip, [])

    def test_public_addresses_and_allowed_networks_pass(self) -> None:
        check_address("93.184.216.34", [])
        check_address("127.0.0.1", [ipaddress.ip_network("127.0.0.0/8")])

    async def test_a_name_resolving_to_loopback_is_refused_unless_allowed(self) -> None:
        with pytest.raises(AddressRefused):
            await check_url("http://localhost:9/x", [])
        with pytest.raises(AddressRefused):
            await check_url("http://127.0.0.1:9/x", [])
        await check_url(
            "http://localhost:9/x",
            [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")],
        )

    async def test_only_http_urls(self) -> None:
        with pytest.raises(PermanentError, match="not an http"):
            await check_url("file:///etc/passwd", [])


class TestSqlParameters:
    def test_named_parameters_become_psycopg_placeholders(self) -> None:
        func = load_function_module("database-query")
        sql, names = func.to_psycopg(
            "select :a::int, ':not' , \"x:y\", 5 % 2, :b from t where c = :a"
        )
        assert sql == "select %(a)s::int, ':not' , \"x:y\", 5 %% 2, %(b)s from t where c = %(a)s"
        assert names == ["a", "b", "a"]

    def test_missing_parameters_are_named(self) -> None:
        func = load_function_module("database-query")
        with pytest.raises(PermanentError, match="no value for parameter.*: b"):
            func.bind(["a", "b"], {"a": 1})
        with pytest.raises(PermanentError, match="payload is list"):
            func.bind(["a"], [1])


class TestVerbatimFields:
    """Fields the catalog marks as never templated (Database.query's ``sql``)."""

    CONTEXT = {"payload": {"id": "0 OR true"}}

    def test_the_catalog_marks_sql_and_only_what_must_stay_verbatim(self) -> None:
        from stepline.catalog import CATALOG, verbatim_fields

        marked = {name: verbatim_fields(spec.config_schema) for name, spec in CATALOG.items()}
        assert {name: fields for name, fields in marked.items() if fields} == {
            "Database.query": frozenset({"sql"})
        }

    async def test_a_verbatim_field_is_left_as_it_is_the_others_rendered(self) -> None:
        config = {"sql": "SELECT :id", "connection": "{{ payload.id }}"}
        rendered = await templates.render(config, self.CONTEXT, verbatim=frozenset({"sql"}))
        assert rendered == {"sql": "SELECT :id", "connection": "0 OR true"}

    async def test_a_template_in_a_verbatim_field_is_a_permanent_error_naming_it(self) -> None:
        config = {"sql": "SELECT * FROM t WHERE id = {{ payload.id }}"}
        with pytest.raises(PermanentError, match=r"config\.sql.*never templated"):
            await templates.render(config, self.CONTEXT, verbatim=frozenset({"sql"}))


class TestOrigins:
    """A connection's credentials are bound to scheme, host and port: nothing less."""

    def credentials(self, base_url: str | None, secret: dict | None = None):
        from stepline.outbound import Credentials
        from stepline.step import StoredConnection

        config = {"base_url": base_url} if base_url else {}
        return Credentials.of(StoredConnection("api", "http", config, secret or {}))

    @pytest.mark.parametrize("url,served", [
        ("https://api.example/v1/items", True),
        ("https://api.example:443/other", True),
        ("http://api.example/v1/items", False),  # https -> http
        ("https://api.example:8443/v1", False),
        ("https://evil.example/v1", False),
        ("https://api.example.evil.example/v1", False),
    ])
    def test_the_origin_is_scheme_host_and_port(self, url: str, served: bool) -> None:
        assert self.credentials("https://api.example/v1/").serves(url) is served

    def test_token_and_secret_headers_are_both_lent_and_hidden(self) -> None:
        lent = self.credentials("https://api.example", {"token": "t0k", "headers": {"X-K": "k3y"}})
        assert lent.headers == {"X-K": "k3y", "Authorization": "Bearer t0k"}
        assert set(lent.secrets) == {"t0k", "k3y"}

    def test_a_secret_without_an_origin_is_lent_nowhere(self) -> None:
        with pytest.raises(PermanentError, match="no base_url"):
            self.credentials(None, {"token": "t0k"})
        assert self.credentials(None).serves("https://anywhere.example/")
