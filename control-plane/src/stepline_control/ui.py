"""The web UI: the single-page app built from ``control-plane/ui`` (``make ui``) served
at ``/ui/``, and ``/`` redirected to it.

The page talks to the REST API on the same origin with the user's bearer token; it loads
nothing from anywhere else (its Content-Security-Policy says so to the browser). The
built files are looked up in ``STEPLINE_UI_DIR`` if set, else ``control-plane/ui/dist``
of this checkout; when they are missing ``/ui/`` answers 503 with how to build them."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response

from stepline_control.errors import body as error_body

router = APIRouter(include_in_schema=False)

UI_PREFIX = "/ui/"
DEFAULT_DIST = Path(__file__).resolve().parents[2] / "ui" / "dist"

# what the page may load: itself, and the inline styles Mermaid writes into its SVG
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; object-src 'none'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "no-referrer"}
# mimetypes does not know .mjs everywhere, and a module script needs a JavaScript type
MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
               ".mjs": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
               ".svg": "image/svg+xml", ".json": "application/json", ".png": "image/png",
               ".ico": "image/x-icon", ".woff2": "font/woff2", ".txt": "text/plain; charset=utf-8"}
# Vite names its bundles by content hash; mermaid's chunks too, but not its entry
IMMUTABLE = "public, max-age=31536000, immutable"
VENDOR = "public, max-age=86400"
NO_CACHE = "no-cache"

NOT_BUILT = """<!doctype html><html lang="en"><meta charset="utf-8"><title>Stepline</title>
<body style="font-family:system-ui;max-width:40rem;margin:4rem auto;line-height:1.5">
<h1>The web UI is not built</h1>
<p>Build it with <code>make ui</code> (runs <code>npm ci &amp;&amp; npm run build</code> in
<code>control-plane/ui</code>), or point <code>STEPLINE_UI_DIR</code> at a built copy.
The REST API works without it: <a href="/openapi.json">/openapi.json</a>.</p></body></html>
"""


@lru_cache(maxsize=1)
def ui_dir() -> Path:
    configured = os.environ.get("STEPLINE_UI_DIR")
    return (Path(configured) if configured else DEFAULT_DIST).resolve()


def _not_found() -> Response:
    return JSONResponse(error_body("not_found", "no such file of the web UI"), status_code=404)


def _file(path: Path, cache: str) -> FileResponse:
    media_type = MEDIA_TYPES.get(path.suffix.lower())
    return FileResponse(path, media_type=media_type, headers={**HEADERS, "Cache-Control": cache})


@router.api_route("/", methods=["GET", "HEAD"])
async def root() -> RedirectResponse:
    return RedirectResponse(UI_PREFIX, status_code=307)


@router.api_route("/ui", methods=["GET", "HEAD"])
async def ui_root() -> RedirectResponse:
    return RedirectResponse(UI_PREFIX, status_code=307)


@router.api_route("/ui/{path:path}", methods=["GET", "HEAD"])
async def ui_file(path: str) -> Response:
    dist = ui_dir()
    index = dist / "index.html"
    if not index.is_file():
        return HTMLResponse(NOT_BUILT, status_code=503, headers={"Cache-Control": NO_CACHE})
    if path in ("", "index.html"):
        return _file(index, NO_CACHE)
    target = (dist / path).resolve()
    if not target.is_relative_to(dist) or not target.is_file():
        return _not_found()
    if target.is_relative_to(dist / "assets"):
        return _file(target, IMMUTABLE)
    if target.is_relative_to(dist / "vendor"):
        return _file(target, VENDOR)
    return _file(target, NO_CACHE)
