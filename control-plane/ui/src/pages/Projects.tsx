import { useState } from "preact/hooks";
import { api, errorText, listAll, type Project, type Workflow, type WorkflowSummary } from "../api";
import { Badge, TriggerBadge } from "../components/Status";
import { ConfirmButton, ErrorNotice, Loading, PageHeader, toast, useAsync } from "../components/ui";
import { when } from "../lib/format";
import { allWorkflows } from "../lib/store";
import { href } from "../router";
import { useIdentity } from "../session";
import { definitionOf } from "./WorkflowEditor";

function NewProject({ onCreated }: { onCreated: () => void }) {
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  return (
    <form class="card new-project" aria-labelledby="new-project-title" onSubmit={async (e) => {
      e.preventDefault();
      setBusy(true);
      try {
        await api.post<Project>("/v1/projects", { name: name.trim(), description: description.trim() || null });
        setName(""); setDescription(""); setError(null);
        toast("Project created");
        onCreated();
      } catch (err) { setError(err); } finally { setBusy(false); }
    }}>
      <h2 id="new-project-title">New project</h2>
      <div class="row">
        <div class="field">
          <label for="project-name">Name</label>
          <input id="project-name" required maxLength={200} value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
        </div>
        <div class="field grow">
          <label for="project-description">Description</label>
          <input id="project-description" maxLength={2000} value={description} onInput={(e) => setDescription((e.target as HTMLInputElement).value)} />
        </div>
        <button type="submit" class="primary" data-write disabled={busy || !name.trim()}>Create project</button>
      </div>
      <ErrorNotice error={error} />
    </form>
  );
}

function Rename({ current, label, onSave, onDone }: { current: string; label: string; onSave: (name: string) => Promise<unknown>; onDone: () => void }) {
  const [value, setValue] = useState(current);
  const [error, setError] = useState<string | null>(null);
  const id = `rename-${label.replace(/\W+/g, "-")}`;
  return (
    <form class="rename" onSubmit={async (e) => {
      e.preventDefault();
      try { await onSave(value.trim()); onDone(); } catch (err) { setError(errorText(err)); }
    }} onKeyDown={(e) => { if (e.key === "Escape") onDone(); }}>
      <label class="visually-hidden" for={id}>New name of {label}</label>
      <input id={id} value={value} required maxLength={200} autoFocus onInput={(e) => setValue((e.target as HTMLInputElement).value)} />
      <button type="submit" class="small primary" data-write>Save name</button>
      <button type="button" class="small" onClick={onDone}>Cancel</button>
      {error ? <p class="field-error" role="alert">{error}</p> : null}
    </form>
  );
}

function WorkflowRow({ workflow, onChanged }: { workflow: WorkflowSummary; onChanged: () => void }) {
  const me = useIdentity();
  const [renaming, setRenaming] = useState(false);
  const rename = async (name: string) => {
    const full = await api.get<Workflow>(`/v1/workflows/${workflow.id}`);
    await api.put(`/v1/workflows/${workflow.id}`, { ...definitionOf(full), name });
    toast(`Renamed to “${name}” (version ${full.version + 1})`);
    onChanged();
  };
  return (
    <li class="workflow-row" data-workflow={workflow.name}>
      {renaming ? <Rename current={workflow.name} label={workflow.name} onSave={rename} onDone={() => setRenaming(false)} /> : (
        <div class="workflow-main">
          <a href={href(`/workflows/${workflow.id}`)} class="workflow-name">{workflow.name}</a>
          <span class="muted small">v{workflow.version}</span>
          {workflow.paused ? <Badge tone="warn">paused</Badge> : null}
          {workflow.blocked ? <Badge tone="danger" title={workflow.blocked_reason ?? ""}>blocked</Badge> : null}
          <TriggerBadge health={workflow.trigger_health} />
          {workflow.description ? <span class="muted small">{workflow.description}</span> : null}
        </div>
      )}
      <div class="row-actions">
        <a class="button small ghost" href={href("/jobs", { workflow: workflow.id })}>Jobs</a>
        {me.canWrite && !renaming ? (
          <>
            <button type="button" class="small ghost" data-write aria-label={`Rename workflow ${workflow.name}`} onClick={() => setRenaming(true)}>Rename</button>
            <ConfirmButton label="Delete" class="small ghost danger" confirm={`Delete workflow “${workflow.name}”? Its jobs stay in the history.`}
              onConfirm={async () => {
                try { await api.del(`/v1/workflows/${workflow.id}`); toast("Workflow deleted"); onChanged(); }
                catch (err) { toast(errorText(err), "error"); }
              }} />
          </>
        ) : null}
      </div>
    </li>
  );
}

function ProjectCard({ project, onChanged }: { project: Project; onChanged: () => void }) {
  const me = useIdentity();
  const [renaming, setRenaming] = useState(false);
  const workflows = useAsync(() => listAll<WorkflowSummary>("/v1/workflows", { project_id: project.id }).then((r) => r.items), [project.id]);
  const refresh = () => { void workflows.reload(); void allWorkflows(true); };
  return (
    <article class="card project" aria-labelledby={`project-${project.id}`} data-project={project.name}>
      <header class="project-head">
        {renaming ? (
          <Rename current={project.name} label={project.name} onDone={() => setRenaming(false)}
            onSave={async (name) => { await api.patch(`/v1/projects/${project.id}`, { name }); toast("Project renamed"); onChanged(); }} />
        ) : (
          <div>
            <h2 id={`project-${project.id}`}>{project.name}</h2>
            <p class="muted small">{project.description ? `${project.description} · ` : ""}created {when(project.created_at)}</p>
          </div>
        )}
        {me.canWrite && !renaming ? (
          <div class="row-actions">
            <a class="button small primary" data-write href={href("/workflows/new", { project: project.id })}>New workflow</a>
            <button type="button" class="small" data-write aria-label={`Rename project ${project.name}`} onClick={() => setRenaming(true)}>Rename</button>
            <ConfirmButton label="Delete" class="small danger" confirm={`Delete project “${project.name}”?`}
              onConfirm={async () => {
                try { await api.del(`/v1/projects/${project.id}`); toast("Project deleted"); onChanged(); }
                catch (err) { toast(errorText(err), "error"); }
              }} />
          </div>
        ) : null}
      </header>
      {workflows.loading ? <Loading what="Loading workflows" /> : <ErrorNotice error={workflows.error} />}
      {workflows.data && workflows.data.length === 0 ? <p class="muted">No workflow yet.</p> : null}
      {workflows.data?.length ? (
        <ul class="workflow-list" aria-label={`Workflows of ${project.name}`}>
          {workflows.data.map((w) => <WorkflowRow key={w.id} workflow={w} onChanged={refresh} />)}
        </ul>
      ) : null}
    </article>
  );
}

export function Projects() {
  const me = useIdentity();
  const projects = useAsync(() => listAll<Project>("/v1/projects").then((r) => r.items), []);
  return (
    <div class="page">
      <PageHeader title="Projects" subtitle="Projects group your workflows." />
      {me.canWrite ? <NewProject onCreated={() => projects.reload()} /> : null}
      {projects.loading ? <Loading /> : <ErrorNotice error={projects.error} />}
      {projects.data && projects.data.length === 0 ? (
        <p class="muted">No project yet{me.canWrite ? ": create one above, then a workflow in it." : "."}</p>
      ) : null}
      {projects.data?.map((p) => <ProjectCard key={p.id} project={p} onChanged={() => projects.reload()} />)}
    </div>
  );
}
