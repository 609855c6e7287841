"""A workflow changed while a job of it runs: the job finishes on its own version, the
next job runs the new one (real Transform function server and relay)."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from cp_support import api, manual_then, workflow

from support import all_processes, platform, wait_for_job

pytestmark = pytest.mark.slow


def versions_of(database_url: str, job_id: str) -> set[int]:
    with psycopg.connect(database_url) as conn:
        return {r[0] for r in conn.execute(
            "SELECT v.version FROM processes p "
            "JOIN workflow_versions v ON v.id = p.workflow_version_id WHERE p.job_id = %s",
            (job_id,))}


async def test_a_running_job_finishes_on_its_own_version(database_url: str,
                                                          tmp_path: Path) -> None:
    async with api(database_url) as a:
        flow = await workflow(a.operator, manual_then(config={"expression": "{v: `1`, n: n}"}))
        old = (await a.operator.post(f"/v1/workflows/{flow['id']}/jobs",
                                     json={"payload": {"n": 5}})).json()
        changed = await a.operator.put(f"/v1/workflows/{flow['id']}", json={
            "name": "v2", "steps": manual_then(config={"expression": "{v: `2`, n: n}"})})
        assert changed.json()["version"] == 2
        with platform(database_url, ["Transform"], tmp_path):
            new = (await a.operator.post(f"/v1/workflows/{flow['id']}/jobs",
                                         json={"payload": {"n": 6}})).json()
            old_done = await wait_for_job(a.operator, old["id"])
            new_done = await wait_for_job(a.operator, new["id"])
            old_work = [p for p in await all_processes(a.operator, old["id"])
                        if p["step_key"] == "work"]
            new_work = [p for p in await all_processes(a.operator, new["id"])
                        if p["step_key"] == "work"]
    assert old_done["status"] == new_done["status"] == "succeeded"
    assert (old_done["version"], new_done["version"]) == (1, 2)
    assert old_work[0]["output"] == {"v": 1, "n": 5}
    assert new_work[0]["output"] == {"v": 2, "n": 6}
    assert versions_of(database_url, old["id"]) == {1}
    assert versions_of(database_url, new["id"]) == {2}
