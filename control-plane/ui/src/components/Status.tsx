import type { TriggerHealth } from "../api";
import { when } from "../lib/format";

const LABELS: Record<string, string> = {
  running: "running", pending: "pending", succeeded: "succeeded", failed: "failed", cancelled: "cancelled",
};

export function StatusBadge({ status }: { status: string }) {
  return (
    <span class={`badge status-${status}`} data-status={status}>
      <span class="dot" aria-hidden="true" />
      {LABELS[status] ?? status}
    </span>
  );
}

export function Badge({ children, tone = "neutral", title }: { children: string; tone?: string; title?: string }) {
  return <span class={`badge tone-${tone}`} title={title}>{children}</span>;
}

const TRIGGER_TONES: Record<TriggerHealth["state"], string> = { connected: "ok", failing: "danger", idle: "neutral" };

/** A trigger's health as a badge: its state, and in its title why and since when. */
export function TriggerBadge({ health }: { health: TriggerHealth | null | undefined }) {
  if (!health) return null;
  const parts = [
    health.error ? `${health.error}` : "",
    health.since ? `since ${when(health.since)}` : "",
    health.last_event_at ? `last event ${when(health.last_event_at)}` : "no event yet",
    `${health.started} started, ${health.duplicates} duplicates, ${health.dead_letters} dead letters`,
  ].filter(Boolean);
  return (
    <span class={`badge tone-${TRIGGER_TONES[health.state]}`} data-trigger-health={health.state} title={parts.join(" · ")}>
      trigger {health.state}
    </span>
  );
}
