"""Distributors only schedule shards: each calls ``v2d_vox.worker.process_shard(job, shard_id)`` for
the shards it is given, retries failures, and reports each finished shard through ``on_shard``.
A shard is done when its ``_stats.json`` exists; distributors never judge success otherwise.

Contract: ``run(job, shard_ids, on_shard, **distributor_args) -> list[int]`` returns the shards
that still failed after retries."""

from __future__ import annotations

import importlib

NAMES = ("multiprocessing", "pyspark", "slurm")


def get(name: str):
    """The `run` function of a distributor, imported only when used (pyspark is heavy)."""
    from v2d_vox.errors import ConfigError

    if name not in NAMES:
        raise ConfigError(f"distributor={name!r}; choose one of {NAMES}")
    return importlib.import_module(f"distributors.{name}_distributor").run
