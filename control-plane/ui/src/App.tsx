import { useEffect, useState } from "preact/hooks";
import { ApiError, onUnauthorized, storeToken, storedToken } from "./api";
import { Toasts } from "./components/ui";
import { forget } from "./lib/store";
import { Dashboard } from "./pages/Dashboard";
import { DeadLetterPage, DeadLetters } from "./pages/DeadLetters";
import { Functions } from "./pages/Functions";
import { JobPage } from "./pages/JobPage";
import { Jobs } from "./pages/Jobs";
import { Projects } from "./pages/Projects";
import { Services } from "./pages/Services";
import { SignIn } from "./pages/SignIn";
import { Usage } from "./pages/Usage";
import { WorkflowEditor } from "./pages/WorkflowEditor";
import { href, useRoute, type Route } from "./router";
import { IdentityContext, resolveIdentity, type Identity } from "./session";

const NAV = [
  { path: "/", label: "Dashboard", match: (r: Route) => r.segments.length === 0 },
  { path: "/projects", label: "Projects", match: (r: Route) => r.segments[0] === "projects" || r.segments[0] === "workflows" },
  { path: "/functions", label: "Functions", match: (r: Route) => r.segments[0] === "functions" },
  { path: "/services", label: "Services", match: (r: Route) => r.segments[0] === "services" },
  { path: "/jobs", label: "Jobs", match: (r: Route) => r.segments[0] === "jobs" },
  { path: "/dead-letters", label: "Dead letters", match: (r: Route) => r.segments[0] === "dead-letters" },
  { path: "/usage", label: "Usage", match: (r: Route) => r.segments[0] === "usage" },
];

function Screen({ route }: { route: Route }) {
  const [first, second] = route.segments;
  switch (first) {
    case undefined: return <Dashboard />;
    case "projects": return <Projects />;
    case "functions": return <Functions focus={route.query.get("name")} />;
    case "services": return <Services />;
    case "workflows": return <WorkflowEditor key={second ?? "new"} id={second === "new" ? null : second ?? null} route={route} />;
    case "jobs": return second ? <JobPage key={second} id={second} /> : <Jobs route={route} />;
    case "dead-letters": return second ? <DeadLetterPage key={second} id={second} /> : <DeadLetters route={route} />;
    case "usage": return <Usage route={route} />;
    default: return <div class="page"><h1>Not found</h1><p>There is no screen at <code>{route.path}</code>. <a href="#/">Go to the dashboard</a>.</p></div>;
  }
}

export function App() {
  const route = useRoute();
  const [identity, setIdentity] = useState<Identity | null>(null);
  const [checking, setChecking] = useState(() => !!storedToken());
  const [notice, setNotice] = useState<string | null>(null);

  const signOut = (message: string | null = null) => {
    storeToken(null);
    forget();
    setIdentity(null);
    setNotice(message);
  };

  useEffect(() => {
    onUnauthorized(() => signOut("Your token is no longer valid: sign in again."));
    const token = storedToken();
    if (!token) return;
    resolveIdentity(token)
      .then(setIdentity)
      .catch((e) => signOut(e instanceof ApiError && e.status === 401 ? "Your token is no longer valid: sign in again." : String(e?.message ?? e)))
      .finally(() => setChecking(false));
  }, []);

  useEffect(() => {
    const name = NAV.find((n) => n.match(route))?.label;
    document.title = name ? `${name} · Stepline` : "Stepline";
  }, [route]);

  if (checking) return <div class="splash" role="status">Stepline…</div>;
  if (!identity) {
    return (
      <SignIn notice={notice} onSignedIn={(who) => { storeToken(who.token); setNotice(null); setIdentity(who); }} />
    );
  }
  return (
    <IdentityContext.Provider value={identity}>
      <a class="skip" href="#main" onClick={(e) => { e.preventDefault(); document.getElementById("main")?.focus(); }}>Skip to content</a>
      <div class="shell">
        <aside class="sidebar">
          <a class="brand" href="#/" aria-label="Stepline, dashboard">
            <span class="logo" aria-hidden="true">◆</span> Stepline
          </a>
          <nav aria-label="Main">
            <ul>
              {NAV.map((n) => (
                <li key={n.path}>
                  <a href={href(n.path)} aria-current={n.match(route) ? "page" : undefined}>{n.label}</a>
                </li>
              ))}
            </ul>
          </nav>
          <div class="sidebar-foot muted small">
            <a href="/openapi.json" target="_blank" rel="noopener">REST API (OpenAPI)</a>
          </div>
        </aside>
        <div class="main-col">
          <header class="topbar">
            <div class="who" data-testid="identity">
              <span class="account-name" data-testid="account-name">{identity.account.name}</span>
              <span class={`badge role role-${identity.role}`} data-testid="role" title={`the role of the token “${identity.tokenName}”`}>
                {identity.role}
              </span>
              {identity.account.is_operator ? <span class="badge tone-accent">operator</span> : null}
              {identity.account.blocked ? <span class="badge tone-danger" title={identity.account.blocked_reason ?? ""}>blocked</span> : null}
            </div>
            <button type="button" class="ghost" onClick={() => signOut(null)}>Sign out</button>
          </header>
          <main id="main" tabIndex={-1}>
            <Screen route={route} />
          </main>
        </div>
      </div>
      <Toasts />
    </IdentityContext.Provider>
  );
}
