// Small caches shared by the screens: the workflows (for names in the jobs lists) and
// the functions catalog. Both are refreshed when something changes them.

import { listAll, type FunctionInfo, type WorkflowSummary } from "../api";

let workflows: Promise<Map<string, WorkflowSummary>> | null = null;
let functions: Promise<FunctionInfo[]> | null = null;

export function allWorkflows(refresh = false): Promise<Map<string, WorkflowSummary>> {
  if (refresh || !workflows) {
    workflows = listAll<WorkflowSummary>("/v1/workflows").then(({ items }) => new Map(items.map((w) => [w.id, w])));
    workflows.catch(() => { workflows = null; });
  }
  return workflows;
}

export function catalog(): Promise<FunctionInfo[]> {
  if (!functions) {
    functions = listAll<FunctionInfo>("/v1/functions").then(({ items }) => items);
    functions.catch(() => { functions = null; });
  }
  return functions;
}

/** After a service is published, changed or unpublished: the catalog has changed. */
export function forgetCatalog(): void {
  functions = null;
}

export function forget(): void {
  workflows = null;
  functions = null;
}
