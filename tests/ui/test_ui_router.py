"""How the control plane serves the web UI's files (no browser, no database): the
redirects, the cache and security headers, JavaScript types for modules, nothing outside
the build folder, and a clear 503 when the UI is not built."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from stepline_control import errors, ui


@pytest.fixture
def dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "dist"
    (folder / "assets").mkdir(parents=True)
    (folder / "vendor" / "mermaid").mkdir(parents=True)
    (folder / "index.html").write_text("<!doctype html><title>Stepline</title>")
    (folder / "assets" / "index-abc123.js").write_text("export {}")
    (folder / "vendor" / "mermaid" / "mermaid.esm.min.mjs").write_text("export default {}")
    (tmp_path / "secret.txt").write_text("not for the browser")
    monkeypatch.setenv("STEPLINE_UI_DIR", str(folder))
    ui.ui_dir.cache_clear()
    yield folder
    ui.ui_dir.cache_clear()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    errors.install(app)
    app.include_router(ui.router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://control-plane") as opened:
        yield opened


async def test_the_root_and_ui_redirect_to_the_app(client: httpx.AsyncClient, dist: Path
                                                   ) -> None:
    for path in ("/", "/ui"):
        response = await client.get(path)
        assert response.status_code == 307
        assert response.headers["location"] == "/ui/"


async def test_the_page_is_never_cached_and_loads_nothing_from_elsewhere(
        client: httpx.AsyncClient, dist: Path) -> None:
    response = await client.get("/ui/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-cache"
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "connect-src 'self'" in policy
    assert "http" not in policy
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_bundles_are_immutable_and_modules_are_javascript(client: httpx.AsyncClient,
                                                                dist: Path) -> None:
    bundle = await client.get("/ui/assets/index-abc123.js")
    assert bundle.status_code == 200
    assert "immutable" in bundle.headers["cache-control"]
    assert bundle.headers["content-type"].startswith("text/javascript")
    module = await client.get("/ui/vendor/mermaid/mermaid.esm.min.mjs")
    assert module.status_code == 200
    assert module.headers["content-type"].startswith("text/javascript")
    head = await client.head("/ui/assets/index-abc123.js")
    assert head.status_code == 200


@pytest.mark.parametrize("path", ["/ui/missing.js", "/ui/../secret.txt", "/ui/%2e%2e/secret.txt",
                                  "/ui/assets/../../secret.txt", "/ui/assets"])
async def test_nothing_outside_the_build_is_served(client: httpx.AsyncClient, dist: Path,
                                                   path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 404
    assert "not for the browser" not in response.text
    assert response.json()["error"]["code"] == "not_found"


async def test_an_unbuilt_ui_says_how_to_build_it(client: httpx.AsyncClient, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEPLINE_UI_DIR", str(tmp_path / "nothing"))
    ui.ui_dir.cache_clear()
    try:
        response = await client.get("/ui/")
    finally:
        ui.ui_dir.cache_clear()
    assert response.status_code == 503
    assert "make ui" in response.text


def test_the_built_page_names_no_other_host() -> None:
    """The real build (when there is one): every script, style and link of the page is
    the control plane's own."""
    index = ui.DEFAULT_DIST / "index.html"
    if not index.is_file():
        pytest.skip("the web UI is not built (make ui)")
    html = index.read_text()
    references = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    assert references, html
    assert all(ref.startswith(("/ui/", "data:")) for ref in references), references
