"""``python -m bench.bounded``: what bounding tenant expressions costs per evaluation —
a step's config rendered in process (the common, shape-bounded templates) against a
worker round trip (CEL, and the templates and JMESPath that need one). Prints the caller's CPU, the
workers' CPU and the wall time per evaluation; the figures in ``stepline.bounded``'s
docstring come from it."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from stepline import bounded, templates

ROUNDS = 2000
CONTEXT = {"payload": {"id": 7, "name": "Ana", "tags": ["a", "b"], "items": list(range(20))},
           "job": {"id": "8c4e"}, "step": {"key": "fetch"}, "attempt": 1}
CONFIG_FAST = {"url": "https://api.example.com/orders/{{ payload.id }}",
               "headers": {"x-name": "{{ payload.name | lower }}"}, "body": "{{ payload }}"}
CONFIG_SLOW = {"body": "{% for t in payload.tags %}{{ t }},{% endfor %}"}


def workers_cpu_s() -> float:
    """CPU seconds the shared pool's (idle, so all) workers have used."""
    ticks = 0
    for worker in bounded.shared()._idle:
        with open(f"/proc/{worker.process.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


async def per_call(call: Callable[[], Awaitable[Any]]) -> tuple[float, float, float]:
    """Microseconds of the caller's CPU, the workers' CPU and wall time per call."""
    await call()  # warm: compiled, cached, the worker started
    cpu, workers, wall = time.process_time(), workers_cpu_s(), time.perf_counter()
    for _ in range(ROUNDS):
        await call()
    return ((time.process_time() - cpu) / ROUNDS * 1e6,
            (workers_cpu_s() - workers) / ROUNDS * 1e6,
            (time.perf_counter() - wall) / ROUNDS * 1e6)


async def main() -> None:
    cases = {
        "render, in process (3 templates)": lambda: templates.render(CONFIG_FAST, CONTEXT),
        "render, in a worker ({% for %})": lambda: templates.render(CONFIG_SLOW, CONTEXT),
        "CEL in a worker": lambda: bounded.cel("payload.id > 5", CONTEXT, what="when"),
        "JMESPath, in process (no multi-select)": lambda: bounded.jmespath(
            "items[?@ > `10`]", CONTEXT["payload"], what="expression"),
        "JMESPath, in a worker": lambda: bounded.jmespath(
            "items[?@ > `10`].[@]", CONTEXT["payload"], what="expression"),
    }
    print(f"{'evaluation':40} {'caller CPU µs':>14} {'worker CPU µs':>14} {'wall µs':>10}")
    for name, call in cases.items():
        cpu, workers, wall = await per_call(call)
        print(f"{name:40} {cpu:14.0f} {workers:14.0f} {wall:10.0f}")
    bounded.shared().close()


if __name__ == "__main__":
    asyncio.run(main())
