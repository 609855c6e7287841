import { useEffect, useState } from "preact/hooks";
import { api, errorText, listAll, type Account, type Statement as StatementData, type Usage as UsageData } from "../api";
import { Meter, StackedBars } from "../components/Charts";
import { Badge } from "../components/Status";
import { ErrorNotice, Loading, PageHeader, toast, useAsync } from "../components/ui";
import { dayRange, isoDay, money, number, thisMonth, when } from "../lib/format";
import { navigate, type Route } from "../router";
import { useIdentity } from "../session";

function firstOfMonth(): string {
  const now = new Date();
  return isoDay(new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1)));
}

function QuotaEditor({ account, onSaved }: { account: Account; onSaved: () => void }) {
  const [editing, setEditing] = useState(false);
  const [value, setValue] = useState(account.monthly_quota === null ? "" : String(account.monthly_quota));
  const id = `quota-${account.id}`;
  if (!editing) {
    return (
      <span class="quota">
        {account.monthly_quota === null ? <span class="muted">unlimited</span> : number(account.monthly_quota)}{" "}
        <button type="button" class="link small" data-write aria-label={`Change the quota of ${account.name}`} onClick={() => setEditing(true)}>change</button>
      </span>
    );
  }
  return (
    <form class="inline-form" onSubmit={async (e) => {
      e.preventDefault();
      try {
        await api.patch(`/v1/accounts/${account.id}`, { monthly_quota: value === "" ? null : Number(value) });
        toast("Quota saved");
        setEditing(false);
        onSaved();
      } catch (err) { toast(errorText(err), "error"); }
    }}>
      <label for={id} class="visually-hidden">Monthly quota of {account.name} (processes; empty: unlimited)</label>
      <input id={id} type="number" min={0} step={1} value={value} placeholder="unlimited" autoFocus
        onInput={(e) => setValue((e.target as HTMLInputElement).value)} />
      <button type="submit" class="small primary" data-write>Save</button>
      <button type="button" class="small" onClick={() => setEditing(false)}>Cancel</button>
    </form>
  );
}

function BlockControl({ account, onChanged }: { account: Account; onChanged: () => void }) {
  const [asking, setAsking] = useState(false);
  const [reason, setReason] = useState("");
  const id = `reason-${account.id}`;
  if (account.blocked) {
    return (
      <button type="button" class="small" data-write aria-label={`Unblock ${account.name}`} onClick={async () => {
        try { await api.post(`/v1/accounts/${account.id}/unblock`); toast(`${account.name} unblocked`); onChanged(); }
        catch (e) { toast(errorText(e), "error"); }
      }}>Unblock</button>
    );
  }
  if (!asking) {
    return <button type="button" class="small danger" data-write aria-label={`Block ${account.name}`} onClick={() => setAsking(true)}>Block</button>;
  }
  return (
    <form class="inline-form" onSubmit={async (e) => {
      e.preventDefault();
      try {
        await api.post(`/v1/accounts/${account.id}/block`, { reason: reason.trim() || null });
        toast(`${account.name} blocked`);
        setAsking(false);
        onChanged();
      } catch (err) { toast(errorText(err), "error"); }
    }} onKeyDown={(e) => { if (e.key === "Escape") setAsking(false); }}>
      <label for={id} class="visually-hidden">Why block {account.name}?</label>
      <input id={id} value={reason} placeholder="reason (optional)" maxLength={500} autoFocus onInput={(e) => setReason((e.target as HTMLInputElement).value)} />
      <button type="submit" class="small danger" data-write>Block {account.name}</button>
      <button type="button" class="small" onClick={() => setAsking(false)}>Cancel</button>
    </form>
  );
}

/** The month's CSV, fetched with the token (a plain link could not carry it) and offered
 * as a link to a local copy. */
function useCsv(month: string, account: string): string | null {
  const [url, setUrl] = useState<string | null>(null);
  useEffect(() => {
    let made: string | null = null;
    let live = true;
    setUrl(null);
    api.text("/v1/billing", { month, format: "csv", account_id: account || undefined })
      .then((text) => {
        if (!live) return;
        made = URL.createObjectURL(new Blob([text], { type: "text/csv" }));
        setUrl(made);
      })
      .catch(() => { /* the statement above shows the error */ });
    return () => { live = false; if (made) URL.revokeObjectURL(made); };
  }, [month, account]);
  return url;
}

function Statement({ month, account, onMonth }: { month: string; account: string; onMonth: (month: string) => void }) {
  const bill = useAsync(() => api.get<StatementData>("/v1/billing", { month, account_id: account || undefined }), [month, account]);
  const csv = useCsv(month, account);
  const data = bill.data;
  return (
    <section class="card statement" aria-labelledby="statement-title">
      <div class="statement-head">
        <div>
          <h2 id="statement-title">Statement</h2>
          <p class="muted small">What each function and service used this month cost, at the price each process or call had when it was made{data ? ` (${data.currency})` : ""}.</p>
        </div>
        <div class="row">
          <div class="field inline">
            <label for="statement-month">Month</label>
            <input id="statement-month" type="month" value={month} required
              onChange={(e) => { const v = (e.target as HTMLInputElement).value; if (v) onMonth(v); }} />
          </div>
          {csv ? <a class="button" href={csv} download={`stepline-billing-${month}.csv`}>Download CSV</a>
            : <span class="muted small">preparing the CSV…</span>}
        </div>
      </div>
      {bill.loading ? <Loading /> : <ErrorNotice error={bill.error} />}
      {data ? (
        <>
          {data.lines.length === 0 ? <p class="muted">Nothing used in {data.month}.</p> : (
            <table class="table statement-table">
              <thead><tr>
                <th scope="col">Function or service</th><th scope="col">Kind</th><th scope="col" class="num">Count</th>
                <th scope="col" class="num">Unit price</th><th scope="col" class="num">Amount</th>
              </tr></thead>
              <tbody>
                {data.lines.map((l) => (
                  <tr key={`${l.function}-${l.unit_price}`} data-line={l.function}>
                    <th scope="row"><code>{l.function}</code></th>
                    <td>{l.kind}</td>
                    <td class="num">{number(l.count)}</td>
                    <td class="num">{l.unit_price}</td>
                    <td class="num">{money(l.amount)}</td>
                  </tr>
                ))}
              </tbody>
              <tfoot><tr><th scope="row" colSpan={4}>Total</th><td class="num" data-testid="statement-total">{money(data.total)} {data.currency}</td></tr></tfoot>
            </table>
          )}
          {data.served.length > 0 ? (
            <>
              <h3>Calls your services served</h3>
              <table class="table served-table">
                <thead><tr><th scope="col">Service</th><th scope="col" class="num">Calls</th><th scope="col" class="num">Price per call</th><th scope="col" class="num">Revenue</th></tr></thead>
                <tbody>
                  {data.served.map((s) => (
                    <tr key={`${s.service}-${s.unit_price}`} data-served={s.service}>
                      <th scope="row"><code>{s.service}</code></th>
                      <td class="num">{number(s.calls)}</td>
                      <td class="num">{s.unit_price}</td>
                      <td class="num">{money(s.revenue)}</td>
                    </tr>
                  ))}
                </tbody>
                <tfoot><tr><th scope="row" colSpan={3}>Revenue</th><td class="num" data-testid="statement-revenue">{money(data.revenue)} {data.currency}</td></tr></tfoot>
              </table>
            </>
          ) : null}
        </>
      ) : null}
    </section>
  );
}

function Accounts({ selected }: { selected: string }) {
  const me = useIdentity();
  const accounts = useAsync(() => listAll<Account>("/v1/accounts").then((r) => r.items), []);
  return (
    <section class="card" aria-labelledby="accounts-title">
      <h2 id="accounts-title">Accounts</h2>
      <p class="muted small">Every account, its monthly quota of processes and whether it may run. A blocked account starts no job and runs no pending message.</p>
      {accounts.loading ? <Loading /> : <ErrorNotice error={accounts.error} />}
      {accounts.data ? (
        <table class="table accounts-table">
          <thead><tr><th scope="col">Account</th><th scope="col">Monthly quota</th><th scope="col">State</th><th scope="col">Created</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
          <tbody>
            {accounts.data.map((a) => (
              <tr key={a.id} data-account={a.name} class={a.id === selected ? "selected" : undefined}>
                <th scope="row">{a.name} {a.is_operator ? <Badge tone="accent">operator</Badge> : null}</th>
                <td>{me.canWrite ? <QuotaEditor account={a} onSaved={() => accounts.reload()} /> : a.monthly_quota === null ? "unlimited" : number(a.monthly_quota)}</td>
                <td>{a.blocked ? <><Badge tone="danger">blocked</Badge> <span class="muted small">{a.blocked_reason ?? ""}</span></> : <Badge tone="ok">active</Badge>}</td>
                <td class="muted small">{when(a.created_at)}</td>
                <td>
                  <div class="row-actions">
                  <button type="button" class="small ghost" aria-label={`Usage of ${a.name}`} onClick={() => navigate("/usage", { account: a.id })}>Usage</button>
                  {me.canWrite && a.id !== me.account.id ? <BlockControl account={a} onChanged={() => accounts.reload()} /> : null}
                  </div>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </section>
  );
}

export function Usage({ route }: { route: Route }) {
  const me = useIdentity();
  const from = route.query.get("from") ?? firstOfMonth();
  const to = route.query.get("to") ?? isoDay(new Date());
  const account = route.query.get("account") ?? "";
  const month = route.query.get("month") ?? thisMonth();
  const usage = useAsync(() => api.get<UsageData>("/v1/usage", { from, to, account_id: account || undefined }), [from, to, account]);
  const set = (changes: Record<string, string>) => navigate("/usage", { from, to, account, month, ...changes });
  const days = usage.data ? dayRange(usage.data.from, usage.data.to) : [];
  const byDay = new Map((usage.data?.days ?? []).map((d) => [d.day, d]));
  return (
    <div class="page">
      <PageHeader title="Usage" subtitle={account && account !== me.account.id ? "Another account's usage" : `${me.account.name}: jobs and processes per day (UTC)`} />
      <form class="toolbar" aria-label="Period" onSubmit={(e) => e.preventDefault()}>
        <div class="field inline">
          <label for="usage-from">From</label>
          <input id="usage-from" type="date" value={from} onChange={(e) => set({ from: (e.target as HTMLInputElement).value })} />
        </div>
        <div class="field inline">
          <label for="usage-to">To</label>
          <input id="usage-to" type="date" value={to} onChange={(e) => set({ to: (e.target as HTMLInputElement).value })} />
        </div>
        {account ? <button type="button" class="ghost" onClick={() => set({ account: "" })}>Back to my account</button> : null}
      </form>
      {usage.loading ? <Loading /> : <ErrorNotice error={usage.error} />}
      {usage.data ? (
        <>
          <section class="kpis" aria-label="Totals">
            <div class="kpi"><span class="kpi-label">Jobs</span><span class="kpi-value" data-testid="usage-jobs">{number(usage.data.totals.jobs)}</span></div>
            <div class="kpi"><span class="kpi-label">Processes</span><span class="kpi-value">{number(usage.data.totals.processes)}</span></div>
            <div class="kpi"><span class="kpi-label">Refused starts</span><span class="kpi-value">{number(usage.data.totals.refused)}</span><span class="muted small">blocked or over quota</span></div>
            <div class="kpi"><span class="kpi-label">This month's quota</span><Meter value={usage.data.month_processes} max={usage.data.monthly_quota} label="Processes this month against the quota" /></div>
          </section>
          <div class="grid-2">
            <section class="card">
              <h2>Processes per day</h2>
              <StackedBars label="Processes per day" days={days} height={200}
                series={[{ name: "processes", tone: "fill-accent", values: days.map((d) => byDay.get(d)?.processes ?? 0) }]} />
            </section>
            <section class="card">
              <h2>Jobs per day</h2>
              <StackedBars label="Jobs per day" days={days} height={200} series={[
                { name: "jobs", tone: "fill-succeeded", values: days.map((d) => byDay.get(d)?.jobs ?? 0) },
                { name: "refused", tone: "fill-failed", values: days.map((d) => byDay.get(d)?.refused ?? 0) },
              ]} />
            </section>
          </div>
        </>
      ) : null}
      <Statement month={month} account={account} onMonth={(m) => set({ month: m })} />
      {me.account.is_operator ? <Accounts selected={account} /> : null}
    </div>
  );
}
