import { useEffect, useState } from "preact/hooks";
import type { FunctionInfo } from "../api";
import { SchemaDoc } from "../components/SchemaDoc";
import { Badge } from "../components/Status";
import { ErrorNotice, Loading, PageHeader, useAsync } from "../components/ui";
import { money } from "../lib/format";
import { catalog } from "../lib/store";

function FunctionCard({ f }: { f: FunctionInfo }) {
  const offer = f.service;
  return (
    <article class="card function" id={`fn-${f.name}`} aria-labelledby={`fn-title-${f.slug}`} data-function={f.name}>
      <header class="function-head">
        <h3 id={`fn-title-${f.slug}`}><code>{f.name}</code></h3>
        <Badge tone={f.kind === "trigger" ? "accent" : f.kind === "service" ? "ok" : "neutral"}>{f.kind}</Badge>
        <Badge tone={f.visibility === "public" ? "ok" : "warn"}>{f.visibility}</Badge>
      </header>
      <p>{f.description}</p>
      {offer ? (
        <p class="small" data-testid="offer">Sold by <strong>{offer.publisher.name}</strong> · {money(offer.price_per_call)} per call</p>
      ) : Number(f.price_per_process) > 0 ? (
        <p class="small">{money(f.price_per_process)} per process</p>
      ) : null}
      <h4 class="small-heading">{offer ? "Input" : "Config"}</h4>
      {offer ? <SchemaDoc schema={offer.input_schema} path="input" /> : <SchemaDoc schema={f.config_schema} />}
    </article>
  );
}

/** Services grouped by the account that sells them. */
function byPublisher(services: FunctionInfo[]): [string, FunctionInfo[]][] {
  const groups = new Map<string, FunctionInfo[]>();
  for (const s of services) {
    const name = s.service?.publisher.name ?? "unknown publisher";
    groups.set(name, [...(groups.get(name) ?? []), s]);
  }
  return [...groups.entries()].sort(([a], [b]) => a.localeCompare(b));
}

export function Functions({ focus }: { focus: string | null }) {
  const functions = useAsync(catalog, []);
  const [filter, setFilter] = useState("");
  useEffect(() => {
    if (focus && functions.data) document.getElementById(`fn-${focus}`)?.scrollIntoView();
  }, [focus, functions.data]);
  const shown = (functions.data ?? []).filter((f) =>
    !filter || `${f.name} ${f.description} ${f.service?.publisher.name ?? ""}`.toLowerCase().includes(filter.toLowerCase()));
  const builtIn = shown.filter((f) => f.kind !== "service");
  const services = shown.filter((f) => f.kind === "service");
  return (
    <div class="page">
      <PageHeader title="Functions" subtitle="What a step can run: the public catalog, your account's private functions, and the services other accounts sell, each with the settings it takes." />
      <div class="toolbar">
        <div class="field inline">
          <label for="fn-filter">Filter</label>
          <input id="fn-filter" type="search" value={filter} placeholder="name, description or publisher"
            onInput={(e) => setFilter((e.target as HTMLInputElement).value)} />
        </div>
      </div>
      {functions.loading ? <Loading /> : <ErrorNotice error={functions.error} />}
      <div class="catalog">
        <nav class="catalog-index" aria-label="Functions">
          <ul>
            {[...builtIn, ...services].map((f) => <li key={f.name}><a href={`#/functions?name=${encodeURIComponent(f.name)}`}>{f.name}</a></li>)}
          </ul>
        </nav>
        <div class="catalog-list">
          <section class="publisher-group" aria-labelledby="catalog-functions">
            <h2 id="catalog-functions">Functions</h2>
            {builtIn.map((f) => <FunctionCard key={f.name} f={f} />)}
          </section>
          {services.length > 0 ? (
            <section class="publisher-group" aria-labelledby="catalog-services" data-testid="services-catalog">
              <h2 id="catalog-services">Services, by publisher</h2>
              {byPublisher(services).map(([publisher, items]) => (
                <section class="publisher-group" key={publisher} aria-label={`Services of ${publisher}`} data-publisher={publisher}>
                  <h3>{publisher}</h3>
                  {items.map((f) => <FunctionCard key={f.name} f={f} />)}
                </section>
              ))}
            </section>
          ) : null}
          {functions.data && shown.length === 0 ? <p class="muted">No function matches “{filter}”.</p> : null}
        </div>
      </div>
    </div>
  );
}
