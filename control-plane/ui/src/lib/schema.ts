// Reading the catalog's config schemas (JSON Schema 2020-12 as pydantic writes it):
// local $refs, nullable unions, and a short type name for documentation.

import type { JsonSchema } from "../api";

export function resolve(schema: JsonSchema | undefined, root: JsonSchema): JsonSchema {
  let current = schema ?? {};
  for (let depth = 0; depth < 20 && typeof current.$ref === "string"; depth++) {
    const ref: string = current.$ref;
    if (!ref.startsWith("#/")) break;
    let target: any = root;
    for (const part of ref.slice(2).split("/")) target = target?.[part.replace(/~1/g, "/").replace(/~0/g, "~")];
    const { $ref: _ignored, ...rest } = current;
    current = { ...(target ?? {}), ...rest };
  }
  return current;
}

/** `anyOf: [X, {type: null}]` → X (and the fact that null is allowed). */
export function unwrapNullable(schema: JsonSchema, root: JsonSchema): { schema: JsonSchema; nullable: boolean } {
  const s = resolve(schema, root);
  const options: JsonSchema[] | undefined = s.anyOf ?? s.oneOf;
  if (Array.isArray(options)) {
    const rest = options.filter((o) => resolve(o, root).type !== "null");
    if (rest.length < options.length) {
      const { anyOf: _a, oneOf: _o, ...outer } = s;
      if (rest.length === 1) return { schema: { ...resolve(rest[0], root), ...outer }, nullable: true };
      return { schema: { ...outer, anyOf: rest }, nullable: true };
    }
  }
  return { schema: s, nullable: false };
}

export function variants(schema: JsonSchema, root: JsonSchema): JsonSchema[] | null {
  const options = schema.anyOf ?? schema.oneOf;
  return Array.isArray(options) ? options.map((o: JsonSchema) => resolve(o, root)) : null;
}

export function typeName(schema: JsonSchema | undefined, root: JsonSchema): string {
  if (!schema) return "any";
  const { schema: s, nullable } = unwrapNullable(schema, root);
  let name: string;
  if (s.const !== undefined) name = JSON.stringify(s.const);
  else if (Array.isArray(s.enum)) name = s.enum.map((v: unknown) => JSON.stringify(v)).join(" | ");
  else if (variants(s, root)) name = variants(s, root)!.map((v) => v.title ?? typeName(v, root)).join(" | ");
  else if (s.type === "array") name = `array of ${typeName(s.items, root)}`;
  else if (s.type === "object" && !s.properties && s.additionalProperties) {
    name = `map of ${typeName(s.additionalProperties === true ? undefined : s.additionalProperties, root)}`;
  } else if (s.type === "object" && s.title && s.properties) name = s.title;
  else if (typeof s.type === "string") name = s.type;
  else if (Array.isArray(s.type)) name = s.type.join(" | ");
  else name = "any JSON";
  return nullable ? `${name} | null` : name;
}

/** Property names in a helpful order: required ones first, then the rest. */
export function orderedProperties(schema: JsonSchema): string[] {
  const names = Object.keys(schema.properties ?? {});
  const required = new Set<string>(schema.required ?? []);
  return [...names.filter((n) => required.has(n)), ...names.filter((n) => !required.has(n))];
}

export function constraints(schema: JsonSchema): string[] {
  const out: string[] = [];
  const labels: Record<string, string> = {
    minimum: "≥", maximum: "≤", exclusiveMinimum: ">", exclusiveMaximum: "<",
    minLength: "min length", maxLength: "max length", minItems: "min items", maxItems: "max items",
    pattern: "pattern",
  };
  for (const [key, label] of Object.entries(labels)) {
    if (schema[key] !== undefined) out.push(`${label} ${schema[key]}`);
  }
  return out;
}

/** Is `value` plausibly of this variant (its `const` properties match)? */
export function matchesVariant(value: unknown, variant: JsonSchema, root: JsonSchema): boolean {
  if (!value || typeof value !== "object" || Array.isArray(value)) return variant.type !== "object";
  const record = value as Record<string, unknown>;
  for (const [name, prop] of Object.entries<JsonSchema>(variant.properties ?? {})) {
    const p = resolve(prop, root);
    const fixed = p.const ?? (Array.isArray(p.enum) && p.enum.length === 1 ? p.enum[0] : undefined);
    if (fixed !== undefined) {
      const actual = record[name] ?? p.default;
      if (actual !== fixed) return false;
    }
  }
  return (variant.required ?? []).every((r: string) => r in record);
}
