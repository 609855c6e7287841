"""Every functions/*/func.yaml is a valid, current Knative Functions project file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from . import checks

FUNC_YAMLS = checks.func_yaml_paths()


def _doc(slug: str) -> dict[str, Any]:
    return checks.load_yaml(checks.FUNCTIONS_DIR / slug / "func.yaml")


def test_every_function_has_a_func_yaml() -> None:
    folders = {path.parent.name for path in FUNC_YAMLS}
    assert folders - checks.UNWIRED_FOLDERS == set(checks.FUNCTIONS.values())


@pytest.mark.parametrize("path", FUNC_YAMLS, ids=lambda p: p.parent.name)
def test_func_yaml_matches_func_schema(path: Path, func_schema: dict[str, Any]) -> None:
    assert checks.json_schema_problems(checks.load_yaml(path), func_schema, str(path)) == []


@pytest.mark.parametrize("path", FUNC_YAMLS, ids=lambda p: p.parent.name)
def test_func_yaml_follows_stepline_rules(path: Path) -> None:
    assert checks.func_yaml_policy_problems(checks.load_yaml(path), path.parent.name) == []


def test_created_stays_a_string_as_func_writes_it() -> None:
    doc = checks.load_yaml_documents("created: 2026-11-22T00:00:00Z\n")[0]
    assert doc["created"] == "2026-11-22T00:00:00Z"


# ---- each check can fail


def test_schema_rejects_the_host_builder_and_unknown_fields(func_schema: dict[str, Any]) -> None:
    doc = _doc("transform")
    doc["build"]["builder"] = "host"
    doc["deploy"]["options"]["scale"]["minimum"] = 0
    problems = checks.json_schema_problems(doc, func_schema, "func.yaml")
    assert any("build/builder" in p for p in problems)
    assert any("deploy/options/scale" in p for p in problems)


def test_schema_requires_created(func_schema: dict[str, Any]) -> None:
    doc = _doc("transform")
    del doc["created"]
    assert checks.json_schema_problems(doc, func_schema, "func.yaml")


def test_policy_flags_autoscaling_in_deploy_annotations() -> None:
    doc = _doc("condition")
    doc["deploy"]["annotations"] = {"autoscaling.knative.dev/min-scale": "0"}
    assert any(
        "deploy.annotations" in p for p in checks.func_yaml_policy_problems(doc, "condition")
    )


def test_policy_flags_a_function_that_cannot_scale_to_zero() -> None:
    doc = _doc("condition")
    doc["deploy"]["options"]["scale"]["min"] = 1
    assert any("scale.min" in p for p in checks.func_yaml_policy_problems(doc, "condition"))


def test_policy_flags_old_spec_http_invoke_and_missing_secret_env() -> None:
    doc = _doc("http-request")
    doc["specVersion"] = "0.35.0"
    doc["invoke"] = "http"
    doc["run"]["envs"] = [e for e in doc["run"]["envs"] if e["name"] != "STEPLINE_SECRET_KEY"]
    problems = checks.func_yaml_policy_problems(doc, "http-request")
    assert any("specVersion" in p for p in problems)
    assert any("invoke" in p for p in problems)
    assert any("run.envs" in p for p in problems)


def test_policy_flags_a_name_that_is_not_the_folder() -> None:
    assert any("name" in p for p in checks.func_yaml_policy_problems(_doc("webhook"), "cronjob"))


def test_func_secret_reference_becomes_a_secret_key_ref() -> None:
    assert checks.func_env_as_kubernetes("{{ secret:stepline-database:url }}") == {
        "valueFrom": {"secretKeyRef": {"name": "stepline-database", "key": "url"}}
    }
    assert checks.func_env_as_kubernetes("") == {"value": ""}
