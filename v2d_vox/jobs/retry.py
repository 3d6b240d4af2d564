"""``retry``: run again only the rows of a done job whose status is one of some statuses (by default the
failures), shard by shard, in the same folder. Each shard with such rows is rewritten to hold its earlier
outputs plus the new ones, with the same keys in the same order (`v2d_vox.redo`); a shard without them
is not touched. It is the saved job run again as a resume, so every distributor, attempts, progress, the
job summary and wandb work as for ``download``."""

from __future__ import annotations

import dataclasses
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any

import pyarrow.parquet as pq

from .. import redo
from ..config import Job
from ..errors import FAILED_TO_DOWNLOAD, FAILED_TO_SUBSAMPLE, STATUSES, ConfigError
from ..layout import JOB, RETRY, Layout, metadata_name
from ..logger import format_summary
from ..options import (
    Distributor,
    DistributorArgs,
    EnableWandb,
    Help,
    MaxShardRetry,
    ProcessesCount,
    Progress,
    WandbProject,
    documented,
)
from ..runner import prepare, run_job

RETRIED = (FAILED_TO_DOWNLOAD, FAILED_TO_SUBSAMPLE)


def _statuses(layout: Layout, shard_id: int, set_aside: bool) -> dict[str, str]:
    """key -> status of a shard's rows, from its parquet (or the copy a killed retry set aside)."""
    name = f"{RETRY}/{metadata_name(shard_id)}" if set_aside else metadata_name(shard_id)
    with layout.fs.open(layout.path(name), "rb") as f:
        table = pq.read_table(f, columns=["key", "status"])
    return dict(zip(table.column("key").to_pylist(), table.column("status").to_pylist()))


def format_retry(r: dict[str, Any]) -> str:
    before = ", ".join(f"{k}={v}" for k, v in r["before"].items()) or "none"
    after = ", ".join(f"{k}={v}" for k, v in r["after"].items()) or "none"
    return (f"retried {r['rows']} rows in {len(r['shards'])} shards ({before}); now: {after}; "
            f"{r['recovered']} recovered")


@documented
def retry(
    output_folder: Annotated[str, Help("a folder written by download or reprocess (webdataset output)")],
    *,
    status: Annotated[list[str] | None, Help(
        "the statuses whose rows are run again (None: failed_to_download and failed_to_subsample)",
        STATUSES)] = None,
    processes_count: ProcessesCount = None,
    thread_count: Annotated[int | None, Help("threads per process (None: the job's)")] = None,
    max_shard_retry: MaxShardRetry = 1,
    distributor: Distributor = "multiprocessing",
    distributor_args: DistributorArgs = None,
    enable_wandb: EnableWandb = False,
    wandb_project: WandbProject = "v2d_vox",
    progress: Progress = True,
) -> dict[str, Any]:
    """Run again the rows whose status matches and rewrite only their shards, keeping every other sample."""
    layout = Layout(output_folder)
    if not layout.exists(JOB):
        raise ConfigError(f"{output_folder!r} holds no _job.json: not a folder written by download or reprocess")
    job = Job.from_dict(layout.read_json(JOB))
    if job.task != "curate" or job.output_format != "webdataset":
        raise ConfigError(f"retry rewrites webdataset shards of download or reprocess; {output_folder!r} holds "
                          f"task={job.task!r}, output_format={job.output_format!r}")
    statuses = list(status or RETRIED)
    if unknown := set(statuses) - set(STATUSES):
        raise ConfigError(f"unknown status(es) {sorted(unknown)}; choose from {STATUSES}")
    prepare(output_folder, "incremental", distributor, distributor_args, processes_count)
    done, pending = layout.done(), redo.pending(layout)
    with ThreadPoolExecutor(16) as pool:
        found = dict(zip(sorted(done), pool.map(lambda s: _statuses(layout, s, False), sorted(done))))
        found.update(zip(sorted(pending), pool.map(lambda s: _statuses(layout, s, True), sorted(pending))))
    rows = {sid: {k: st for k, st in keys.items() if st in statuses} for sid, keys in found.items()}
    rows = {sid: keys for sid, keys in rows.items() if keys or sid in pending}
    for sid in sorted(rows):
        redo.set_aside(layout, sid)
    retry_job = dataclasses.replace(job, output_folder=output_folder, retry=statuses,  # the folder may have moved
                                    thread_count=thread_count or job.thread_count)
    try:
        summary = run_job(retry_job, sorted(done | pending), distributor=distributor,
                          distributor_args=distributor_args, processes_count=processes_count,
                          max_shard_retry=max_shard_retry, enable_wandb=enable_wandb, wandb_project=wandb_project,
                          progress=progress)
    finally:
        layout.write_json(JOB, job.to_dict())  # the folder's job stays the original one
        redo.finish(layout)
        layout.tidy()
    now = layout.done()
    after: Counter = Counter()
    for sid, keys in rows.items():
        if sid in now:
            new = _statuses(layout, sid, False)
            after.update(new[k] for k in keys)
    before = Counter(st for keys in rows.values() for st in keys.values())
    summary["retry"] = {"statuses": statuses, "shards": sorted(rows), "rows": sum(before.values()),
                        "before": dict(before), "after": dict(after),
                        "recovered": sum(n for st, n in after.items() if st not in statuses)}
    if "status" in summary:
        print(format_summary(summary), flush=True)
    print(format_retry(summary["retry"]), flush=True)
    return summary
