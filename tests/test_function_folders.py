"""Each function folder builds alone, the way func's host builder builds it: copied to
an empty directory, a fresh virtualenv, an install of the folder plus func-python, then
func-python serving ``function.new``. The three servers so built run a real job."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import psycopg
import pytest
from knative.checks import UNWIRED_FOLDERS

from stepline.catalog import CATALOG, IN_PROCESS
from stepline_control.onemachine.children import (
    Child,
    free_port,
    function_folders,
    invoke_of,
    relay_child,
)
from support import ItemsApi, child_env, control_plane, create_workflow, wait_for_job

pytestmark = pytest.mark.slow
FUNC_PYTHON = "func-python==0.8.1"
UV = Path(sys.prefix).parent / ".tools" / "bin" / "uv"


def build_alone(folder: Path, workdir: Path) -> Path:
    """The folder copied alone and installed into its own virtualenv; the venv's python."""
    vendor = folder / "vendor"
    assert any(vendor.glob("stepline_runtime-*.whl")), "run `make functions` first"
    copy = workdir / folder.name
    shutil.copytree(folder, copy)
    venv = workdir / f"{folder.name}-venv"
    subprocess.run([str(UV), "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(UV), "pip", "install", "-q", "--python", str(python), str(copy), FUNC_PYTHON],
        check=True,
    )
    return python


def serve_alone(name: str, python: Path, env: dict[str, str], log_dir: Path,
                invoke: str) -> Child:
    port = free_port()
    code = f"from func_python.{invoke} import serve; from function import new; serve(new)"
    return Child(
        name=name,
        argv=[str(python), "-c", code],
        cwd=log_dir,
        env={**env, "LISTEN_ADDRESS": f"127.0.0.1:{port}"},
        health_url=f"http://127.0.0.1:{port}/health/readiness",
        log_path=log_dir / f"{name}.log",
    )


def runtime_imports(source: Path) -> set[str]:
    """The modules of the platform's own packages a file imports."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return {n for n in names if n.split(".")[0] in ("stepline", "stepline_control",
                                                     "stepline_relay")}


@pytest.mark.parametrize("folder", sorted(function_folders().values()), ids=lambda f: f.name)
def test_a_function_folder_imports_only_the_public_module(folder: Path) -> None:
    for source in (folder / "function").glob("*.py"):
        assert runtime_imports(source) <= {"stepline.sdk"}, (
            f"{source.relative_to(folder.parent)} imports more of the platform than "
            "stepline.sdk")


def test_every_folder_with_a_handler_names_a_catalog_function() -> None:
    slugs = {spec.slug for spec in CATALOG.values()}
    for folder in Path(__file__).resolve().parents[1].joinpath("functions").iterdir():
        if folder.is_dir() and folder.name not in UNWIRED_FOLDERS:
            assert folder.name in slugs, f"{folder.name} is not a catalog function's slug"


async def test_folders_built_alone_answer_their_probes_and_run_a_job(
    database_url: str, tmp_path: Path
) -> None:
    folders = function_folders()
    assert set(folders) == {s.name for s in CATALOG.values()} - IN_PROCESS
    env = child_env(database_url)
    servers = {name: serve_alone(name, build_alone(folder, tmp_path), env, tmp_path,
                                 invoke_of(folder))
               for name, folder in folders.items()}
    steps = [
        {"key": "start", "function": "Manual", "next": "fetch"},
        {
            "key": "fetch",
            "function": "Http.request",
            "config": {"url": "", "items_path": "items"},
            "output": "multiple",
            "next": "shape",
        },
        {
            "key": "shape",
            "function": "Transform",
            "config": {"expression": "{id: id, label: name}"},
            "next": "keep",
        },
        # no connection: the platform database, in the step's own transaction (operator)
        {
            "key": "keep",
            "function": "Database.query",
            "output": None,
            "config": {"sql": "INSERT INTO kept (id, label) VALUES (:id, :label)"},
        },
    ]
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (id int PRIMARY KEY, label text)")
    relay = None
    with ItemsApi(7) as api:
        steps[1]["config"]["url"] = api.url
        try:
            for server in servers.values():
                server.start()
            for server in servers.values():
                server.wait_ready()  # /health/readiness
                port = server.env["LISTEN_ADDRESS"].rsplit(":", 1)[1]
                assert httpx.get(f"http://127.0.0.1:{port}/health/liveness").status_code == 200
            urls = {name: f"http://{s.env['LISTEN_ADDRESS']}/" for name, s in servers.items()}
            relay = relay_child(
                env={**env, "STEPLINE_FUNCTION_URLS": json.dumps(urls)}, log_dir=tmp_path
            ).start()
            async with control_plane(database_url) as client:
                workflow = await create_workflow(client, steps)
                started = await client.post(f"/v1/workflows/{workflow['id']}/jobs", json={})
                job = await wait_for_job(client, started.json()["id"])
        finally:
            for child in [relay, *servers.values()]:
                if child:
                    child.stop()
    assert job["status"] == "succeeded", job
    assert job["counts"]["succeeded"] == 1 + 1 + 7 + 7
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM kept").fetchone()[0] == 7
