"""A function built outside this repository, from the template in runtime/template/: a
copy in a folder of its own gets the runtime wheel, builds alone as func's builder would
(importing nothing of the platform but stepline.sdk), prints its own registration, is
registered through the API, and a workflow of an ordinary account uses it and succeeds
— the relay finding it at its registered endpoint, no line of the repository changed."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from control_plane.cp_support import api, manual_then, project
from test_function_folders import build_alone, runtime_imports, serve_alone

from stepline_control.onemachine.children import relay_child
from support import all_processes, child_env, wait_for_job

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "runtime" / "template"
WHEELS = ROOT / "build" / "runtime"


def outside_copy(workdir: Path) -> Path:
    """The template as its author would have it: copied away, the runtime wheel vendored."""
    wheels = sorted(WHEELS.glob("stepline_runtime-*.whl"))
    assert wheels, "run `make functions` first (it builds the runtime wheel)"
    folder = workdir / "example-greet"
    shutil.copytree(TEMPLATE, folder, ignore=shutil.ignore_patterns("vendor", "__pycache__"))
    (folder / "vendor").mkdir()
    shutil.copy(wheels[-1], folder / "vendor")
    return folder


def test_the_template_imports_only_the_public_module() -> None:
    for source in (TEMPLATE / "function").glob("*.py"):
        assert runtime_imports(source) <= {"stepline.sdk"}, source.name


async def test_a_function_built_outside_is_registered_and_used(
        database_url: str, tmp_path: Path) -> None:
    python = build_alone(outside_copy(tmp_path / "outside"), tmp_path / "build")
    server = serve_alone("Example.greet", python, child_env(database_url), tmp_path, "cloudevent")
    endpoint = f"http://{server.env['LISTEN_ADDRESS']}/"
    body = json.loads(subprocess.run(
        [str(python), "-m", "function.registration", endpoint], check=True, text=True,
        capture_output=True, cwd=tmp_path / "build" / "example-greet").stdout)
    # the relay knows no URL of its own for it: it follows the registered endpoint
    relay = relay_child(env={**child_env(database_url), "STEPLINE_FUNCTION_URLS": "{}"},
                        log_dir=tmp_path)
    try:
        server.start().wait_ready()
        relay.start()
        async with api(database_url) as control:
            registered = await control.operator.post("/v1/functions", json=body)
            assert registered.status_code == 201, registered.text
            _, client = await control.account("Customer")
            project_id = await project(client, "greetings")
            too_long = await client.post("/v1/workflows", json={
                "project_id": project_id, "name": "bad", "steps": manual_then(
                    "Example.greet", {"greeting": "x" * 41})})
            flow = await client.post("/v1/workflows", json={
                "project_id": project_id, "name": "greet", "steps": manual_then(
                    "Example.greet", {"greeting": "Olá"})})
            assert flow.status_code == 201, flow.text
            started = await client.post(f"/v1/workflows/{flow.json()['id']}/jobs",
                                        json={"payload": {"name": "Ana"}})
            job = await wait_for_job(client, started.json()["id"])
            processes = {p["step_key"]: p for p in await all_processes(client, job["id"])}
    finally:
        relay.stop()
        server.stop()
    assert body["config_schema"]["properties"]["greeting"]["maxLength"] == 40
    assert too_long.status_code == 422
    assert too_long.json()["error"]["details"][0]["field"] == "config.greeting"
    assert job["status"] == "succeeded", job
    assert processes["work"]["output"] == {"message": "Olá, Ana!"}
    assert processes["work"]["logs"][-1]["message"] == "greeting Ana"
