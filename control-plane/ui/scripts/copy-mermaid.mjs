// Copies mermaid's prebuilt ESM build (entry + its lazily loaded chunks, no source
// maps) from node_modules into dist/vendor/mermaid/, so the page loads it from the
// control plane itself: no CDN, nothing bundled twice.
import { cpSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const source = join(dirname(require.resolve("mermaid/package.json")), "dist");
const target = new URL("../dist/vendor/mermaid/", import.meta.url).pathname;
const chunks = join("chunks", "mermaid.esm.min");

rmSync(target, { recursive: true, force: true });
mkdirSync(join(target, chunks), { recursive: true });
cpSync(join(source, "mermaid.esm.min.mjs"), join(target, "mermaid.esm.min.mjs"));
let copied = 1;
for (const name of readdirSync(join(source, chunks))) {
  if (name.endsWith(".mjs")) {
    cpSync(join(source, chunks, name), join(target, chunks, name));
    copied += 1;
  }
}
console.log(`mermaid: ${copied} files copied to dist/vendor/mermaid/`);
