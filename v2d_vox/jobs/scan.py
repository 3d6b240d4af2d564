"""Scan shards for samples a training run cannot use: decode every frame with PyAV, check lengths and
streams, find duplicate keys across shards and identities without a positive or a negative.

A scan is a job like ``download``: the per-sample checks (``checks.ScanTask``) run shard by shard on any
distributor, with resume, and leave ``NNNNN.parquet`` (one record per sample) and ``NNNNN_stats.json``
in the report folder. The cross-shard checks then run on those records, and ``write_clean`` is a second
job (``checks.CleanTask``) that copies the shards without the bad samples."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from typing import Annotated, Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..checks import BAD_SAMPLES, SCHEMA, Checks, flag_duplicates, flag_identities
from ..config import NO_OUTPUT, Job, make_limits
from ..layout import Layout, metadata_name
from ..options import (
    Distributor,
    DistributorArgs,
    Help,
    IncrementalMode,
    MaxShardRetry,
    ProcessesCount,
    ResourceLimits,
    documented,
)
from ..runner import prepare, resumes, run_job
from ..shards import check_not_inputs, list_shards, shard_ids

SUMMARY = "summary.json"


def format_scan(s: dict[str, Any]) -> str:
    lines = [f"scanned {s['samples']} samples in {s['shards']} shards ({s['wall_seconds']} s): "
             f"{s['bad_samples']} bad", *(f"  {n:>6} x {reason}" for reason, n in s["reasons"].items())]
    if s["shards_failed"]:
        lines.append(f"unreadable shards: {s['shards_failed']}")
    if s.get("clean"):
        lines.append(f"clean shards: {s['clean']['samples']} samples in {s['clean']['folder']}")
    return "\n".join(lines)


@documented
def scan(
    shards: Annotated[str | list[str], Help(
        "a brace pattern, a list of tars or a folder of them; local paths or fsspec URLs")],
    report_folder: Annotated[str, Help(
        "gets summary.json, bad_samples.parquet (shard, index, key, reasons, ...), and the per-shard "
        "records and stats (NNNNN.parquet, NNNNN_stats.json) a rerun resumes from")] = "scan_report",
    *,
    min_duration: Annotated[float, Help(
        "required clip length in seconds (the shortest decoded stream counts)")] = 0.0,
    require_audio: Annotated[bool, Help("flag samples without a decodable audio stream")] = False,
    require_video: Annotated[bool, Help("flag samples without a decodable video stream")] = False,
    av_tolerance: Annotated[float | None, Help(
        "largest allowed gap in seconds between audio and video durations (None: no check)")] = 0.1,
    identity_field: Annotated[str | None, Help(
        "json field naming the speaker/identity; when given, every sample needs a positive (same identity, "
        "other video: json video_id, else source_key, else the key without its _NNNNN clip suffix) and a "
        "negative (another identity)")] = None,
    write_clean: Annotated[str | None, Help(
        "a folder to write the shards again without the bad samples (numbered as the inputs, members "
        "copied byte for byte into deterministic tars)")] = None,
    processes_count: ProcessesCount = None,
    thread_count: Annotated[int, Help("threads per process, each decoding one sample at a time")] = 2,
    incremental_mode: IncrementalMode = "incremental",
    max_shard_retry: MaxShardRetry = 1,
    distributor: Distributor = "multiprocessing",
    distributor_args: DistributorArgs = None,
    progress: Annotated[bool, Help("show progress bars and print the summary")] = True,
    limits: ResourceLimits = None,
) -> dict[str, Any]:
    """Decode every sample of some shards and report the corrupt, too short or otherwise unusable ones."""
    checks = Checks(min_duration, require_audio, require_video, av_tolerance, identity_field)
    urls = list_shards(shards)
    ids = sorted(shard_ids(urls))
    check_not_inputs(report_folder, urls)
    if write_clean:
        check_not_inputs(write_clean, urls)
    run = dict(distributor=distributor, distributor_args=distributor_args, processes_count=processes_count,
               max_shard_retry=max_shard_retry, progress=progress)
    job = Job(output_folder=report_folder, output_format=NO_OUTPUT, thread_count=thread_count, source="shards",
              input_shards=urls, task="scan", options={"checks": asdict(checks)}, limits=make_limits(limits))
    old = Layout(report_folder)
    if not resumes(old, job):
        incremental_mode = "overwrite"  # records made with other checks are stale: scan afresh
    layout = prepare(report_folder, incremental_mode, distributor, distributor_args, processes_count)
    ran = run_job(job, ids, **run)
    records = _records(layout, ids)
    flag_duplicates(records)
    if identity_field:
        flag_identities(records)
    bad = [r for r in records if r["reasons"]]
    categories = Counter(reason.split(":", 1)[0] for r in bad for reason in r["reasons"])
    summary: dict[str, Any] = {
        "shards": len(urls), "shards_skipped": ran["shards_skipped"],
        "shards_failed": [shard_ids(urls)[i] for i in ran["shards_failed"]],
        "samples": len(records), "bad_samples": len(bad), "reasons": dict(categories.most_common()),
        "checks": asdict(checks), "wall_seconds": ran["wall_seconds"],
    }
    if identity_field:
        good = [r for r in records if not r["reasons"]]
        summary["identities"] = len({r["identity"] for r in good})
        summary["videos"] = len({(r["identity"], r["video_id"]) for r in good})
    with layout.fs.open(layout.tmp(BAD_SAMPLES), "wb") as f:
        pq.write_table(pa.Table.from_pylist(bad, schema=SCHEMA), f)
    layout.commit(BAD_SAMPLES)
    if write_clean:
        clean = Job(output_folder=write_clean, thread_count=thread_count, source="shards", input_shards=urls,
                    task="clean", options={"report": report_folder}, limits=job.limits)
        prepare(write_clean, "overwrite", distributor)  # the bad set may have changed: copy afresh
        copied = run_job(clean, ids, **run)
        summary["clean"] = {"folder": write_clean, "shards": copied["shards_done"], "samples": copied["outputs"]}
    layout.write_json(SUMMARY, summary)
    if progress:
        print(format_scan(summary), flush=True)
    return summary


def _records(layout: Layout, ids: list[int]) -> list[dict[str, Any]]:
    """Every scanned sample's record, shards in order (those that failed contribute nothing)."""
    done = layout.done()
    tables = []
    for sid in ids:
        if sid in done:
            with layout.fs.open(layout.path(metadata_name(sid)), "rb") as f:
                tables.append(pq.read_table(f, schema=SCHEMA))
    return pa.concat_tables(tables).to_pylist() if tables else []
