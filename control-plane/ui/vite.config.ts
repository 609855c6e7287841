import { defineConfig } from "vite";

// The UI is served by the control plane under /ui/ (same origin as the API: no CORS,
// no external URL anywhere). Mermaid is not bundled: scripts/copy-mermaid.mjs copies
// its prebuilt ESM build into dist/vendor/ and the editor imports it on first use.
export default defineConfig({
  base: "/ui/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: false,
    reportCompressedSize: false,
  },
  server: {
    proxy: {
      "/v1": "http://127.0.0.1:8080",
      "/metrics": "http://127.0.0.1:8080",
    },
  },
});
