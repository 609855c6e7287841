import { useEffect, useRef, useState } from "preact/hooks";

// mermaid's own ESM build, copied next to the UI at build time (scripts/copy-mermaid.mjs):
// loaded on first use only, from the control plane, never from a CDN
const MERMAID_URL = `${import.meta.env.BASE_URL}vendor/mermaid/mermaid.esm.min.mjs`;

interface MermaidApi {
  initialize(config: Record<string, unknown>): void;
  render(id: string, text: string): Promise<{ svg: string }>;
}

let loading: Promise<MermaidApi> | null = null;
let counter = 0;

function loadMermaid(): Promise<MermaidApi> {
  loading ??= import(/* @vite-ignore */ MERMAID_URL).then((module) => {
    const mermaid = module.default as MermaidApi;
    mermaid.initialize({
      startOnLoad: false,
      securityLevel: "strict",
      theme: "base",
      fontFamily: "inherit",
      themeVariables: {
        primaryColor: "#eef2ff", primaryBorderColor: "#6366f1", primaryTextColor: "#1e1b4b",
        lineColor: "#64748b", fontSize: "14px",
      },
      flowchart: { htmlLabels: true, curve: "basis" },
    });
    return mermaid;
  });
  return loading;
}

/** A Mermaid flowchart rendered to SVG; re-rendered (debounced) when `text` changes. */
export function MermaidDiagram({ text, label, delay = 250 }: { text: string; label: string; delay?: number }) {
  const box = useRef<HTMLDivElement>(null);
  const [error, setError] = useState<string | null>(null);
  const [rendered, setRendered] = useState(false);
  useEffect(() => {
    let stale = false;
    const timer = setTimeout(async () => {
      try {
        const mermaid = await loadMermaid();
        const { svg } = await mermaid.render(`mermaid-${++counter}`, text);
        if (stale || !box.current) return;
        box.current.innerHTML = svg;
        const element = box.current.querySelector("svg");
        element?.setAttribute("role", "img");
        element?.setAttribute("aria-label", label);
        setError(null);
        setRendered(true);
      } catch (e) {
        if (!stale) setError(e instanceof Error ? e.message.split("\n")[0] : String(e));
      }
    }, delay);
    return () => { stale = true; clearTimeout(timer); };
  }, [text, label, delay]);
  return (
    <div class="diagram" data-rendered={rendered ? "true" : "false"}>
      <div ref={box} class="diagram-svg" />
      {error ? (
        <div class="notice warn" role="status">
          The diagram cannot be drawn: {error}
          <pre class="code small">{text}</pre>
        </div>
      ) : null}
      {!rendered && !error ? <p class="muted">Drawing…</p> : null}
    </div>
  );
}
