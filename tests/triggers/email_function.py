"""The Email function's modules (functions/email/function), imported in-process the way
its server imports them: as one package, so its relative imports hold. Each function
folder's package is called ``function``; here it is given a name of its own."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

FOLDER = Path(__file__).resolve().parents[2] / "functions" / "email" / "function"
PACKAGE = "stepline_email_function"


def _load_package() -> None:
    if PACKAGE in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(
        PACKAGE, FOLDER / "__init__.py", submodule_search_locations=[str(FOLDER)]
    )
    assert spec is not None and spec.loader is not None
    package = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = package
    spec.loader.exec_module(package)


_load_package()
message = importlib.import_module(f"{PACKAGE}.message")
mailbox = importlib.import_module(f"{PACKAGE}.mailbox")
poll = importlib.import_module(f"{PACKAGE}.poll")
func = importlib.import_module(f"{PACKAGE}.func")
