"""``reprocess``: existing shards through new subsamplers into new shards.

Every sample of every input tar runs through a config's subsamplers again, as if it had just been
downloaded. Keys and json fields are kept; the media is probed afresh (so filters and the media plan see
what is in the tar now, not what the source was), and a ``reprocess`` entry is appended to each sample's
json for provenance (``sources.fetch_sample``). It is the same job as ``download`` with existing shards
as its source, so it runs on every distributor, resumes and reports the same way."""

from __future__ import annotations

from typing import Annotated, Any

from subsamplers import build_chain

from ..config import Job, load_config, make_limits
from ..logger import format_summary
from ..options import (
    Config,
    Distributor,
    DistributorArgs,
    EnableWandb,
    Help,
    IncrementalMode,
    MaxShardRetry,
    OutputFormat,
    ProcessesCount,
    Progress,
    ResourceLimits,
    ThreadCount,
    WandbProject,
    documented,
)
from ..runner import prepare, run_job
from ..shards import check_not_inputs, list_shards, shard_ids


@documented
def reprocess(
    input_shards: Annotated[str | list[str], Help(
        'a brace pattern ("data/{00000..00009}.tar"), a list of tars or a folder of them; local paths or '
        "fsspec URLs; this project's layout or video2dataset's")],
    output_folder: Annotated[str, Help(
        "where the new shards go, one per input shard: inputs named NNNNN.tar keep their name, others are "
        "numbered 00000.. in sorted order")] = "reprocessed",
    *,
    config: Config = "default",
    metadata_only: Annotated[bool, Help(
        "probe and run only the config's filters (meta subsamplers), then drop_media: write json (and txt) "
        "only samples, the metadata parquet and stats; for re-filtering and audits")] = False,
    output_format: OutputFormat = "webdataset",
    processes_count: ProcessesCount = None,
    thread_count: ThreadCount = 8,
    incremental_mode: IncrementalMode = "incremental",
    max_shard_retry: MaxShardRetry = 1,
    distributor: Distributor = "multiprocessing",
    distributor_args: DistributorArgs = None,
    enable_wandb: EnableWandb = False,
    wandb_project: WandbProject = "v2d_vox",
    progress: Progress = True,
    limits: ResourceLimits = None,
) -> dict[str, Any]:
    """Run existing shards through new subsamplers into new shards, keeping keys and metadata."""
    subsamplers = load_config(config)["subsamplers"]
    chain = build_chain(subsamplers)  # fail fast on unknown names or arguments
    if metadata_only:
        subsamplers = [spec for spec, step in zip(subsamplers, chain.steps) if step.stage == "meta"]
        subsamplers.append({"name": "drop_media"})
    urls = list_shards(input_shards)
    check_not_inputs(output_folder, urls)
    job = Job(output_folder=output_folder, subsamplers=subsamplers, output_format=output_format,
              thread_count=thread_count, source="shards", input_shards=urls, limits=make_limits(limits))
    prepare(output_folder, incremental_mode, distributor, distributor_args, processes_count)
    summary = run_job(job, sorted(shard_ids(urls)), distributor=distributor, distributor_args=distributor_args,
                      processes_count=processes_count, max_shard_retry=max_shard_retry,
                      enable_wandb=enable_wandb, wandb_project=wandb_project, progress=progress)
    print(format_summary(summary), flush=True)
    return summary
