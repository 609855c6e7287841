"""The Queue function's modules (functions/queue/function), imported in-process as one
package under a name of their own (each folder's package is called ``function``)."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

FOLDER = Path(__file__).resolve().parents[2] / "functions" / "queue" / "function"
PACKAGE = "stepline_queue_function"

if PACKAGE not in sys.modules:
    spec = importlib.util.spec_from_file_location(
        PACKAGE, FOLDER / "__init__.py", submodule_search_locations=[str(FOLDER)])
    assert spec is not None and spec.loader is not None
    sys.modules[PACKAGE] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sys.modules[PACKAGE])
message = importlib.import_module(f"{PACKAGE}.message")
