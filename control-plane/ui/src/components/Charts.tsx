import { number, shortDay } from "../lib/format";

export interface Series {
  name: string;
  /** a CSS class giving the fill (see styles.css: .fill-*) */
  tone: string;
  values: number[];
}

/** A round top for the axis and the step between its ticks (at most 5 steps). */
function axis(value: number): { max: number; step: number } {
  const steps = [1, 2, 5];
  for (let power = 1; ; power *= 10) {
    for (const s of steps) {
      const step = s * power;
      if (Math.max(value, 1) <= step * 5) return { max: Math.max(step, Math.ceil(value / step) * step), step };
    }
  }
}

/** Stacked bars per day, inline SVG, with the figures as a table for screen readers. */
export function StackedBars({ days, series, label, height = 220 }: {
  days: string[]; series: Series[]; label: string; height?: number;
}) {
  const width = 960;
  const pad = { top: 12, right: 8, bottom: 28, left: 44 };
  const totals = days.map((_, i) => series.reduce((sum, s) => sum + (s.values[i] ?? 0), 0));
  const { max, step } = axis(Math.max(0, ...totals));
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const slot = plotW / Math.max(days.length, 1);
  const barW = Math.max(2, Math.min(36, slot * 0.7));
  const y = (v: number) => pad.top + plotH - (v / max) * plotH;
  const ticks = Array.from({ length: Math.round(max / step) + 1 }, (_, i) => i * step);
  const labelEvery = Math.ceil(days.length / 10);
  const grand = totals.reduce((a, b) => a + b, 0);
  return (
    <figure class="chart">
      <svg viewBox={`0 0 ${width} ${height}`} role="img" aria-label={`${label}: ${number(grand)} in ${days.length} days`}>
        {ticks.map((t) => (
          <g key={t}>
            <line class="grid" x1={pad.left} x2={width - pad.right} y1={y(t)} y2={y(t)} />
            <text class="axis" x={pad.left - 6} y={y(t) + 4} text-anchor="end">{number(t)}</text>
          </g>
        ))}
        {days.map((day, i) => {
          let base = 0;
          const x = pad.left + i * slot + (slot - barW) / 2;
          return (
            <g key={day}>
              {series.map((s) => {
                const v = s.values[i] ?? 0;
                if (!v) return null;
                const top = y(base + v);
                const rect = <rect class={s.tone} x={x} y={top} width={barW} height={Math.max(1, y(base) - top)} rx={2}>
                  <title>{`${shortDay(day)} — ${s.name}: ${number(v)}`}</title>
                </rect>;
                base += v;
                return <g key={s.name}>{rect}</g>;
              })}
              {i % labelEvery === 0 ? (
                <text class="axis" x={x + barW / 2} y={height - 8} text-anchor="middle">{shortDay(day)}</text>
              ) : null}
            </g>
          );
        })}
      </svg>
      <figcaption>
        <ul class="legend">
          {series.map((s) => (
            <li key={s.name}><span class={`swatch ${s.tone}`} aria-hidden="true" />{s.name}: {number(s.values.reduce((a, b) => a + b, 0))}</li>
          ))}
        </ul>
        <details class="chart-table">
          <summary>Show the figures</summary>
          <table class="table compact">
            <thead><tr><th scope="col">Day</th>{series.map((s) => <th scope="col" key={s.name}>{s.name}</th>)}</tr></thead>
            <tbody>
              {days.map((day, i) => (
                <tr key={day}><th scope="row">{day}</th>{series.map((s) => <td key={s.name}>{number(s.values[i] ?? 0)}</td>)}</tr>
              ))}
            </tbody>
          </table>
        </details>
      </figcaption>
    </figure>
  );
}

/** Horizontal bars: a ranking (busiest workflows, most failing). */
export function Ranking({ rows, tone, empty, unit }: {
  rows: { label: string; href?: string; value: number; note?: string }[]; tone: string; empty: string; unit: string;
}) {
  if (rows.length === 0) return <p class="muted">{empty}</p>;
  const max = Math.max(...rows.map((r) => r.value));
  return (
    <ol class="ranking">
      {rows.map((r) => (
        <li key={r.label}>
          <div class="ranking-label">
            {r.href ? <a href={r.href}>{r.label}</a> : r.label}
            <span class="muted">{number(r.value)} {unit}{r.note ? ` · ${r.note}` : ""}</span>
          </div>
          <div class="ranking-bar" aria-hidden="true"><span class={tone} style={{ width: `${(100 * r.value) / max}%` }} /></div>
        </li>
      ))}
    </ol>
  );
}

export function Meter({ value, max, label }: { value: number; max: number | null; label: string }) {
  if (!max) return <p class="muted">{number(value)} — no quota</p>;
  const ratio = Math.min(1, value / max);
  return (
    <div class="meter-wrap">
      <meter min={0} max={max} value={value} high={max * 0.8} optimum={0} aria-label={label}>{number(value)}</meter>
      <span class="muted">{number(value)} of {number(max)} ({Math.round(ratio * 100)}%)</span>
    </div>
  );
}
