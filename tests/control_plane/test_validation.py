"""Definition validation, pure (and once through the API): each rule names its step
and field."""

from __future__ import annotations

import pytest
from cp_support import api, project

from stepline_control.validation import MAX_STEPS, cron_problem, validate_definition


def problems(steps, **kwargs) -> set[tuple[str | None, str]]:
    return {(p.step, p.field) for p in validate_definition(steps, **kwargs)[2]}


def chain(*steps: dict) -> list[dict]:
    return [{"key": "start", "function": "Manual", "next": steps[0]["key"] if steps else None,
             "output": "single" if steps else None}, *steps]


def transform(key: str, next_key: str | None = None, **extra) -> dict:
    return {"key": key, "function": "Transform", "config": {"expression": "@"},
            "next": next_key, "output": "single" if next_key else None, **extra}


@pytest.mark.parametrize("schedule", ["*/5 * * * *", "0 9 * * MON-FRI", "@hourly",
                                      "0 0 1 JAN,JUL *", "15 14 1 * ?"])
def test_good_cron_expressions(schedule: str) -> None:
    assert cron_problem(schedule) is None


@pytest.mark.parametrize("schedule", ["61 * * * *", "* * * *", "* * * * * *", "H * * * *",
                                      "0 0 L * *", "0 0 * * 1#2", "*/0 * * * *", "",
                                      "0 0 31 FOO *", "every minute please"])
def test_bad_cron_expressions(schedule: str) -> None:
    assert cron_problem(schedule) is not None


def test_cron_step_checks_schedule_and_time_zone() -> None:
    steps = [{"key": "tick", "function": "CronJob", "next": "t",
              "config": {"schedule": "* * *", "timezone": "Europe/Nowhere"}}, transform("t")]
    assert problems(steps) == {("tick", "config.schedule"), ("tick", "config.timezone")}
    steps[0]["config"] = {"schedule": "*/5 * * * *", "timezone": "America/Sao_Paulo"}
    assert problems(steps) == set()


def test_condition_expressions_must_compile_as_cel() -> None:
    steps = chain({"key": "c", "function": "Condition", "config": {
        "branches": [{"when": "payload.score > 50", "next": "a"},
                     {"when": "payload.score >", "next": "b"}], "default": "b"}},
        transform("a"), transform("b"))
    assert problems(steps) == {("c", "config.branches[1].when")}


def test_cycles_are_refused_and_named() -> None:
    steps = chain(transform("a", "b"), transform("b", "c"), transform("c", "a"))
    found = validate_definition(steps)[2]
    assert [(p.step, p.field) for p in found] == [("c", "next")]
    assert "a -> b -> c -> a" in found[0].message
    assert problems([transform("a", "a")]) >= {("a", "next")}


def test_one_entry_triggers_only_there_and_every_step_reachable() -> None:
    two_entries = chain(transform("a")) + [transform("lonely")]
    assert (None, "steps") in problems(two_entries)
    late_trigger = chain(transform("a", "hook")) + [
        {"key": "hook", "function": "Webhook", "output": None}]
    assert ("hook", "function") in problems(late_trigger)
    island = chain(transform("a")) + [transform("x", "y"), transform("y", "x")]
    assert ("x", "key") in problems(island) or (None, "steps") in problems(island)


def test_every_problem_at_once() -> None:
    steps = [
        {"key": "start", "function": "Manual", "next": "ghost"},
        {"key": "bad key!", "function": "Transform"},
        {"key": "t", "function": "Transform", "config": {"expression": "[[", "x": 1}},
        {"key": "q", "function": "Database.query", "config": {"sql": "select 1"},
         "output": None},
        {"key": "t", "function": "Nope"},
    ]
    found = problems(steps)
    assert {("start", "next"), ("bad key!", "key"), ("t", "config.expression"), ("t", "config"),
            ("q", "config.connection"), ("t", "key"), ("t", "function")} <= found
    assert ("q", "config.connection") not in problems(steps, is_operator=True)


def test_shapes_and_sizes() -> None:
    assert problems("not a list") == {(None, "steps")}
    assert problems([]) == {(None, "steps")}
    assert problems([transform(f"s{i}") for i in range(MAX_STEPS + 1)]) == {(None, "steps")}
    assert ("steps[0]", "(step)") in problems([42])
    assert ("start", "config.text") in problems(
        [{"key": "start", "function": "Transform", "config": {"expression": "@",
                                                              "text": "a\x00b"}}])
    assert ("start", "config.n") in problems(
        [{"key": "start", "function": "Transform", "config": {"expression": "@",
                                                              "n": float("inf")}}])


@pytest.mark.parametrize("sql", [
    "SELECT * FROM leads WHERE email = '{{ payload.email }}'",
    "DELETE FROM leads WHERE id = {{ payload.id }}",
    "SELECT 1 {% if payload.all %}OR true{% endif %}",
])
def test_sql_is_never_templated(sql: str) -> None:
    steps = chain({"key": "q", "function": "Database.query", "output": None,
                   "config": {"connection": "crm", "sql": sql}})
    found = validate_definition(steps)[2]
    assert [(p.step, p.field) for p in found] == [("q", "config.sql")]
    assert ":named parameters" in found[0].message


def test_the_other_fields_of_a_sql_step_may_be_templated() -> None:
    steps = chain({"key": "q", "function": "Database.query", "output": None,
                   "config": {"connection": "{{ payload.db }}",
                              "sql": "SELECT * FROM leads WHERE email = :email"}})
    assert problems(steps) == set()


async def test_the_api_refuses_a_template_in_sql_naming_step_and_field(database_url: str) -> None:
    steps = chain({"key": "q", "function": "Database.query", "output": None,
                   "config": {"connection": "crm", "sql": "SELECT {{ payload.x }}"}})
    async with api(database_url) as a:
        _, tenant = await a.account("tenant")
        refused = await tenant.post("/v1/workflows", json={
            "project_id": await project(tenant), "name": "w", "steps": steps})
        listed = (await tenant.get("/v1/workflows")).json()["items"]
    assert refused.status_code == 422, refused.text
    assert [(d["step"], d["field"]) for d in refused.json()["error"]["details"]] == [
        ("q", "config.sql")]
    assert listed == []
