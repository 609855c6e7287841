"""A local HTTP server standing in for a function: it answers each CloudEvent with the
statuses scripted for its id (then 200) and records every request."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Sink:
    script: dict[str, list[int]] = field(default_factory=dict)  # ce-id -> statuses, in order
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""

    def calls(self, event_id: str) -> int:
        return sum(1 for headers, _ in self.requests if headers.get("ce-id") == event_id)


@contextmanager
def sink(script: dict[str, list[int]] | None = None) -> Iterator[Sink]:
    state = Sink(script={k: list(v) for k, v in (script or {}).items()})
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            headers = {k.lower(): v for k, v in self.headers.items()}
            with lock:
                state.requests.append((headers, body))
                statuses = state.script.get(headers.get("ce-id", ""), [])
                status = statuses.pop(0) if statuses else 200
            self.send_response(status)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
