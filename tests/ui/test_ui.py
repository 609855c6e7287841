"""The web UI in a real headless Chromium against a running control plane, real function
servers and the relay: sign in (the token read with /v1/me), every screen, the editor
(validation on the right field, save, versions, start), a job watched to its end, a
failed process retried, dead letters listed, inspected and retried, and a viewer who
finds no write control. Each screen is written to tests/artifacts/screenshots/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import ui_support
from playwright.sync_api import expect
from ui_support import create_workflow, screenshot, start_job, wait_for_job

import support

pytestmark = pytest.mark.slow

FUNCTIONS = ["Transform", "Http.request"]
WRITE_NAMES = re.compile(
    r"^(save|create|delete|rename|retry|cancel|start|pause|resume|block|unblock|add|remove|"
    r"move|apply|load into editor|yes|change)\b", re.IGNORECASE)
GREETING = "{greeting: join(' ', ['hello', name])}"
TIMEOUT_MS = 30_000
UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea, button')]
  .filter((el) => el.type !== 'hidden')
  .filter((el) => {
    const by = el.getAttribute('aria-labelledby');
    const name = el.getAttribute('aria-label')
      || (by && document.getElementById(by)?.textContent)
      || (el.id && document.querySelector(`label[for="${CSS.escape(el.id)}"]`)?.textContent)
      || el.closest('label')?.textContent
      || (el.tagName === 'BUTTON' ? el.textContent : '');
    return !name || !name.trim();
  })
  .map((el) => el.outerHTML.slice(0, 160))"""


@pytest.fixture(scope="module")
def chromium_path() -> str:
    return ui_support.require_browser()


@pytest.fixture(scope="module")
def stack(chromium_path: str, template_db: str, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[ui_support.LiveServer]:
    """One database, the function servers, the relay and the control plane, for the
    module: each test makes its own projects and workflows."""
    with ui_support.cloned_database(template_db) as url, \
            support.platform(url, FUNCTIONS, tmp_path_factory.mktemp("ui-logs")), \
            ui_support.live_server(url) as live:
        yield live


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path,
                                              args=ui_support.CHROMIUM_FLAGS)
        yield launched
        launched.close()


class Tab:
    """A page of a fresh browser context, recording any request that leaves the control
    plane and any script error."""

    def __init__(self, browser: Any, base: str) -> None:
        self.base = base
        self.context = browser.new_context(viewport=ui_support.VIEWPORT)
        self.context.set_default_timeout(TIMEOUT_MS)
        self.page = self.context.new_page()
        self.outside: list[str] = []
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("request", self._request)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def _request(self, request: Any) -> None:
        self.requests.append(request.url)
        if not request.url.startswith((self.base, "data:", "blob:", "about:")):
            self.outside.append(request.url)

    def goto(self, fragment: str) -> None:
        self.page.goto(f"{self.base}/ui/#{fragment}")

    def sign_in(self, token: str) -> None:
        self.page.goto(self.base + "/")
        self.page.get_by_label("API token").fill(token)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.get_by_test_id("account-name").wait_for()

    def unlabelled(self) -> list[str]:
        """The controls of the page that have no accessible name."""
        return self.page.evaluate(UNLABELLED)

    def close(self) -> None:
        self.context.close()
        assert self.outside == [], f"the UI reached outside the control plane: {self.outside}"
        assert self.errors == [], f"script errors: {self.errors}"


@pytest.fixture
def tab(browser: Any, stack: ui_support.LiveServer) -> Iterator[Tab]:
    opened = Tab(browser, stack.url)
    yield opened
    opened.close()


def greeting_steps() -> list[dict[str, Any]]:
    return [
        {"key": "start", "name": "Run by hand", "function": "Manual", "next": "greet"},
        {"key": "greet", "function": "Transform", "config": {"expression": GREETING},
         "output": None},
    ]


def test_sign_in_and_every_screen(tab: Tab, stack: ui_support.LiveServer) -> None:
    api = stack.client()
    workflow = create_workflow(api, "Marketing", "Greet new leads", greeting_steps())
    for name in ("Ada", "Grace", "Linus"):
        wait_for_job(api, start_job(api, workflow["id"], {"name": name}))
    other = api.post("/v1/accounts", json={"name": "Acme", "monthly_quota": 10_000}).json()
    page = tab.page

    page.goto(stack.url + "/")
    assert page.url.startswith(stack.url + "/ui/")
    page.get_by_label("API token").fill("stl_not_a_token")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("This token is not valid.").wait_for()
    screenshot(page, "01-sign-in")
    assert tab.unlabelled() == []

    tab.requests.clear()
    tab.sign_in(stack.token)
    assert page.get_by_test_id("account-name").inner_text() == "operator"
    assert page.get_by_test_id("role").inner_text() == "admin"
    # the token says whose it is: nothing guessed from the account's tokens' prefixes
    assert f"{stack.url}/v1/me" in tab.requests
    assert not [url for url in tab.requests if "/v1/tokens" in url]
    assert "stepline.token" in page.evaluate("Object.keys(sessionStorage)")

    page.get_by_role("heading", name="Jobs per day by status").wait_for()
    page.get_by_test_id("outbox-backlog").wait_for()
    assert int(page.get_by_test_id("kpi-jobs").inner_text()) >= 3
    screenshot(page, "02-dashboard")
    assert tab.unlabelled() == []

    page.get_by_role("link", name="Projects").click()
    marketing = page.locator("[data-project='Marketing']")
    marketing.get_by_role("link", name="Greet new leads").wait_for()
    screenshot(page, "03-projects")
    assert tab.unlabelled() == []
    page.get_by_label("Name", exact=True).fill("Scratch")
    page.get_by_role("button", name="Create project").click()
    scratch = page.locator("[data-project='Scratch']")
    scratch.get_by_role("button", name="Rename project Scratch").click()
    scratch.get_by_label("New name of Scratch").fill("Scratch pad")
    scratch.get_by_role("button", name="Save name").click()
    pad = page.locator("[data-project='Scratch pad']")
    pad.get_by_role("button", name="Delete").click()
    pad.get_by_role("button", name="Yes, delete").click()
    expect(pad).to_have_count(0)
    assert [p["name"] for p in api.get("/v1/projects").json()["items"]] == ["Marketing"]

    page.get_by_role("link", name="Functions", exact=True).click()
    condition = page.locator("[data-function='Condition']")
    condition.get_by_text("CEL expression over `payload`").wait_for()
    assert condition.get_by_text("config.branches[].when", exact=True).count() == 1
    screenshot(page, "04-functions")
    assert tab.unlabelled() == []

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Jobs").click()
    page.locator("tr[data-status='succeeded']").nth(2).wait_for()
    page.get_by_label("Status").select_option("failed")
    page.get_by_text("No job matches these filters.").wait_for()
    page.get_by_role("button", name="Clear filters").click()
    page.locator("tr[data-status='succeeded']").nth(2).wait_for()
    screenshot(page, "05-jobs")
    assert tab.unlabelled() == []
    # live: a new job shows up by polling, the page itself is not reloaded
    page.evaluate("window.stillTheSamePage = true")
    fresh = start_job(api, workflow["id"], {"name": "Margaret"})
    page.locator(f"tr[data-job='{fresh}'][data-status='succeeded']").wait_for()
    assert page.evaluate("window.stillTheSamePage") is True

    page.get_by_role("link", name="Usage").click()
    page.locator("tr[data-account='operator']").wait_for()
    assert int(page.get_by_test_id("usage-jobs").inner_text()) >= 3
    acme = page.locator("tr[data-account='Acme']")
    acme.get_by_role("button", name="Block Acme").click()
    acme.get_by_label("Why block Acme?").fill("invoice unpaid")
    acme.get_by_role("button", name="Block Acme").click()
    acme.get_by_text("invoice unpaid").wait_for()
    assert api.get(f"/v1/accounts/{other['id']}").json()["blocked"] is True
    screenshot(page, "06-usage")
    assert tab.unlabelled() == []
    acme.get_by_role("button", name="Unblock Acme").click()
    acme.get_by_text("active").wait_for()
    assert api.get(f"/v1/accounts/{other['id']}").json()["blocked"] is False


def test_editor_validates_saves_versions_and_runs(tab: Tab, stack: ui_support.LiveServer
                                                  ) -> None:
    project = stack.client().post("/v1/projects", json={"name": "Editor"}).json()
    page = tab.page
    tab.sign_in(stack.token)
    tab.goto(f"/workflows/new?project={project['id']}")

    page.locator("#wf-name").fill("Say hello")
    page.get_by_role("button", name="+ Add step").click()
    # the new step's key has the focus: the keyboard carries on from there
    key = page.locator("[data-step='step_2'] [data-field='key'] input")
    expect(key).to_be_focused()
    page.keyboard.press("Control+a")
    page.keyboard.type("greet")
    page.keyboard.press("Tab")
    page.keyboard.type("Greet the person")
    step = page.locator("[data-step='greet']")
    step.get_by_label("Function").select_option("Transform")
    step.get_by_label("Output").select_option("none")
    step.get_by_label("Expression").fill("{greeting: join(' ', ['hello', name])")
    page.keyboard.press("Control+s")

    field = step.locator("[data-field='config.expression']")
    field.locator(".field-error").get_by_text("JMESPath does not compile").wait_for()
    expect(field.locator("textarea")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("[data-step='start'] .field-error")).to_have_count(0)
    problems = page.get_by_test_id("problems")
    problems.get_by_role("link", name=re.compile("config.expression")).wait_for()
    screenshot(page, "07-editor-validation")
    assert tab.unlabelled() == []

    step.get_by_label("Expression").fill(GREETING)
    page.get_by_role("button", name="Create workflow").click()
    page.wait_for_url(re.compile(r"#/workflows/[0-9a-f-]{36}$"))
    workflow_id = page.url.rsplit("/", 1)[1]
    page.locator(".editor-side .diagram[data-rendered='true'] svg").wait_for()
    assert "Greet the person" in page.locator(".editor-side .diagram-svg > svg").text_content()

    # a second version: steps reordered with the keyboard and back, a name changed
    greet_key = page.locator("[data-step='greet'] [data-field='key'] input")
    greet_key.focus()
    page.keyboard.press("Alt+ArrowUp")
    expect(page.locator(".step-card").first).to_have_attribute("data-step", "greet")
    expect(greet_key).to_be_focused()
    page.keyboard.press("Alt+ArrowDown")
    expect(page.locator(".step-card").first).to_have_attribute("data-step", "start")
    page.locator("[data-step='greet']").get_by_label("Name").fill("Greet them warmly")
    page.get_by_role("button", name="Save new version").click()
    page.locator("h1 .version").get_by_text("v2").wait_for()
    screenshot(page, "08-editor")
    assert tab.unlabelled() == []

    page.get_by_role("tab", name="Versions").click()
    page.locator("tr[data-version='1']").wait_for()
    expect(page.get_by_test_id("diff-stats")).to_have_text(re.compile(r"^\+1 −1"))
    page.locator(".diff-added").get_by_text("Greet them warmly").wait_for()
    screenshot(page, "09-versions")
    assert tab.unlabelled() == []

    page.get_by_role("button", name="Pause").click()
    page.get_by_role("button", name="Resume").click()
    page.get_by_role("button", name="Start job…").click()
    page.get_by_label("Payload (JSON)").fill('{"name": "Ada"}')
    page.get_by_role("button", name="Start job", exact=True).click()
    page.wait_for_url(re.compile(r"#/jobs/[0-9a-f-]{36}$"))
    page.get_by_test_id("job-status").get_by_text("succeeded").wait_for()
    greet = page.locator("li.process[data-step='greet']")
    greet.locator("summary").first.click()
    greet.locator("[data-section='output'] > summary").click()
    greet.get_by_text('"hello Ada"').wait_for()
    screenshot(page, "10-job")
    assert tab.unlabelled() == []
    job = stack.client().get(f"/v1/jobs?workflow_id={workflow_id}").json()["items"]
    assert [j["status"] for j in job] == ["succeeded"]


def test_a_failed_process_is_retried_from_its_page(tab: Tab, stack: ui_support.LiveServer
                                                   ) -> None:
    api = stack.client()
    with support.ItemsApi(count=3, failures=1) as upstream:
        workflow = create_workflow(api, "Imports", "Import items", [
            {"key": "start", "function": "Manual", "next": "fetch"},
            {"key": "fetch", "name": "Read the items", "function": "Http.request",
             "config": {"url": upstream.url, "items_path": "items"}, "output": "multiple",
             "next": "name", "retry": {"attempts": 1}},
            {"key": "name", "function": "Transform", "config": {"expression": "name"},
             "output": None},
        ])
        job_id = start_job(api, workflow["id"], {})
        assert wait_for_job(api, job_id)["status"] == "failed"
        page = tab.page
        tab.sign_in(stack.token)
        tab.goto(f"/jobs/{job_id}")
        page.get_by_test_id("job-status").get_by_text("failed").wait_for()
        failed = page.locator("li.process[data-status='failed']")
        assert failed.get_attribute("data-step") == "fetch"
        failed.locator("summary").first.click()
        failed.locator("[data-section='error']").get_by_text("503").first.wait_for()
        screenshot(page, "11-job-failed")
        assert tab.unlabelled() == []

        failed.get_by_role("button", name=re.compile("^Retry process fetch")).click()
        page.get_by_test_id("job-status").get_by_text("succeeded").wait_for()
        page.locator("li.process[data-step='name'][data-status='succeeded']").nth(2).wait_for()
        assert page.locator("li.process[data-status='failed']").count() == 0
        assert upstream.calls == 2
        screenshot(page, "12-job-retried")


def test_a_running_job_is_cancelled_from_its_page(tab: Tab, stack: ui_support.LiveServer
                                                  ) -> None:
    api = stack.client()
    with support.ItemsApi(count=1, failures=1000) as upstream:
        # the upstream keeps failing and the next try is a minute away: the job waits
        workflow = create_workflow(api, "Flaky", "Wait for the upstream", [
            {"key": "start", "function": "Manual", "next": "fetch"},
            {"key": "fetch", "function": "Http.request", "config": {"url": upstream.url},
             "output": None, "retry": {"attempts": 5, "backoff_s": 60}},
        ])
        job_id = start_job(api, workflow["id"], {})
        support.eventually(lambda: upstream.calls >= 1, what="the first call")
        page = tab.page
        tab.sign_in(stack.token)
        tab.goto(f"/jobs/{job_id}")
        page.get_by_test_id("job-status").get_by_text("running").wait_for()
        page.get_by_role("button", name="Cancel job").click()
        page.get_by_role("button", name="Yes, cancel job").click()
        page.get_by_test_id("job-status").get_by_text("cancelled").wait_for()
        expect(page.get_by_role("button", name="Cancel job")).to_have_count(0)
        assert api.get(f"/v1/jobs/{job_id}").json()["status"] == "cancelled"


def test_dead_letters_are_listed_inspected_and_retried(tab: Tab, stack: ui_support.LiveServer
                                                      ) -> None:
    api = stack.client()
    hook = create_workflow(api, "Hooks", "Orders in", [
        {"key": "hook", "function": "Webhook", "output": None}])
    step_id = hook["steps"][0]["id"]
    refused = api.post(f"/v1/hooks/{step_id}", content=b"{not json",
                       headers={"content-type": "application/json"})
    assert refused.status_code == 400
    with support.ItemsApi(count=2, failures=1) as upstream:
        workflow = create_workflow(api, "Dead letter imports", "Import once", [
            {"key": "start", "function": "Manual", "next": "fetch"},
            {"key": "fetch", "function": "Http.request",
             "config": {"url": upstream.url, "items_path": "items"}, "output": "multiple",
             "next": "name", "retry": {"attempts": 1}},
            {"key": "name", "function": "Transform", "config": {"expression": "name"},
             "output": None},
        ])
        job_id = start_job(api, workflow["id"], {})
        assert wait_for_job(api, job_id)["status"] == "failed"
        page = tab.page
        tab.sign_in(stack.token)
        page.get_by_role("navigation", name="Main").get_by_role("link",
                                                                 name="Dead letters").click()
        # this module's other tests leave dead letters too: each row is found by its own
        failed = page.locator("tr[data-dead-letter]", has_text=job_id[:8])
        malformed = page.locator("tr[data-dead-letter]", has_text=step_id)
        expect(failed).to_contain_text("Http.request")
        expect(malformed).to_contain_text("Webhook")
        screenshot(page, "14-dead-letters")
        assert tab.unlabelled() == []

        page.get_by_label("Function").select_option("Webhook")
        expect(failed).to_have_count(0)
        malformed.get_by_role("link").click()
        page.get_by_test_id("dead-letter-reason").get_by_text("not JSON").wait_for()
        page.get_by_test_id("dead-letter-body").get_by_text("{not json").wait_for()
        page.get_by_test_id("nothing-to-retry").wait_for()
        expect(page.get_by_role("button", name="Retry its process")).to_have_count(0)
        screenshot(page, "15-dead-letter-malformed")
        assert tab.unlabelled() == []

        tab.goto("/dead-letters?resolved=false")
        failed.get_by_role("link", name=re.compile("^#")).click()
        page.get_by_test_id("dead-letter-reason").get_by_text("503").wait_for()
        page.get_by_role("link", name="Its job").wait_for()
        page.get_by_role("button", name="Retry its process").click()
        page.get_by_test_id("dead-letter-state").get_by_text("resolved").wait_for()
        screenshot(page, "16-dead-letter-retried")
        assert wait_for_job(api, job_id)["status"] == "succeeded"
        assert upstream.calls == 2
        tab.goto(f"/dead-letters?resolved=false&job={job_id}")
        page.get_by_text("No dead letter matches these filters.").wait_for()


def test_a_viewer_finds_no_write_control(tab: Tab, stack: ui_support.LiveServer) -> None:
    api = stack.client()
    workflow = create_workflow(api, "Read only", "Watched", greeting_steps())
    job_id = start_job(api, workflow["id"], {"name": "Viewer"})
    wait_for_job(api, job_id)
    # a process that fails for good: a dead letter a writer could retry
    broken = create_workflow(api, "Read only too", "Not a list", [
        {"key": "start", "function": "Manual", "next": "split"},
        {"key": "split", "function": "Transform", "config": {"expression": "items[].n"},
         "output": "multiple", "next": "each"},
        {"key": "each", "function": "Transform", "config": {"expression": "@"},
         "output": None}])
    failed_job = start_job(api, broken["id"], {"items": {"n": 1}})
    assert wait_for_job(api, failed_job)["status"] == "failed"
    [dead] = api.get("/v1/dead-letters", params={"job_id": failed_job}).json()["items"]
    assert dead["retryable"] is True
    created = api.post("/v1/tokens", json={"name": "looker", "role": "viewer"})
    assert created.status_code == 201, created.text
    page = tab.page
    tab.sign_in(created.json()["token"])
    assert page.get_by_test_id("role").inner_text() == "viewer"

    screens = {
        "/": lambda: page.get_by_role("heading", name="Jobs per day by status").wait_for(),
        "/projects": lambda: page.get_by_role("link", name="Watched").wait_for(),
        f"/workflows/{workflow['id']}": lambda: page.locator(".editor-side svg").wait_for(),
        "/functions": lambda: page.locator("[data-function='Transform']").wait_for(),
        "/jobs": lambda: page.locator(f"tr[data-job='{job_id}']").wait_for(),
        f"/jobs/{job_id}":
            lambda: page.get_by_test_id("job-status").get_by_text("succeeded").wait_for(),
        "/usage": lambda: page.locator("tr[data-account='operator']").wait_for(),
        "/dead-letters": lambda: page.locator(f"tr[data-dead-letter='{dead['id']}']").wait_for(),
        f"/dead-letters/{dead['id']}":
            lambda: page.get_by_test_id("dead-letter-state").get_by_text("open").wait_for(),
    }
    for fragment, ready in screens.items():
        tab.goto(fragment)
        ready()
        assert page.locator("[data-write]").count() == 0, fragment
        names = [(b.get_attribute("aria-label") or b.inner_text()).strip()
                 for b in page.get_by_role("button").all()]
        assert not [n for n in names if WRITE_NAMES.match(n)], (fragment, names)
        if fragment.startswith("/workflows/"):
            page.get_by_text("read only").wait_for()
            for control in page.locator(".step-card input, .step-card textarea").all():
                assert control.get_attribute("readonly") is not None
            for control in page.locator(".step-card select").all():
                assert control.is_disabled()
            screenshot(page, "13-viewer-editor")


ORDER_FORM = {"type": "object", "required": ["email", "quantity"],
              "properties": {"email": {"type": "string"},
                             "quantity": {"type": "integer", "minimum": 1}}}


def test_a_manual_step_s_form_is_the_run_action(tab: Tab, stack: ui_support.LiveServer) -> None:
    steps = [{"key": "start", "function": "Manual", "config": {"form": ORDER_FORM},
              "next": "greet"},
             {"key": "greet", "function": "Transform", "config": {"expression": "quantity"},
              "output": None}]
    workflow = create_workflow(stack.client(), "Forms", "Order by hand", steps)
    page = tab.page
    tab.sign_in(stack.token)
    tab.goto(f"/workflows/{workflow['id']}?run=1")
    form = page.get_by_test_id("run-form")
    form.get_by_label("Quantity").fill("0")
    page.get_by_role("button", name="Start job", exact=True).click()
    form.locator("[data-field='payload.quantity'] .field-error").get_by_text("minimum").wait_for()
    form.locator("[data-field='payload.email'] .field-error").get_by_text("required").wait_for()
    screenshot(page, "14-run-form")
    assert tab.unlabelled() == []
    form.get_by_label("Email").fill("ada@example.com")
    form.get_by_label("Quantity").fill("2")
    page.get_by_role("button", name="Start job", exact=True).click()
    page.wait_for_url(re.compile(r"#/jobs/[0-9a-f-]{36}$"))
    page.get_by_test_id("job-status").get_by_text("succeeded").wait_for()


def test_a_trigger_s_health_is_a_badge_on_its_workflow_and_step(
        tab: Tab, stack: ui_support.LiveServer) -> None:
    from urllib.parse import urlencode

    from twilio.request_validator import RequestValidator

    from stepline import sms

    api = stack.client()
    token, sid = "ui-test-auth-token", "AC" + "0" * 32
    assert api.post("/v1/connections", json={
        "name": "sms-ui", "kind": "twilio", "config": {"account_sid": sid},
        "secret": {"auth_token": token}}).status_code == 201
    workflow = create_workflow(api, "Triggers", "Orders by SMS", [
        {"key": "sms", "function": "Sms", "config": {"connection": "sms-ui"}, "output": None}])
    url = f"{stack.url}/v1/hooks/{workflow['steps'][0]['id']}"
    fields = urlencode([("MessageSid", "SM" + "1" * 32), ("From", "+1"), ("Body", "hi")])
    signature = RequestValidator(token).compute_signature(url, sms.Form.parse(fields.encode()))
    answer = httpx.post(url, content=fields, headers={
        "content-type": "application/x-www-form-urlencoded", "x-twilio-signature": signature})
    assert answer.status_code == 200, answer.text
    page = tab.page
    tab.sign_in(stack.token)
    tab.goto("/projects")
    row = page.locator("li.workflow-row[data-workflow='Orders by SMS']")
    expect(row.locator("[data-trigger-health]")).to_have_attribute("data-trigger-health",
                                                                   "connected")
    tab.goto(f"/workflows/{workflow['id']}")
    expect(page.locator("header.page-header [data-trigger-health]")).to_have_text(
        "trigger connected")
    expect(page.locator("[data-step='sms'] [data-trigger-health]")).to_have_text(
        "trigger connected")
    assert "1 started" in (page.locator("[data-step='sms'] [data-trigger-health]")
                           .get_attribute("title") or "")
    screenshot(page, "15-trigger-health")
