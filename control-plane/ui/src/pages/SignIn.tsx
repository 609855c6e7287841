import { useState } from "preact/hooks";
import { ApiError, errorText } from "../api";
import { resolveIdentity, type Identity } from "../session";

export function SignIn({ onSignedIn, notice }: { onSignedIn: (who: Identity) => void; notice: string | null }) {
  const [token, setToken] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    const value = token.trim();
    if (!value) { setError("Paste an API token."); return; }
    setBusy(true);
    setError(null);
    try {
      onSignedIn(await resolveIdentity(value));
    } catch (err) {
      setError(err instanceof ApiError && err.status === 401 ? "This token is not valid." : errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="signin" id="main">
      <form class="card signin-card" onSubmit={submit} aria-labelledby="signin-title">
        <div class="brand big"><span class="logo" aria-hidden="true">◆</span> Stepline</div>
        <h1 id="signin-title">Sign in</h1>
        <p class="muted">Use an API token of your account. It stays in this browser tab only (session storage) and is sent to this control plane alone.</p>
        {notice ? <div class="notice warn" role="status">{notice}</div> : null}
        <div class={`field${error ? " has-error" : ""}`}>
          <label for="token">API token</label>
          <input id="token" name="token" type="password" autocomplete="off" spellcheck={false} value={token}
            placeholder="stl_…" aria-invalid={!!error} aria-describedby={error ? "token-error" : "token-hint"}
            onInput={(e) => setToken((e.target as HTMLInputElement).value)} autoFocus />
          <p class="hint" id="token-hint"><code>make run</code> prints the operator token; an admin creates others with <code>POST /v1/tokens</code>.</p>
          {error ? <p class="field-error" id="token-error" role="alert">{error}</p> : null}
        </div>
        <button type="submit" class="primary" disabled={busy}>{busy ? "Signing in…" : "Sign in"}</button>
      </form>
    </main>
  );
}
