// The REST API (v1) as the UI uses it: same origin, bearer token from the session.

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

export interface Detail {
  step?: string | null;
  field?: string;
  message: string;
}

export interface Account {
  id: string;
  name: string;
  is_operator: boolean;
  monthly_quota: number | null;
  blocked: boolean;
  blocked_at: string | null;
  blocked_reason: string | null;
  created_at: string;
}

export interface Me {
  account_id: string;
  account_name: string;
  role: "admin" | "editor" | "viewer";
  is_operator: boolean;
  token_id: string;
  token_name: string;
}

export interface Token {
  id: string;
  account_id: string;
  name: string;
  role: string;
  prefix: string;
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
}

export interface Project {
  id: string;
  name: string;
  description: string | null;
  created_at: string;
  updated_at: string | null;
}

export interface RetryPolicy {
  attempts: number;
  backoff_s: number;
  factor: number;
  max_backoff_s: number;
}

export interface Step {
  id?: string;
  key: string;
  name?: string | null;
  function: string;
  config?: Record<string, unknown>;
  next?: string | null;
  output?: "single" | "multiple" | null;
  retry?: RetryPolicy | null;
}

/** A trigger with a source of its own (Queue, Email, Sms): how it reaches it. */
export interface TriggerHealth {
  state: "connected" | "failing" | "idle";
  error: string | null;
  since: string | null;
  checked_at: string | null;
  last_event_at: string | null;
  started: number;
  duplicates: number;
  dead_letters: number;
  unacked: number | null;
}

export interface WorkflowSummary {
  id: string;
  project_id: string;
  name: string;
  description: string | null;
  automation_type: string;
  version: number;
  paused: boolean;
  blocked: boolean;
  blocked_reason: string | null;
  created_at: string;
  updated_at: string | null;
  trigger_health?: TriggerHealth | null;
}

export interface Workflow extends WorkflowSummary {
  entry_step: string;
  steps: Step[];
}

export interface Version {
  version: number;
  entry_step: string;
  created_at: string;
  created_by: string | null;
  definition: Record<string, unknown>;
}

export type JsonSchema = Record<string, any>;

/** A published service as a caller sees it in the catalog. Prices are decimal strings. */
export interface ServiceOffer {
  publisher: { id: string; name: string };
  input_schema: JsonSchema;
  price_per_call: string;
}

export interface FunctionInfo {
  name: string;
  slug: string;
  kind: "trigger" | "action" | "service";
  visibility: "public" | "private";
  account_id: string | null;
  description: string;
  config_schema: JsonSchema;
  price_per_process: string;
  endpoint: string | null;
  service: ServiceOffer | null;
}

/** One of the account's own published services. */
export interface Service {
  id: string;
  account_id: string;
  workflow_id: string;
  name: string;
  visibility: "public" | "private";
  description: string | null;
  input_schema: JsonSchema;
  price_per_call: string;
  version: number;
  workflow_version: number;
  created_at: string;
  updated_at: string | null;
}

export interface StatementLine {
  function: string;
  kind: string;
  count: number;
  unit_price: string;
  amount: string;
}

export interface ServedLine {
  service: string;
  calls: number;
  unit_price: string;
  revenue: string;
}

/** GET /v1/billing: a month of an account's bill, amounts as exact decimal strings. */
export interface Statement {
  account_id: string;
  month: string;
  currency: string;
  lines: StatementLine[];
  total: string;
  served: ServedLine[];
  revenue: string;
}

export type Counts = Record<"pending" | "running" | "succeeded" | "failed" | "cancelled" | "total", number>;

export interface Job {
  id: string;
  workflow_id: string;
  version: number;
  status: "running" | "succeeded" | "failed" | "cancelled";
  trigger: string;
  counts: Counts;
  error: string | null;
  created_at: string;
  finished_at: string | null;
  service_id?: string | null;
  caller_account_id?: string | null;
}

export interface Process {
  id: string;
  job_id: string;
  step_id: string;
  step_key: string;
  function: string;
  status: "pending" | "running" | "succeeded" | "failed" | "cancelled";
  attempt: number;
  input: unknown;
  output: unknown;
  error: unknown;
  logs: unknown;
  parent_id: string | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
}

export interface DeadLetter {
  id: number;
  consumer: string;
  event_id: string | null;
  account_id: string | null;
  job_id: string | null;
  process_id: string | null;
  origin: string;
  reason: string;
  truncated: boolean;
  retryable: boolean;
  created_at: string;
  resolved_at: string | null;
}

export interface DeadLetterDetail extends DeadLetter {
  headers: Record<string, string> | null;
  body: string | null;
}

export interface UsageDay {
  day: string;
  jobs: number;
  processes: number;
  refused: number;
}

export interface Usage {
  account_id: string;
  from: string;
  to: string;
  days: UsageDay[];
  totals: { jobs: number; processes: number; refused: number };
  monthly_quota: number | null;
  month_processes: number;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: unknown = null,
  ) {
    super(message);
  }

  /** The `{step, field, message}` details of a 422, if that is what they are. */
  get problems(): Detail[] {
    return Array.isArray(this.details)
      ? this.details.filter((d): d is Detail => !!d && typeof d === "object" && "message" in d)
      : [];
  }
}

const TOKEN_KEY = "stepline.token";
let unauthorized: (() => void) | null = null;

export function storedToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function storeToken(token: string | null): void {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** Called when the API answers 401 to a request made with the stored token. */
export function onUnauthorized(callback: () => void): void {
  unauthorized = callback;
}

type Query = Record<string, string | number | null | undefined>;

export function withQuery(path: string, query?: Query): string {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v !== null && v !== undefined && v !== "") params.set(k, String(v));
  }
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}

export async function request<T>(
  method: string,
  path: string,
  options: { body?: unknown; query?: Query; token?: string; text?: boolean; signal?: AbortSignal } = {},
): Promise<T> {
  const token = options.token ?? storedToken();
  const headers: Record<string, string> = { Accept: options.text ? "text/plain" : "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  let response: Response;
  try {
    response = await fetch(withQuery(path, options.query), {
      method,
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      signal: options.signal,
    });
  } catch (error) {
    if ((error as Error).name === "AbortError") throw error;
    throw new ApiError(0, "network", "The control plane cannot be reached.");
  }
  if (response.status === 204) return undefined as T;
  if (!response.ok) {
    let code = "error";
    let message = `${response.status} ${response.statusText}`;
    let details: unknown = null;
    try {
      const body = await response.json();
      if (body?.error) ({ code, message, details } = body.error);
    } catch {
      /* not JSON */
    }
    if (response.status === 401 && !options.token && unauthorized) unauthorized();
    throw new ApiError(response.status, code, message, details);
  }
  return (options.text ? await response.text() : await response.json()) as T;
}

export const api = {
  get: <T>(path: string, query?: Query, signal?: AbortSignal) => request<T>("GET", path, { query, signal }),
  post: <T>(path: string, body?: unknown) => request<T>("POST", path, { body: body ?? {} }),
  put: <T>(path: string, body: unknown) => request<T>("PUT", path, { body }),
  patch: <T>(path: string, body: unknown) => request<T>("PATCH", path, { body }),
  del: (path: string) => request<void>("DELETE", path),
  text: (path: string, query?: Query) => request<string>("GET", path, { query, text: true }),
};

/** Every item of a paginated list, following `next_cursor` up to `maxPages` pages. */
export async function listAll<T>(
  path: string,
  query: Query = {},
  { limit = 500, maxPages = 20, token }: { limit?: number; maxPages?: number; token?: string } = {},
): Promise<{ items: T[]; complete: boolean }> {
  const items: T[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < maxPages; page++) {
    const result: Page<T> = await request<Page<T>>("GET", path, {
      query: { ...query, limit, cursor },
      token,
    });
    items.push(...result.items);
    cursor = result.next_cursor;
    if (!cursor) return { items, complete: true };
  }
  return { items, complete: false };
}

export function errorText(error: unknown): string {
  if (error instanceof ApiError) {
    const problems = error.problems
      .map((p) => [p.step, p.field].filter(Boolean).join(" › ") + (p.field || p.step ? ": " : "") + p.message)
      .join("; ");
    return problems ? `${error.message} — ${problems}` : error.message;
  }
  return error instanceof Error ? error.message : String(error);
}
