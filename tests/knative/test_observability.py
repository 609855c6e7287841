"""knative/observability against the code: every query of the Grafana dashboard and every
alert rule names only metrics some component exports (collected from the components'
own registries, not listed here), every alert's runbook link lands on a section of
docs/runbook.md, and the manifests point Prometheus at the ports the code serves."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from metrics_support import exported_names

from stepline.db import create_pool
from stepline.metrics import KNATIVE_METRICS_PORT, FunctionMetrics
from stepline_control.metrics import Metrics
from stepline_relay import health
from stepline_relay.amqp import Broker
from stepline_relay.dead_letter_queue import DeadLetterRecorder
from stepline_relay.http import HttpTransport
from stepline_relay.onemachine.dispatcher import DispatchMetrics
from stepline_relay.relay import Relay
from stepline_relay.topology import Topology

from . import checks

OBSERVABILITY = checks.KNATIVE_DIR / "observability"
DASHBOARD = OBSERVABILITY / "stepline-dashboard.json"
ALERTS = OBSERVABILITY / "alerts.yaml"
RUNBOOK = checks.REPO_ROOT / "docs" / "runbook.md"
# announced by the control plane's stuck-job watchdog, which exports them once it lands;
# a name here that is exported already changes nothing
ANNOUNCED = {"stepline_jobs_stuck", "stepline_jobs_stuck_detected_total"}

Objs = list[dict[str, Any]]

# ---- which metric names a PromQL expression reads

PROMQL_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "group_left",
                   "group_right"}
STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
MATCHERS = re.compile(r"\{[^}]*\}")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
RANGE = re.compile(r"\[[^\]]*\]")
VARIABLE = re.compile(r"\$\{?\w+\}?")
IDENTIFIER = re.compile(r"(?<![\w:.])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()")
LABEL_VALUES = re.compile(r"label_values\(\s*([A-Za-z_:][\w:]*)")


def metric_names(expr: str) -> set[str]:
    """The metric names in a PromQL expression: identifiers left once strings, label
    matchers, grouping clauses, ranges, Grafana variables, function calls and keywords
    are taken out."""
    for pattern in (STRING, MATCHERS, GROUPING, RANGE, VARIABLE):
        expr = pattern.sub(" ", expr)
    return {name for name in IDENTIFIER.findall(expr) if name not in PROMQL_KEYWORDS}


def test_the_name_extractor_finds_metrics_and_nothing_else() -> None:
    expr = ('histogram_quantile(0.95, sum by (function, le) (rate(a_seconds_bucket'
            '{function=~"$function", result!="x{y}"}[$__rate_interval])))\n'
            '/ ignoring(result) group_left b_total offset 5m and on() vector(1e3) '
            '> bool 0 or delta(max(c)[15m:1m]) unless d{e="f"} * inf')
    assert metric_names(expr) == {"a_seconds_bucket", "b_total", "c", "d"}


# ---- what the code exports


@pytest.fixture
async def exported(database_url: str) -> AsyncIterator[set[str]]:
    """Every series name of the functions, the relay (its outbox figures read from a real
    database), the dispatcher and the control plane."""
    pool = create_pool(database_url, max_size=2)
    await pool.open()
    try:
        relay = Relay(database_url=database_url, pool=pool,
                      transport=HttpTransport(function_urls={}))
        recorder = DeadLetterRecorder(broker=Broker("amqp://guest:guest@127.0.0.1:9/",
                                                    name="unused"),
                                      pool=pool, topology=Topology(functions=()))
        backlog = health.OutboxBacklog(pool)
        await backlog.refresh()
        assert backlog.errors == 0
        yield exported_names([
            FunctionMetrics("Transform").registry,
            health.relay_registry(relay, recorder, backlog),
            DispatchMetrics().registry,
            Metrics(ttl_s=5.0).registry,
        ])
    finally:
        await pool.close()


def test_every_exported_name_follows_the_naming_rules(exported: set[str]) -> None:
    assert all(name.startswith("stepline_") for name in exported)
    assert all(name.endswith("_seconds_bucket") for name in exported if name.endswith("_bucket"))


def test_functions_and_dispatchers_label_only_function_status_result() -> None:
    """Never one series per job, process or event: those would never end."""
    dispatch = DispatchMetrics()
    dispatch.requests.labels("Transform", "200").inc()
    dispatch.messages.labels("Transform", "acked").inc()
    dispatch.retries.labels("Transform").inc()
    dispatch.request_seconds.labels("Transform").observe(0.1)
    function = FunctionMetrics("Transform")
    function.observe("succeeded", 200, 0.1)
    for registry in (dispatch.registry, function.registry):
        for family in registry.collect():
            assert family.name.startswith("stepline_"), family.name
            if family.type == "histogram":
                assert family.name.endswith("_seconds"), family.name
            for sample in family.samples:
                assert set(sample.labels) <= {"function", "status", "result", "le"}, sample


# ---- the dashboard


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def panels(container: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in container.get("panels", []):
        yield panel
        yield from panels(panel)  # a collapsed row holds its panels


def dashboard_queries() -> list[str]:
    board = dashboard()
    queries = [t["expr"] for p in panels(board) for t in p.get("targets", [])]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            queries += LABEL_VALUES.findall(variable["definition"])
    return queries


def test_the_dashboard_is_a_grafana_dashboard_on_a_chosen_prometheus() -> None:
    board = dashboard()
    assert board["uid"] and board["title"] and 36 <= board["schemaVersion"] <= 41
    [source] = [v for v in board["templating"]["list"] if v["type"] == "datasource"]
    assert source["query"] == "prometheus"
    uses = {"type": "prometheus", "uid": f"${{{source['name']}}}"}
    shown = [p for p in panels(board) if p["type"] != "row"]
    assert len({p["id"] for p in panels(board)}) == len(list(panels(board)))
    for panel in shown:
        assert panel["datasource"] == uses and panel["targets"], panel["title"]
        assert all(t["datasource"] == uses and t["expr"].strip() for t in panel["targets"])
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]


def test_the_dashboard_shows_what_operators_ask_for() -> None:
    read = set().union(*map(metric_names, dashboard_queries()))
    assert {"stepline_function_deliveries_total", "stepline_outbox_backlog",
            "stepline_outbox_oldest_pending_age_seconds",
            "stepline_function_delivery_duration_seconds_bucket", "stepline_jobs",
            "stepline_jobs_stuck", "stepline_relay_dead_letters_recorded_total"} <= read


def test_every_dashboard_query_reads_exported_metrics(exported: set[str]) -> None:
    unknown = {(query, name) for query in dashboard_queries()
               for name in metric_names(query) - exported - ANNOUNCED}
    assert not unknown, unknown


# ---- the alerts and the runbook


def alert_rules() -> list[dict[str, Any]]:
    rule = checks.load_yaml(ALERTS)
    assert (rule["apiVersion"], rule["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    return [r for group in rule["spec"]["groups"] for r in group["rules"]]


def test_every_alert_reads_exported_metrics(exported: set[str]) -> None:
    unknown = {(r["alert"], name) for r in alert_rules()
               for name in metric_names(r["expr"]) - exported - ANNOUNCED}
    assert not unknown, unknown


def runbook_anchors() -> set[str]:
    """GitHub's anchors for the runbook's headings (lower case, punctuation dropped)."""
    text = re.sub(r"^```.*?^```", "", RUNBOOK.read_text(), flags=re.MULTILINE | re.DOTALL)
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*$", text, re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def test_every_alert_has_a_runbook_section_and_every_section_an_alert() -> None:
    anchors = runbook_anchors()
    alerts = alert_rules()
    for rule in alerts:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        url, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        assert url.endswith("/docs/runbook.md") and anchor in anchors, rule["alert"]
    sections = {a for a in anchors if a.startswith("stepline")}
    assert sections == {r["alert"].lower() for r in alerts}


# ---- the manifests


def test_functions_are_scraped_where_they_serve(prod: Objs, dev: Objs) -> None:
    wanted = {"prometheus.io/scrape": "true", "prometheus.io/port": str(KNATIVE_METRICS_PORT),
              "prometheus.io/path": "/metrics"}
    for service in checks.of_kind([*prod, *dev], checks.KNATIVE_SERVICE):
        annotations = service["spec"]["template"]["metadata"]["annotations"]
        assert wanted.items() <= annotations.items(), checks.name_of(service)


def test_the_relay_is_scraped_on_its_metrics_port(prod: Objs) -> None:
    [relay] = [o for o in prod if o["kind"] == "Deployment"
               and o["metadata"]["name"] == "stepline-outbox-relay"]
    container = relay["spec"]["template"]["spec"]["containers"][0]
    port = container["command"][container["command"].index("--metrics-port") + 1]
    assert relay["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == port
    assert {"name": "metrics", "containerPort": int(port)} in container["ports"]


@pytest.fixture(scope="module")
def observability(kubectl: str) -> Objs:
    import subprocess

    done = subprocess.run([kubectl, "kustomize", str(OBSERVABILITY)], capture_output=True,
                          text=True, timeout=120, check=True)
    return checks.load_yaml_documents(done.stdout)


def test_the_observability_kustomization_ships_dashboard_monitors_and_rules(
    observability: Objs, prod: Objs
) -> None:
    assert {o["metadata"]["namespace"] for o in observability} == {checks.NAMESPACE}
    [config_map] = [o for o in observability if o["kind"] == "ConfigMap"]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"][DASHBOARD.name]) == dashboard()
    [rule] = [o for o in observability if o["kind"] == "PrometheusRule"]
    assert rule["spec"] == checks.load_yaml(ALERTS)["spec"]
    monitors = {o["metadata"]["name"]: o for o in observability if o["kind"] == "PodMonitor"}
    # the platform monitor scrapes ports the Deployments name
    named = {port["name"] for obj in prod if obj["kind"] == "Deployment"
             for _, container in checks.containers_of(obj) for port in container.get("ports", [])}
    endpoints = monitors["stepline-platform"]["spec"]["podMetricsEndpoints"]
    assert {e["port"] for e in endpoints} <= named
    # the functions' monitor rewrites the target to the port the runtime serves
    [endpoint] = monitors["stepline-functions"]["spec"]["podMetricsEndpoints"]
    [relabel] = endpoint["relabelings"]
    assert relabel["targetLabel"] == "__address__"
    assert relabel["replacement"] == f"$1:{KNATIVE_METRICS_PORT}"
