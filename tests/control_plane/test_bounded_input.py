"""Nothing a tenant sends stalls the control plane: a definition whose templates would
take forever to fold is stored without being evaluated; a payload schema's patterns run
on RE2 (a pattern RE2 cannot compile is refused when stored, naming step and field); a
catastrophic pattern against a hostile payload answers at once; JSON nested 100,000
levels deep is a 4xx, never a 500."""

from __future__ import annotations

from typing import Any

from cp_support import api, project, workflow

from stepline_control.validation import MAX_DEPTH

DEEP = b"[" * 100_000


def hook(schema: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": "hook", "function": "Webhook", "output": None,
             "config": {"payload_schema": schema}}]


def details(response) -> set[tuple[str | None, str]]:
    return {(d.get("step"), d["field"]) for d in response.json()["error"]["details"]}


async def test_templates_are_stored_without_being_evaluated(database_url: str) -> None:
    steps = [{"key": "start", "function": "Manual", "output": "single", "next": "call"},
             {"key": "call", "function": "Http.request", "output": None, "config": {
                 "url": "https://example.com/{{ 9 ** (9 ** 9) }}",
                 "headers": {"x": "{{ 'a' * 10**10 }}", "y": "{{ 'x'|center(1000000000) }}"},
                 "body": "{% for i in range(100000) %}{% for j in range(100000) %}"
                         "{% endfor %}{% endfor %}"}}]
    async with api(database_url) as a:
        _, admin = await a.account("shop")
        await workflow(admin, steps)  # 201: they parse; running them is bounded


async def test_a_pattern_re2_cannot_compile_is_refused_by_name(database_url: str) -> None:
    schema = {"type": "object",
              "properties": {"code": {"type": "string", "pattern": r"^(a)\1$"},
                             "pattern": {"const": {"pattern": "(?=not a schema)"}}},
              "patternProperties": {"^(?!x)": {"type": "integer"}}}
    async with api(database_url) as a:
        _, admin = await a.account("shop")
        response = await admin.post("/v1/workflows", json={
            "project_id": await project(admin), "name": "w", "steps": hook(schema)})
        assert response.status_code == 422, response.text
        assert details(response) == {
            ("hook", "config.payload_schema.properties.code.pattern"),
            ("hook", "config.payload_schema.patternProperties")}
        broken = await admin.post("/v1/workflows", json={
            "project_id": await project(admin, "p2"), "name": "w",
            "steps": hook({"type": "text"})})
        assert broken.status_code == 422
        assert details(broken) == {("hook", "config.payload_schema.type")}


async def test_a_catastrophic_pattern_answers_at_once(database_url: str) -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string",
                                                        "pattern": "^(a+)+$"}},
              "patternProperties": {"^(b+)+$": {"type": "string"}},
              "additionalProperties": False}
    hostile = {"name": "a" * 50_000 + "!", "b" * 50_000 + "!": 1}
    async with api(database_url) as a:
        _, admin = await a.account("shop")
        step_id = (await workflow(admin, hook(schema)))["steps"][0]["id"]
        response = await admin.post(f"/v1/hooks/{step_id}", json=hostile)
        assert response.status_code == 422, response.text
        fields = {d["field"] for d in response.json()["error"]["details"]}
        assert fields == {"payload.name", "payload"}
        ok = await admin.post(f"/v1/hooks/{step_id}", json={"name": "aaa", "bbb": "x"})
        assert ok.status_code == 202, ok.text


async def test_deeply_nested_json_is_a_4xx(database_url: str) -> None:
    async with api(database_url) as a:
        _, admin = await a.account("shop")
        step_id = (await workflow(admin, hook({"type": "array"})))["steps"][0]["id"]
        json_headers = {"content-type": "application/json"}
        for url in ("/v1/workflows", f"/v1/hooks/{step_id}", "/v1/projects"):
            response = await admin.post(url, content=DEEP, headers=json_headers)
            assert 400 <= response.status_code < 500, (url, response.status_code)
        nested: Any = "x"
        for _ in range(MAX_DEPTH + 5):
            nested = [nested]
        steps = [{"key": "start", "function": "Manual", "output": "single", "next": "t"},
                 {"key": "t", "function": "Transform", "output": None,
                  "config": {"expression": "@", "deep": nested}}]
        response = await admin.post("/v1/workflows", json={
            "project_id": await project(admin), "name": "w", "steps": steps})
        assert response.status_code == 422
        assert ("t", "(step)") in details(response)
        structured = {"content-type": "application/cloudevents+json"}
        response = await admin.post(f"/v1/hooks/{step_id}", content=DEEP, headers=structured)
        assert response.status_code == 400
