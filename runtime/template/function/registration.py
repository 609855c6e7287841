"""The body of ``POST /v1/functions`` that makes this function part of a platform's
catalog, from its spec: ``python -m function.registration <endpoint>`` prints it, where
the endpoint is the function's URL (one machine) or its queue's name (a cluster)."""

from __future__ import annotations

import json
import sys
from typing import Any

from .func import SPEC


def body(endpoint: str) -> dict[str, Any]:
    return {"name": SPEC.name, "kind": SPEC.kind, "visibility": SPEC.visibility,
            "description": SPEC.description, "config_schema": SPEC.config_schema,
            "endpoint": endpoint}


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m function.registration <URL or queue name>")
    print(json.dumps(body(sys.argv[1]), indent=2))
