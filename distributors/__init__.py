"""Distributors only run shards. Each module has

    run(job, shard_ids, *, on_sample=None, **distributor_args) -> Iterator[tuple[int, str | None]]

which runs ``v2d_vox.worker.process_shard(job, shard_id)`` once for each shard id, wherever it runs
them, and yields ``(shard_id, error)`` as each ends (``error`` None when it ended without one). The
runner (``v2d_vox.runner``) owns the rest: which shards to run, the done-check, retries, progress.
``REPORTS_SAMPLES`` says whether ``on_sample`` is called once per finished sample."""

from __future__ import annotations

import importlib
from types import ModuleType

NAMES = ("multiprocessing", "pyspark", "slurm")


def get(name: str) -> ModuleType:
    """A distributor module, imported only when used (pyspark is heavy)."""
    from v2d_vox.errors import ConfigError

    if name not in NAMES:
        raise ConfigError(f"distributor={name!r}; choose one of {NAMES}")
    return importlib.import_module(f"distributors.{name}_distributor")
