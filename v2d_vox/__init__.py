"""v2d_vox: curate audio+video datasets into webdataset shards and stream them to training.

Importing the package is light: the entry points (``download``, ``reprocess``, ``scan``, ``recipe``,
``retry``, ``stats``, ``report``, ``presets``) and the
``loader`` (torch) load on first use, so ``subsamplers`` and ``distributors`` can import the core
modules without pulling in the engine that imports them back."""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {name: ".api" for name in ("download", "reprocess", "scan", "recipe", "retry", "stats", "report",
                                    "presets")}
__all__ = [*_LAZY, "loader", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "loader":
        return importlib.import_module(".loader", __name__)
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value  # later lookups skip this hook
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
