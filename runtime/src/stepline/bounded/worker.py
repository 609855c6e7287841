"""A worker process of :mod:`stepline.bounded.pool`: ``python -m stepline.bounded.worker
MEMORY_MB [MODULE...]``. It imports the modules named (so a first evaluation does not
pay for them inside its deadline), caps its own address space, says it is ready, then
answers one pickled call at a time on stdin/stdout until stdin closes."""

from __future__ import annotations

import importlib
import os
import pickle
import resource
import sys
from typing import Any, BinaryIO

from stepline.bounded.pool import HEADER, READY

# imported before the cap: the evaluators' libraries, loaded once per worker
EVALUATORS = ("stepline.bounded.evaluators", "stepline.templates")


def main(argv: list[str]) -> None:
    memory_mb, modules = int(argv[0]), [*EVALUATORS, *argv[1:]]
    for name in modules:
        importlib.import_module(name)
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    # the answers get stdout's pipe to themselves: a library that prints cannot garble them
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    requests = sys.stdin.buffer
    _send(answers, READY)
    while (header := requests.read(HEADER.size)):
        (size,) = HEADER.unpack(header)
        answer = _answer(requests.read(size))
        _send(answers, HEADER.pack(len(answer)) + answer)


def _answer(request: bytes) -> bytes:
    try:
        fn, args, kwargs = pickle.loads(request)
        return _dump(("ok", fn(*args, **kwargs)))
    except MemoryError:
        return _dump(("memory", None))
    except Exception as exc:  # the caller re-raises it as the evaluation's outcome
        return _dump(("error", _portable(exc)))


def _dump(answer: tuple[str, Any]) -> bytes:
    return pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)


def _portable(exc: Exception) -> Exception:
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def _send(stream: BinaryIO, data: bytes) -> None:
    stream.write(data)
    stream.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
