import { useEffect, useRef, useState } from "preact/hooks";
import { api, type Job, type Page, type WorkflowSummary } from "../api";
import { StatusBadge } from "../components/Status";
import { ErrorNotice, Loading, PageHeader, useAsync, usePolling } from "../components/ui";
import { ago, duration, localToIso, number, shortId, when } from "../lib/format";
import { allWorkflows } from "../lib/store";
import { href, navigate, type Route } from "../router";

const LIMIT = 50;
const POLL_MS = 2000;
const STATUSES = ["running", "succeeded", "failed", "cancelled"];

export function Counts({ job }: { job: Job }) {
  const c = job.counts;
  const parts: [string, number][] = [["succeeded", c.succeeded], ["failed", c.failed], ["running", c.running + c.pending], ["cancelled", c.cancelled]];
  return (
    <span class="counts" aria-label={`${c.total} processes: ${parts.filter(([, n]) => n).map(([s, n]) => `${n} ${s}`).join(", ")}`}>
      {parts.filter(([, n]) => n).map(([s, n]) => <span key={s} class={`count count-${s}`} title={s}>{number(n)}</span>)}
      <span class="muted small"> / {number(c.total)}</span>
    </span>
  );
}

export function Jobs({ route }: { route: Route }) {
  const q = route.query;
  const filters = {
    workflow: q.get("workflow") ?? "",
    status: q.get("status") ?? "",
    from: q.get("from") ?? "",
    to: q.get("to") ?? "",
  };
  // the cursors of the pages before this one, so "Newer" can go back
  const cursor = q.get("cursor");
  // ("-" stands for the first page, which has no cursor)
  const trail = (q.get("trail") ?? "").split(",").filter(Boolean);
  const workflows = useAsync(() => allWorkflows(), []);
  const query = {
    workflow_id: filters.workflow || undefined, status: filters.status || undefined,
    from: localToIso(filters.from), to: localToIso(filters.to), limit: LIMIT, cursor: cursor ?? undefined,
  };
  const key = JSON.stringify(query);
  const page = useAsync(() => api.get<Page<Job>>("/v1/jobs", query), [key]);
  const [live, setLive] = useState(true);
  const [fresh, setFresh] = useState<Set<string>>(new Set());
  const [updatedAt, setUpdatedAt] = useState<number>(Date.now());
  const known = useRef<Set<string> | null>(null);

  useEffect(() => { known.current = null; }, [key]);
  useEffect(() => {
    if (!page.data) return;
    const ids = page.data.items.map((j) => j.id);
    if (known.current) {
      const added = ids.filter((id) => !known.current!.has(id));
      if (added.length) setFresh(new Set(added));
    }
    known.current = new Set(ids);
    setUpdatedAt(Date.now());
  }, [page.data]);

  // live: the same page again (same filters, same cursor), rows updated in place
  usePolling(() => page.reload(), POLL_MS, live && !!page.data);

  const set = (changes: Partial<typeof filters>) => {
    const next = { ...filters, ...changes };
    navigate("/jobs", { workflow: next.workflow, status: next.status, from: next.from, to: next.to });
  };
  const go = (nextCursor: string | null, nextTrail: string[]) =>
    navigate("/jobs", { ...filters, cursor: nextCursor, trail: nextTrail.join(",") || null });
  const names: Map<string, WorkflowSummary> = workflows.data ?? new Map();
  const filtered = Object.values(filters).some(Boolean);

  return (
    <div class="page">
      <PageHeader title="Jobs" subtitle="Every run of your workflows, newest first.">
        <div class="field checkbox inline">
          <input id="jobs-live" type="checkbox" checked={live} onChange={(e) => setLive((e.target as HTMLInputElement).checked)} />
          <label for="jobs-live">Live updates</label>
        </div>
        <span class="muted small live-note" aria-live="off">{live ? `updated ${ago(new Date(updatedAt).toISOString())}` : "paused"}</span>
      </PageHeader>
      <form class="toolbar filters" aria-label="Filter jobs" onSubmit={(e) => e.preventDefault()}>
        <div class="field inline">
          <label for="filter-workflow">Workflow</label>
          <select id="filter-workflow" value={filters.workflow} onChange={(e) => set({ workflow: (e.target as HTMLSelectElement).value })}>
            <option value="">All workflows</option>
            {[...names.values()].sort((a, b) => a.name.localeCompare(b.name)).map((w) => <option key={w.id} value={w.id}>{w.name}</option>)}
          </select>
        </div>
        <div class="field inline">
          <label for="filter-status">Status</label>
          <select id="filter-status" value={filters.status} onChange={(e) => set({ status: (e.target as HTMLSelectElement).value })}>
            <option value="">Any status</option>
            {STATUSES.map((s) => <option key={s} value={s}>{s}</option>)}
          </select>
        </div>
        <div class="field inline">
          <label for="filter-from">Created from</label>
          <input id="filter-from" type="datetime-local" value={filters.from} onChange={(e) => set({ from: (e.target as HTMLInputElement).value })} />
        </div>
        <div class="field inline">
          <label for="filter-to">Created before</label>
          <input id="filter-to" type="datetime-local" value={filters.to} onChange={(e) => set({ to: (e.target as HTMLInputElement).value })} />
        </div>
        {filtered ? <button type="button" class="ghost" onClick={() => navigate("/jobs")}>Clear filters</button> : null}
      </form>
      {page.loading && !page.data ? <Loading what="Loading jobs" /> : null}
      <ErrorNotice error={page.error} />
      {page.data ? (
        <div class="card table-card">
          <table class="table jobs-table" aria-describedby="jobs-caption">
            <caption id="jobs-caption" class="visually-hidden">Jobs{filtered ? " matching the filters" : ""}, page {trail.length + 1}</caption>
            <thead>
              <tr>
                <th scope="col">Job</th><th scope="col">Workflow</th><th scope="col">Status</th><th scope="col">Processes</th>
                <th scope="col">Trigger</th><th scope="col">Created</th><th scope="col">Duration</th>
              </tr>
            </thead>
            <tbody>
              {page.data.items.map((j) => (
                <tr key={j.id} data-job={j.id} data-status={j.status} class={fresh.has(j.id) ? "fresh" : undefined}>
                  <th scope="row"><a href={href(`/jobs/${j.id}`)} class="mono">{shortId(j.id)}</a></th>
                  <td>
                    {names.get(j.workflow_id)
                      ? <a href={href(`/workflows/${j.workflow_id}`)}>{names.get(j.workflow_id)!.name}</a>
                      : <span class="muted">deleted workflow</span>}
                    <span class="muted small"> v{j.version}</span>
                  </td>
                  <td><StatusBadge status={j.status} />{j.error ? <span class="muted small error-hint" title={j.error}> {j.error}</span> : null}</td>
                  <td><Counts job={j} /></td>
                  <td class="muted">{j.trigger}</td>
                  <td title={when(j.created_at)}>{ago(j.created_at)}</td>
                  <td>{duration(j.created_at, j.finished_at)}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {page.data.items.length === 0 ? <p class="empty muted">No job{filtered ? " matches these filters" : " yet"}.</p> : null}
          <nav class="pager" aria-label="Pages of jobs">
            <button type="button" disabled={trail.length === 0 && !cursor}
              onClick={() => {
                const previous = trail[trail.length - 1];
                go(previous && previous !== "-" ? previous : null, trail.slice(0, -1));
              }}>← Newer</button>
            <span class="muted small">page {trail.length + 1}</span>
            <button type="button" disabled={!page.data.next_cursor}
              onClick={() => go(page.data!.next_cursor, [...trail, cursor ?? "-"])}>Older →</button>
          </nav>
        </div>
      ) : null}
    </div>
  );
}
