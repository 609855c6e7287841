"""Services in a real Chromium, two accounts on one platform: the publisher publishes a
workflow on the services page and pins a newer version; the caller finds it in the
catalog under its publisher, builds a workflow on it in the editor, runs it and sees its
result, cannot open the call's job, and reads its bill (month picker, CSV download); the
publisher sees the call served and its revenue, then unpublishes; a viewer publishes
nothing. Screens go to tests/artifacts/screenshots/."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import ui_support
from playwright.sync_api import expect
from test_ui import Tab, browser, chromium_path  # noqa: F401  (fixtures)
from ui_support import screenshot

import support

pytestmark = pytest.mark.slow

FUNCTIONS = ["Service.call", "Transform"]
SERVICE = "Acme.enrichLead"
INPUT_SCHEMA = {"type": "object", "required": ["email"],
                "properties": {"email": {"type": "string", "description": "the lead's e-mail"}}}


@pytest.fixture(scope="module")
def stack(chromium_path: str, template_db: str,  # noqa: F811
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[ui_support.LiveServer]:
    with ui_support.cloned_database(template_db) as url, \
            support.platform(url, FUNCTIONS, tmp_path_factory.mktemp("services-ui-logs")), \
            ui_support.live_server(url) as live:
        yield live


@pytest.fixture
def tabs(browser: Any, stack: ui_support.LiveServer) -> Iterator[Any]:  # noqa: F811
    opened: list[Tab] = []

    def tab() -> Tab:
        opened.append(Tab(browser, stack.url))
        return opened[-1]

    yield tab
    for each in opened:
        each.close()


def accounts(stack: ui_support.LiveServer) -> tuple[dict[str, Any], dict[str, Any]]:
    operator = stack.client()
    made = [operator.post("/v1/accounts", json={"name": name}) for name in ("Acme", "Buyer")]
    assert all(m.status_code == 201 for m in made), [m.text for m in made]
    return made[0].json(), made[1].json()


def test_one_account_sells_a_service_another_builds_on_it_runs_it_and_pays(
        tabs: Any, stack: ui_support.LiveServer) -> None:
    acme, buyer = accounts(stack)
    publisher_api = stack.client(acme["admin_token"]["token"])
    flow = ui_support.create_workflow(publisher_api, "Leads", "Enrich a lead", [
        {"key": "start", "function": "Manual", "next": "score"},
        {"key": "score", "function": "Transform",
         "config": {"expression": "{lead: email, score: length(email)}"}, "output": None}])

    # the publisher publishes it on the services page
    seller = tabs()
    page = seller.page
    seller.sign_in(acme["admin_token"]["token"])
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Services").click()
    page.get_by_label("Workflow", exact=True).select_option(flow["id"])
    page.get_by_label("Name", exact=True).fill(SERVICE)
    page.get_by_label("Price per call", exact=True).fill("0.25")
    page.get_by_label("Description", exact=True).fill("Scores a lead by its e-mail")
    page.get_by_label(re.compile("^Input schema")).fill(json.dumps(INPUT_SCHEMA))
    page.get_by_role("button", name="Publish service").click()
    row = page.locator(f"tr[data-service='{SERVICE}']")
    expect(row.get_by_test_id("pinned")).to_have_text("v1")
    # a newer version of the workflow is pinned from the same row
    replaced = publisher_api.put(f"/v1/workflows/{flow['id']}", json={
        "name": "Enrich a lead", "steps": [
            {"key": "start", "function": "Manual", "next": "score"},
            {"key": "score", "function": "Transform", "output": None, "config": {
                "expression": "{lead: email, score: length(email), by: 'Acme'}"}}]})
    assert replaced.status_code == 200, replaced.text
    page.reload()
    row.get_by_role("button", name=f"Pin version 2 of {SERVICE}").click()
    expect(row.get_by_test_id("pinned")).to_have_text("v2")
    screenshot(page, "20-services")
    assert seller.unlabelled() == []

    # the caller finds it in the catalog, under its publisher
    buyer_tab = tabs()
    page = buyer_tab.page
    buyer_tab.sign_in(buyer["admin_token"]["token"])
    page.get_by_role("link", name="Functions", exact=True).click()
    offer = page.locator("[data-publisher='Acme']").locator(f"[data-function='{SERVICE}']")
    expect(offer.get_by_test_id("offer")).to_have_text("Sold by Acme · 0.25 per call")
    offer.get_by_text("the lead's e-mail").wait_for()
    screenshot(page, "21-catalog-services")
    assert buyer_tab.unlabelled() == []

    # ... builds a workflow on it in the editor, and runs it
    project = stack.client(buyer["admin_token"]["token"]).post(
        "/v1/projects", json={"name": "Sales"}).json()
    buyer_tab.goto(f"/workflows/new?project={project['id']}")
    page.locator("#wf-name").fill("Score new leads")
    page.get_by_role("button", name="+ Add step").click()
    page.keyboard.press("Control+a")
    page.keyboard.type("enrich")
    step = page.locator("[data-step='enrich']")
    step.get_by_label("Function").select_option(SERVICE)
    step.get_by_label("Output").select_option("none")
    step.get_by_label("Email").fill("{{ payload.email }}")
    screenshot(page, "22-editor-service-step")
    assert buyer_tab.unlabelled() == []
    page.get_by_role("button", name="Create workflow").click()
    page.wait_for_url(re.compile(r"#/workflows/[0-9a-f-]{36}$"))
    page.get_by_role("button", name="Start job…").click()
    page.get_by_label("Payload (JSON)").fill('{"email": "ana@example.com"}')
    page.get_by_role("button", name="Start job", exact=True).click()
    page.wait_for_url(re.compile(r"#/jobs/[0-9a-f-]{36}$"))
    page.get_by_test_id("job-status").get_by_text("succeeded").wait_for()
    enrich = page.locator("li.process[data-step='enrich']")
    enrich.locator("summary").first.click()
    enrich.locator("[data-section='output'] > summary").click()
    enrich.get_by_text('"by": "Acme"').wait_for()
    screenshot(page, "23-service-job")

    # ... cannot open the call's own job, which is the publisher's
    [call] = publisher_api.get("/v1/jobs", params={"status": "succeeded"}).json()["items"]
    assert call["caller_account_id"] == buyer["id"]
    buyer_tab.goto(f"/jobs/{call['id']}")
    page.get_by_role("alert").get_by_text("job not found").wait_for()

    # ... and reads its bill: the statement, another month, the CSV
    page.get_by_role("link", name="Usage").click()
    line = page.locator(f"tr[data-line='{SERVICE}']")
    expect(line.locator("td").last).to_have_text("0.25")
    expect(page.get_by_test_id("statement-total")).to_have_text("0.25 USD")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    csv = download.value.path().read_text()
    assert f"{SERVICE},service,1,0.250000,0.250000" in csv.splitlines()
    screenshot(page, "24-statement")
    assert buyer_tab.unlabelled() == []
    page.get_by_label("Month").fill("1999-01")
    page.get_by_text("Nothing used in 1999-01.").wait_for()

    # the publisher sees the call served and what it earned, then unpublishes
    page = seller.page
    seller.goto(f"/jobs/{call['id']}")
    page.get_by_test_id("service-call").get_by_text(buyer["id"]).wait_for()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Usage").click()
    expect(page.get_by_test_id("statement-revenue")).to_have_text("0.25 USD")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Services").click()
    expect(row.get_by_test_id("calls")).to_have_text("1")
    expect(row.get_by_test_id("revenue")).to_have_text("0.25")
    screenshot(page, "25-services-served")
    row.get_by_role("button", name="Unpublish").click()
    row.get_by_role("button", name="Yes, unpublish").click()
    expect(row).to_have_count(0)
    assert publisher_api.get("/v1/services").json()["items"] == []


def test_a_viewer_publishes_nothing(tabs: Any, stack: ui_support.LiveServer) -> None:
    created = stack.client().post("/v1/tokens", json={"name": "auditor", "role": "viewer"})
    assert created.status_code == 201, created.text
    viewer = tabs()
    viewer.sign_in(created.json()["token"])
    viewer.goto("/services")
    viewer.page.get_by_role("heading", name="Published services").wait_for()
    assert viewer.page.locator("[data-write]").count() == 0
    expect(viewer.page.get_by_role("button", name="Publish service")).to_have_count(0)
