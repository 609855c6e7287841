import type { ComponentChildren } from "preact";
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { errorText } from "../api";

export interface Async<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  reload: () => Promise<void>;
  setData: (value: T) => void;
}

/** Load once per change of `deps`; `reload` refreshes in place (no flash of "loading"). */
export function useAsync<T>(load: () => Promise<T>, deps: unknown[]): Async<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(true);
  const generation = useRef(0);
  const run = useCallback(async (quiet: boolean) => {
    const mine = ++generation.current;
    if (!quiet) setLoading(true);
    try {
      const value = await load();
      if (mine === generation.current) { setData(value); setError(null); }
    } catch (e) {
      if (mine === generation.current) setError(e);
    } finally {
      if (mine === generation.current) setLoading(false);
    }
  }, deps);
  useEffect(() => { void run(false); }, [run]);
  return { data, error, loading, reload: () => run(true), setData };
}

/** Call `tick` every `ms` while `active` and the page is visible. */
export function usePolling(tick: () => unknown, ms: number, active: boolean): void {
  const saved = useRef(tick);
  saved.current = tick;
  useEffect(() => {
    if (!active) return;
    let timer: ReturnType<typeof setTimeout>;
    let stopped = false;
    const loop = async () => {
      if (stopped) return;
      if (document.visibilityState === "visible") {
        try { await saved.current(); } catch { /* shown by the caller */ }
      }
      if (!stopped) timer = setTimeout(loop, ms);
    };
    timer = setTimeout(loop, ms);
    return () => { stopped = true; clearTimeout(timer); };
  }, [ms, active]);
}

export function ErrorNotice({ error, title }: { error: unknown; title?: string }) {
  if (!error) return null;
  return (
    <div class="notice error" role="alert">
      {title ? <strong>{title}: </strong> : null}
      {errorText(error)}
    </div>
  );
}

export function Loading({ what = "Loading" }: { what?: string }) {
  return <p class="muted loading" role="status">{what}…</p>;
}

export function PageHeader({ title, subtitle, children }: { title: ComponentChildren; subtitle?: ComponentChildren; children?: ComponentChildren }) {
  return (
    <header class="page-header">
      <div>
        <h1>{title}</h1>
        {subtitle ? <p class="subtitle">{subtitle}</p> : null}
      </div>
      {children ? <div class="actions">{children}</div> : null}
    </header>
  );
}

/** A destructive action asked twice, inline (no native dialog). */
export function ConfirmButton({ label, confirm, onConfirm, class: className = "danger", disabled }: {
  label: string; confirm: string; onConfirm: () => unknown; class?: string; disabled?: boolean;
}) {
  const [asking, setAsking] = useState(false);
  const yes = useRef<HTMLButtonElement>(null);
  useEffect(() => { if (asking) yes.current?.focus(); }, [asking]);
  if (!asking) {
    return <button type="button" class={className} data-write disabled={disabled} onClick={() => setAsking(true)}>{label}</button>;
  }
  return (
    <span class="confirm" role="group" aria-label={confirm}>
      <span class="small">{confirm}</span>
      <button type="button" ref={yes} class="danger small" data-write onClick={async () => { setAsking(false); await onConfirm(); }}>Yes, {label.toLowerCase()}</button>
      <button type="button" class="small" onClick={() => setAsking(false)}>No</button>
    </span>
  );
}

type Toast = { id: number; text: string; tone: "ok" | "error" };
let push: ((t: Omit<Toast, "id">) => void) | null = null;
let nextToast = 1;

export function toast(text: string, tone: "ok" | "error" = "ok"): void {
  push?.({ text, tone });
}

export function Toasts() {
  const [items, setItems] = useState<Toast[]>([]);
  useEffect(() => {
    push = (t) => {
      const id = nextToast++;
      setItems((old) => [...old, { ...t, id }]);
      setTimeout(() => setItems((old) => old.filter((x) => x.id !== id)), t.tone === "error" ? 8000 : 3500);
    };
    return () => { push = null; };
  }, []);
  return (
    <div class="toasts" role="status" aria-live="polite">
      {items.map((t) => <div key={t.id} class={`toast ${t.tone}`}>{t.text}</div>)}
    </div>
  );
}
