import { useEffect, useState } from "preact/hooks";
import { SchemaDoc } from "../components/SchemaDoc";
import { Badge } from "../components/Status";
import { ErrorNotice, Loading, PageHeader, useAsync } from "../components/ui";
import { catalog } from "../lib/store";

export function Functions({ focus }: { focus: string | null }) {
  const functions = useAsync(catalog, []);
  const [filter, setFilter] = useState("");
  useEffect(() => {
    if (focus && functions.data) document.getElementById(`fn-${focus}`)?.scrollIntoView();
  }, [focus, functions.data]);
  const shown = (functions.data ?? []).filter((f) =>
    !filter || `${f.name} ${f.description}`.toLowerCase().includes(filter.toLowerCase()));
  return (
    <div class="page">
      <PageHeader title="Functions" subtitle="What a step can run: the public catalog and your account's private functions, each with the settings its config takes." />
      <div class="toolbar">
        <div class="field inline">
          <label for="fn-filter">Filter</label>
          <input id="fn-filter" type="search" value={filter} placeholder="name or description"
            onInput={(e) => setFilter((e.target as HTMLInputElement).value)} />
        </div>
      </div>
      {functions.loading ? <Loading /> : <ErrorNotice error={functions.error} />}
      <div class="catalog">
        <nav class="catalog-index" aria-label="Functions">
          <ul>
            {shown.map((f) => <li key={f.name}><a href={`#/functions?name=${encodeURIComponent(f.name)}`}>{f.name}</a></li>)}
          </ul>
        </nav>
        <div class="catalog-list">
          {shown.map((f) => (
            <article class="card function" id={`fn-${f.name}`} key={f.name} aria-labelledby={`fn-title-${f.slug}`} data-function={f.name}>
              <header class="function-head">
                <h2 id={`fn-title-${f.slug}`}><code>{f.name}</code></h2>
                <Badge tone={f.kind === "trigger" ? "accent" : "neutral"}>{f.kind}</Badge>
                <Badge tone={f.visibility === "public" ? "ok" : "warn"}>{f.visibility}</Badge>
              </header>
              <p>{f.description}</p>
              <h3 class="small-heading">Config</h3>
              <SchemaDoc schema={f.config_schema} />
            </article>
          ))}
          {functions.data && shown.length === 0 ? <p class="muted">No function matches “{filter}”.</p> : null}
        </div>
      </div>
    </div>
  );
}
