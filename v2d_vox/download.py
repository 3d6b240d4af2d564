"""`download`: URL tables in, shards out."""

from __future__ import annotations

from typing import Any

from subsamplers import build_chain

from .config import Job, ReaderConfig, load_config
from .logger import format_summary
from .runner import prepare, run_job
from .sharding import TableSpec, shard_tables


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
    subsamplers = load_config(config)["subsamplers"]
    build_chain(subsamplers)  # fail fast on unknown names or arguments
    job = Job(output_folder=output_folder, subsamplers=subsamplers, output_format=output_format,
              thread_count=thread_count,
              reader=ReaderConfig(connect_timeout=connect_timeout, timeout=timeout, retries=retries,
                                  max_size_mb=max_size_mb, user_agent=user_agent))
    prepare(output_folder, incremental_mode, distributor)
    spec = TableSpec(input_format, url_col, caption_col, clip_col, save_additional_columns, samples_per_shard)
    n_shards, rows = shard_tables(url_list, output_folder, spec)
    summary = run_job(job, list(range(n_shards)), distributor=distributor, distributor_args=distributor_args,
                      processes_count=processes_count, max_shard_retry=max_shard_retry,
                      enable_wandb=enable_wandb, wandb_project=wandb_project, progress=progress,
                      total_samples=rows)
    print(format_summary(summary), flush=True)
    return summary
