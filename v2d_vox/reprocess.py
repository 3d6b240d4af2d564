"""Reprocess existing shards: every sample of every input tar runs through a config's subsamplers
again, as if it had just been downloaded. Keys and json fields are kept; the media is probed afresh
(so filters and the media plan see what is in the tar now, not what the source was), and a
``reprocess`` entry is appended to each sample's json for provenance.

The worker's ``SOURCES`` maps ``job.source == "shards"`` to `tar_rows` and `fetch_sample`, so
reprocessing runs on every distributor, resumes and reports exactly like ``download``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from . import __version__
from .config import Job, load_config
from .errors import DownloadError
from .options import (
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
    ThreadCount,
    WandbProject,
    documented,
)
from .probe import probe
from .runner import prepare, run_job
from .sample import MEDIA_EXTS, Sample, check_key
from .shards import Members, check_not_inputs, list_shards, read_tar, shard_ids
from .subsampler import Chain, Subsampler, register

PROVENANCE = "reprocess"


class TarRow(dict):
    """What the metadata parquet records for a sample (key, source shard), carrying the sample's
    members as an attribute so that the bytes reach `fetch_sample` but never the parquet."""

    def __init__(self, key: str, source_shard: str, members: Members):
        super().__init__(key=key, source_shard=source_shard)
        self.members = members


def tar_rows(job: Job, shard_id: int) -> Iterator[TarRow]:
    url = shard_ids(job.input_shards)[shard_id]
    for key, members in read_tar(url):
        yield TarRow(key, url, members)


def fetch_sample(job: Job, row: TarRow) -> Sample:
    """A tar sample -> a Sample with its old json, a fresh probe and a provenance entry."""
    files = dict(row.members)
    try:
        check_key(row["key"])
        meta = json.loads(files.pop("json", b"{}"))
    except ValueError as e:
        raise DownloadError(f"unreadable sample: {str(e)[:160]}") from None
    sample = Sample(row["key"], files, meta if isinstance(meta, dict) else {"json": meta})
    if sample.media_ext is None:
        raise DownloadError(f"no media member (has {', '.join(sorted(files)) or 'nothing'})")
    sample.meta["probe"] = probe(sample.media)
    step = {"source_shard": row["source_shard"], "subsamplers": job.subsamplers, "version": __version__}
    sample.meta[PROVENANCE] = [*sample.meta.get(PROVENANCE, []), step]
    return sample


@register("drop_media")
@dataclass
class DropMedia(Subsampler):
    """Last step of a metadata-only pass: outputs keep their json (and txt), not media or arrays."""

    stage = "array"

    def apply(self, sample: Sample) -> None:
        sample.files = {ext: data for ext, data in sample.files.items()
                        if ext not in MEDIA_EXTS and not ext.endswith("npy")}


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
) -> dict[str, Any]:
    """Run existing shards through new subsamplers into new shards, keeping keys and metadata."""
    subsamplers = load_config(config)["subsamplers"]
    chain = Chain.from_specs(subsamplers)  # fail fast on unknown names or arguments
    if metadata_only:
        subsamplers = [spec for spec, step in zip(subsamplers, chain.steps) if step.stage == "meta"]
        subsamplers.append({"name": "drop_media"})
    urls = list_shards(input_shards)
    check_not_inputs(output_folder, urls)
    job = Job(output_folder=output_folder, subsamplers=subsamplers, output_format=output_format,
              thread_count=thread_count, source="shards",
              input_shards=urls)
    distributor_args = prepare(output_folder, incremental_mode, distributor, distributor_args, processes_count,
                               max_shard_retry)
    return run_job(job, sorted(shard_ids(urls)), distributor=distributor,
                       distributor_args=distributor_args, enable_wandb=enable_wandb,
                       wandb_project=wandb_project, progress=progress)
