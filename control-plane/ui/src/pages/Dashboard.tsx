import { api, listAll, type Job, type Usage } from "../api";
import { Meter, Ranking, StackedBars } from "../components/Charts";
import { StatusBadge } from "../components/Status";
import { ErrorNotice, Loading, PageHeader, useAsync, usePolling } from "../components/ui";
import { ago, dayRange, daysBack, isoDay, number, percent, seconds } from "../lib/format";
import { allWorkflows } from "../lib/store";
import { href } from "../router";
import { useIdentity } from "../session";

const DAYS = 14;
const SAMPLE = 500;
const STATUS_PAGES = 4;

interface Platform {
  backlog: number;
  oldest: number;
  failedProcesses: number;
  runningJobs: number;
}

/** The platform-wide gauges of the Prometheus text at /metrics. */
export function parseMetrics(text: string): Platform {
  const sum = (name: string, labelFilter?: string) => text.split("\n")
    .filter((line) => line.startsWith(name) && !line.startsWith("#") && (line[name.length] === " " || line[name.length] === "{"))
    .filter((line) => !labelFilter || line.includes(labelFilter))
    .reduce((total, line) => total + Number(line.slice(line.lastIndexOf(" ") + 1)) || 0, 0);
  return {
    backlog: sum("stepline_outbox_backlog"),
    oldest: sum("stepline_outbox_oldest_pending_age_seconds"),
    failedProcesses: sum("stepline_processes", 'status="failed"'),
    runningJobs: sum("stepline_jobs", 'status="running"'),
  };
}

function byDay(jobs: Job[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const j of jobs) counts.set(j.created_at.slice(0, 10), (counts.get(j.created_at.slice(0, 10)) ?? 0) + 1);
  return counts;
}

function top(jobs: Job[], n = 5): [string, number][] {
  const counts = new Map<string, number>();
  for (const j of jobs) counts.set(j.workflow_id, (counts.get(j.workflow_id) ?? 0) + 1);
  return [...counts.entries()].sort((a, b) => b[1] - a[1]).slice(0, n);
}

export function Dashboard() {
  const me = useIdentity();
  const today = isoDay(new Date());
  const firstDay = isoDay(daysBack(DAYS - 1));
  const since = `${firstDay}T00:00:00Z`;
  const data = useAsync(async () => {
    const statusList = (status: string, from?: string) =>
      listAll<Job>("/v1/jobs", { status, from }, { limit: SAMPLE, maxPages: STATUS_PAGES });
    const [usage, failed, cancelled, running, recent, workflows, platform] = await Promise.all([
      api.get<Usage>("/v1/usage", { from: firstDay, to: today }),
      statusList("failed", since),
      statusList("cancelled", since),
      statusList("running"),
      api.get<{ items: Job[] }>("/v1/jobs", { from: since, limit: SAMPLE }),
      allWorkflows(),
      me.account.is_operator ? api.text("/metrics").then(parseMetrics).catch(() => null) : Promise.resolve(null),
    ]);
    return { usage, failed, cancelled, running, recent: recent.items, workflows, platform };
  }, [firstDay]);
  usePolling(() => data.reload(), 10_000, !!data.data);

  if (data.loading) return <div class="page"><PageHeader title="Dashboard" /><Loading /></div>;
  if (!data.data) return <div class="page"><PageHeader title="Dashboard" /><ErrorNotice error={data.error} /></div>;
  const { usage, failed, cancelled, running, recent, workflows, platform } = data.data;

  const days = dayRange(firstDay, today);
  const totals = new Map(usage.days.map((d) => [d.day, d.jobs]));
  const failedByDay = byDay(failed.items);
  const cancelledByDay = byDay(cancelled.items);
  const runningByDay = byDay(running.items.filter((j) => j.created_at >= since));
  const series = {
    succeeded: days.map((d) => Math.max(0, (totals.get(d) ?? 0) - (failedByDay.get(d) ?? 0) - (cancelledByDay.get(d) ?? 0) - (runningByDay.get(d) ?? 0))),
    failed: days.map((d) => failedByDay.get(d) ?? 0),
    cancelled: days.map((d) => cancelledByDay.get(d) ?? 0),
    running: days.map((d) => runningByDay.get(d) ?? 0),
  };
  const total = usage.totals.jobs;
  const runningInRange = series.running.reduce((a, b) => a + b, 0);
  const finished = Math.max(0, total - runningInRange);
  const partial = !failed.complete || !cancelled.complete || !running.complete;
  const name = (id: string) => workflows.get(id)?.name ?? `deleted workflow ${id.slice(0, 8)}`;
  const busiest = top(recent);
  const failing = top(failed.items);

  return (
    <div class="page">
      <PageHeader title="Dashboard" subtitle={`${me.account.name} · the last ${DAYS} days (UTC)`}>
        <a class="button" href={href("/jobs")}>All jobs</a>
      </PageHeader>

      <section class="kpis" aria-label="Key figures">
        <div class="kpi">
          <span class="kpi-label">Jobs</span>
          <span class="kpi-value" data-testid="kpi-jobs">{number(total)}</span>
          <span class="muted small">in {DAYS} days</span>
        </div>
        <div class="kpi">
          <span class="kpi-label">Failure rate</span>
          <span class={`kpi-value${failed.items.length ? " danger" : ""}`} data-testid="kpi-failure-rate">{percent(failed.items.length, finished)}</span>
          <span class="muted small">{partial ? "≥ " : ""}{number(failed.items.length)} failed of {number(finished)} finished</span>
        </div>
        <div class="kpi">
          <span class="kpi-label">Running now</span>
          <span class="kpi-value">{number(running.items.length)}{running.complete ? "" : "+"}</span>
          <span class="muted small">{running.items[0] ? `oldest started ${ago(running.items[running.items.length - 1].created_at)}` : "nothing running"}</span>
        </div>
        <div class="kpi">
          <span class="kpi-label">Processes this month</span>
          <span class="kpi-value">{number(usage.month_processes)}</span>
          <Meter value={usage.month_processes} max={usage.monthly_quota} label="Processes this month against the quota" />
        </div>
      </section>

      <section class="card">
        <h2>Jobs per day by status</h2>
        <StackedBars label="Jobs per day by status" days={days} series={[
          { name: "succeeded", tone: "fill-succeeded", values: series.succeeded },
          { name: "failed", tone: "fill-failed", values: series.failed },
          { name: "cancelled", tone: "fill-cancelled", values: series.cancelled },
          { name: "running", tone: "fill-running", values: series.running },
        ]} />
        {partial ? <p class="muted small">More than {number(SAMPLE * STATUS_PAGES)} jobs of one status: the oldest of them count as succeeded here.</p> : null}
        {usage.totals.refused ? <p class="muted small">{number(usage.totals.refused)} starts refused (blocked or over quota) in this period.</p> : null}
      </section>

      <div class="grid-2">
        <section class="card">
          <h2>Busiest workflows</h2>
          <p class="muted small">Among the last {number(recent.length)} jobs.</p>
          <Ranking tone="fill-accent" unit="jobs" empty="No job in this period."
            rows={busiest.map(([id, n]) => ({ label: name(id), href: href(`/workflows/${id}`), value: n }))} />
        </section>
        <section class="card">
          <h2>Most failing workflows</h2>
          <p class="muted small">Failed jobs in {DAYS} days.</p>
          <Ranking tone="fill-failed" unit="failed" empty="No failure in this period."
            rows={failing.map(([id, n]) => ({ label: name(id), href: href("/jobs", { workflow: id, status: "failed" }), value: n }))} />
          {failed.items.length ? (
            <>
              <h3>Latest failures</h3>
              <ul class="plain">
                {failed.items.slice(0, 5).map((j) => (
                  <li key={j.id}><a href={href(`/jobs/${j.id}`)}>{name(j.workflow_id)}</a> <StatusBadge status={j.status} /> <span class="muted small">{ago(j.created_at)}{j.error ? ` — ${j.error}` : ""}</span></li>
                ))}
              </ul>
            </>
          ) : null}
        </section>
      </div>

      <section class="card" aria-labelledby="platform-title">
        <h2 id="platform-title">Delivery</h2>
        {platform ? (
          <div class="kpis inner">
            <div class="kpi">
              <span class="kpi-label">Outbox backlog</span>
              <span class="kpi-value" data-testid="outbox-backlog">{number(platform.backlog)}</span>
              <span class="muted small">messages waiting to be sent</span>
            </div>
            <div class="kpi">
              <span class="kpi-label">Oldest pending</span>
              <span class={`kpi-value${platform.oldest > 60 ? " warn" : ""}`}>{platform.backlog ? seconds(platform.oldest) : "—"}</span>
              <span class="muted small">age of the oldest waiting message</span>
            </div>
            <div class="kpi">
              <span class="kpi-label">Dead letters</span>
              <span class="kpi-value">{number(platform.failedProcesses)}</span>
              <span class="muted small">failed processes whose message waits for a <a href={href("/dead-letters", { resolved: "false" })}>retry</a></span>
            </div>
            <div class="kpi">
              <span class="kpi-label">Jobs running</span>
              <span class="kpi-value">{number(platform.runningJobs)}</span>
              <span class="muted small">every account</span>
            </div>
          </div>
        ) : (
          <p class="muted">The outbox backlog, its oldest pending message and the dead letters are platform-wide figures: operators see them here.</p>
        )}
        {platform ? <p class="muted small">Platform-wide, from the control plane's <code>/metrics</code> (refreshed every few seconds).</p> : null}
      </section>
    </div>
  );
}
