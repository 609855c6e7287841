// Services: the account's workflows published to other accounts (publish, pin a newer
// version, unpublish), with the calls each served this month and what they earned.

import { useState } from "preact/hooks";
import { api, errorText, listAll, type Service, type Statement, type WorkflowSummary } from "../api";
import { Badge } from "../components/Status";
import { ConfirmButton, ErrorNotice, Loading, PageHeader, toast, useAsync } from "../components/ui";
import { money, number, thisMonth } from "../lib/format";
import { allWorkflows, forgetCatalog } from "../lib/store";
import { href } from "../router";
import { useIdentity } from "../session";

const PRICE = "[0-9]{1,12}(\\.[0-9]{1,6})?";
const NAME = "[A-Za-z][A-Za-z0-9_]*(\\.[A-Za-z][A-Za-z0-9_]*)+";
const DEFAULT_SCHEMA = '{\n  "type": "object"\n}';

function parseSchema(text: string): Record<string, unknown> {
  const value = JSON.parse(text);
  if (!value || typeof value !== "object" || Array.isArray(value)) throw new Error("the input schema must be a JSON object");
  return value;
}

function Publish({ workflows, onPublished }: { workflows: WorkflowSummary[]; onPublished: () => void }) {
  const [form, setForm] = useState({ workflow_id: "", name: "", visibility: "public", price_per_call: "0", description: "", schema: DEFAULT_SCHEMA });
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const set = (field: keyof typeof form) => (e: Event) =>
    setForm({ ...form, [field]: (e.target as HTMLInputElement).value });
  return (
    <form class="card publish-service" aria-labelledby="publish-title" onSubmit={async (e) => {
      e.preventDefault();
      setBusy(true);
      try {
        const { schema, ...rest } = form;
        await api.post<Service>("/v1/services", { ...rest, description: rest.description.trim() || null, input_schema: parseSchema(schema) });
        toast(`${form.name} published`);
        setForm({ ...form, name: "", description: "" });
        setError(null);
        forgetCatalog();
        onPublished();
      } catch (err) { setError(err); } finally { setBusy(false); }
    }}>
      <h2 id="publish-title">Publish a workflow as a service</h2>
      <p class="muted small">Its current version is pinned: later edits change no call until you pin them. A public service is offered to every account; a private one serves your own workflows only.</p>
      <div class="fields grid-fields">
        <div class="field">
          <label for="service-workflow">Workflow</label>
          <select id="service-workflow" required value={form.workflow_id} onChange={set("workflow_id")}>
            <option value="">— choose a workflow —</option>
            {workflows.map((w) => <option key={w.id} value={w.id}>{w.name} (v{w.version})</option>)}
          </select>
        </div>
        <div class="field">
          <label for="service-name">Name</label>
          <input id="service-name" required maxLength={100} pattern={NAME} placeholder="Acme.enrichLead" spellcheck={false}
            title="dotted like a function: Vendor.verb" value={form.name} onInput={set("name")} />
        </div>
        <div class="field">
          <label for="service-visibility">Visibility</label>
          <select id="service-visibility" value={form.visibility} onChange={set("visibility")}>
            <option value="public">public — offered to every account</option>
            <option value="private">private — my workflows only</option>
          </select>
        </div>
        <div class="field">
          <label for="service-price">Price per call</label>
          <input id="service-price" required inputMode="decimal" pattern={PRICE} title="a decimal, at most 6 places"
            value={form.price_per_call} onInput={set("price_per_call")} />
        </div>
        <div class="field wide">
          <label for="service-description">Description</label>
          <input id="service-description" maxLength={2000} value={form.description} onInput={set("description")} />
        </div>
        <div class="field wide">
          <label for="service-schema">Input schema (JSON Schema every call's input must satisfy)</label>
          <textarea id="service-schema" class="mono" rows={6} spellcheck={false} value={form.schema} onInput={set("schema")} />
        </div>
      </div>
      <div class="row">
        <button type="submit" class="primary" data-write disabled={busy}>Publish service</button>
      </div>
      <ErrorNotice error={error} />
    </form>
  );
}

function ServiceRow({ service, workflow, served, canWrite, onChanged }: {
  service: Service; workflow: WorkflowSummary | undefined; served: Statement["served"]; canWrite: boolean; onChanged: () => void;
}) {
  const mine = served.filter((s) => s.service === service.name);
  const calls = mine.reduce((n, s) => n + s.calls, 0);
  const change = async (body: Record<string, unknown>, done: string) => {
    try { await api.patch(`/v1/services/${service.id}`, body); toast(done); forgetCatalog(); onChanged(); }
    catch (e) { toast(errorText(e), "error"); }
  };
  return (
    <tr data-service={service.name}>
      <th scope="row"><code>{service.name}</code>{service.description ? <div class="muted small">{service.description}</div> : null}</th>
      <td>{workflow ? <a href={href(`/workflows/${workflow.id}`)}>{workflow.name}</a> : <span class="muted">a deleted workflow</span>}</td>
      <td><Badge tone={service.visibility === "public" ? "ok" : "warn"}>{service.visibility}</Badge></td>
      <td data-testid="pinned">
        v{service.version}
        {service.workflow_version > service.version ? <span class="muted small"> (v{service.workflow_version} is newer)</span> : null}
      </td>
      <td class="num">{money(service.price_per_call)}</td>
      <td class="num" data-testid="calls">{number(calls)}</td>
      <td class="num" data-testid="revenue">{mine.map((s) => money(s.revenue)).join(" + ") || "0.00"}</td>
      <td>
        {canWrite ? (
          <div class="row-actions">
            {service.workflow_version > service.version ? (
              <button type="button" class="small" data-write aria-label={`Pin version ${service.workflow_version} of ${service.name}`}
                onClick={() => change({ version: service.workflow_version }, `${service.name} now runs version ${service.workflow_version}`)}>
                Pin v{service.workflow_version}
              </button>
            ) : null}
            <ConfirmButton label="Unpublish" class="small danger" confirm={`Unpublish ${service.name}? Later calls fail; running ones finish.`}
              onConfirm={async () => {
                try { await api.del(`/v1/services/${service.id}`); toast(`${service.name} unpublished`); forgetCatalog(); onChanged(); }
                catch (e) { toast(errorText(e), "error"); }
              }} />
          </div>
        ) : null}
      </td>
    </tr>
  );
}

export function Services() {
  const me = useIdentity();
  const data = useAsync(async () => {
    const [services, workflows, bill] = await Promise.all([
      listAll<Service>("/v1/services").then((r) => r.items),
      allWorkflows(true),
      api.get<Statement>("/v1/billing", { month: thisMonth() }),
    ]);
    return { services, workflows, bill };
  }, []);
  const bill = data.data?.bill;
  return (
    <div class="page">
      <PageHeader title="Services" subtitle="Your workflows offered to other accounts as functions: they call them from their own workflows and never see inside. Calls run in your account, on your quota, and are paid per call." />
      {data.loading ? <Loading /> : <ErrorNotice error={data.error} />}
      {data.data && me.canWrite ? <Publish workflows={[...data.data.workflows.values()]} onPublished={() => data.reload()} /> : null}
      {data.data ? (
        <section class="card" aria-labelledby="services-title">
          <h2 id="services-title">Published services</h2>
          <p class="muted small">Calls served and revenue are this month's ({bill?.month}, {bill?.currency}); the <a href={href("/usage")}>usage page</a> has the whole statement.</p>
          {data.data.services.length === 0 ? <p class="muted">No service published yet.</p> : (
            <table class="table services-table">
              <thead><tr>
                <th scope="col">Service</th><th scope="col">Workflow</th><th scope="col">Visibility</th><th scope="col">Pinned</th>
                <th scope="col" class="num">Price per call</th><th scope="col" class="num">Calls served</th><th scope="col" class="num">Revenue</th>
                <th scope="col"><span class="visually-hidden">Actions</span></th>
              </tr></thead>
              <tbody>
                {data.data.services.map((s) => (
                  <ServiceRow key={s.id} service={s} workflow={data.data!.workflows.get(s.workflow_id)} served={bill?.served ?? []}
                    canWrite={me.canWrite} onChanged={() => data.reload()} />
                ))}
              </tbody>
            </table>
          )}
        </section>
      ) : null}
    </div>
  );
}
