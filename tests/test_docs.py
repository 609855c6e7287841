"""The documentation stays true to the code: the generated reference pages equal fresh
output of docs/generate.py (``make docs`` rewrites them); every relative link in docs/
and README.md reaches an existing file, and its ``#anchor`` a heading there; and a code
block that names a file after its language (```python path/to/file.py) holds that
file's text or an excerpt of it."""

from __future__ import annotations

import importlib.util
import re
from functools import cache
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([*(ROOT / "docs").rglob("*.md"), ROOT / "README.md"])
FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)
EXPLICIT_ANCHOR = re.compile(r"<a\s+(?:id|name)=\"([^\"]+)\"", re.IGNORECASE)
QUOTED_FILE = re.compile(r"^```[\w-]+[ \t]+([\w.-]+/[\w./-]+)[ \t]*\n(.*?)^```[ \t]*$",
                         re.MULTILINE | re.DOTALL)


@cache
def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_generate", ROOT / "docs" / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def prose(text: str) -> str:
    """The Markdown without its code blocks and code spans, where links are not links."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


@cache
def anchors(page: Path) -> frozenset[str]:
    """The anchors GitHub makes for a page: one per heading (a repeated heading gets
    ``-1``, ``-2``...), and any explicit ``<a id=...>``."""
    text = FENCE.sub("", page.read_text())
    found: set[str] = set(EXPLICIT_ANCHOR.findall(text))
    seen: dict[str, int] = {}
    for heading in HEADING.findall(text):
        base = generator().slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return frozenset(found)


def relative_links(page: Path) -> list[str]:
    return [
        target for target in LINK.findall(prose(page.read_text()))
        if not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE)
    ]


def test_the_generated_reference_is_current() -> None:
    stale = [
        str(path.relative_to(ROOT))
        for path, text in generator().pages().items()
        if not path.exists() or path.read_text() != text
    ]
    assert not stale, f"out of date, run `make docs`: {', '.join(stale)}"


def test_the_generator_is_deterministic() -> None:
    assert generator().pages() == generator().pages()


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for target in relative_links(page):
        path_part, _, anchor = target.partition("#")
        destination = (page.parent / path_part).resolve() if path_part else page
        if not destination.exists():
            broken.append(f"{target}: no such file")
        elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
            broken.append(f"{target}: no heading with anchor #{anchor}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def lines_of(text: str) -> list[str]:
    """Lines without their indentation: an excerpt may be shown dedented."""
    return [line.strip() for line in text.strip("\n").splitlines()]


def is_excerpt(part: list[str], whole: list[str]) -> bool:
    return any(whole[i:i + len(part)] == part for i in range(len(whole) - len(part) + 1))


QUOTES = [(page, path, body) for page in PAGES
          for path, body in QUOTED_FILE.findall(page.read_text())]


@pytest.mark.parametrize("page,path,body", QUOTES,
                         ids=[f"{p.relative_to(ROOT)}:{path}" for p, path, _ in QUOTES])
def test_a_quoted_file_matches_the_file(page: Path, path: str, body: str) -> None:
    source = ROOT / path
    assert source.is_file(), f"{page.relative_to(ROOT)} quotes {path}, which does not exist"
    assert is_excerpt(lines_of(body), lines_of(source.read_text())), (
        f"{page.relative_to(ROOT)}: the block quoting {path} no longer matches it")


def test_the_link_checker_sees_links_and_skips_code() -> None:
    page = "See [a](x.md#b), ![shot](s.png) and [web](https://example.com).\n" \
           "```sh\n[not a link](nowhere.md)\n```\n`[nor](this.md)`\n"
    assert LINK.findall(prose(page)) == ["x.md#b", "s.png", "https://example.com"]
    assert generator().slug("`POST /v1/jobs/{job_id}/cancel`") == "post-v1jobsjob_idcancel"
    assert generator().slug("Http.request: PagePagination") == "httprequest-pagepagination"
