// A line diff (longest common subsequence), enough for two workflow versions.

export interface DiffLine {
  kind: "same" | "added" | "removed";
  text: string;
}

const MAX_CELLS = 4_000_000;

export function diffLines(before: string, after: string): DiffLine[] {
  const a = before.split("\n");
  const b = after.split("\n");
  // trim the common head and tail first: versions mostly differ in a few lines
  let head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) head++;
  let tail = 0;
  while (tail < a.length - head && tail < b.length - head && a[a.length - 1 - tail] === b[b.length - 1 - tail]) tail++;
  const x = a.slice(head, a.length - tail);
  const y = b.slice(head, b.length - tail);
  const middle: DiffLine[] = [];
  if (x.length * y.length > MAX_CELLS) {
    x.forEach((text) => middle.push({ kind: "removed", text }));
    y.forEach((text) => middle.push({ kind: "added", text }));
  } else {
    const n = x.length;
    const m = y.length;
    const lcs = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
    for (let i = n - 1; i >= 0; i--) {
      for (let j = m - 1; j >= 0; j--) {
        lcs[i][j] = x[i] === y[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
      }
    }
    let i = 0;
    let j = 0;
    while (i < n && j < m) {
      if (x[i] === y[j]) { middle.push({ kind: "same", text: x[i] }); i++; j++; }
      else if (lcs[i + 1][j] >= lcs[i][j + 1]) middle.push({ kind: "removed", text: x[i++] });
      else middle.push({ kind: "added", text: y[j++] });
    }
    while (i < n) middle.push({ kind: "removed", text: x[i++] });
    while (j < m) middle.push({ kind: "added", text: y[j++] });
  }
  return [
    ...a.slice(0, head).map((text) => ({ kind: "same" as const, text })),
    ...middle,
    ...a.slice(a.length - tail).map((text) => ({ kind: "same" as const, text })),
  ];
}

/** JSON with object keys sorted, so two versions differ only where they really do. */
export function stableJson(value: unknown): string {
  return JSON.stringify(sortKeys(value), null, 2);
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.keys(value as object).sort().map((k) => [k, sortKeys((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}

export type Shown = DiffLine | { kind: "fold"; count: number };

/** Long runs of unchanged lines folded, `context` lines kept around each change. */
export function folded(lines: DiffLine[], context = 3): Shown[] {
  const out: Shown[] = [];
  let i = 0;
  while (i < lines.length) {
    if (lines[i].kind !== "same") { out.push(lines[i++]); continue; }
    let j = i;
    while (j < lines.length && lines[j].kind === "same") j++;
    const keepHead = i === 0 ? 0 : context;
    const keepTail = j === lines.length ? 0 : context;
    if (j - i > keepHead + keepTail + 1) {
      out.push(...lines.slice(i, i + keepHead), { kind: "fold", count: j - i - keepHead - keepTail }, ...lines.slice(j - keepTail, j));
    } else {
      out.push(...lines.slice(i, j));
    }
    i = j;
  }
  return out;
}
