import type { ComponentChildren } from "preact";
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import {
  ApiError, api, errorText, listAll,
  type Detail, type FunctionInfo, type Job, type JsonSchema, type Project, type RetryPolicy, type Step,
  type TriggerHealth, type Version, type Workflow,
} from "../api";
import { MermaidDiagram } from "../components/Mermaid";
import { ConfigForm, describedBy, FieldShell, fieldId, JsonInput } from "../components/SchemaForm";
import { Badge, TriggerBadge } from "../components/Status";
import { ErrorNotice, Loading, PageHeader, toast, useAsync } from "../components/ui";
import { flowchart } from "../lib/diagram";
import { diffLines, folded } from "../lib/diff";
import { money, when } from "../lib/format";
import { allWorkflows, catalog } from "../lib/store";
import { href, navigate, type Route } from "../router";
import { useIdentity } from "../session";

const DEFAULT_RETRY: RetryPolicy = { attempts: 3, backoff_s: 1, factor: 2, max_backoff_s: 300 };
const RETRY_FIELDS: { name: keyof RetryPolicy; label: string; step: string; min: number; hint: string }[] = [
  { name: "attempts", label: "Attempts", step: "1", min: 1, hint: "tries in all, the first included" },
  { name: "backoff_s", label: "First backoff (s)", step: "any", min: 0, hint: "wait before the second try" },
  { name: "factor", label: "Factor", step: "any", min: 1, hint: "each wait is this times the last" },
  { name: "max_backoff_s", label: "Longest backoff (s)", step: "any", min: 0, hint: "the cap of a wait" },
];
const TABS = [
  { id: "steps", label: "Steps" },
  { id: "json", label: "JSON" },
  { id: "versions", label: "Versions" },
] as const;
type Tab = (typeof TABS)[number]["id"];

interface DraftStep extends Step {
  uid: string;
}

interface Draft {
  project_id: string;
  name: string;
  description: string;
  steps: DraftStep[];
}

let uidCounter = 0;
const uid = () => `u${++uidCounter}`;

/** A step as the API takes it (no id; defaults left out where the API fills them). */
export function stepOut(s: Step): Step {
  const out: Step = {
    key: s.key,
    function: s.function,
    config: s.config ?? {},
    next: s.next ?? null,
    output: s.output === undefined ? "single" : s.output,
  };
  if (s.name) out.name = s.name;
  if (s.retry) out.retry = s.retry;
  return out;
}

/** A workflow's definition as `PUT /v1/workflows/{id}` takes it. */
export function definitionOf(w: Pick<Workflow, "name" | "description" | "steps">) {
  return { name: w.name, description: w.description ?? null, steps: w.steps.map(stepOut) };
}

/** A version's definition in a stable order, for the diff. */
/** The function picker's hint: a service says who sells it and for how much. */
function describe(fn: FunctionInfo): string {
  if (!fn.service) return fn.description;
  const lead = fn.description && !fn.description.endsWith(".") ? `${fn.description}.` : fn.description;
  return `${lead} Sold by ${fn.service.publisher.name}, ${money(fn.service.price_per_call)} per call.`.trim();
}

const KIND_LABELS = {
  trigger: "Triggers (entry step only)",
  action: "Actions",
  service: "Services (other accounts' workflows, paid per call)",
} as const;

function canonical(definition: Record<string, any>): string {
  const steps = Array.isArray(definition.steps) ? definition.steps : [];
  const sortKeys = (v: unknown): unknown => Array.isArray(v) ? v.map(sortKeys)
    : v && typeof v === "object" ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys((v as any)[k])])) : v;
  return JSON.stringify({
    name: definition.name,
    description: definition.description ?? null,
    steps: steps.map((s: Record<string, any>) => ({
      key: s.key, name: s.name ?? null, function: s.function, config: sortKeys(s.config ?? {}),
      output: s.output === undefined ? "single" : s.output, next: s.next ?? null, retry: sortKeys(s.retry ?? DEFAULT_RETRY),
    })),
  }, null, 2);
}

function toDraft(w: Workflow): Draft {
  return {
    project_id: w.project_id, name: w.name, description: w.description ?? "",
    // the id stays for display (a Webhook's URL); stepOut leaves it out of what is sent
    steps: w.steps.map((s) => ({ ...stepOut(s), id: s.id, uid: uid() })),
  };
}

function newDraft(projectId: string): Draft {
  return {
    project_id: projectId, name: "", description: "",
    steps: [{ uid: uid(), key: "start", name: "Run by hand", function: "Manual", config: {}, output: "single", next: null }],
  };
}

function payloadOf(d: Draft) {
  return { name: d.name.trim(), description: d.description.trim() || null, steps: d.steps.map(stepOut) };
}

/** Keys a step sends to: `next`, and a Condition's branches and default. */
function targetsOf(s: Step): string[] {
  const found = s.next ? [s.next] : [];
  if (s.function === "Condition") {
    const c = (s.config ?? {}) as Record<string, any>;
    for (const b of Array.isArray(c.branches) ? c.branches : []) if (b && typeof b.next === "string") found.push(b.next);
    if (typeof c.default === "string") found.push(c.default);
  }
  return found;
}

function renameKey(steps: DraftStep[], from: string, to: string): DraftStep[] {
  if (!from) return steps;
  return steps.map((s) => {
    let next = s;
    if (s.next === from) next = { ...next, next: to };
    if (s.function === "Condition" && s.config) {
      const c = s.config as Record<string, any>;
      const branches = Array.isArray(c.branches)
        ? c.branches.map((b: any) => (b && b.next === from ? { ...b, next: to } : b)) : c.branches;
      next = { ...next, config: { ...c, ...(c.branches ? { branches } : {}), ...(c.default === from ? { default: to } : {}) } };
    }
    return next;
  });
}

/** The API's problems by step (key or `steps[i]`), with the field they name. */
interface Problems {
  general: Detail[];
  byStep: Map<string, Map<string, string[]>>;
}

function normalizeField(field: string, message: string): string {
  // jsonschema names a missing property at its parent: "'schedule' is a required property"
  const missing = /^'([^']+)' is a required property$/.exec(message);
  if (missing && (field === "config" || field.startsWith("config"))) return `${field}.${missing[1]}`;
  return field || "(step)";
}

function groupProblems(details: Detail[]): Problems {
  const out: Problems = { general: [], byStep: new Map() };
  for (const d of details) {
    if (!d.step) { out.general.push(d); continue; }
    const fields = out.byStep.get(d.step) ?? new Map<string, string[]>();
    const field = normalizeField(d.field ?? "", d.message);
    fields.set(field, [...(fields.get(field) ?? []), d.message]);
    out.byStep.set(d.step, fields);
  }
  return out;
}

function stepProblems(problems: Problems, step: DraftStep, index: number): Map<string, string[]> {
  const merged = new Map<string, string[]>();
  for (const key of [step.key, `steps[${index}]`]) {
    for (const [field, messages] of problems.byStep.get(key) ?? []) merged.set(field, [...(merged.get(field) ?? []), ...messages]);
  }
  return merged;
}

function focusField(stepUid: string | null, field: string) {
  const scope = stepUid ? document.querySelector(`[data-uid="${stepUid}"]`) : document;
  const holder = scope?.querySelector(`[data-field="${CSS.escape(field)}"]`) ?? scope?.querySelector(".field-error");
  const control = holder?.matches("input,select,textarea,button") ? holder : holder?.querySelector("input,select,textarea,button");
  (control as HTMLElement | null)?.focus();
  (holder as HTMLElement | null)?.scrollIntoView({ block: "center" });
}

function StepCard({ step, index, count, steps, functions, problems, readOnly, entry, health, onChange, onMove, onRemove }: {
  step: DraftStep; index: number; count: number; steps: DraftStep[]; functions: FunctionInfo[];
  problems: Map<string, string[]>; readOnly: boolean; entry: boolean; health?: TriggerHealth | null;
  onChange: (s: DraftStep) => void; onMove: (delta: number) => void; onRemove: () => void;
}) {
  const prefix = `s-${step.uid}`;
  const fn = functions.find((f) => f.name === step.function);
  const others = steps.filter((s) => s.uid !== step.uid && s.key).map((s) => s.key);
  const errorsOf = (field: string) => problems.get(field) ?? [];
  const retry = step.retry ?? DEFAULT_RETRY;
  const shown = new Set(["key", "name", "function", "output", "next", ...RETRY_FIELDS.map((f) => `retry.${f.name}`)]);
  const all = [...problems.entries()];
  const headingId = `${prefix}-title`;
  const control = (field: string, extra: Record<string, unknown> = {}) => {
    const id = fieldId(prefix, field);
    return { id, "aria-invalid": errorsOf(field).length > 0, "aria-describedby": describedBy(id, extra.hint, errorsOf(field)) };
  };
  const simple = (field: string, label: string, input: ComponentChildren, hint?: string) => (
    <FieldShell id={fieldId(prefix, field)} path={field} label={label} errors={errorsOf(field)} hint={hint}>{input}</FieldShell>
  );
  return (
    <section class={`step-card${all.length ? " has-error" : ""}`} data-step={step.key} data-uid={step.uid} aria-labelledby={headingId}
      onKeyDown={(e) => {
        if (readOnly || !e.altKey || (e.key !== "ArrowUp" && e.key !== "ArrowDown")) return;
        e.preventDefault();
        const focused = document.activeElement?.id;
        onMove(e.key === "ArrowUp" ? -1 : 1);
        requestAnimationFrame(() => focused && document.getElementById(focused)?.focus());
      }}>
      <header class="step-head">
        <h3 id={headingId}>
          <span class="step-number" aria-hidden="true">{index + 1}</span>
          <span class="visually-hidden">Step {index + 1}: </span>
          {step.name || step.key || "new step"} <span class="muted small">{step.function || "no function"}</span>
          {entry ? <> <TriggerBadge health={health} /></> : null}
        </h3>
        {entry ? <Badge tone="accent" title="no step sends to it: jobs start here">entry</Badge> : null}
        {readOnly ? null : (
          <div class="row-actions">
            <button type="button" class="icon" data-write aria-label={`Move step ${step.key || index + 1} up`} title="Move up (Alt+↑)"
              disabled={index === 0} onClick={() => onMove(-1)}>↑</button>
            <button type="button" class="icon" data-write aria-label={`Move step ${step.key || index + 1} down`} title="Move down (Alt+↓)"
              disabled={index === count - 1} onClick={() => onMove(1)}>↓</button>
            <button type="button" class="small ghost danger" data-write aria-label={`Remove step ${step.key || index + 1}`}
              disabled={count === 1} onClick={onRemove}>Remove</button>
          </div>
        )}
      </header>
      {all.length ? (
        <ul class="step-problems" aria-label={`Problems of step ${step.key}`}>
          {all.map(([field, messages]) => messages.map((m) => (
            <li key={field + m}>
              <a href={`#${fieldId(prefix, field)}`} onClick={(e) => { e.preventDefault(); focusField(step.uid, field); }}>
                <code>{field}</code>
              </a>: {m}{shown.has(field) || field.startsWith("config") ? "" : ""}
            </li>
          )))}
        </ul>
      ) : null}
      <div class="fields grid-fields">
        {simple("key", "Key", (
          <input {...control("key", { hint: 1 })} value={step.key} readOnly={readOnly} required spellcheck={false} pattern="[A-Za-z0-9_][A-Za-z0-9_.?!\-]{0,99}"
            onInput={(e) => onChange({ ...step, key: (e.target as HTMLInputElement).value })} />
        ), "unique in the workflow; steps name each other by it")}
        {simple("name", "Name", (
          <input {...control("name")} value={step.name ?? ""} readOnly={readOnly} maxLength={200}
            onInput={(e) => onChange({ ...step, name: (e.target as HTMLInputElement).value || null })} />
        ))}
        {simple("function", "Function", (
          <select {...control("function")} value={step.function} disabled={readOnly} required
            onChange={(e) => {
              const name = (e.target as HTMLSelectElement).value;
              onChange({ ...step, function: name, config: {} });
            }}>
            <option value="">— choose a function —</option>
            {(["trigger", "action", "service"] as const).map((kind) => (
              <optgroup key={kind} label={KIND_LABELS[kind]}>
                {functions.filter((f) => f.kind === kind).map((f) => (
                  <option key={f.name} value={f.name}>{f.service ? `${f.name} · ${f.service.publisher.name}` : f.name}</option>
                ))}
              </optgroup>
            ))}
            {step.function && !fn ? <option value={step.function}>{step.function} (unknown)</option> : null}
          </select>
        ), fn ? describe(fn) : undefined)}
        {simple("output", "Output", (
          <select {...control("output")} value={step.output === null ? "none" : step.output ?? "single"} disabled={readOnly}
            onChange={(e) => {
              const v = (e.target as HTMLSelectElement).value;
              onChange({ ...step, output: v === "none" ? null : (v as "single" | "multiple") });
            }}>
            <option value="single">single — the result is one message</option>
            <option value="multiple">multiple — one message per item of the result</option>
            <option value="none">none — the branch ends here</option>
          </select>
        ))}
        {simple("next", "Next step", (
          <select {...control("next")} value={step.next ?? ""} disabled={readOnly}
            onChange={(e) => onChange({ ...step, next: (e.target as HTMLSelectElement).value || null })}>
            <option value="">— none (ends here) —</option>
            {[...new Set([...others, ...(step.next ? [step.next] : [])])].map((k) => <option key={k} value={k}>{k}</option>)}
          </select>
        ), step.function === "Condition" ? "after the branches and the default" : undefined)}
      </div>
      {step.function === "Webhook" ? (
        <p class="notice small hook">
          {step.id ? <>Jobs start when something posts to <code>{`${location.origin}/v1/hooks/${step.id}`}</code> with an API token.</>
            : "Save the workflow to get this step's URL."}
        </p>
      ) : null}
      <fieldset class="config" data-field="config">
        <legend>Config {fn ? <a class="small" href={href("/functions", { name: fn.name })}>{fn.name} reference</a> : null}</legend>
        {(problems.get("config") ?? []).map((m) => <p class="field-error" key={m}>{m}</p>)}
        {fn ? (
          <ConfigForm schema={fn.config_schema} value={(step.config ?? {}) as Record<string, unknown>}
            onChange={(config) => onChange({ ...step, config })}
            ctx={{
              root: fn.config_schema, idPrefix: prefix, errors: problems, readOnly, stepKeys: others,
              keyFields: new Set(step.function === "Condition" ? ["next", "default"] : []),
            }} />
        ) : <p class="muted small">Choose a function to see its settings.</p>}
      </fieldset>
      <details class="retry" open={RETRY_FIELDS.some((f) => problems.has(`retry.${f.name}`))}>
        <summary>Retry policy <span class="muted small">{retry.attempts} attempt{retry.attempts === 1 ? "" : "s"}, {retry.backoff_s} s × {retry.factor}, at most {retry.max_backoff_s} s</span></summary>
        <div class="fields grid-fields four">
          {RETRY_FIELDS.map((f) => simple(`retry.${f.name}`, f.label, (
            <input {...control(`retry.${f.name}`, { hint: 1 })} type="number" step={f.step} min={f.min} value={retry[f.name]} readOnly={readOnly}
              onInput={(e) => {
                const text = (e.target as HTMLInputElement).value;
                if (text === "") return;
                onChange({ ...step, retry: { ...retry, [f.name]: Number(text) } });
              }} />
          ), f.hint))}
        </div>
      </details>
    </section>
  );
}

function Tabs({ tab, onTab, dirtyJson }: { tab: Tab; onTab: (t: Tab) => void; dirtyJson: boolean }) {
  const refs = useRef<(HTMLButtonElement | null)[]>([]);
  return (
    <div class="tabs" role="tablist" aria-label="Editor views">
      {TABS.map((t, i) => (
        <button key={t.id} type="button" role="tab" id={`tab-${t.id}`} aria-controls={`panel-${t.id}`} aria-selected={tab === t.id}
          tabIndex={tab === t.id ? 0 : -1} ref={(el) => { refs.current[i] = el; }}
          onClick={() => onTab(t.id)}
          onKeyDown={(e) => {
            const move = e.key === "ArrowRight" ? 1 : e.key === "ArrowLeft" ? -1 : 0;
            if (e.key === "Home" || e.key === "End" || move) {
              e.preventDefault();
              const j = e.key === "Home" ? 0 : e.key === "End" ? TABS.length - 1 : (i + move + TABS.length) % TABS.length;
              onTab(TABS[j].id);
              refs.current[j]?.focus();
            }
          }}>
          {t.label}{t.id === "json" && dirtyJson ? " •" : ""}
        </button>
      ))}
    </div>
  );
}

function JsonTab({ draft, readOnly, onApply }: { draft: Draft; readOnly: boolean; onApply: (d: Draft) => void }) {
  const text = useMemo(() => JSON.stringify(payloadOf(draft), null, 2), [draft]);
  const [value, setValue] = useState(text);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => { setValue(text); setError(null); }, [text]);
  const apply = () => {
    try {
      const parsed = JSON.parse(value);
      if (!parsed || typeof parsed !== "object" || !Array.isArray(parsed.steps)) throw new Error("the definition needs a `steps` array");
      onApply({
        ...draft,
        name: typeof parsed.name === "string" ? parsed.name : draft.name,
        description: typeof parsed.description === "string" ? parsed.description : "",
        steps: parsed.steps.map((s: Step) => ({ ...s, uid: uid() })),
      });
      setError(null);
      toast("JSON applied to the form");
    } catch (e) {
      setError((e as Error).message);
    }
  };
  return (
    <div>
      <p class="muted small">The whole definition as the API stores it. {readOnly ? "" : "Apply it to update the form and the diagram (Ctrl+Enter); Save stores it."}</p>
      <label for="definition-json" class="visually-hidden">Workflow definition (JSON)</label>
      <textarea id="definition-json" class="code json-editor" spellcheck={false} rows={28} value={value} readOnly={readOnly}
        aria-invalid={!!error} aria-describedby={error ? "definition-json-error" : undefined}
        onInput={(e) => setValue((e.target as HTMLTextAreaElement).value)}
        onKeyDown={(e) => { if ((e.ctrlKey || e.metaKey) && e.key === "Enter") { e.preventDefault(); apply(); } }} />
      {error ? <p class="field-error" id="definition-json-error" role="alert">Not applied: {error}</p> : null}
      {readOnly ? null : (
        <div class="row">
          <button type="button" class="primary" data-write onClick={apply} disabled={value === text}>Apply JSON</button>
          <button type="button" onClick={() => { setValue(text); setError(null); }} disabled={value === text}>Reset</button>
        </div>
      )}
    </div>
  );
}

function VersionsTab({ workflow, readOnly, onLoad }: { workflow: Workflow; readOnly: boolean; onLoad: (v: Version) => void }) {
  const versions = useAsync(() => listAll<Version>(`/v1/workflows/${workflow.id}/versions`).then((r) => r.items), [workflow.id, workflow.version]);
  const [from, setFrom] = useState<number | null>(null);
  const [to, setTo] = useState<number | null>(null);
  const list = versions.data ?? [];
  const newest = list[0]?.version ?? workflow.version;
  const a = list.find((v) => v.version === (from ?? Math.max(1, newest - 1)));
  const b = list.find((v) => v.version === (to ?? newest));
  const diff = useMemo(() => (a && b ? diffLines(canonical(a.definition), canonical(b.definition)) : []), [a, b]);
  const diagram = useAsync(() => (b ? api.text(`/v1/workflows/${workflow.id}/diagram`, { version: b.version }) : Promise.resolve("")), [workflow.id, b?.version]);
  if (versions.loading) return <Loading what="Loading versions" />;
  if (versions.error) return <ErrorNotice error={versions.error} />;
  const added = diff.filter((d) => d.kind === "added").length;
  const removed = diff.filter((d) => d.kind === "removed").length;
  const pick = (label: string, id: string, value: number | undefined, set: (n: number) => void) => (
    <div class="field inline">
      <label for={id}>{label}</label>
      <select id={id} value={String(value ?? "")} onChange={(e) => set(Number((e.target as HTMLSelectElement).value))}>
        {list.map((v) => <option key={v.version} value={String(v.version)}>version {v.version} — {when(v.created_at)}</option>)}
      </select>
    </div>
  );
  return (
    <div class="versions">
      <table class="table compact">
        <caption class="visually-hidden">Versions of this workflow</caption>
        <thead><tr><th scope="col">Version</th><th scope="col">Saved</th><th scope="col">Entry step</th><th scope="col">Steps</th>{readOnly ? null : <th scope="col"><span class="visually-hidden">Actions</span></th>}</tr></thead>
        <tbody>
          {list.map((v) => (
            <tr key={v.version} data-version={v.version}>
              <th scope="row">v{v.version}{v.version === workflow.version ? <Badge tone="accent">current</Badge> : null}</th>
              <td>{when(v.created_at)}</td>
              <td><code>{v.entry_step}</code></td>
              <td>{Array.isArray(v.definition.steps) ? v.definition.steps.length : "?"}</td>
              {readOnly ? null : (
                <td><button type="button" class="small ghost" data-write disabled={v.version === workflow.version} onClick={() => onLoad(v)}>Load into editor</button></td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
      {list.length > 1 ? (
        <section aria-labelledby="diff-title">
          <h3 id="diff-title">Compare two versions</h3>
          <div class="row">
            {pick("From", "diff-from", a?.version, setFrom)}
            {pick("To", "diff-to", b?.version, setTo)}
            <span class="muted small" data-testid="diff-stats"><span class="added">+{added}</span> <span class="removed">−{removed}</span> lines</span>
          </div>
          <pre class="diff" aria-label={`Differences from version ${a?.version} to version ${b?.version}`}>
            {(added + removed ? folded(diff) : []).map((d, i) => (d.kind === "fold"
              ? <div key={i} class="diff-fold">⋯ {d.count} unchanged line{d.count === 1 ? "" : "s"}</div>
              : <div key={i} class={`diff-${d.kind}`}><span aria-hidden="true">{d.kind === "added" ? "+ " : d.kind === "removed" ? "− " : "  "}</span>
                {d.kind === "added" ? <span class="visually-hidden">added: </span> : d.kind === "removed" ? <span class="visually-hidden">removed: </span> : null}{d.text}</div>
            ))}
            {added + removed ? null : <div class="diff-fold">These two versions are the same.</div>}
          </pre>
        </section>
      ) : <p class="muted">Only one version so far: every save makes a new one.</p>}
      {b && diagram.data ? (
        <section aria-labelledby="version-diagram-title">
          <h3 id="version-diagram-title">Version {b.version} as the control plane draws it</h3>
          <MermaidDiagram text={diagram.data} label={`Diagram of version ${b.version}`} />
        </section>
      ) : null}
    </div>
  );
}

/** The entry step's form (a Manual step's `config.form`), if it has one. */
function formOf(workflow: Workflow): JsonSchema | null {
  const entry = workflow.steps.find((s) => s.key === workflow.entry_step);
  const form = entry?.function === "Manual" ? entry.config?.form : null;
  return form && typeof form === "object" ? (form as JsonSchema) : null;
}

/** The 422's details by field (`payload.email`), for the form's fields. */
function payloadErrors(error: unknown): Map<string, string[]> {
  const found = new Map<string, string[]>();
  if (error instanceof ApiError) {
    for (const d of error.problems) {
      if (d.field) found.set(d.field, [...(found.get(d.field) ?? []), d.message]);
    }
  }
  return found;
}

function RunPanel({ workflow, dirty, onClose }: { workflow: Workflow; dirty: boolean; onClose: () => void }) {
  const form = formOf(workflow);
  const [payload, setPayload] = useState<unknown>({});
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const errors = payloadErrors(error);
  return (
    <section class="card run-panel" aria-labelledby="run-title" onKeyDown={(e) => { if (e.key === "Escape") onClose(); }}>
      <h2 id="run-title">Start a job</h2>
      <p class="muted small">Runs version {workflow.version} from its entry step <code>{workflow.entry_step}</code>{dirty ? " — your unsaved changes are not part of it" : ""}.</p>
      {form ? (
        <div class="run-form" data-testid="run-form">
          <ConfigForm schema={form} path="payload" empty="The form asks for nothing."
            value={(payload && typeof payload === "object" ? payload : {}) as Record<string, unknown>}
            onChange={setPayload}
            ctx={{ root: form, idPrefix: "run", errors, readOnly: false, stepKeys: [], keyFields: new Set() }} />
        </div>
      ) : (
        <div class="field">
          <label for="run-payload">Payload (JSON)</label>
          <JsonInput id="run-payload" value={payload} onChange={setPayload} readOnly={false} rows={6} allowEmpty={false} />
        </div>
      )}
      <ErrorNotice error={error} />
      <div class="row">
        <button type="button" class="primary" data-write disabled={busy || workflow.paused} onClick={async () => {
          setBusy(true);
          try {
            const job = await api.post<Job>(`/v1/workflows/${workflow.id}/jobs`, { payload });
            toast("Job started");
            navigate(`/jobs/${job.id}`);
          } catch (e) { setError(e); } finally { setBusy(false); }
        }}>Start job</button>
        <button type="button" onClick={onClose}>Close</button>
        {workflow.paused ? <span class="muted small">Paused: resume it to start jobs.</span> : null}
      </div>
    </section>
  );
}

export function WorkflowEditor({ id, route }: { id: string | null; route: Route }) {
  const me = useIdentity();
  const readOnly = !me.canWrite;
  const functions = useAsync(catalog, []);
  const projects = useAsync(() => listAll<Project>("/v1/projects").then((r) => r.items), []);
  const loaded = useAsync(() => (id ? api.get<Workflow>(`/v1/workflows/${id}`) : Promise.resolve(null)), [id]);
  const [saved, setSaved] = useState<Workflow | null>(null);
  const [draft, setDraft] = useState<Draft | null>(null);
  const [problems, setProblems] = useState<Problems>({ general: [], byStep: new Map() });
  const [saveError, setSaveError] = useState<unknown>(null);
  const [tab, setTab] = useState<Tab>((route.query.get("tab") as Tab) || "steps");
  const [running, setRunning] = useState(route.query.get("run") === "1");
  const [busy, setBusy] = useState(false);
  const summary = useRef<HTMLDivElement>(null);
  const focusAfter = useRef<string | null>(null);

  useEffect(() => {
    if (loaded.data) { setSaved(loaded.data); setDraft(toDraft(loaded.data)); }
    else if (!id && projects.data && !draft) {
      setDraft(newDraft(route.query.get("project") ?? projects.data[0]?.id ?? ""));
    }
  }, [loaded.data, projects.data]);

  useLayoutEffect(() => {
    if (focusAfter.current) {
      document.getElementById(focusAfter.current)?.focus();
      focusAfter.current = null;
    }
  });

  const dirty = useMemo(() => {
    if (!draft) return false;
    if (!saved) return true;
    return JSON.stringify(payloadOf(draft)) !== JSON.stringify(payloadOf(toDraft(saved)));
  }, [draft, saved]);

  useEffect(() => {
    const warn = (e: BeforeUnloadEvent) => { if (dirty && !readOnly) e.preventDefault(); };
    addEventListener("beforeunload", warn);
    return () => removeEventListener("beforeunload", warn);
  }, [dirty, readOnly]);

  const diagramText = useMemo(() => (draft ? flowchart(draft.steps.map(stepOut)) : ""), [draft]);

  const save = async () => {
    if (!draft || readOnly || busy) return;
    setBusy(true);
    setSaveError(null);
    try {
      const body = payloadOf(draft);
      const result = saved
        ? await api.put<Workflow>(`/v1/workflows/${saved.id}`, body)
        : await api.post<Workflow>("/v1/workflows", { project_id: draft.project_id, ...body });
      setProblems({ general: [], byStep: new Map() });
      void allWorkflows(true);
      toast(`Saved: version ${result.version}`);
      if (!saved) { navigate(`/workflows/${result.id}`, {}, true); return; }
      setSaved(result);
      setDraft(toDraft(result));
    } catch (e) {
      if (e instanceof ApiError && e.status === 422) {
        const details = e.problems.length ? e.problems : [{ step: null, field: "", message: e.message }];
        setProblems(groupProblems(details.map((d) => ({ ...d, field: (d.field ?? "").replace(/^body\./, "") }))));
        setTab("steps");
        requestAnimationFrame(() => summary.current?.focus());
      } else {
        setSaveError(e);
      }
    } finally {
      setBusy(false);
    }
  };

  // Ctrl+S: the listener is added once and calls the save of the latest render (an
  // effect re-added on each render could run late and save a stale draft)
  const latestSave = useRef(save);
  latestSave.current = save;
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "s") { e.preventDefault(); void latestSave.current(); }
    };
    addEventListener("keydown", onKey);
    return () => removeEventListener("keydown", onKey);
  }, []);

  if (loaded.error) return <div class="page"><PageHeader title="Workflow" /><ErrorNotice error={loaded.error} /></div>;
  if (!draft || functions.loading) return <div class="page"><PageHeader title={id ? "Workflow" : "New workflow"} /><Loading /></div>;
  const fns = functions.data ?? [];

  const setSteps = (steps: DraftStep[]) => setDraft({ ...draft, steps });
  const referenced = new Set(draft.steps.flatMap((s) => targetsOf(s)));
  const counted = draft.steps.reduce((n, s, i) => n + stepProblems(problems, s, i).size, 0);
  const totalProblems = problems.general.length + [...problems.byStep.values()].reduce((n, m) => n + [...m.values()].flat().length, 0);

  const addStep = () => {
    const keys = new Set(draft.steps.map((s) => s.key));
    let n = draft.steps.length + 1;
    while (keys.has(`step_${n}`)) n++;
    const key = `step_${n}`;
    const steps = [...draft.steps];
    const last = steps[steps.length - 1];
    if (last && !last.next && last.output !== null && last.function !== "Condition") steps[steps.length - 1] = { ...last, next: key };
    const step: DraftStep = { uid: uid(), key, function: "", config: {}, output: "single", next: null };
    focusAfter.current = fieldId(`s-${step.uid}`, "key");
    setSteps([...steps, step]);
  };

  const pause = async (paused: boolean) => {
    if (!saved) return;
    try {
      const result = await api.post<Workflow>(`/v1/workflows/${saved.id}/${paused ? "pause" : "resume"}`);
      setSaved({ ...saved, paused: result.paused });
      toast(paused ? "Paused: its triggers start no job" : "Resumed");
    } catch (e) { toast(errorText(e), "error"); }
  };

  const title = saved ? saved.name : "New workflow";
  return (
    <div class="page editor">
      <PageHeader
        title={<>{title} {saved ? <span class="muted version">v{saved.version}</span> : null}</>}
        subtitle={saved ? <>
          {saved.paused ? <Badge tone="warn">paused</Badge> : <Badge tone="ok">active</Badge>}{" "}
          <TriggerBadge health={saved.trigger_health} />{" "}
          {saved.blocked ? <Badge tone="danger" title={saved.blocked_reason ?? ""}>blocked by an operator</Badge> : null}{" "}
          {dirty && !readOnly ? <Badge tone="warn">unsaved changes</Badge> : null}{" "}
          <a href={href("/jobs", { workflow: saved.id })}>Jobs of this workflow</a>
        </> : "Steps, their functions and where each sends its result."}>
        {readOnly ? <Badge tone="neutral">read only</Badge> : (
          <>
            {saved ? (saved.paused
              ? <button type="button" data-write onClick={() => pause(false)}>Resume</button>
              : <button type="button" data-write onClick={() => pause(true)}>Pause</button>) : null}
            {saved ? <button type="button" data-write onClick={() => setRunning(!running)} aria-expanded={running}>Start job…</button> : null}
            {dirty && saved ? <button type="button" class="ghost" onClick={() => { setDraft(toDraft(saved)); setProblems({ general: [], byStep: new Map() }); }}>Discard changes</button> : null}
            <button type="button" class="primary" data-write onClick={save} disabled={busy || (!dirty && !!saved)} title="Ctrl+S">
              {busy ? "Saving…" : saved ? "Save new version" : "Create workflow"}
            </button>
          </>
        )}
      </PageHeader>

      {running && saved && !readOnly ? <RunPanel workflow={saved} dirty={dirty} onClose={() => setRunning(false)} /> : null}
      <ErrorNotice error={saveError} title="Not saved" />
      {totalProblems ? (
        <div class="notice error problems" role="alert" tabIndex={-1} ref={summary} data-testid="problems">
          <strong>Not saved: {totalProblems} problem{totalProblems === 1 ? "" : "s"} to fix.</strong>
          <ul>
            {problems.general.map((p) => <li key={p.message}>{p.field ? <code>{p.field}</code> : null} {p.message}</li>)}
            {[...problems.byStep.entries()].map(([stepKey, fields]) => {
              const index = draft.steps.findIndex((s, i) => s.key === stepKey || `steps[${i}]` === stepKey);
              const target = draft.steps[index];
              return [...fields.entries()].map(([field, messages]) => messages.map((m) => (
                <li key={stepKey + field + m}>
                  {target ? <a href={`#${fieldId(`s-${target.uid}`, field)}`} onClick={(e) => { e.preventDefault(); focusField(target.uid, field); }}>
                    step <code>{stepKey}</code> › <code>{field}</code></a> : <>step <code>{stepKey}</code> › <code>{field}</code></>}: {m}
                </li>
              )));
            })}
          </ul>
          {counted === 0 && problems.general.length === 0 ? <p class="small">The steps these problems name are not in the form any more.</p> : null}
        </div>
      ) : null}

      <section class="card definition-head" aria-label="Workflow">
        <div class="fields grid-fields">
          {!saved ? (
            <div class="field">
              <label for="wf-project">Project</label>
              <select id="wf-project" value={draft.project_id} required onChange={(e) => setDraft({ ...draft, project_id: (e.target as HTMLSelectElement).value })}>
                {(projects.data ?? []).map((p) => <option key={p.id} value={p.id}>{p.name}</option>)}
              </select>
              {projects.data?.length === 0 ? <p class="field-error">Create a project first, on the <a href="#/projects">Projects</a> screen.</p> : null}
            </div>
          ) : null}
          <div class={`field${problems.general.some((p) => p.field === "name") ? " has-error" : ""}`} data-field="name">
            <label for="wf-name">Name</label>
            <input id="wf-name" value={draft.name} readOnly={readOnly} required maxLength={200}
              onInput={(e) => setDraft({ ...draft, name: (e.target as HTMLInputElement).value })} />
          </div>
          <div class="field wide">
            <label for="wf-description">Description</label>
            <input id="wf-description" value={draft.description} readOnly={readOnly} maxLength={2000}
              onInput={(e) => setDraft({ ...draft, description: (e.target as HTMLInputElement).value })} />
          </div>
        </div>
      </section>

      <div class="editor-grid">
        <div class="editor-main">
          <Tabs tab={tab} onTab={setTab} dirtyJson={false} />
          <div role="tabpanel" id={`panel-${tab}`} aria-labelledby={`tab-${tab}`} class="tab-panel">
            {tab === "steps" ? (
              <div class="steps">
                {draft.steps.map((s, i) => (
                  <StepCard key={s.uid} step={s} index={i} count={draft.steps.length} steps={draft.steps} functions={fns}
                    problems={stepProblems(problems, s, i)} readOnly={readOnly} entry={!referenced.has(s.key)}
                    health={saved && s.key === saved.entry_step ? saved.trigger_health : null}
                    onChange={(changed) => {
                      let steps = draft.steps.map((old) => (old.uid === s.uid ? changed : old));
                      if (changed.key !== s.key) steps = renameKey(steps, s.key, changed.key).map((x) => (x.uid === s.uid ? { ...x, key: changed.key } : x));
                      setSteps(steps);
                    }}
                    onMove={(delta) => {
                      const j = i + delta;
                      if (j < 0 || j >= draft.steps.length) return;
                      const steps = [...draft.steps];
                      [steps[i], steps[j]] = [steps[j], steps[i]];
                      setSteps(steps);
                    }}
                    onRemove={() => setSteps(draft.steps.filter((x) => x.uid !== s.uid))} />
                ))}
                {readOnly ? null : <button type="button" class="add-step" data-write onClick={addStep}>+ Add step</button>}
                {readOnly ? null : <p class="muted small keys">Keyboard: Tab moves through every field; Alt+↑/↓ moves the focused step; Ctrl+S saves.</p>}
              </div>
            ) : null}
            {tab === "json" ? (
              <JsonTab draft={draft} readOnly={readOnly} onApply={(d) => setDraft(d)} />
            ) : null}
            {tab === "versions" ? (saved ? (
              <VersionsTab workflow={saved} readOnly={readOnly} onLoad={(v) => {
                const def = v.definition as Record<string, any>;
                setDraft({ ...draft, name: def.name ?? draft.name, description: def.description ?? "",
                  steps: (Array.isArray(def.steps) ? def.steps : []).map((s: Step) => ({ ...stepOut(s), uid: uid() })) });
                setTab("steps");
                toast(`Version ${v.version} loaded: save to make it the current one`);
              }} />
            ) : <p class="muted">Versions appear once the workflow is created.</p>) : null}
          </div>
        </div>
        <aside class="editor-side card" aria-labelledby="diagram-title">
          <h2 id="diagram-title">Diagram</h2>
          <p class="muted small">Drawn live from the form{dirty && saved ? " (unsaved)" : ""}. Thick arrows send one message per item.</p>
          <MermaidDiagram text={diagramText} label={`Diagram of ${draft.name || "the workflow"}`} />
        </aside>
      </div>
    </div>
  );
}
