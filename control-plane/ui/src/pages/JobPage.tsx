import { useState } from "preact/hooks";
import { api, errorText, listAll, type Job, type Process } from "../api";
import { JsonSection } from "../components/Json";
import { StatusBadge } from "../components/Status";
import { ConfirmButton, ErrorNotice, Loading, PageHeader, toast, useAsync, usePolling } from "../components/ui";
import { duration, shortId, when } from "../lib/format";
import { allWorkflows } from "../lib/store";
import { href } from "../router";
import { useIdentity } from "../session";
import { Counts } from "./Jobs";

const POLL_MS = 1000;
const MAX_PAGES = 10;
const CHILDREN_SHOWN = 100;

interface Node {
  process: Process;
  children: Node[];
}

/** The processes as the fan-out made them: each under the process whose output it is. */
export function buildTree(processes: Process[]): Node[] {
  const nodes = new Map(processes.map((p) => [p.id, { process: p, children: [] as Node[] }]));
  const roots: Node[] = [];
  for (const node of nodes.values()) {
    const parent = node.process.parent_id ? nodes.get(node.process.parent_id) : undefined;
    (parent ? parent.children : roots).push(node);
  }
  return roots;
}

function descendants(node: Node): Record<string, number> {
  const counts: Record<string, number> = {};
  const walk = (n: Node) => n.children.forEach((c) => { counts[c.process.status] = (counts[c.process.status] ?? 0) + 1; walk(c); });
  walk(node);
  return counts;
}

function errorMessage(error: unknown): string | null {
  if (!error) return null;
  if (typeof error === "string") return error;
  if (typeof error === "object" && typeof (error as { message?: unknown }).message === "string") {
    return (error as { message: string }).message;
  }
  return JSON.stringify(error);
}

function ProcessNode({ node, canRetry, onRetry, depth }: { node: Node; canRetry: boolean; onRetry: (p: Process) => Promise<void>; depth: number }) {
  const [limit, setLimit] = useState(CHILDREN_SHOWN);
  const p = node.process;
  const below = descendants(node);
  const belowText = Object.entries(below).map(([s, n]) => `${n} ${s}`).join(", ");
  return (
    <li class={`process status-${p.status}`} data-process={p.id} data-step={p.step_key} data-status={p.status}>
      <div class="process-row">
        <details class="process-details">
          <summary>
            <StatusBadge status={p.status} />
            <span class="process-step"><code>{p.step_key}</code> <span class="muted small">{p.function}</span></span>
            <span class="muted small">attempt {p.attempt}</span>
            <span class="muted small" title={`started ${when(p.started_at)}`}>{p.started_at ? duration(p.started_at, p.finished_at) : "not started"}</span>
            {errorMessage(p.error) ? <span class="process-error small" title={errorMessage(p.error)!}>{errorMessage(p.error)}</span> : null}
            {node.children.length ? <span class="muted small">→ {node.children.length} message{node.children.length === 1 ? "" : "s"}{belowText ? ` (${belowText} below)` : ""}</span> : null}
          </summary>
          <div class="process-body">
            <dl class="facts compact">
              <div><dt>Process</dt><dd class="mono">{p.id}</dd></div>
              <div><dt>Created</dt><dd>{when(p.created_at)}</dd></div>
              <div><dt>Started</dt><dd>{when(p.started_at)}</dd></div>
              <div><dt>Finished</dt><dd>{when(p.finished_at)}</dd></div>
              <div><dt>Took</dt><dd>{duration(p.started_at, p.finished_at)}</dd></div>
              <div><dt>Attempt</dt><dd>{p.attempt}</dd></div>
            </dl>
            {p.error ? <JsonSection title="Error" value={p.error} open tone="error" /> : null}
            <JsonSection title="Input" value={p.input} />
            <JsonSection title="Output" value={p.output} />
            <JsonSection title="Logs" value={p.logs} />
          </div>
        </details>
        {canRetry && p.status === "failed" ? (
          <button type="button" class="small primary retry" data-write aria-label={`Retry process ${p.step_key} ${shortId(p.id)}`}
            onClick={() => onRetry(p)}>Retry</button>
        ) : null}
      </div>
      {node.children.length ? (
        <ul class="tree" aria-label={`Messages sent by ${p.step_key}`}>
          {node.children.slice(0, limit).map((c) => <ProcessNode key={c.process.id} node={c} canRetry={canRetry} onRetry={onRetry} depth={depth + 1} />)}
          {node.children.length > limit ? (
            <li><button type="button" class="small ghost" onClick={() => setLimit(limit + 500)}>Show {Math.min(500, node.children.length - limit)} more of {node.children.length}</button></li>
          ) : null}
        </ul>
      ) : null}
    </li>
  );
}

export function JobPage({ id }: { id: string }) {
  const me = useIdentity();
  const data = useAsync(async () => {
    const [job, processes, workflows] = await Promise.all([
      api.get<Job>(`/v1/jobs/${id}`),
      listAll<Process>(`/v1/jobs/${id}/processes`, {}, { limit: 1000, maxPages: MAX_PAGES }),
      allWorkflows(),
    ]);
    return { job, processes, workflow: workflows.get(job.workflow_id) };
  }, [id]);
  const [settling, setSettling] = useState(0);
  const active = !!data.data && (data.data.job.status === "running" || settling > Date.now());
  // a big fan-out is many pages of processes: refreshed less often
  const size = data.data?.processes.items.length ?? 0;
  usePolling(() => data.reload(), size > 2000 ? 5 * POLL_MS : POLL_MS, active);

  if (data.loading) return <div class="page"><PageHeader title={`Job ${shortId(id)}`} /><Loading /></div>;
  if (!data.data) return <div class="page"><PageHeader title={`Job ${shortId(id)}`} /><ErrorNotice error={data.error} /></div>;
  const { job, processes, workflow } = data.data;
  const tree = buildTree(processes.items);

  const retry = async (p: Process) => {
    try {
      await api.post(`/v1/processes/${p.id}/retry`);
      toast(`Retrying ${p.step_key}`);
      setSettling(Date.now() + 5000);
      await data.reload();
    } catch (e) {
      toast(errorText(e), "error");
    }
  };

  return (
    <div class="page">
      <PageHeader
        title={<>Job <span class="mono">{shortId(job.id)}</span> <StatusBadge status={job.status} /></>}
        subtitle={<>
          {workflow ? <a href={href(`/workflows/${job.workflow_id}`)}>{workflow.name}</a> : "a deleted workflow"} · version {job.version} · {job.trigger}
          {active ? <span class="live" role="status"> · <span class="pulse" aria-hidden="true" />live</span> : null}
        </>}>
        <a class="button ghost" href={href("/jobs", { workflow: job.workflow_id })}>Jobs of this workflow</a>
        {me.canWrite && job.status === "running" ? (
          <ConfirmButton label="Cancel job" confirm="Cancel this job? Its pending messages will not run."
            onConfirm={async () => {
              try { await api.post(`/v1/jobs/${job.id}/cancel`); toast("Job cancelled"); await data.reload(); }
              catch (e) { toast(errorText(e), "error"); }
            }} />
        ) : null}
      </PageHeader>
      <section class="card job-facts" aria-label="Job">
        <dl class="facts">
          <div><dt>Status</dt><dd data-testid="job-status">{job.status}</dd></div>
          <div><dt>Processes</dt><dd><Counts job={job} /></dd></div>
          <div><dt>Created</dt><dd>{when(job.created_at)}</dd></div>
          <div><dt>Finished</dt><dd>{when(job.finished_at)}</dd></div>
          <div><dt>Took</dt><dd>{duration(job.created_at, job.finished_at)}</dd></div>
          <div><dt>Job id</dt><dd class="mono">{job.id}</dd></div>
        </dl>
        {job.caller_account_id ? (
          <p class="notice small" data-testid="service-call">A call of your service by account <span class="mono">{job.caller_account_id}</span>: it runs here, on your quota; the caller sees its input, result and status only.</p>
        ) : null}
        {job.error ? <div class="notice error">{job.error}</div> : null}
      </section>
      <section class="card" aria-labelledby="processes-title">
        <h2 id="processes-title">Processes</h2>
        <p class="muted small">Each step run for each message, under the process that sent it. Open one for its input, output, error and logs.</p>
        {!processes.complete ? <p class="notice warn">Only the first {processes.items.length} processes are shown.</p> : null}
        {tree.length === 0 ? <p class="muted">No process yet.</p> : (
          <ul class="tree root" aria-label="Processes of this job">
            {tree.map((n) => <ProcessNode key={n.process.id} node={n} canRetry={me.canWrite && job.status !== "cancelled"} onRetry={retry} depth={0} />)}
          </ul>
        )}
      </section>
    </div>
  );
}
