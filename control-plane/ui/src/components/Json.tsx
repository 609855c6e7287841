import type { ComponentChildren } from "preact";

const MAX_STRING = 2000;

function Scalar({ value }: { value: unknown }) {
  if (value === null) return <span class="j-null">null</span>;
  if (typeof value === "string") {
    const text = value.length > MAX_STRING ? `${value.slice(0, MAX_STRING)}… (${value.length} characters)` : value;
    return <span class="j-string">{JSON.stringify(text)}</span>;
  }
  if (typeof value === "number") return <span class="j-number">{String(value)}</span>;
  if (typeof value === "boolean") return <span class="j-bool">{String(value)}</span>;
  return <span class="j-null">{String(value)}</span>;
}

function Node({ name, value, depth, last }: { name?: string; value: unknown; depth: number; last: boolean }) {
  const label = name !== undefined ? <span class="j-key">{JSON.stringify(name)}: </span> : null;
  const comma = last ? "" : ",";
  if (value && typeof value === "object") {
    const isArray = Array.isArray(value);
    const entries = isArray ? (value as unknown[]).map((v, i) => [String(i), v] as const) : Object.entries(value as object);
    const [open, close] = isArray ? ["[", "]"] : ["{", "}"];
    if (entries.length === 0) return <div class="j-line">{label}{open}{close}{comma}</div>;
    const summary = isArray ? `${entries.length} item${entries.length === 1 ? "" : "s"}` : `${entries.length} key${entries.length === 1 ? "" : "s"}`;
    return (
      <details class="j-node" open={depth < 2}>
        <summary>{label}{open}<span class="j-summary"> {summary} {close}{comma}</span></summary>
        <div class="j-children">
          {entries.map(([k, v], i) => (
            <Node key={k} name={isArray ? undefined : k} value={v} depth={depth + 1} last={i === entries.length - 1} />
          ))}
        </div>
        <div class="j-line">{close}{comma}</div>
      </details>
    );
  }
  return <div class="j-line">{label}<Scalar value={value} />{comma}</div>;
}

/** JSON pretty-printed, each object and array collapsible (natively, with <details>). */
export function JsonTree({ value }: { value: unknown }) {
  if (value === undefined) return <div class="j-tree muted">(nothing)</div>;
  return <div class="j-tree"><Node value={value} depth={0} last /></div>;
}

export function JsonSection({ title, value, open = false, tone, children }: {
  title: string; value: unknown; open?: boolean; tone?: "error"; children?: ComponentChildren;
}) {
  const empty = value === null || value === undefined || (Array.isArray(value) && value.length === 0);
  return (
    <details class={`json-section${tone ? ` tone-${tone}` : ""}`} open={open && !empty} data-section={title.toLowerCase()}>
      <summary>
        {title}
        {empty ? <span class="muted"> — none</span> : null}
      </summary>
      {empty ? null : (
        <div class="json-body">
          <button type="button" class="link small copy" onClick={() => navigator.clipboard?.writeText(JSON.stringify(value, null, 2))}>
            Copy {title.toLowerCase()}
          </button>
          <JsonTree value={value} />
        </div>
      )}
      {children}
    </details>
  );
}
