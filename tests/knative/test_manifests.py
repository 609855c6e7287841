"""The knative/ overlays render, every object validates, and the rules schemas miss hold."""

from __future__ import annotations

from typing import Any

import pytest

from . import checks

Objs = list[dict[str, Any]]
OVERLAYS = pytest.mark.parametrize("overlay", checks.OVERLAYS)


def _first(objs: Objs, api_kind: tuple[str, str], name: str | None = None) -> dict[str, Any]:
    for obj in checks.of_kind(objs, api_kind):
        if name is None or obj["metadata"]["name"] == name:
            return checks.broken(obj)
    raise LookupError(f"{api_kind} {name} not rendered")


def _deployment(objs: Objs, name: str) -> dict[str, Any]:
    return _first(objs, ("apps/v1", "Deployment"), name)


# ---- the real render


@OVERLAYS
def test_overlay_renders_every_function(overlay: str, rendered: dict[str, Objs]) -> None:
    assert checks.function_coverage_problems(rendered[overlay]) == []


@OVERLAYS
def test_functions_are_cluster_local_but_the_webhook(overlay: str, rendered: dict[str, Objs]
                                                     ) -> None:
    assert checks.visibility_problems(rendered[overlay]) == []
    services = {s["metadata"]["name"] for s in checks.of_kind(rendered[overlay],
                                                              checks.KNATIVE_SERVICE)}
    assert checks.PUBLIC_FUNCTIONS < services  # the exception names a real Service


@OVERLAYS
def test_every_object_validates_against_its_schema(
    overlay: str,
    rendered: dict[str, Objs],
    crd_schemas: dict[tuple[str, str], dict[str, Any]],
    kubernetes_schemas: str,
) -> None:
    problems = [
        p for obj in rendered[overlay] for p in checks.object_schema_problems(obj, crd_schemas)
    ]
    assert problems == []


@OVERLAYS
def test_everything_lives_in_the_stepline_namespace(
    overlay: str, rendered: dict[str, Objs]
) -> None:
    assert checks.namespace_problems(rendered[overlay]) == []


@OVERLAYS
def test_no_autoscaling_annotation_on_service_metadata(
    overlay: str, rendered: dict[str, Objs]
) -> None:
    assert checks.service_metadata_autoscaling_problems(rendered[overlay]) == []


@OVERLAYS
def test_services_scale_to_zero_with_chosen_limits(overlay: str, rendered: dict[str, Objs]) -> None:
    assert checks.scale_to_zero_problems(rendered[overlay]) == []


@OVERLAYS
def test_rabbitmq_sources_read_predeclared_function_queues(
    overlay: str, rendered: dict[str, Objs]
) -> None:
    assert checks.rabbitmq_source_problems(rendered[overlay]) == []


@OVERLAYS
def test_every_sink_is_a_rendered_knative_service(overlay: str, rendered: dict[str, Objs]) -> None:
    assert checks.sink_problems(rendered[overlay]) == []


@OVERLAYS
def test_role_grants_exactly_the_reconciler_verbs(overlay: str, rendered: dict[str, Objs]) -> None:
    assert checks.role_problems(rendered[overlay], checks.load_reconciler_verbs()) == []


@OVERLAYS
def test_every_container_is_locked_down(overlay: str, rendered: dict[str, Objs]) -> None:
    assert checks.container_security_problems(rendered[overlay]) == []


@OVERLAYS
def test_every_container_has_resources(overlay: str, rendered: dict[str, Objs]) -> None:
    assert checks.container_resource_problems(rendered[overlay]) == []


@OVERLAYS
def test_every_long_running_container_has_probes(overlay: str, rendered: dict[str, Objs]) -> None:
    assert checks.probe_problems(rendered[overlay]) == []


@OVERLAYS
def test_every_image_comes_from_the_overlay_registry(
    overlay: str, rendered: dict[str, Objs]
) -> None:
    assert checks.image_problems(rendered[overlay], checks.REGISTRIES[overlay]) == []


def test_dev_ships_every_secret_it_references(dev: Objs) -> None:
    assert checks.secret_reference_problems(dev, secrets_shipped=True) == []


def test_prod_ships_no_secret(prod: Objs) -> None:
    assert checks.secret_reference_problems(prod, secrets_shipped=False) == []


def test_prod_runs_its_own_broker_and_dev_an_external_one(prod: Objs, dev: Objs) -> None:
    cluster = ("rabbitmq.com/v1beta1", "RabbitmqCluster")
    assert [c["metadata"]["name"] for c in checks.of_kind(prod, cluster)] == ["stepline-rabbitmq"]
    assert checks.of_kind(dev, cluster) == []
    for source in checks.of_kind(prod, checks.RABBITMQ_SOURCE):
        # each source as its own least-privileged user of that broker (docs/rabbitmq.md)
        assert source["spec"]["rabbitmqClusterReference"] == {
            "connectionSecret": {"name": f"stepline-amqp-source-{source['metadata']['name']}"}
        }
        assert source["spec"]["rabbitmqResourcesConfig"]["vhost"] == "stepline"
    for source in checks.of_kind(dev, checks.RABBITMQ_SOURCE):
        assert source["spec"]["rabbitmqClusterReference"] == {
            "connectionSecret": {"name": "stepline-amqp"}
        }


def test_relay_runs_two_replicas_under_a_disruption_budget(prod: Objs) -> None:
    relay = _deployment(prod, "stepline-outbox-relay")
    assert relay["spec"]["replicas"] == 2
    budgets = [o for o in prod if o["kind"] == "PodDisruptionBudget"]
    assert [b["spec"]["selector"]["matchLabels"] for b in budgets] == [
        relay["spec"]["selector"]["matchLabels"]
    ]


def test_platform_commands(prod: Objs) -> None:
    commands = {
        obj["metadata"]["name"]: [*container["command"], *container.get("args", [])]
        for obj in prod
        if obj["kind"] in {"Deployment", "Job"}
        for _, container in checks.containers_of(obj)
    }
    assert commands == {
        # the control plane binds 127.0.0.1 unless told otherwise
        "stepline-control-plane": [
            "stepline-control",
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            "8080",
        ],
        # its probes and the scrape annotations look for /healthz and /metrics on 9090
        "stepline-outbox-relay": ["stepline-relay", "--metrics-port", "9090"],
        "stepline-migrate": ["alembic", "-c", "migrations/alembic.ini", "upgrade", "head"],
    }


def test_catalog_functions_are_the_deployed_ones() -> None:
    catalog = pytest.importorskip("stepline.catalog")
    deployed = {
        name: spec.slug for name, spec in catalog.CATALOG.items() if name not in catalog.IN_PROCESS
    }
    assert deployed == checks.FUNCTIONS


def test_concurrency_and_timeouts_follow_the_work(prod: Objs) -> None:
    spec = {
        s["metadata"]["name"]: s["spec"]["template"]["spec"]
        for s in checks.of_kind(prod, checks.KNATIVE_SERVICE)
    }
    for quick in ("database-query", "condition", "transform"):
        for slow in ("http-request", "rdstation-getleads"):
            assert spec[quick]["containerConcurrency"] > spec[slow]["containerConcurrency"]
            assert spec[quick]["timeoutSeconds"] < spec[slow]["timeoutSeconds"]
    # Serving's default max-revision-timeout-seconds is 600
    assert all(0 < s["timeoutSeconds"] <= 600 for s in spec.values())


@pytest.mark.parametrize("name,slug", sorted(checks.FUNCTIONS.items()))
def test_func_yaml_and_service_agree(name: str, slug: str, prod: Objs) -> None:
    doc = checks.load_yaml(checks.FUNCTIONS_DIR / slug / "func.yaml")
    assert checks.func_yaml_service_drift(doc, _first(prod, checks.KNATIVE_SERVICE, slug)) == []


# ---- each check can fail


def test_schema_check_flags_broken_knative_and_rabbitmq_objects(
    prod: Objs, crd_schemas: dict[tuple[str, str], dict[str, Any]]
) -> None:
    source = _first(prod, checks.RABBITMQ_SOURCE)
    source["spec"]["rabbitmqResourcesConfig"]["parallelism"] = 0
    del source["spec"]["sink"]
    service = _first(prod, checks.KNATIVE_SERVICE)
    service["spec"]["template"]["spec"]["containerConcurrency"] = "lots"
    cluster = _first(prod, ("rabbitmq.com/v1beta1", "RabbitmqCluster"))
    cluster["spec"]["replicas"] = -1
    for obj in (source, service, cluster):
        assert checks.object_schema_problems(obj, crd_schemas), checks.name_of(obj)


def test_schema_check_flags_broken_builtin_objects(
    prod: Objs, crd_schemas: dict[tuple[str, str], dict[str, Any]], kubernetes_schemas: str
) -> None:
    relay = _deployment(prod, "stepline-outbox-relay")
    relay["spec"]["replicas"] = "two"
    typo = _deployment(prod, "stepline-control-plane")
    typo["spec"]["template"]["spec"]["containers"][0]["readynessProbe"] = {}
    for obj in (relay, typo):
        assert checks.object_schema_problems(obj, crd_schemas), checks.name_of(obj)


def test_schema_check_flags_a_kind_it_has_no_schema_for(
    crd_schemas: dict[tuple[str, str], dict[str, Any]],
) -> None:
    unknown = {"apiVersion": "example.dev/v1", "kind": "Widget", "metadata": {"name": "w"}}
    assert checks.object_schema_problems(unknown, crd_schemas)


def test_flags_autoscaling_annotation_on_service_metadata(prod: Objs) -> None:
    service = _first(prod, checks.KNATIVE_SERVICE)
    service["metadata"]["annotations"] = {"autoscaling.knative.dev/min-scale": "0"}
    assert checks.service_metadata_autoscaling_problems([service])


def test_flags_a_service_that_does_not_scale_to_zero(prod: Objs) -> None:
    service = _first(prod, checks.KNATIVE_SERVICE)
    service["spec"]["template"]["metadata"]["annotations"]["autoscaling.knative.dev/min-scale"] = (
        "1"
    )
    service["spec"]["template"]["spec"]["securityContext"] = {"runAsNonRoot": True}
    assert len(checks.scale_to_zero_problems([service])) == 2


def test_flags_sources_that_are_not_predeclared_or_read_unknown_queues(prod: Objs) -> None:
    source = _first(prod, checks.RABBITMQ_SOURCE)
    source["spec"]["rabbitmqResourcesConfig"]["predeclared"] = False
    assert any("predeclared" in p for p in checks.rabbitmq_source_problems([source]))
    source = _first(prod, checks.RABBITMQ_SOURCE)
    source["spec"]["rabbitmqResourcesConfig"]["queueName"] = "http-request"
    assert any("not a function's queue" in p for p in checks.rabbitmq_source_problems([source]))
    twice = [_first(prod, checks.RABBITMQ_SOURCE), _first(prod, checks.RABBITMQ_SOURCE)]
    assert any("already consumed" in p for p in checks.rabbitmq_source_problems(twice))


def test_flags_a_source_feeding_the_wrong_function_or_without_retries(prod: Objs) -> None:
    source = _first(prod, checks.RABBITMQ_SOURCE, "condition")
    source["spec"]["sink"]["ref"]["name"] = "transform"
    del source["spec"]["delivery"]["backoffDelay"]
    problems = checks.rabbitmq_source_problems([source])
    assert any("must feed" in p for p in problems)
    assert any("delivery" in p for p in problems)


def test_flags_sinks_that_are_missing_or_not_services(prod: Objs) -> None:
    services = checks.of_kind(prod, checks.KNATIVE_SERVICE)
    missing = _first(prod, checks.RABBITMQ_SOURCE)
    missing["spec"]["sink"]["ref"]["name"] = "no-such-function"
    elsewhere = _first(prod, checks.RABBITMQ_SOURCE)
    elsewhere["spec"]["sink"]["ref"]["namespace"] = "default"
    uri = _first(prod, checks.RABBITMQ_SOURCE)
    uri["spec"]["sink"] = {"uri": "http://example.invalid"}
    deployment = _first(prod, checks.RABBITMQ_SOURCE)
    deployment["spec"]["sink"]["ref"].update(apiVersion="apps/v1", kind="Deployment")
    for source in (missing, elsewhere, uri, deployment):
        assert checks.sink_problems([*services, source]), source["spec"]["sink"]


def test_flags_a_role_with_more_or_fewer_verbs(prod: Objs) -> None:
    expected = checks.load_reconciler_verbs()
    role = _first(prod, ("rbac.authorization.k8s.io/v1", "Role"))
    others = [o for o in prod if o["kind"] != "Role"]
    role["rules"][0]["verbs"].append("update")
    assert checks.role_problems([*others, role], expected)
    role = _first(prod, ("rbac.authorization.k8s.io/v1", "Role"))
    role["rules"][1]["verbs"].remove("watch")
    assert checks.role_problems([*others, role], expected)
    role = _first(prod, ("rbac.authorization.k8s.io/v1", "Role"))
    role["rules"].append({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]})
    assert checks.role_problems([*others, role], expected)


def test_flags_cluster_wide_rbac_and_a_role_bound_to_someone_else(prod: Objs) -> None:
    expected = checks.load_reconciler_verbs()
    cluster_role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "x"},
    }
    assert checks.role_problems([*prod, cluster_role], expected)
    binding = _first(prod, ("rbac.authorization.k8s.io/v1", "RoleBinding"))
    binding["subjects"][0]["name"] = "default"
    others = [o for o in prod if o["kind"] != "RoleBinding"]
    assert checks.role_problems([*others, binding], expected)


@pytest.mark.parametrize(
    "field,value",
    [
        ("runAsNonRoot", None),
        ("readOnlyRootFilesystem", False),
        ("allowPrivilegeEscalation", True),
        ("capabilities", {"drop": ["NET_RAW"]}),
    ],
)
def test_flags_a_container_that_is_not_locked_down(prod: Objs, field: str, value: Any) -> None:
    for obj in (_deployment(prod, "stepline-outbox-relay"), _first(prod, checks.KNATIVE_SERVICE)):
        container = checks.pod_spec(obj)["containers"][0]
        if value is None:
            del container["securityContext"][field]
        else:
            container["securityContext"][field] = value
        assert checks.container_security_problems([obj]), (checks.name_of(obj), field)


def test_flags_a_container_without_security_context_resources_or_probes(prod: Objs) -> None:
    job = _first(prod, ("batch/v1", "Job"))
    container = checks.pod_spec(job)["containers"][0]
    del container["securityContext"], container["resources"]
    assert checks.container_security_problems([job])
    assert checks.container_resource_problems([job])
    relay = _deployment(prod, "stepline-outbox-relay")
    del checks.pod_spec(relay)["containers"][0]["livenessProbe"]
    assert checks.probe_problems([relay])


def test_flags_missing_secrets_in_dev_and_any_secret_in_prod(dev: Objs, prod: Objs) -> None:
    without_amqp = [
        o for o in dev if not (o["kind"] == "Secret" and o["metadata"]["name"] == "stepline-amqp")
    ]
    problems = checks.secret_reference_problems(without_amqp, secrets_shipped=True)
    assert any("connectionSecret" in p for p in problems)
    assert any("STEPLINE_AMQP_URL" in p for p in problems)
    secret = next(o for o in dev if o["kind"] == "Secret")
    assert checks.secret_reference_problems([*prod, secret], secrets_shipped=False)


def test_flags_images_left_unmapped(prod: Objs) -> None:
    relay = _deployment(prod, "stepline-outbox-relay")
    checks.pod_spec(relay)["containers"][0]["image"] = "stepline/platform:latest"
    service = _first(prod, checks.KNATIVE_SERVICE, "transform")
    checks.pod_spec(service)["containers"][0]["image"] = (
        f"{checks.REGISTRIES['prod']}/condition:latest"
    )
    assert len(checks.image_problems([relay, service], checks.REGISTRIES["prod"])) == 2


def test_flags_objects_outside_the_namespace(prod: Objs) -> None:
    relay = _deployment(prod, "stepline-outbox-relay")
    relay["metadata"]["namespace"] = "default"
    assert checks.namespace_problems([relay])


def test_flags_drift_between_func_yaml_and_service(prod: Objs) -> None:
    doc = checks.load_yaml(checks.FUNCTIONS_DIR / "http-request" / "func.yaml")
    service = _first(prod, checks.KNATIVE_SERVICE, "http-request")
    service["spec"]["template"]["spec"]["containerConcurrency"] += 1
    service["spec"]["template"]["metadata"]["annotations"]["autoscaling.knative.dev/max-scale"] = (
        "99"
    )
    service["spec"]["template"]["spec"]["containers"][0]["env"].pop()
    problems = checks.func_yaml_service_drift(doc, service)
    assert any("containerConcurrency" in p for p in problems)
    assert any("max-scale" in p for p in problems)
    assert any("env" in p for p in problems)


def test_coverage_flags_a_function_without_service_or_source(prod: Objs) -> None:
    partial = [o for o in prod if o["metadata"]["name"] != "workflow-call"]
    assert len(checks.function_coverage_problems(partial)) == 2
