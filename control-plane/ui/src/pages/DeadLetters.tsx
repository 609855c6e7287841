import { api, errorText, listAll, type Account, type DeadLetter, type DeadLetterDetail, type Page } from "../api";
import { JsonSection } from "../components/Json";
import { Badge } from "../components/Status";
import { ErrorNotice, Loading, PageHeader, toast, useAsync } from "../components/ui";
import { ago, shortId, when } from "../lib/format";
import { catalog } from "../lib/store";
import { href, navigate, type Route } from "../router";
import { useIdentity } from "../session";

const LIMIT = 50;
const STATES = [["false", "Open"], ["true", "Resolved"]] as const;

function State({ dead }: { dead: DeadLetter }) {
  return dead.resolved_at
    ? <Badge tone="ok" title={`resolved ${when(dead.resolved_at)}`}>resolved</Badge>
    : <Badge tone="danger">open</Badge>;
}

/** Run the dead letter's failed process again; true when it was. */
async function retry(dead: DeadLetter): Promise<boolean> {
  try {
    await api.post(`/v1/dead-letters/${dead.id}/retry`);
    toast(`Retrying the process of dead letter ${dead.id}`);
    return true;
  } catch (e) {
    toast(errorText(e), "error");
    return false;
  }
}

function canRetry(dead: DeadLetter): boolean {
  return dead.retryable && !dead.resolved_at && !!dead.account_id;
}

function accountNames(operator: boolean): Promise<Map<string, string>> {
  if (!operator) return Promise.resolve(new Map());
  return listAll<Account>("/v1/accounts").then(({ items }) => new Map(items.map((a) => [a.id, a.name])));
}

export function DeadLetters({ route }: { route: Route }) {
  const me = useIdentity();
  const q = route.query;
  const filters = { function: q.get("function") ?? "", resolved: q.get("resolved") ?? "", job: q.get("job") ?? "" };
  const cursor = q.get("cursor");
  // the cursors of the pages before this one ("-" stands for the first page)
  const trail = (q.get("trail") ?? "").split(",").filter(Boolean);
  const query = {
    consumer: filters.function || undefined, resolved: filters.resolved || undefined,
    job_id: filters.job || undefined, limit: LIMIT, cursor: cursor ?? undefined,
  };
  const key = JSON.stringify(query);
  const page = useAsync(() => api.get<Page<DeadLetter>>("/v1/dead-letters", query), [key]);
  const functions = useAsync(() => catalog(), []);
  const accounts = useAsync(() => accountNames(me.account.is_operator), []);
  const set = (changes: Partial<typeof filters>) => navigate("/dead-letters", { ...filters, ...changes });
  const go = (next: string | null, nextTrail: string[]) =>
    navigate("/dead-letters", { ...filters, cursor: next, trail: nextTrail.join(",") || null });
  const filtered = Object.values(filters).some(Boolean);
  // a Webhook call that did not parse is kept under "Webhook", which is in the catalog too
  const names = [...new Set((functions.data ?? []).map((f) => f.name))].sort();

  return (
    <div class="page">
      <PageHeader title="Dead letters" subtitle="Messages nobody could act on, kept with their reason. One whose process failed can be retried." />
      <form class="toolbar filters" aria-label="Filter dead letters" onSubmit={(e) => e.preventDefault()}>
        <div class="field inline">
          <label for="dl-function">Function</label>
          <select id="dl-function" value={filters.function} onChange={(e) => set({ function: (e.target as HTMLSelectElement).value })}>
            <option value="">All functions</option>
            {names.map((n) => <option key={n} value={n}>{n}</option>)}
          </select>
        </div>
        <div class="field inline">
          <label for="dl-resolved">State</label>
          <select id="dl-resolved" value={filters.resolved} onChange={(e) => set({ resolved: (e.target as HTMLSelectElement).value })}>
            <option value="">Open and resolved</option>
            {STATES.map(([value, label]) => <option key={value} value={value}>{label}</option>)}
          </select>
        </div>
        <div class="field inline">
          <label for="dl-job">Job id</label>
          <input id="dl-job" type="search" value={filters.job} placeholder="any job" spellcheck={false}
            onChange={(e) => set({ job: (e.target as HTMLInputElement).value.trim() })} />
        </div>
        {filtered ? <button type="button" class="ghost" onClick={() => navigate("/dead-letters")}>Clear filters</button> : null}
      </form>
      {page.loading && !page.data ? <Loading what="Loading dead letters" /> : null}
      <ErrorNotice error={page.error} />
      {page.data ? (
        <div class="card table-card">
          <table class="table dead-letters-table" aria-describedby="dl-caption">
            <caption id="dl-caption" class="visually-hidden">Dead letters{filtered ? " matching the filters" : ""}, page {trail.length + 1}</caption>
            <thead>
              <tr>
                <th scope="col">Dead letter</th><th scope="col">Function</th><th scope="col">Reason</th>
                {me.account.is_operator ? <th scope="col">Account</th> : null}
                <th scope="col">Job</th><th scope="col">State</th><th scope="col">Kept</th><th scope="col"><span class="visually-hidden">Actions</span></th>
              </tr>
            </thead>
            <tbody>
              {page.data.items.map((d) => (
                <tr key={d.id} data-dead-letter={d.id} data-state={d.resolved_at ? "resolved" : "open"}>
                  <th scope="row"><a href={href(`/dead-letters/${d.id}`)} class="mono">#{d.id}</a></th>
                  <td><code>{d.consumer}</code> <span class="muted small">{d.origin}</span></td>
                  <td class="reason" title={d.reason}>{d.reason.length > 140 ? `${d.reason.slice(0, 140)}…` : d.reason}</td>
                  {me.account.is_operator ? <td>{d.account_id ? accounts.data?.get(d.account_id) ?? shortId(d.account_id) : <span class="muted">none</span>}</td> : null}
                  <td>{d.job_id ? <a href={href(`/jobs/${d.job_id}`)} class="mono">{shortId(d.job_id)}</a> : <span class="muted">—</span>}</td>
                  <td><State dead={d} /></td>
                  <td class="when" title={when(d.created_at)}>{ago(d.created_at)}</td>
                  <td>
                    {me.canWrite && canRetry(d) && d.account_id === me.account.id ? (
                      <button type="button" class="small primary" data-write aria-label={`Retry dead letter ${d.id}`}
                        onClick={async () => { if (await retry(d)) await page.reload(); }}>Retry</button>
                    ) : null}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {page.data.items.length === 0 ? <p class="empty muted">No dead letter{filtered ? " matches these filters" : ": nothing was given up"}.</p> : null}
          <nav class="pager" aria-label="Pages of dead letters">
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

/** The body as JSON when it is JSON, as text otherwise. */
function Body({ dead }: { dead: DeadLetterDetail }) {
  if (dead.body === null) return <p class="muted">No body.</p>;
  let parsed: unknown = undefined;
  try { parsed = JSON.parse(dead.body); } catch { /* shown as text */ }
  return parsed !== undefined && !dead.truncated
    ? <JsonSection title="Body" value={parsed} open />
    : <><h3 class="small">Body</h3><pre class="code dead-letter-body" data-testid="dead-letter-body">{dead.body}</pre></>;
}

export function DeadLetterPage({ id }: { id: string }) {
  const me = useIdentity();
  const data = useAsync(() => api.get<DeadLetterDetail>(`/v1/dead-letters/${id}`), [id]);
  if (data.loading) return <div class="page"><PageHeader title={`Dead letter #${id}`} /><Loading /></div>;
  if (!data.data) return <div class="page"><PageHeader title={`Dead letter #${id}`} /><ErrorNotice error={data.error} /></div>;
  const dead = data.data;
  const mine = dead.account_id === me.account.id;
  return (
    <div class="page">
      <PageHeader title={<>Dead letter <span class="mono">#{dead.id}</span> <State dead={dead} /></>}
        subtitle={<>given up by <code>{dead.consumer}</code> ({dead.origin}) {ago(dead.created_at)}</>}>
        <a class="button ghost" href={href("/dead-letters")}>All dead letters</a>
        {dead.job_id ? <a class="button ghost" href={href(`/jobs/${dead.job_id}`)}>Its job</a> : null}
        {me.canWrite && mine && canRetry(dead) ? (
          <button type="button" class="primary" data-write onClick={async () => { if (await retry(dead)) await data.reload(); }}>
            Retry its process
          </button>
        ) : null}
      </PageHeader>
      <section class="card" aria-label="Dead letter">
        <div class="notice error dead-letter-reason" data-testid="dead-letter-reason">{dead.reason}</div>
        {!dead.retryable ? <p class="muted small" data-testid="nothing-to-retry">Nothing to retry: this event names no process (it was malformed). It is kept to show what arrived.</p> : null}
        <dl class="facts">
          <div><dt>State</dt><dd data-testid="dead-letter-state">{dead.resolved_at ? "resolved" : "open"}</dd></div>
          <div><dt>Kept</dt><dd>{when(dead.created_at)}</dd></div>
          <div><dt>Resolved</dt><dd>{when(dead.resolved_at)}</dd></div>
          <div><dt>Function</dt><dd><code>{dead.consumer}</code></dd></div>
          <div><dt>Given up by</dt><dd>{dead.origin}</dd></div>
          <div><dt>Event id</dt><dd class="mono">{dead.event_id ?? "—"}</dd></div>
          <div><dt>Job</dt><dd>{dead.job_id ? <a href={href(`/jobs/${dead.job_id}`)} class="mono">{dead.job_id}</a> : "—"}</dd></div>
          <div><dt>Process</dt><dd class="mono">{dead.process_id ?? "—"}</dd></div>
        </dl>
      </section>
      <section class="card" aria-labelledby="dl-message-title">
        <h2 id="dl-message-title">The message</h2>
        {dead.truncated ? <p class="notice warn">Cut to its limit when it was kept: the body holds its first 64 KiB, a header its first 4 KiB.</p> : null}
        <JsonSection title="Headers" value={dead.headers} open />
        <Body dead={dead} />
      </section>
    </div>
  );
}
