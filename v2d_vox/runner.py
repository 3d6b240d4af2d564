"""Running a Job: checks shared by every entry point, then `run_job` hands shards to a distributor."""

from __future__ import annotations

import multiprocessing as mp
import re
from typing import Any

import fsspec

from distributors import get as get_distributor

from .config import INCREMENTAL_MODES, Job
from .errors import ConfigError, V2DError
from .logger import JobLogger, format_summary
from .sharding import INPUTS
from .writers import TMP

_OURS = re.compile(r"^\d{5}(\.tar|\.parquet|_media\.parquet|_stats\.json)?$")


def guard_spawn() -> None:
    if getattr(mp.current_process(), "_inheriting", False):
        raise V2DError(
            "v2d_vox was called while a child process was starting (spawn start method): put the call "
            "under `if __name__ == \"__main__\":` in your script")


def clear_output(output_folder: str) -> None:
    """Delete what v2d_vox wrote here (shards, inputs, temp files), and nothing else."""
    fs, root = fsspec.core.url_to_fs(output_folder)
    if not fs.exists(root):
        return
    for path in fs.ls(root, detail=False):
        name = path.rstrip("/").rsplit("/", 1)[-1]
        if _OURS.match(name) or name in (INPUTS, TMP, "_job.json"):
            fs.rm(path, recursive=True)


def _check_job_file(fs, root: str, job: Job) -> None:
    """Resuming with another config would mix two datasets in one folder: refuse."""
    path = f"{root}/_job.json"
    if fs.exists(path):
        old = Job.from_json(fs.cat(path).decode())
        if (old.subsamplers, old.output_format) != (job.subsamplers, job.output_format):
            raise ConfigError(f"{root} holds a job with another config or output_format; "
                              "use incremental_mode='overwrite' or a new output folder")
    with fs.open(path, "w") as f:
        f.write(job.to_json())


def run_job(job: Job, shard_ids: list[int], *, distributor: str = "multiprocessing",
            distributor_args: dict[str, Any] | None = None, enable_wandb: bool = False,
            wandb_project: str = "v2d_vox", progress: bool = True, total_samples: int | None = None,
            ) -> dict[str, Any]:
    run = get_distributor(distributor)
    fs, root = fsspec.core.url_to_fs(job.output_folder)
    _check_job_file(fs, root, job)
    done = [s for s in shard_ids if fs.exists(f"{root}/{s:05d}_stats.json")]
    todo = [s for s in shard_ids if s not in set(done)]
    logger = JobLogger(job.output_folder, {"job": job.to_json(), "distributor": distributor},
                       enable_wandb, wandb_project)
    args = dict(distributor_args or {})
    args.setdefault("progress", progress)
    if distributor == "multiprocessing":
        args.setdefault("total_samples", total_samples)
    if todo:
        run(job, todo, logger.shard_done, **args)
    summary = logger.summary(shard_ids, done)
    if fs.exists(f"{root}/{TMP}") and not fs.ls(f"{root}/{TMP}"):
        fs.rm(f"{root}/{TMP}", recursive=True)
    print(format_summary(summary), flush=True)
    return summary


def prepare(output_folder: str, incremental_mode: str, distributor: str, distributor_args: dict[str, Any] | None,
            processes_count: int | None, max_shard_retry: int) -> dict[str, Any]:
    """Validate the run options, clear old output in overwrite mode; return the distributor's arguments."""
    guard_spawn()
    if incremental_mode not in INCREMENTAL_MODES:
        raise ConfigError(f"incremental_mode={incremental_mode!r}; choose one of {INCREMENTAL_MODES}")
    get_distributor(distributor)
    args = {"max_shard_retry": max_shard_retry, **(distributor_args or {})}
    if distributor == "multiprocessing":
        args.setdefault("processes_count", processes_count)
    if incremental_mode == "overwrite":
        clear_output(output_folder)
    fs, root = fsspec.core.url_to_fs(output_folder)
    fs.makedirs(root, exist_ok=True)
    return args
