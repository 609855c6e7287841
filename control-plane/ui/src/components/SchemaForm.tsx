// A form generated from a function's config JSON Schema. Every control has a label, its
// field path (`config.branches[0].when`, as the API's 422 details name it) in
// `data-field`, and the API's messages for that path shown under it.

import type { ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";
import type { JsonSchema } from "../api";
import { matchesVariant, orderedProperties, resolve, unwrapNullable, variants } from "../lib/schema";

export interface FormContext {
  root: JsonSchema;
  idPrefix: string;
  errors: Map<string, string[]>;
  readOnly: boolean;
  /** keys of the workflow's other steps, offered where a field names a step */
  stepKeys: string[];
  /** property names whose value is a step key (Condition: next, default) */
  keyFields: Set<string>;
}

const MULTILINE = new Set(["sql", "expression", "when"]);

export function fieldId(prefix: string, path: string): string {
  return `${prefix}-${path.replace(/[^A-Za-z0-9_-]+/g, "-")}`;
}

function titleOf(name: string, schema: JsonSchema): string {
  const fromName = name.replace(/_/g, " ");
  return fromName.charAt(0).toUpperCase() + fromName.slice(1) || schema.title || name;
}

export function FieldShell({ id, path, label, required, hint, errors, children, wide }: {
  id: string; path: string; label: string; required?: boolean; hint?: string; errors: string[];
  children: ComponentChildren; wide?: boolean;
}) {
  return (
    <div class={`field${errors.length ? " has-error" : ""}${wide ? " wide" : ""}`} data-field={path}>
      <label for={id}>
        {label}
        {required ? <span class="req" aria-hidden="true"> *</span> : null}
      </label>
      {children}
      {hint ? <p class="hint" id={`${id}-hint`}>{hint}</p> : null}
      {errors.length ? (
        <div class="field-error" id={`${id}-error`}>
          {errors.map((m) => <p key={m}>{m}</p>)}
        </div>
      ) : null}
    </div>
  );
}

export function describedBy(id: string, hint: unknown, errors: string[]): string | undefined {
  const ids = [hint ? `${id}-hint` : "", errors.length ? `${id}-error` : ""].filter(Boolean);
  return ids.length ? ids.join(" ") : undefined;
}

/** A JSON value edited as text; the value changes only when the text parses. */
export function JsonInput({ id, value, onChange, readOnly, describedby, invalid, rows = 4, allowEmpty = true, label }: {
  id: string; value: unknown; onChange: (v: unknown) => void; readOnly: boolean; describedby?: string;
  invalid?: boolean; rows?: number; allowEmpty?: boolean; label?: string;
}) {
  const show = (v: unknown) => (v === undefined ? "" : JSON.stringify(v, null, 2));
  const [text, setText] = useState(show(value));
  const [problem, setProblem] = useState<string | null>(null);
  useEffect(() => {
    // follow changes made elsewhere (the JSON tab, a reset) unless they are ours
    try {
      const current = text.trim() === "" ? undefined : JSON.parse(text);
      if (JSON.stringify(current) !== JSON.stringify(value)) setText(show(value));
    } catch {
      /* the user is typing: keep the text */
    }
  }, [value]);
  return (
    <>
      <textarea
        id={id}
        class="code"
        rows={rows}
        spellcheck={false}
        value={text}
        readOnly={readOnly}
        aria-label={label}
        aria-invalid={invalid || !!problem}
        aria-describedby={[describedby, problem ? `${id}-json` : ""].filter(Boolean).join(" ") || undefined}
        onInput={(e) => {
          const next = (e.target as HTMLTextAreaElement).value;
          setText(next);
          if (next.trim() === "" && allowEmpty) { setProblem(null); onChange(undefined); return; }
          try { onChange(JSON.parse(next)); setProblem(null); } catch (err) { setProblem((err as Error).message); }
        }}
      />
      {problem ? <p class="field-error" id={`${id}-json`}>Not valid JSON yet: {problem}</p> : null}
    </>
  );
}

function KeyValue({ id, value, onChange, readOnly, label }: {
  id: string; value: Record<string, string> | undefined; onChange: (v: Record<string, string> | undefined) => void;
  readOnly: boolean; label: string;
}) {
  const entries = Object.entries(value ?? {});
  const set = (list: [string, string][]) => onChange(list.length ? Object.fromEntries(list) : undefined);
  return (
    <div class="kv" id={id} role="group" aria-label={label}>
      {entries.map(([k, v], i) => (
        <div class="kv-row" key={i}>
          <input aria-label={`${label}: name ${i + 1}`} value={k} readOnly={readOnly}
            onInput={(e) => set(entries.map((p, j) => (j === i ? [(e.target as HTMLInputElement).value, p[1]] : p)))} />
          <input aria-label={`${label}: value ${i + 1}`} value={v} readOnly={readOnly}
            onInput={(e) => set(entries.map((p, j) => (j === i ? [p[0], (e.target as HTMLInputElement).value] : p)))} />
          {readOnly ? null : (
            <button type="button" class="icon" data-write aria-label={`Remove ${label} ${k || i + 1}`}
              onClick={() => set(entries.filter((_, j) => j !== i))}>×</button>
          )}
        </div>
      ))}
      {readOnly ? (entries.length ? null : <p class="muted small">none</p>) : (
        <button type="button" class="small" data-write onClick={() => set([...entries, ["", ""]])}>Add {label.toLowerCase()}</button>
      )}
    </div>
  );
}

interface FieldProps {
  name: string;
  path: string;
  schema: JsonSchema;
  value: unknown;
  required: boolean;
  onChange: (v: unknown) => void;
  ctx: FormContext;
}

function Field({ name, path, schema: raw, value, required, onChange, ctx }: FieldProps) {
  const { schema, nullable } = unwrapNullable(raw, ctx.root);
  const id = fieldId(ctx.idPrefix, path);
  const errors = ctx.errors.get(path) ?? [];
  const hint = [schema.description, schema.default !== undefined && schema.default !== null && typeof schema.default !== "object"
    ? `Default: ${JSON.stringify(schema.default)}` : ""].filter(Boolean).join(" · ");
  const label = titleOf(name, schema);
  const common = {
    id,
    "aria-invalid": errors.length > 0,
    "aria-describedby": describedBy(id, hint, errors),
    "aria-required": required,
  };
  const shell = (control: ComponentChildren, wide = false) => (
    <FieldShell id={id} path={path} label={label} required={required} hint={hint || undefined} errors={errors} wide={wide}>
      {control}
    </FieldShell>
  );
  const options = variants(schema, ctx.root);
  const placeholder = Array.isArray(schema.examples) ? String(schema.examples[0])
    : schema.default !== undefined && schema.default !== null ? String(schema.default) : "";

  // a step key (Condition's branch targets and default)
  if (ctx.keyFields.has(name) && (schema.type === "string" || options?.every((o) => o.type === "string"))) {
    return shell(
      <select {...common} value={typeof value === "string" ? value : ""} disabled={ctx.readOnly}
        onChange={(e) => onChange((e.target as HTMLSelectElement).value || (nullable ? null : undefined))}>
        <option value="">{nullable ? "— none —" : "— choose a step —"}</option>
        {[...new Set([...ctx.stepKeys, ...(typeof value === "string" && value ? [value] : [])])].map((k) => <option key={k} value={k}>{k}</option>)}
      </select>,
    );
  }
  if (schema.const !== undefined) {
    return shell(<input {...common} value={String(schema.const)} readOnly />);
  }
  if (Array.isArray(schema.enum)) {
    return shell(
      <select {...common} value={value === undefined || value === null ? "" : String(value)} disabled={ctx.readOnly}
        onChange={(e) => {
          const picked = (e.target as HTMLSelectElement).value;
          onChange(picked === "" ? undefined : schema.enum.find((v: unknown) => String(v) === picked));
        }}>
        {!required || value === undefined ? (
          <option value="">{schema.default !== undefined ? `default (${String(schema.default)})` : "— choose —"}</option>
        ) : null}
        {schema.enum.map((v: unknown) => <option key={String(v)} value={String(v)}>{String(v)}</option>)}
      </select>,
    );
  }
  if (options && options.length > 1) {
    const objects = options.filter((o) => o.type === "object" && o.properties);
    if (objects.length === options.length) return <Union {...{ name, path, value, onChange, ctx, required, nullable, options, label, id, errors, hint }} />;
    if (options.every((o) => ["string", "integer", "number"].includes(o.type))) {
      // int | str: a number when it looks like one
      return shell(
        <input {...common} value={value === undefined || value === null ? "" : String(value)} readOnly={ctx.readOnly} placeholder={placeholder}
          onInput={(e) => {
            const text = (e.target as HTMLInputElement).value;
            onChange(text === "" ? undefined : /^-?\d+$/.test(text) && options.some((o) => o.type === "integer") ? Number(text) : text);
          }} />,
      );
    }
  }
  switch (schema.type) {
    case "string":
      if (MULTILINE.has(name)) {
        return shell(
          <textarea {...common} class="code" rows={name === "sql" ? 4 : 2} spellcheck={false} value={typeof value === "string" ? value : ""}
            readOnly={ctx.readOnly} placeholder={placeholder}
            onInput={(e) => onChange((e.target as HTMLTextAreaElement).value || (required ? "" : undefined))} />, true,
        );
      }
      return shell(
        <input {...common} type="text" value={typeof value === "string" ? value : value == null ? "" : String(value)} readOnly={ctx.readOnly}
          placeholder={placeholder} spellcheck={false}
          onInput={(e) => onChange((e.target as HTMLInputElement).value || (required ? "" : undefined))} />,
      );
    case "integer":
    case "number":
      return shell(
        <input {...common} type="number" step={schema.type === "integer" ? 1 : "any"} min={schema.minimum ?? schema.exclusiveMinimum}
          max={schema.maximum} value={typeof value === "number" ? value : ""} readOnly={ctx.readOnly} placeholder={placeholder}
          onInput={(e) => {
            const text = (e.target as HTMLInputElement).value;
            onChange(text === "" ? undefined : Number(text));
          }} />,
      );
    case "boolean":
      return (
        <div class={`field checkbox${errors.length ? " has-error" : ""}`} data-field={path}>
          <input {...common} type="checkbox" checked={value === true} disabled={ctx.readOnly}
            onChange={(e) => onChange((e.target as HTMLInputElement).checked)} />
          <label for={id}>{label}</label>
          {hint ? <p class="hint" id={`${id}-hint`}>{hint}</p> : null}
          {errors.map((m) => <p class="field-error" key={m}>{m}</p>)}
        </div>
      );
    case "array": {
      const items = resolve(schema.items, ctx.root);
      if (items.type === "object" && items.properties) {
        return <ObjectList {...{ path, value, onChange, ctx, label, items, errors, id }} />;
      }
      break;
    }
    case "object":
      if (schema.properties) {
        if (nullable && (value === null || value === undefined)) {
          return shell(
            ctx.readOnly ? <p class="muted small" id={id}>not set</p> :
              <button type="button" {...common} class="small" data-write onClick={() => onChange({})}>Set {label.toLowerCase()}</button>,
          );
        }
        return (
          <fieldset class="subform" data-field={path}>
            <legend>{label}</legend>
            {errors.map((m) => <p class="field-error" key={m}>{m}</p>)}
            <ObjectFields schema={schema} path={path} value={value} onChange={onChange} ctx={ctx} />
          </fieldset>
        );
      }
      if (schema.additionalProperties && resolve(schema.additionalProperties, ctx.root).type === "string") {
        return shell(
          <KeyValue id={id} label={label} value={value as Record<string, string> | undefined} readOnly={ctx.readOnly}
            onChange={onChange} />, true,
        );
      }
      break;
  }
  // anything else (free JSON: a payload, a body, a schema): edited as JSON text
  return shell(
    <JsonInput id={id} value={value} onChange={onChange} readOnly={ctx.readOnly} describedby={common["aria-describedby"]}
      invalid={errors.length > 0} />, true,
  );
}

function Union({ name, path, value, onChange, ctx, required, nullable, options, label, id, errors, hint }: {
  name: string; path: string; value: unknown; onChange: (v: unknown) => void; ctx: FormContext; required: boolean;
  nullable: boolean; options: JsonSchema[]; label: string; id: string; errors: string[]; hint: string;
}) {
  const set = value !== null && value !== undefined;
  const index = set ? options.findIndex((o) => matchesVariant(value, o, ctx.root)) : -1;
  const variantLabel = (o: JsonSchema, i: number) => o.description ? `${o.title ?? `option ${i + 1}`} — ${o.description}` : o.title ?? `option ${i + 1}`;
  // a variant's fixed fields (a discriminator such as `mode`) are set when it is picked
  const fixedValues = (o: JsonSchema) => Object.fromEntries(
    Object.entries<JsonSchema>(o.properties ?? {})
      .map(([k, p]) => [k, resolve(p, ctx.root).const] as const)
      .filter(([, v]) => v !== undefined),
  );
  return (
    <div class="union" data-field={path}>
      <FieldShell id={id} path={path} label={label} required={required} hint={hint || undefined} errors={errors}>
        <select id={id} value={String(index)} disabled={ctx.readOnly} aria-describedby={describedBy(id, hint, errors)}
          onChange={(e) => {
            const i = Number((e.target as HTMLSelectElement).value);
            onChange(i < 0 ? (nullable ? null : undefined) : fixedValues(options[i]));
          }}>
          {!required || nullable || index < 0 ? <option value="-1">— none —</option> : null}
          {options.map((o, i) => <option key={i} value={String(i)}>{variantLabel(o, i)}</option>)}
        </select>
      </FieldShell>
      {index >= 0 ? (
        <fieldset class="subform">
          <legend>{options[index].title ?? name}</legend>
          <ObjectFields schema={options[index]} path={path} value={value} onChange={onChange} ctx={ctx} />
        </fieldset>
      ) : null}
    </div>
  );
}

function ObjectList({ path, value, onChange, ctx, label, items, errors, id }: {
  path: string; value: unknown; onChange: (v: unknown) => void; ctx: FormContext; label: string; items: JsonSchema;
  errors: string[]; id: string;
}) {
  const list = Array.isArray(value) ? value : [];
  const itemLabel = (items.title ?? "item").replace(/^Condition/, "");
  return (
    <fieldset class="subform list" data-field={path} id={id}>
      <legend>{label}</legend>
      {errors.map((m) => <p class="field-error" key={m}>{m}</p>)}
      {list.map((item, i) => (
        <div class="list-item" key={i} data-field={`${path}[${i}]`}>
          <div class="list-item-head">
            <span class="muted small">{itemLabel} {i + 1}</span>
            {ctx.readOnly ? null : (
              <button type="button" class="link small danger" data-write aria-label={`Remove ${itemLabel.toLowerCase()} ${i + 1}`}
                onClick={() => onChange(list.filter((_, j) => j !== i))}>Remove</button>
            )}
          </div>
          {(ctx.errors.get(`${path}[${i}]`) ?? []).map((m) => <p class="field-error" key={m}>{m}</p>)}
          <ObjectFields schema={items} path={`${path}[${i}]`} value={item} ctx={ctx}
            onChange={(v) => onChange(list.map((old, j) => (j === i ? v : old)))} />
        </div>
      ))}
      {ctx.readOnly ? null : (
        <button type="button" class="small" data-write onClick={() => onChange([...list, {}])}>Add {itemLabel.toLowerCase()}</button>
      )}
    </fieldset>
  );
}

function ObjectFields({ schema, path, value, onChange, ctx }: {
  schema: JsonSchema; path: string; value: unknown; onChange: (v: unknown) => void; ctx: FormContext;
}) {
  const record = value && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
  const required = new Set<string>(schema.required ?? []);
  const known = new Set(Object.keys(schema.properties ?? {}));
  const unknown = Object.keys(record).filter((k) => !known.has(k));
  return (
    <div class="fields">
      {orderedProperties(schema).map((name) => (
        <Field key={name} name={name} path={`${path}.${name}`} schema={schema.properties[name]} value={record[name]}
          required={required.has(name)} ctx={ctx}
          onChange={(v) => {
            const next = { ...record };
            if (v === undefined) delete next[name];
            else next[name] = v;
            onChange(next);
          }} />
      ))}
      {unknown.length ? (
        <p class="notice warn small">Fields this function does not know: {unknown.map((k) => <code key={k}>{k}</code>)} (edit them in the JSON tab)</p>
      ) : null}
    </div>
  );
}

/** The config form of one step: every field of the function's schema. A Manual step's
 * payload form is the same engine over its `config.form`, rooted at `payload` (the
 * path the API's 422 details name). */
export function ConfigForm({ schema, value, onChange, ctx, path = "config", empty = "This function has no settings." }: {
  schema: JsonSchema; value: Record<string, unknown>; onChange: (v: Record<string, unknown>) => void; ctx: FormContext;
  path?: string; empty?: string;
}) {
  const root = resolve(schema, schema);
  if (!root.properties || Object.keys(root.properties).length === 0) {
    return <p class="muted small">{empty}</p>;
  }
  return <ObjectFields schema={root} path={path} value={value} onChange={(v) => onChange(v as Record<string, unknown>)} ctx={ctx} />;
}
