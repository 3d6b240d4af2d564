"""Reprocess existing shards: every sample of every input tar runs through a config's subsamplers
again, as if it had just been downloaded. Keys and json fields are kept; the media is probed afresh
(so filters and the media plan see what is in the tar now, not what the source was), and a
``reprocess`` entry is appended to each sample's json for provenance (``sources.fetch_sample``).
It is the same job as ``download`` with existing shards as its source, so it runs on every
distributor, resumes and reports the same way."""

from __future__ import annotations

from typing import Any

from subsamplers import build_chain

from .config import Job, load_config
from .logger import format_summary
from .runner import prepare, run_job
from .shards import check_not_inputs, list_shards, shard_ids


def reprocess(
    input_shards: str | list[str],
    output_folder: str = "reprocessed",
    *,
    config: str | dict = "default",
    metadata_only: bool = False,
    output_format: str = "webdataset",
    processes_count: int | None = None,
    thread_count: int = 8,
    incremental_mode: str = "incremental",
    max_shard_retry: int = 1,
    distributor: str = "multiprocessing",
    distributor_args: dict[str, Any] | None = None,
    enable_wandb: bool = False,
    wandb_project: str = "v2d_vox",
    progress: bool = True,
) -> dict[str, Any]:
    """Run existing shards through new subsamplers into new shards, keeping keys and metadata.

    Args:
        input_shards: a brace pattern ("data/{00000..00009}.tar"), a list of tars or a folder of them;
            local paths or fsspec URLs; this project's layout or video2dataset's.
        output_folder: where the new shards go; one output shard per input shard. Inputs named
            NNNNN.tar keep their name; others are numbered 00000.. in sorted order.
        config: a preset name (default, voxceleb, audio16k, ...), a YAML path or a dict.
        metadata_only: probe and run only the config's filters (meta subsamplers), then drop_media:
            write json (and txt) only samples, the metadata parquet and stats. For re-filtering, audits.
        output_format: webdataset (tar) | files (a folder per shard) | parquet (bytes in columns).
        processes_count, thread_count: processes (multiprocessing) x threads per shard.
        incremental_mode: "incremental" skips shards already done; "overwrite" clears old output first.
        max_shard_retry: times a failed shard is retried.
        distributor: multiprocessing | pyspark | slurm; distributor_args go to it.
        enable_wandb, wandb_project: log per-shard stats and the summary to wandb.
        progress: show progress bars and print the summary.
    """
    subsamplers = load_config(config)["subsamplers"]
    chain = build_chain(subsamplers)  # fail fast on unknown names or arguments
    if metadata_only:
        subsamplers = [spec for spec, step in zip(subsamplers, chain.steps) if step.stage == "meta"]
        subsamplers.append({"name": "drop_media"})
    urls = list_shards(input_shards)
    check_not_inputs(output_folder, urls)
    job = Job(output_folder=output_folder, subsamplers=subsamplers, output_format=output_format,
              thread_count=thread_count, source="shards", input_shards=urls)
    prepare(output_folder, incremental_mode, distributor)
    summary = run_job(job, sorted(shard_ids(urls)), distributor=distributor, distributor_args=distributor_args,
                      processes_count=processes_count, max_shard_retry=max_shard_retry,
                      enable_wandb=enable_wandb, wandb_project=wandb_project, progress=progress)
    if progress:
        print(format_summary(summary), flush=True)
    return summary
