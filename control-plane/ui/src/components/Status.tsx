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
