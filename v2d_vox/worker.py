"""One shard, start to end: rows -> task -> writer, then the metadata parquet, then the stats.

A task turns one row into a metadata record and the samples to write: ``CurateTask`` reads, probes
and runs the subsampler chain (download, reprocess), ``ScanTask`` checks a sample, ``CleanTask`` copies
the good ones. Rows run on a bounded thread pool (I/O, PyAV and ffmpeg release the GIL) and are written
in input order, so output does not depend on timing. A task may also have ``batch_samples`` and
``finish(results)``: rows' results are then gathered in order until they hold that many output samples
and handed to ``finish`` before they are written (CurateTask runs batched model steps there, on the GPU
when present, while the pool goes on with the next rows). Every row ends with exactly one metadata
record, and ``NNNNN_stats.json`` is written last: its presence is what makes the shard done."""

from __future__ import annotations

import contextvars
import itertools
import time
import traceback
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import pyarrow as pa

from subsamplers import build_chain

from . import __version__, subtitles
from .checks import CleanTask, ScanTask
from .config import Job, Limits
from .errors import FAILED_TO_SUBSAMPLE, STATUSES, SUCCESS, SampleError, SourceBlocked, SubsampleError
from .ffmpeg import run_plan, sweep_stale
from .layout import Layout
from .plan import MediaPlan
from .redo import KeptRow, merge_rows
from .sample import Sample, audio_member, video_member
from .sources import SOURCES, Row
from .subsampler import Chain
from .timing import collecting, stage
from .writers import WRITERS, write_metadata, write_stats


class Task(Protocol):
    schema: pa.Schema | None  # of the metadata parquet; None: inferred from the records

    def __call__(self, row: Row) -> tuple[Row, list[Sample]]: ...

    def stats(self, records: list[Row]) -> dict[str, Any]: ...


def plan_media(chain: Chain, sample: Sample, limits: Limits | None = None) -> MediaPlan:
    """Filters (raise `Filtered`), then the media steps fill in the plan of the one ffmpeg pass."""
    with stage("filter"):
        for step in chain.stage("meta"):
            step.check(sample)
    plan = MediaPlan()
    for step in chain.stage("media"):
        step.plan(plan, sample)
        plan.steps.append(step.describe())
    subtitles.to_clips(plan, sample.key, sample.meta.get("subtitles"))
    max_clips = (limits or Limits()).max_clips_per_source
    if len(plan.layout.spans or ()) > max_clips:  # each clip is a branch (and its memory) in one ffmpeg
        raise SubsampleError(f"over limit: {len(plan.layout.spans)} clips, over max_clips_per_source={max_clips}")
    return plan


def apply_plan(chain: Chain, plan: MediaPlan, sample: Sample) -> list[Sample]:
    """The one fused media pass (none for an identity plan), then the array steps before the first batched
    one on every output."""
    with stage("ffmpeg"):
        outputs = [sample] if plan.is_identity and not sample.pieces else run_plan(plan, sample)
    with stage("array"):
        for out in outputs:
            for step in chain.array_split()[0]:
                step.apply(out)
    return outputs


def run_batched(chain: Chain, outputs: list[Sample]) -> None:
    """The array steps from the first batched one on, over outputs of one or several sources."""
    with stage("array"):
        for step in chain.array_split()[1]:
            step.apply_batch(outputs)


def run_chain(chain: Chain, sample: Sample, limits: Limits | None = None) -> list[Sample]:
    """The whole chain on one source: what a row gets when nothing is batched across rows."""
    outputs = apply_plan(chain, plan_media(chain, sample, limits), sample)
    run_batched(chain, outputs)
    return outputs


def _seconds_out(plan: MediaPlan, sample: Sample, outputs: list[Sample]) -> dict[str, float]:
    """Seconds of video and of audio in the outputs: each clip's span (else the source's duration), counted
    for the streams the plan keeps and the output still holds media for."""
    info = sample.meta["probe"]
    video, audio = plan.streams(info)
    out = {"video_seconds_out": 0.0, "audio_seconds_out": 0.0}
    for o in outputs:
        span = o.meta.get("span") if o.meta else None
        seconds = (span[1] - span[0]) if span else (info.get("duration") or 0.0)
        if video and video_member(o.files):
            out["video_seconds_out"] += seconds
        if audio and audio_member(o.files):
            out["audio_seconds_out"] += seconds
    return {k: round(v, 3) for k, v in out.items()}


def _flat_probe(info: dict[str, Any]) -> dict[str, Any]:
    v, a = info.get("video") or {}, info.get("audio") or {}
    return {
        "format": info["format"], "duration": info["duration"], "has_video": info["has_video"],
        "has_audio": info["has_audio"], "width": v.get("width"), "height": v.get("height"),
        "fps": v.get("fps"), "vfr": v.get("vfr"), "video_codec": v.get("codec"),
        "audio_codec": a.get("codec"), "sample_rate": a.get("sample_rate"), "channels": a.get("channels"),
    }


def _fail(record: Row, error: Exception) -> None:
    """A row's failure as its status and message; a bug must cost one sample, not the shard."""
    if isinstance(error, SampleError):
        record["status"], record["error_message"] = error.status, str(error)
        return
    record["status"] = FAILED_TO_SUBSAMPLE
    record["error_message"] = f"internal error: {type(error).__name__}: {str(error)[:200]}"
    traceback.print_exception(error)


# Every record has every key from the start: the parquet's columns are inferred from the first record.
_NO_PROBE = dict.fromkeys([*_flat_probe({"format": None, "duration": None, "has_video": None, "has_audio": None}),
                           "bytes_downloaded", "source_bytes", "video_seconds_out", "audio_seconds_out"])


class CurateTask:
    """Fetch a row's media from the job's source and run the subsampler chain on it."""

    schema = None

    def __init__(self, job: Job):
        self.job, self.chain, self.fetch = job, build_chain(job.subsamplers), SOURCES[job.source][1]
        self.batch_samples = max((getattr(s, "batch_size", 1) for s in self.chain.array_split()[1]), default=1)

    def __call__(self, row: Row) -> tuple[Row, list[Sample]]:
        """-> (metadata record, output samples). Never raises: failures become a status and a message."""
        if isinstance(row, KeptRow):  # retry: a row whose earlier outcome stays
            return row.record, row.samples
        record: Row = {"key": row["key"], "status": SUCCESS, "error_message": None, "outputs": 0,
                       **{k: v for k, v in row.items() if k != "key"}, **_NO_PROBE}
        outputs: list[Sample] = []
        try:
            sample = self.fetch(self.job, row, self.chain.source_spans(row))
            size = None if sample.pieces else len(sample.media)  # a source fetched in sections: its size is unknown
            record["source_bytes"] = size
            record["bytes_downloaded"] = size if sample.fetched is None else sample.fetched
            if "probe" in sample.meta:
                record.update(_flat_probe(sample.meta["probe"]))
            plan = plan_media(self.chain, sample, self.job.limits)
            outputs = apply_plan(self.chain, plan, sample)
            record["outputs"] = len(outputs)
            record.update(_seconds_out(plan, sample, outputs))
        except SourceBlocked:  # the shard stops, not done: a rerun retries it
            raise
        except Exception as e:
            _fail(record, e)
        return record, outputs

    def finish(self, results: list[tuple[Row, list[Sample]]]) -> None:
        """The batched steps over several rows' outputs at once; if a batch fails, each row is run alone so
        a bad sample costs only its own row (which then keeps no outputs)."""
        results = [(record, outputs) for record, outputs in results if outputs]
        try:
            run_batched(self.chain, [out for _, outputs in results for out in outputs])
        except Exception:
            for record, outputs in results:
                try:
                    run_batched(self.chain, outputs)
                except Exception as e:
                    _fail(record, e)
                    outputs.clear()
                    record.update(outputs=0, video_seconds_out=0.0, audio_seconds_out=0.0)

    def stats(self, records: list[Row]) -> dict[str, Any]:
        by_status = Counter(r["status"] for r in records)
        status_dict = Counter(r["error_message"] or SUCCESS for r in records)
        return {"successes": by_status[SUCCESS], **{s: by_status[s] for s in STATUSES if s != SUCCESS},
                "bytes_downloaded": sum(r.get("bytes_downloaded") or 0 for r in records),
                "source_bytes": sum(r.get("source_bytes") or 0 for r in records),
                "media_seconds": media_seconds(records),
                "status_dict": dict(sorted(status_dict.items())), "subsamplers": self.job.subsamplers}


def media_seconds(records: list[Row]) -> dict[str, float]:
    """Seconds of video and audio probed in the sources and written in the outputs, from the records."""
    def total(field: str, has: str | None = None) -> float:
        return round(sum(r.get(field) or 0.0 for r in records if has is None or r.get(has)), 3)

    return {"video_in": total("duration", "has_video"), "audio_in": total("duration", "has_audio"),
            "video_out": total("video_seconds_out"), "audio_out": total("audio_seconds_out")}


TASKS: dict[str, Callable[[Job], Task]] = {"curate": CurateTask, "scan": ScanTask, "clean": CleanTask}


def ordered_map(pool: ThreadPoolExecutor, fn: Callable, items: Iterable, window: int) -> Iterator:
    """pool.map that keeps at most `window` items in flight (bounded memory) and yields in order."""
    it = iter(items)

    def submit(x: Any) -> Any:  # each item in a copy of this context, so `timing.stage` reaches the shard's totals
        return pool.submit(contextvars.copy_context().run, fn, x)

    pending = deque(submit(x) for x in itertools.islice(it, window))
    while pending:
        yield pending.popleft().result()
        pending.extend(submit(x) for x in itertools.islice(it, 1))


def gathered(results: Iterable[tuple[Row, list[Sample]]], size: int) -> Iterator[list[tuple[Row, list[Sample]]]]:
    """Results in order, in groups that hold at least ``size`` output samples (the last may hold fewer):
    memory stays bounded by one group."""
    group: list[tuple[Row, list[Sample]]] = []
    count = 0
    for result in results:
        group.append(result)
        count += len(result[1])
        if count >= size:
            yield group
            group, count = [], 0
    if group:
        yield group


def process_shard(job: Job, shard_id: int, on_sample: Callable[[], None] | None = None) -> dict[str, Any]:
    """Run shard ``shard_id`` of ``job`` and return its stats (also written, last, as NNNNN_stats.json)."""
    layout = Layout(job.output_folder)
    layout.clear_stale(shard_id)
    sweep_stale()  # ffmpeg work dirs of killed workers on this machine
    rows = SOURCES[job.source][0](job, shard_id)
    if job.retry:
        rows = merge_rows(job, layout, shard_id, rows)
    task = TASKS[job.task](job)
    writer = WRITERS[job.output_format](layout, shard_id)
    start = time.time()
    records, written = [], set()
    finish = getattr(task, "finish", None)
    try:
        with collecting() as seconds, ThreadPoolExecutor(job.thread_count) as pool:
            results = ordered_map(pool, task, rows, 2 * job.thread_count)
            for group in gathered(results, getattr(task, "batch_samples", 1)):
                if finish:  # on a pool thread: a forked worker's main thread may hold its parent's dead OpenMP pool
                    pool.submit(contextvars.copy_context().run, finish, group).result()
                for record, outputs in group:
                    repeated = next((out.key for out in outputs if out.key in written), None)
                    if repeated is not None:  # a second sample under one key would overwrite or shadow the first
                        message = f"duplicate key {repeated!r}: a sample with this key is already in the shard"
                        record.update(status=FAILED_TO_SUBSAMPLE, outputs=0, error_message=message)
                        outputs = []
                    with stage("write"):
                        for out in outputs:
                            writer.write(out)
                            written.add(out.key)
                    records.append(record)
                    if on_sample:
                        on_sample()
            with stage("write"):
                writer.close()
                write_metadata(layout, shard_id, records, task.schema)
    except BaseException:
        writer.abort()  # an open temp file must not outlive the attempt (pool workers are reused)
        raise
    end = time.time()
    stats = {"shard_id": shard_id, "task": job.task, "count": len(records), "outputs": writer.count,
             "bytes_written": writer.bytes, "duration": round(end - start, 3), "start_time": start,
             "end_time": end, "v2d_vox_version": __version__, "seconds": seconds.rounded(), **task.stats(records)}
    write_stats(layout, shard_id, stats)
    return stats
