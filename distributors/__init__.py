"""Distributors only run shards. Each module has

    run(job, shard_ids, *, on_sample=None, **distributor_args) -> Iterator[tuple[int, str | None]]

which runs ``v2d_vox.worker.process_shard(job, shard_id)`` once for each shard id, wherever it runs
them, and yields ``(shard_id, error)`` as each ends (``error`` None when it ended without one). The
runner (``v2d_vox.runner``) owns the rest: which shards to run, the done-check, retries, progress.
``REPORTS_SAMPLES`` says whether ``on_sample`` is called once per finished sample."""

from __future__ import annotations

import importlib
import inspect
from types import ModuleType
from typing import Any

NAMES = ("multiprocessing", "pyspark", "slurm")


def get(name: str) -> ModuleType:
    """A distributor module, imported only when used (pyspark is heavy)."""
    from v2d_vox.errors import ConfigError

    if name not in NAMES:
        raise ConfigError(f"distributor={name!r}; choose one of {NAMES}")
    return importlib.import_module(f"distributors.{name}_distributor")


def check_args(name: str, args: dict[str, Any]) -> None:
    """Refuse ``distributor_args`` the distributor does not take, before any work starts (a distributor
    whose ``run`` takes ``**options``, such as Slurm's sbatch options, accepts any key)."""
    from v2d_vox.errors import ConfigError

    params = inspect.signature(get(name).run).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    known = sorted(n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY and n != "on_sample")
    unknown = sorted(set(args) - set(known))
    if unknown:
        raise ConfigError(f"distributor {name!r} does not take distributor_args {unknown}; it takes {known}")
