"""The template func project (runtime/template/) that functions built outside this
repository start from: its func.yaml as func and Stepline want it, and the objects that
feed it in a cluster valid against the CRD schemas, its source reading its queue only."""

from __future__ import annotations

from typing import Any

from . import checks

TEMPLATE = checks.REPO_ROOT / "runtime" / "template"
QUEUE = ("rabbitmq.com/v1beta1", "Queue")
BINDING = ("rabbitmq.com/v1beta1", "Binding")


def objects() -> list[dict[str, Any]]:
    return [obj for path in sorted((TEMPLATE / "knative").glob("*.yaml"))
            for obj in checks.load_yaml_documents(path.read_text(encoding="utf-8"))]


def test_the_template_func_yaml_is_one_func_and_stepline_accept(
        func_schema: dict[str, Any]) -> None:
    doc = checks.load_yaml(TEMPLATE / "func.yaml")
    assert checks.json_schema_problems(doc, func_schema, "template/func.yaml") == []
    assert checks.func_yaml_policy_problems(doc, "example-greet") == []


def test_the_template_objects_validate_against_their_schemas(
        crd_schemas: dict[tuple[str, str], dict[str, Any]]) -> None:
    found = objects()
    assert {checks.kind_of(o) for o in found} == {checks.RABBITMQ_SOURCE, QUEUE, BINDING}
    for obj in found:
        assert checks.object_schema_problems(obj, crd_schemas) == []


def test_the_template_source_feeds_its_own_queue_to_its_own_service(monkeypatch: Any) -> None:
    monkeypatch.setitem(checks.FUNCTIONS, "Example.greet", "example-greet")
    found = objects()
    assert checks.rabbitmq_source_problems(found) == []
    [queue] = checks.of_kind(found, QUEUE)
    [binding] = checks.of_kind(found, BINDING)
    assert queue["spec"]["name"] == binding["spec"]["routingKey"] == "Example.greet"
    assert binding["spec"]["source"] == "stepline.steps"
