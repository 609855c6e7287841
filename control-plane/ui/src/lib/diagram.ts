// A definition drawn as a Mermaid flowchart, exactly as the control plane draws a saved
// version (stepline_control/diagram.py), so the editor can draw what is not saved yet.

import type { Step } from "../api";

const TRIGGERS = new Set(["Manual", "CronJob", "Webhook"]);
const ENTITIES: Record<string, string> = {
  '"': "#quot;", "<": "#lt;", ">": "#gt;", "&": "#amp;", "#": "#35;", "|": "#124;",
  "\n": " ", "\r": " ", "`": "#96;",
};
const MAX_LABEL = 80;

export function escapeLabel(text: string): string {
  const cut = text.length > MAX_LABEL ? `${text.slice(0, MAX_LABEL - 1)}…` : text;
  return Array.from(cut, (ch) => ENTITIES[ch] ?? ch).join("");
}

function node(id: string, step: Step): string {
  const label = `${escapeLabel(step.name || step.key || "(no key)")}<br/><small>${escapeLabel(step.function || "?")}</small>`;
  if (TRIGGERS.has(step.function)) return `    ${id}(["${label}"])`;
  if (step.function === "Condition") return `    ${id}{"${label}"}`;
  return `    ${id}["${label}"]`;
}

export function flowchart(steps: Step[]): string {
  const ids = new Map<string, string>();
  steps.forEach((s, i) => { if (!ids.has(s.key)) ids.set(s.key, `s${i}`); });
  const lines = ["flowchart TD"];
  steps.forEach((s, i) => lines.push(node(`s${i}`, s)));
  steps.forEach((step, i) => {
    const source = `s${i}`;
    const arrow = step.output === "multiple" ? "==>" : "-->";
    const config = (step.config ?? {}) as Record<string, any>;
    if (step.function === "Condition") {
      const branches = Array.isArray(config.branches) ? config.branches : [];
      for (const branch of branches) {
        if (branch && typeof branch === "object" && ids.has(branch.next)) {
          lines.push(`    ${source} ${arrow}|"${escapeLabel(String(branch.when ?? ""))}"| ${ids.get(branch.next)}`);
        }
      }
      if (typeof config.default === "string" && ids.has(config.default)) {
        lines.push(`    ${source} ${arrow}|"default"| ${ids.get(config.default)}`);
      }
    }
    const output = step.output === undefined ? "single" : step.output;
    if (step.next && ids.has(step.next) && output !== null) {
      const label = output === "multiple" ? '|"each item"|' : "";
      lines.push(`    ${source} ${arrow}${label} ${ids.get(step.next)}`);
    }
  });
  return `${lines.join("\n")}\n`;
}
