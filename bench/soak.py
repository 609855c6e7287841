"""``python -m bench.soak [seconds] [mode]``: the platform under steady load for a long
run (10 minutes by default, through RabbitMQ), the resident memory of each of its
processes sampled every 30 s, to see that none of them grows. Not part of ``make bench``
(too long); its last figures are in bench/README.md."""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from bench.__main__ import AMQP_URL, scratch_database
from bench.stack import chain, create_workflow, stack, start
from bench.throughput import IN_FLIGHT_JOBS

SAMPLE_EVERY_S = 30.0
JOBS_PER_S = 40  # 120 steps/s: well inside what the platform sustains on two cores


async def soak(database_url: str, mode: str, seconds: float, log_dir: Path) -> list[dict]:
    samples: list[dict] = []
    with stack(database_url, mode, AMQP_URL, log_dir) as s:
        workflow_id = await create_workflow(s.api, "bench soak", chain(3))
        began = time.monotonic()
        async with await psycopg.AsyncConnection.connect(database_url,
                                                         autocommit=True) as conn:
            next_sample = next_count = began
            started = running = 0
            while (elapsed := time.monotonic() - began) < seconds:
                now = time.monotonic()
                if now >= next_count:
                    cur = await conn.execute(
                        "SELECT count(*) FILTER (WHERE status = 'running'), count(*) FROM jobs")
                    running, total = await cur.fetchone()
                    next_count = now + 1.0
                if now >= next_sample:
                    samples.append({"s": round(elapsed), "jobs": total, "running": running,
                                    "rss_mb": {k: round(v, 1) for k, v in s.rss_mb().items()}})
                    print(json.dumps(samples[-1]), flush=True)
                    next_sample += SAMPLE_EVERY_S
                if running < IN_FLIGHT_JOBS:
                    await start(s.api, workflow_id, {"n": started})
                    started += 1
                    running += 1
                await asyncio.sleep(1 / JOBS_PER_S)
        await s.api.aclose()
    return samples


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 600.0
    mode = sys.argv[2] if len(sys.argv) > 2 else "rabbitmq"
    with tempfile.TemporaryDirectory(prefix="stepline-soak-") as tmp, \
            scratch_database() as database_url:
        samples = asyncio.run(soak(database_url, mode, seconds, Path(tmp)))
    first, last = samples[0]["rss_mb"], samples[-1]["rss_mb"]
    print("\nRSS, first sample -> last (MB):")
    for name in first:
        print(f"  {name:<16}{first[name]:8.1f} -> {last.get(name, float('nan')):8.1f}")


if __name__ == "__main__":
    main()
