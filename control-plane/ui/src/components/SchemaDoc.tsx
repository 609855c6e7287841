import type { JsonSchema } from "../api";
import { constraints, orderedProperties, resolve, typeName, unwrapNullable, variants } from "../lib/schema";

function nestedObjects(schema: JsonSchema, root: JsonSchema): JsonSchema[] {
  const { schema: s } = unwrapNullable(schema, root);
  if (s.type === "object" && s.properties) return [s];
  if (s.type === "array" && s.items) return nestedObjects(s.items, root);
  return (variants(s, root) ?? []).filter((v) => v.type === "object" && v.properties);
}

function Properties({ schema, root, path }: { schema: JsonSchema; root: JsonSchema; path: string }) {
  const names = orderedProperties(schema);
  const required = new Set<string>(schema.required ?? []);
  if (names.length === 0) {
    return path === "config" ? <p class="muted">No settings: <code>config</code> stays <code>{"{}"}</code>.</p>
      : <p class="muted">Any JSON: the schema names no field.</p>;
  }
  return (
    <table class="table schema-table">
      <thead>
        <tr><th scope="col">Field</th><th scope="col">Type</th><th scope="col">Description</th></tr>
      </thead>
      <tbody>
        {names.map((name) => {
          const prop = resolve(schema.properties[name], root);
          const field = path ? `${path}.${name}` : name;
          const nested = nestedObjects(prop, root);
          const limits = constraints(unwrapNullable(prop, root).schema);
          return (
            <tr key={name}>
              <th scope="row">
                <code>{field}</code>
                {required.has(name) ? <span class="req" title="required"> required</span> : null}
              </th>
              <td><code class="type">{typeName(prop, root)}</code></td>
              <td>
                {prop.description ? <p>{prop.description}</p> : null}
                {prop.default !== undefined && prop.default !== null ? (
                  <p class="muted">Default: <code>{JSON.stringify(prop.default)}</code></p>
                ) : null}
                {Array.isArray(prop.examples) ? (
                  <p class="muted">Example: {prop.examples.map((e: unknown) => <code key={String(e)}>{JSON.stringify(e)}</code>)}</p>
                ) : null}
                {limits.length ? <p class="muted">{limits.join(", ")}</p> : null}
                {nested.map((n, i) => (
                  <div class="schema-nested" key={i}>
                    {n.title ? <p class="schema-title">{n.title}{n.description ? ` — ${n.description}` : ""}</p> : null}
                    <Properties schema={n} root={root} path={`${field}${unwrapNullable(prop, root).schema.type === "array" ? "[]" : ""}`} />
                  </div>
                ))}
              </td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

/** A function's config schema (or a service's input schema, `path="input"`) as
 * documentation: every field, its type, default and meaning. */
export function SchemaDoc({ schema, path = "config" }: { schema: JsonSchema; path?: string }) {
  return (
    <div class="schema-doc">
      {schema.description ? <p>{schema.description}</p> : null}
      <Properties schema={resolve(schema, schema)} root={schema} path={path} />
      {schema.additionalProperties === false ? <p class="muted small">Other fields are refused.</p> : null}
    </div>
  );
}
