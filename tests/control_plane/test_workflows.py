"""Versions, steps, the diagram, pause/resume and deletion of workflows and projects."""

from __future__ import annotations

from cp_support import api, manual_only, manual_then, project, workflow

CONDITIONAL = [
    {"key": "start", "function": "Manual", "next": "score"},
    {"key": "score", "function": "Transform", "config": {"expression": "items"},
     "output": "multiple", "next": "hot?"},
    {"key": "hot?", "function": "Condition",
     "config": {"branches": [{"when": 'payload.score > 50 && payload.tag != "x|y"',
                              "next": "save_hot"}], "default": "save_cold"}},
    {"key": "save_hot", "name": 'Save "hot"', "function": "Transform",
     "config": {"expression": "@"}, "output": None},
    {"key": "save_cold", "function": "Transform", "config": {"expression": "@"},
     "output": None},
]


async def test_a_new_version_keeps_step_ids_and_old_jobs_keep_theirs(database_url: str) -> None:
    async with api(database_url) as a:
        v1 = await workflow(a.operator, manual_then())
        job = (await a.operator.post(f"/v1/workflows/{v1['id']}/jobs", json={})).json()
        steps = manual_then(config={"expression": "{v: `2`}"}) + [
            {"key": "extra", "function": "Transform", "config": {"expression": "@"},
             "output": None}]
        steps[1].update(output="single", next="extra")
        v2 = (await a.operator.put(f"/v1/workflows/{v1['id']}",
                                   json={"name": "renamed", "steps": steps})).json()
        assert v2["version"] == 2 and v2["name"] == "renamed"
        ids1 = {s["key"]: s["id"] for s in v1["steps"]}
        ids2 = {s["key"]: s["id"] for s in v2["steps"]}
        assert ids2["start"] == ids1["start"] and ids2["work"] == ids1["work"]
        assert ids2["extra"] not in ids1.values()
        versions = (await a.operator.get(f"/v1/workflows/{v1['id']}/versions")).json()["items"]
        assert [v["version"] for v in versions] == [2, 1]
        assert versions[1]["definition"]["steps"][1]["config"] == {"expression": "@"}
        assert (await a.operator.get(f"/v1/jobs/{job['id']}")).json()["version"] == 1
        step = (await a.operator.get(f"/v1/steps/{ids1['work']}")).json()
        assert step["version"] == 2 and step["config"] == {"expression": "{v: `2`}"}
        assert step["workflow_id"] == v1["id"] and not step["is_entry"]
        invalid = await a.operator.put(f"/v1/workflows/{v1['id']}",
                                       json={"name": "x", "steps": [{"key": "a"}]})
        assert invalid.status_code == 422
        assert (await a.operator.get(f"/v1/workflows/{v1['id']}")).json()["version"] == 2


async def test_the_diagram_is_a_mermaid_flowchart(database_url: str) -> None:
    async with api(database_url) as a:
        flow = await workflow(a.operator, CONDITIONAL)
        response = await a.operator.get(f"/v1/workflows/{flow['id']}/diagram")
        assert response.headers["content-type"].startswith("text/plain")
        text = response.text
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    assert '    s0(["start<br/><small>Manual</small>"])' in lines
    assert '    s2{"hot?<br/><small>Condition</small>"}' in lines
    assert '    s3["Save #quot;hot#quot;<br/><small>Transform</small>"]' in lines
    assert "    s0 --> s1" in lines
    assert '    s1 ==>|"each item"| s2' in lines
    assert ('    s2 -->|"payload.score #gt; 50 #amp;#amp; payload.tag != #quot;x#124;y#quot;"| s3'
            in lines)
    assert '    s2 -->|"default"| s4' in lines


async def test_pause_resume_delete_and_project_deletion(database_url: str) -> None:
    async with api(database_url) as a:
        project_id = await project(a.operator, "temporary")
        flow = await workflow(a.operator, manual_only(), project_id=project_id)
        paused = (await a.operator.post(f"/v1/workflows/{flow['id']}/pause")).json()
        assert paused["paused"] is True
        resumed = (await a.operator.post(f"/v1/workflows/{flow['id']}/resume")).json()
        assert resumed["paused"] is False
        job = (await a.operator.post(f"/v1/workflows/{flow['id']}/jobs", json={})).json()
        assert job["status"] == "succeeded"  # nothing was sent on: the job ended at once
        blocked = await a.operator.delete(f"/v1/projects/{project_id}")
        assert blocked.status_code == 409
        assert (await a.operator.delete(f"/v1/workflows/{flow['id']}")).status_code == 204
        assert (await a.operator.get(f"/v1/workflows/{flow['id']}")).status_code == 404
        listed = (await a.operator.get("/v1/workflows")).json()["items"]
        assert flow["id"] not in [w["id"] for w in listed]
        assert (await a.operator.delete(f"/v1/projects/{project_id}")).status_code == 204
        usage = (await a.operator.get("/v1/usage")).json()
        assert usage["totals"]["jobs"] == 1 and usage["totals"]["processes"] == 1
        renamed = await a.operator.patch(f"/v1/projects/{project_id}", json={"name": "x"})
        assert renamed.status_code == 404
