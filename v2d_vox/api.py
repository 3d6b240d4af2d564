"""The public entry points. Each prepares a Job, then `run_job` hands its shards to a distributor."""

from __future__ import annotations

import multiprocessing as mp
import re
from typing import Any

import fsspec

from distributors import get as get_distributor

from .config import INCREMENTAL_MODES, Job, ReaderConfig, load_config
from .errors import ConfigError, V2DError
from .logger import JobLogger, format_summary
from .reprocess import reprocess as reprocess  # re-exported: the CLI and v2d_vox.reprocess
from .scan import scan as scan
from .sharding import INPUTS, TableSpec, shard_tables
from .subsampler import Chain
from .writers import TMP

_OURS = re.compile(r"^\d{5}(\.tar|\.parquet|_media\.parquet|_stats\.json)?$")


def _guard_spawn() -> None:
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
    if distributor == "multiprocessing":
        args.setdefault("progress", progress)
        args.setdefault("total_samples", total_samples)
    if todo:
        run(job, todo, logger.shard_done, **args)
    summary = logger.summary(shard_ids, done)
    if fs.exists(f"{root}/{TMP}") and not fs.ls(f"{root}/{TMP}"):
        fs.rm(f"{root}/{TMP}", recursive=True)
    print(format_summary(summary), flush=True)
    return summary


def download(
    url_list: str | list[str],
    output_folder: str = "dataset",
    *,
    input_format: str = "auto",
    url_col: str = "url",
    caption_col: str | None = None,
    clip_col: str | None = None,
    save_additional_columns: list[str] | None = None,
    samples_per_shard: int = 1000,
    config: str | dict = "default",
    output_format: str = "webdataset",
    processes_count: int | None = None,
    thread_count: int = 8,
    timeout: float = 30.0,
    connect_timeout: float = 10.0,
    retries: int = 3,
    max_size_mb: float = 1024.0,
    user_agent: str = ReaderConfig.user_agent,
    incremental_mode: str = "incremental",
    max_shard_retry: int = 1,
    distributor: str = "multiprocessing",
    distributor_args: dict[str, Any] | None = None,
    enable_wandb: bool = False,
    wandb_project: str = "v2d_vox",
    progress: bool = True,
) -> dict[str, Any]:
    """Download the URLs of one or more tables into webdataset shards and return the job summary.

    Args:
        url_list: a table file, a list of them, or a folder (csv, tsv, parquet, json, jsonl, txt);
            local paths or fsspec URLs.
        output_folder: where shards go (local path or fsspec URL).
        input_format: "auto" (from the extension) or one of csv|tsv|parquet|json|jsonl|txt.
        url_col, caption_col, clip_col: column names; clip_col holds [[start, end], ...] in seconds.
        save_additional_columns: extra columns to keep in the metadata; None keeps all of them.
        samples_per_shard: input rows per shard (clips may make more output samples).
        config: a preset name (default, voxceleb, audio16k, esc50, ...), a YAML path or a dict.
        output_format: webdataset (tar) | files (a folder per shard) | parquet (bytes in columns).
        processes_count, thread_count: processes (multiprocessing) x threads per shard.
        timeout, connect_timeout, retries, max_size_mb, user_agent: HTTP reading.
        incremental_mode: "incremental" skips shards already done; "overwrite" clears old output first.
        max_shard_retry: times a failed shard is retried.
        distributor: multiprocessing | pyspark | slurm; distributor_args go to it.
        enable_wandb, wandb_project: log per-shard stats and the summary to wandb.
        progress: show progress bars (the summary is printed either way).
    """
    _guard_spawn()
    if incremental_mode not in INCREMENTAL_MODES:
        raise ConfigError(f"incremental_mode={incremental_mode!r}; choose one of {INCREMENTAL_MODES}")
    subsamplers = load_config(config)["subsamplers"]
    Chain.from_specs(subsamplers)  # fail fast on unknown names or arguments
    get_distributor(distributor)
    job = Job(output_folder=output_folder, subsamplers=subsamplers, output_format=output_format,
              thread_count=thread_count,
              reader=ReaderConfig(connect_timeout=connect_timeout, timeout=timeout, retries=retries,
                                  max_size_mb=max_size_mb, user_agent=user_agent))
    distributor_args = {"max_shard_retry": max_shard_retry, **(distributor_args or {})}
    if distributor == "multiprocessing":
        distributor_args.setdefault("processes_count", processes_count)
    if incremental_mode == "overwrite":
        clear_output(output_folder)
    fs, root = fsspec.core.url_to_fs(output_folder)
    fs.makedirs(root, exist_ok=True)
    spec = TableSpec(input_format, url_col, caption_col, clip_col, save_additional_columns, samples_per_shard)
    n_shards, rows = shard_tables(url_list, output_folder, spec)
    return run_job(job, list(range(n_shards)), distributor=distributor, distributor_args=distributor_args,
                   enable_wandb=enable_wandb, wandb_project=wandb_project, progress=progress,
                   total_samples=rows)
