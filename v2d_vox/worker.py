"""One shard, start to end: rows -> read -> probe -> subsampler chain -> writer -> parquet -> stats.

Rows run on a bounded thread pool (I/O and ffmpeg release the GIL) and are written in input
order, so output does not depend on timing. Every row ends with exactly one metadata record."""

from __future__ import annotations

import itertools
import time
import traceback
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import fsspec

from . import __version__
from .config import Job
from .errors import FAILED_TO_SUBSAMPLE, STATUSES, SUCCESS, SampleError
from .ffmpeg import run_plan
from .plan import MediaPlan
from .probe import probe
from .reader import read
from .reprocess import fetch_sample, tar_rows
from .sample import Sample
from .sharding import read_shard
from .subsampler import Chain
from .writers import TMP, WRITERS, write_metadata, write_stats

Row = dict[str, Any]


def run_chain(chain: Chain, sample: Sample) -> list[Sample]:
    """Filters, then the one fused media pass, then array steps on every output."""
    for step in chain.stage("meta"):
        step.check(sample)
    plan = MediaPlan()
    for step in chain.stage("media"):
        step.plan(plan, sample)
        plan.steps.append(step.describe())
    outputs = [sample] if plan.is_identity else run_plan(plan, sample)
    for out in outputs:
        for step in chain.stage("array"):
            step.apply(out)
    return outputs


def fetch_row(job: Job, row: Row) -> Sample:
    """A table row -> a probed Sample holding the downloaded bytes."""
    data = read(row["url"], job.reader)
    info = probe(data)
    meta = {k: v for k, v in row.items() if v is not None}
    meta["probe"] = info
    sample = Sample(row["key"], {info["ext"]: data}, meta)
    if row.get("caption"):
        sample.files["txt"] = str(row["caption"]).encode()
    return sample


def _flat_probe(info: dict[str, Any]) -> dict[str, Any]:
    v, a = info.get("video") or {}, info.get("audio") or {}
    return {
        "format": info["format"], "duration": info["duration"], "has_video": info["has_video"],
        "has_audio": info["has_audio"], "width": v.get("width"), "height": v.get("height"),
        "fps": v.get("fps"), "vfr": v.get("vfr"), "video_codec": v.get("codec"),
        "audio_codec": a.get("codec"), "sample_rate": a.get("sample_rate"), "channels": a.get("channels"),
    }


def process_row(job: Job, chain: Chain, fetch: Callable[[Job, Row], Sample], row: Row):
    """-> (metadata record, output samples). Never raises: failures become a status and a message."""
    record: Row = {"key": row["key"], "status": SUCCESS, "error_message": None, "outputs": 0,
                   **{k: v for k, v in row.items() if k != "key"}}
    record.update(dict.fromkeys(_flat_probe({"format": None, "duration": None, "has_video": None,
                                             "has_audio": None})))
    outputs: list[Sample] = []
    try:
        sample = fetch(job, row)
        record["bytes_downloaded"] = len(sample.media)
        if "probe" in sample.meta:
            record.update(_flat_probe(sample.meta["probe"]))
        outputs = run_chain(chain, sample)
        record["outputs"] = len(outputs)
    except SampleError as e:
        record["status"], record["error_message"] = e.status, str(e)
    except Exception as e:  # a bug must cost one sample, not the shard
        record["status"] = FAILED_TO_SUBSAMPLE
        record["error_message"] = f"internal error: {type(e).__name__}: {str(e)[:200]}"
        traceback.print_exc()
    return record, outputs


def ordered_map(pool: ThreadPoolExecutor, fn: Callable, items: Iterable, window: int) -> Iterator:
    """pool.map that keeps at most `window` items in flight (bounded memory) and yields in order."""
    it = iter(items)
    pending = deque(pool.submit(fn, x) for x in itertools.islice(it, window))
    while pending:
        yield pending.popleft().result()
        pending.extend(pool.submit(fn, x) for x in itertools.islice(it, 1))


SOURCES: dict[str, tuple[Callable[[Job, int], Iterable[Row]], Callable[[Job, Row], Sample]]] = {
    "table": (lambda job, shard_id: read_shard(job.output_folder, shard_id), fetch_row),
    "shards": (tar_rows, fetch_sample),
}


def process_shard(job: Job, shard_id: int, on_sample: Callable[[], None] | None = None) -> dict[str, Any]:
    fs, root = fsspec.core.url_to_fs(job.output_folder)
    for stale in fs.glob(f"{root}/{TMP}/{shard_id:05d}*"):
        fs.rm(stale, recursive=True)
    fs.makedirs(f"{root}/{TMP}", exist_ok=True)
    rows_of, fetch = SOURCES[job.source]
    chain = Chain.from_specs(job.subsamplers)
    writer = WRITERS[job.output_format](fs, root, shard_id)
    start = time.time()
    records = []
    with ThreadPoolExecutor(job.thread_count) as pool:
        work = partial(process_row, job, chain, fetch)
        for record, outputs in ordered_map(pool, work, rows_of(job, shard_id), 2 * job.thread_count):
            for out in outputs:
                writer.write(out)
            records.append(record)
            if on_sample:
                on_sample()
    writer.close()
    write_metadata(fs, root, shard_id, records)
    end = time.time()
    by_status = Counter(r["status"] for r in records)
    status_dict = Counter(r["error_message"] or SUCCESS for r in records)
    stats = {
        "shard_id": shard_id, "count": len(records), "successes": by_status[SUCCESS],
        **{s: by_status[s] for s in STATUSES if s != SUCCESS},
        "outputs": writer.count, "bytes_written": writer.bytes,
        "bytes_downloaded": sum(r.get("bytes_downloaded") or 0 for r in records),
        "duration": round(end - start, 3), "start_time": start, "end_time": end,
        "status_dict": dict(sorted(status_dict.items())), "subsamplers": job.subsamplers,
        "v2d_vox_version": __version__,
    }
    write_stats(fs, root, shard_id, stats)
    return stats
