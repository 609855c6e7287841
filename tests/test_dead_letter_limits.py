"""What a dead letter keeps: at most ``BODY_MAX_BYTES`` of its body (cut at a character
boundary, ``truncated`` set), header values bounded the same way, and nothing
PostgreSQL cannot store (a NUL), so a huge or hostile event is kept as evidence without
growing the table by its size."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row
from test_delivery import pending_event, start

from stepline.deadletter_limits import BODY_MAX_BYTES, HEADER_MAX_BYTES, bounded
from stepline_control.onemachine.children import Child, url_of
from support import post, running_function


def test_a_small_body_is_kept_whole() -> None:
    kept = bounded(body='{"a": 1}', headers={"ce-id": "x"})
    assert (kept.body, kept.headers, kept.truncated) == ('{"a": 1}', {"ce-id": "x"}, False)


def test_a_big_body_is_cut_at_a_character_boundary() -> None:
    kept = bounded(body="é" * BODY_MAX_BYTES, headers={})
    assert kept.truncated is True
    assert len(kept.body.encode()) <= BODY_MAX_BYTES
    assert set(kept.body) == {"é"}  # no half character at the cut


def test_nul_is_replaced_and_long_headers_are_cut() -> None:
    kept = bounded(body="a\x00b", headers={"h": "v\x00" + "x" * HEADER_MAX_BYTES, "n": 7})
    assert kept.body == "a\ufffdb"
    assert "\x00" not in kept.headers["h"] and len(kept.headers["h"]) <= HEADER_MAX_BYTES
    assert kept.headers["n"] == "7" and kept.truncated is True
    assert bounded(body=None, headers={}).body is None


@pytest.fixture
def transform(database_url: str, tmp_path: Path) -> Iterator[Child]:
    with running_function("Transform", database_url, tmp_path) as child:
        yield child


async def test_a_huge_malformed_event_is_kept_capped(database_url: str, transform: Child
                                                    ) -> None:
    await start(database_url, {"items": []})
    headers, _ = pending_event(database_url)
    headers = dict(headers, **{"ce-id": "huge"})
    body = json.dumps({"job": "nope", "junk": "x" * (4 * BODY_MAX_BYTES)}).encode()
    response = post(url_of(transform), headers=headers, content=body)
    assert response.status_code == 400
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        dead = conn.execute("SELECT body, truncated FROM dead_letters").fetchall()
    assert len(dead) == 1 and dead[0]["truncated"] is True
    assert body.decode().startswith(dead[0]["body"])
    assert len(dead[0]["body"]) == BODY_MAX_BYTES
