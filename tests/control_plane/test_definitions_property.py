"""Random and malformed definitions thrown at POST /v1/workflows: never a 500, never a
partial write, never a stall (each call is bounded by the client's time-out), every
problem named (step and field), all of a document's problems at once. Hostile parts are
mixed in: template, CEL and JMESPath bombs, catastrophic and RE2-refused patterns,
deep nesting."""

from __future__ import annotations

import copy
import json
from typing import Any

import psycopg
from cp_support import BlockingApi
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stepline.catalog import CATALOG

MAX_EXAMPLES = 60
KEYS = ["start", "a", "b", "hot?", "x.y", "", "bad key", "a" * 101]
FUNCTIONS = [*CATALOG, "Nope", "", 42, None, *["Webhook"] * 3]
SETTINGS = settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)

def deep(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value] if depth % 2 else {"k": value}
    return value


hostile_templates = st.sampled_from([
    "{{ 9 ** (9 ** 9) }}", "{{ 'a' * 10**10 }}", "x {{ 'x'|center(1000000000) }}",
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}", "{{ payload.__class__ }}", "{{ }}",
    "{{ 1 }}" * 200,
])
hostile_patterns = st.sampled_from(["^(a+)+$", r"(a)\1", "(?=x)", "(?<!y)z", "[", "a{1000}{1000}",
                                    "\\p{Greek}+", "(" * 500 + ")" * 500])
hostile_schemas = st.one_of(
    hostile_patterns.map(lambda p: {"type": "string", "pattern": p}),
    hostile_patterns.map(lambda p: {"patternProperties": {p: {}},
                                    "unevaluatedProperties": False}),
    st.sampled_from([{"type": "nope"}, {"$ref": "#"}, {"$ref": "https://example.com/s"},
                     {"properties": {"pattern": {"type": "string"}}}, {"minLength": -1}]),
    st.integers(1, 200).map(lambda n: deep(n)),
)

plausible_configs = st.one_of(
    st.fixed_dictionaries({"url": hostile_templates, "headers": st.fixed_dictionaries(
        {"x": hostile_templates})}),
    st.fixed_dictionaries({"payload_schema": hostile_schemas}),
    st.fixed_dictionaries({"expression": st.sampled_from(
        ["|".join(["[@, @][]"] * 40), "[" * 3000, "a" + ".a" * 5000])}),
    st.fixed_dictionaries({"branches": st.lists(st.fixed_dictionaries({
        "when": st.sampled_from(["size(payload.map(x, payload.map(y, y))) > 0",
                                 "(" * 3000 + "true" + ")" * 3000, "'a' " * 5000]),
        "next": st.sampled_from(KEYS)}), max_size=2)}),
    st.fixed_dictionaries({"deep": st.integers(50, 900).map(deep)}),
    st.just({}),
    st.fixed_dictionaries({"expression": st.sampled_from(["@", "items[*].id", "[[[", "{{ x }}"])}),
    st.fixed_dictionaries({"schedule": st.sampled_from(["*/5 * * * *", "61 * * * *", "@daily",
                                                        "* * * *", "H * * * *"]),
                           "timezone": st.sampled_from(["UTC", "America/Sao_Paulo", "Mars/Base",
                                                        ""])}),
    st.fixed_dictionaries({"branches": st.lists(st.fixed_dictionaries({
        "when": st.sampled_from(["payload.score > 50", "payload.x >", "true", "((("]),
        "next": st.sampled_from(KEYS)}), max_size=2),
        "default": st.sampled_from([None, *KEYS])}),
    st.fixed_dictionaries({"sql": st.sampled_from(["select 1", ""]),
                           "connection": st.sampled_from([None, "crm"])}),
    st.fixed_dictionaries({"url": st.text(max_size=10), "items_path": st.sampled_from(
        ["items", "items[", "{{ payload.path }}"])}),
    st.dictionaries(st.text(max_size=8), json_values, max_size=3),
)

steps_strategy = st.lists(
    st.one_of(
        st.fixed_dictionaries(
            {"key": st.sampled_from(KEYS), "function": st.sampled_from(FUNCTIONS)},
            optional={"config": plausible_configs,
                      "next": st.sampled_from([None, *KEYS, 7]),
                      "output": st.sampled_from(["single", "multiple", None, "many"]),
                      "name": st.text(max_size=10),
                      "retry": st.sampled_from([{}, {"attempts": 0}, {"attempts": 2}]),
                      "surprise": json_values}),
        json_values,
    ),
    max_size=6,
)

bodies = st.one_of(
    st.fixed_dictionaries({"name": st.text(min_size=1, max_size=20),
                           "steps": st.one_of(steps_strategy, json_values)}),
    st.dictionaries(st.sampled_from(["project_id", "name", "steps", "description", "other"]),
                    json_values, max_size=4),
)


def counts(database_url: str) -> tuple[int, int, int]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT (SELECT count(*) FROM workflows), (SELECT count(*) FROM workflow_versions), "
            "(SELECT count(*) FROM steps)").fetchone()


def assert_named(response: Any) -> None:
    error = response.json()["error"]
    assert error["code"] in {"invalid", "invalid_definition"}, error
    assert isinstance(error["details"], list) and error["details"], error
    for detail in error["details"]:
        assert isinstance(detail["field"], str) and detail["field"], detail
        assert isinstance(detail["message"], str) and detail["message"], detail
        if error["code"] == "invalid_definition":
            assert "step" in detail and (detail["step"] is None
                                         or isinstance(detail["step"], str)), detail


def test_random_definitions_never_500_never_partial(database_url: str) -> None:
    with BlockingApi(database_url) as client:
        project_id = client.post("/v1/projects", json={"name": "p"}).json()["id"]

        @SETTINGS
        @given(body=bodies, with_project=st.booleans())
        def check(body: dict[str, Any], with_project: bool) -> None:
            if with_project:
                body = {**body, "project_id": project_id}
            before = counts(database_url)
            # sent as Python writes JSON, non-finite numbers included (`Infinity`): the
            # server must refuse them by name, not fail
            response = client.post("/v1/workflows", content=json.dumps(body),
                                   headers={"content-type": "application/json"})
            assert response.status_code in (201, 422), response.text
            after = counts(database_url)
            if response.status_code == 422:
                assert_named(response)
                assert after == before
            else:
                steps = response.json()["steps"]
                assert after == (before[0] + 1, before[1] + 1, before[2] + len(steps))

        check()


BASE = [
    {"key": "start", "function": "Manual", "next": "a"},
    {"key": "a", "function": "Transform", "config": {"expression": "@"}, "next": "cond"},
    {"key": "cond", "function": "Condition", "next": None,
     "config": {"branches": [{"when": "payload.x > 1", "next": "hi"}], "default": "lo"}},
    {"key": "hi", "function": "Transform", "config": {"expression": "@"}, "output": None},
    {"key": "lo", "function": "Transform", "config": {"expression": "@"}, "output": None},
]


def _step(steps: list[dict[str, Any]], key: str) -> dict[str, Any]:
    return next(s for s in steps if s["key"] == key)


def _jmespath(steps):
    _step(steps, "a")["config"]["expression"] = "[[["
    return ("a", "config.expression")


def _cel(steps):
    _step(steps, "cond")["config"]["branches"][0]["when"] = "payload.x >"
    return ("cond", "config.branches[0].when")


def _function(steps):
    _step(steps, "hi")["function"] = "Nope"
    return ("hi", "function")


def _schema(steps):
    _step(steps, "lo")["config"]["extra"] = 1
    return ("lo", "config")


def _dangling(steps):
    _step(steps, "start")["next"] = "ghost"
    return ("start", "next")


def _cron(steps):
    _step(steps, "start").update(function="CronJob",
                                 config={"schedule": "61 * * * *", "timezone": "Mars/Base"})
    return ("start", "config.schedule")


DEFECTS = [_jmespath, _cel, _function, _schema, _dangling, _cron]


def test_every_problem_of_a_document_is_reported_at_once(database_url: str) -> None:
    with BlockingApi(database_url) as client:
        project_id = client.post("/v1/projects", json={"name": "p"}).json()["id"]
        assert client.post("/v1/workflows", json={"project_id": project_id, "name": "ok",
                                                  "steps": BASE}).status_code == 201

        @SETTINGS
        @given(defects=st.sets(st.sampled_from(DEFECTS), min_size=1))
        def check(defects: set) -> None:
            steps = copy.deepcopy(BASE)
            expected = {defect(steps) for defect in defects}
            response = client.post("/v1/workflows", json={"project_id": project_id,
                                                          "name": "broken", "steps": steps})
            assert response.status_code == 422, response.text
            assert_named(response)
            named = {(d["step"], d["field"]) for d in response.json()["error"]["details"]}
            assert expected <= named, (expected - named, named)

        check()
