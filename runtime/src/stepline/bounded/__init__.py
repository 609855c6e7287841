"""Bounded evaluation of what a tenant writes: templates, CEL, JMESPath and JSON Schemas
run where a runaway one cannot stall the platform — in a small pool of worker processes
with a wall-clock deadline (``Limits.timeout_s``, 1 s) and an address-space cap
(``Limits.memory_mb``, 256 MiB), killed and replaced on overrun. The caller's event loop
only waits; a concurrent step is never held up by more than the deadline.

Why a worker and not a thread or a signal: CEL's Rust core holds the GIL for as long as
it runs, and one C-level operation (``9 ** 9 ** 9``, ``'a' * 10**10``) cannot be
interrupted inside the process at all; only another process can be killed.

What it costs (``python -m bench.bounded`` on the 2-core development machine, shared
with other work at a load of ~7, so upper figures), per evaluation:

=========================================  ==========  ==========  =======
evaluation                                 caller CPU  worker CPU  wall
=========================================  ==========  ==========  =======
a step's config, 3 templates, in process   ~60 µs      —           ~190 µs
the same before (recompiled every time)    ~1,900 µs   —           —
a template in a worker (``{% for %}``)     ~180 µs     ~150 µs     ~1.1 ms
CEL in a worker                            ~240 µs     ~200 µs     ~1.5 ms
JMESPath in process (no multi-select)      ~100 µs     —           ~0.3 ms
JMESPath in a worker                       ~250 µs     ~270 µs     ~1.7 ms
=========================================  ==========  ==========  =======

A worker round trip costs ~0.4 ms of CPU in all: on every step it would take a fifth of
the ~2 ms of CPU a step may use at ~1,000 steps/s on 2 cores. So templates and JMESPath
expressions evaluate in process when their shape bounds them (:mod:`stepline.templates`,
:func:`stepline.bounded.evaluators.jmespath_fast`) — nearly all real ones — and go to a
worker only otherwise. CEL (Condition) always does: the CEL library shows Python no AST
to prove a bound from. A runaway's cost is its deadline, on one worker.

Results are bounded too: ``EXPRESSION_RESULT_MAX_BYTES`` of JSON for CEL and JMESPath,
:data:`stepline.templates.RESULT_MAX_BYTES` for a template."""

from __future__ import annotations

import atexit
import threading
from typing import Any

from stepline.bounded.pool import Limits, Overrun, Pool

__all__ = ["Limits", "Overrun", "Pool", "cel", "configure", "jmespath", "preload", "shared"]

EXPRESSION_RESULT_MAX_BYTES = 8 * 1024 * 1024

_shared: Pool | None = None
_limits = Limits()
_preload: list[str] = []
_lock = threading.Lock()


def configure(limits: Limits) -> None:
    """The limits of the process's pool, from the settings, at the edge (a host's start,
    the control plane's creation)."""
    global _limits
    with _lock:
        _limits = limits
        _renew()


def preload(*modules: str) -> None:
    """Modules a worker imports before its first evaluation (the edge of a component
    names those its calls need, so that no import counts against a deadline)."""
    with _lock:
        _preload.extend(m for m in modules if m not in _preload)
        _renew()


def shared() -> Pool:
    """The process's pool, started on first use."""
    with _lock:
        if _shared is None:
            _replace(Pool(_limits, preload=tuple(_preload)))
        return _shared


def _renew() -> None:
    if _shared is not None and (_shared.limits, _shared.preload) != (_limits, tuple(_preload)):
        _shared.close()
        _replace(Pool(_limits, preload=tuple(_preload)))


def _replace(pool: Pool) -> None:
    global _shared
    _shared = pool
    atexit.register(pool.close)  # the workers would outlive nothing, but say goodbye


async def cel(expression: str, variables: dict[str, Any], *, what: str) -> Any:
    """The value of a CEL expression over ``variables``."""
    from stepline.bounded import evaluators

    return await shared().run(evaluators.cel_value, expression, variables, what=what)


async def jmespath(expression: str, data: Any, *, what: str) -> Any:
    """The result of a JMESPath expression over ``data``: in process when its shape
    bounds it (:func:`~stepline.bounded.evaluators.jmespath_fast`), else in a worker."""
    from stepline.bounded import evaluators

    program = evaluators.jmespath_fast(expression)
    if program is not None:
        return evaluators.jmespath_in_process(program, data)
    return await shared().run(evaluators.jmespath_value, expression, data, what=what)
