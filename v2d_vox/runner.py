"""The one run loop. ``download``, ``reprocess`` and ``scan`` are jobs over shards; this module owns
what they share: argument checks, the done-check (``NNNNN_stats.json`` exists), attempts, progress, and
the job's totals (``_job_summary.json``, `v2d_vox.totals`) written at the end of every run.
A distributor only runs the shard ids it is given, once each, and says how each ended."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import signal
import sys
import threading
import time
from typing import Any

import distributors

from .config import INCREMENTAL_MODES, Job
from .errors import ConfigError, V2DError
from .ffmpeg import sweep_stale
from .layout import JOB, Layout, shard_name
from .logger import JobLogger, Progress, format_summary
from .shards import shard_ids
from .totals import job_stats


def guard_spawn() -> None:
    if getattr(mp.current_process(), "_inheriting", False):
        raise V2DError(
            "v2d_vox was called while a child process was starting (spawn start method): put the call "
            "under `if __name__ == \"__main__\":` in your script")


def prepare(output_folder: str, incremental_mode: str, distributor: str,
            distributor_args: dict[str, Any] | None = None, processes_count: int | None = None) -> Layout:
    """Check the run options, clear old output in overwrite mode, and create the folder: every bad
    option fails here, in one line, before any input is read."""
    guard_spawn()
    if incremental_mode not in INCREMENTAL_MODES:
        raise ConfigError(f"incremental_mode={incremental_mode!r}; choose one of {INCREMENTAL_MODES}")
    if processes_count is not None and processes_count < 1:
        raise ConfigError(f"processes_count must be >= 1 (or None: one per core), got {processes_count}")
    if distributor_args is not None and not isinstance(distributor_args, dict):
        raise ConfigError(f"distributor_args must be a mapping, got {distributor_args!r}")
    distributors.check_args(distributor, distributor_args or {})
    layout = Layout(output_folder)
    if layout.fs.isfile(layout.root):
        raise ConfigError(f"output folder {output_folder!r} is a file")
    if incremental_mode == "overwrite":
        layout.clear()
    layout.fs.makedirs(layout.root, exist_ok=True)
    return layout


def resumes(layout: Layout, job: Job) -> bool:
    """Whether ``job`` may continue what the folder holds: nothing yet, or the same dataset (config, task,
    format) from the same sources; for shard inputs, every shard id both jobs name comes from the same tar
    (a later run over more shards continues, another set of tars under the same ids does not)."""
    if not layout.exists(JOB):
        return True
    old = Job.from_dict(layout.read_json(JOB))
    if not job.same_dataset(old) or job.source != old.source:
        return False
    mine, theirs = shard_ids(job.input_shards), shard_ids(old.input_shards)
    return all(mine[i] == theirs[i] for i in mine.keys() & theirs.keys())


def _check_job_file(layout: Layout, job: Job) -> None:
    """Resuming with another config or other inputs would mix two datasets in one folder: refuse."""
    if not resumes(layout, job):
        raise ConfigError(f"{layout.folder} holds a job with another config, output_format or input shards; "
                          "use incremental_mode='overwrite' or a new output folder")
    layout.write_json(JOB, job.to_dict())


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """``kill PID`` stops a job like Ctrl-C does (only the main thread can install handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupted(layout: Layout, todo: list[int], summary: dict[str, Any]) -> None:
    """After Ctrl-C: remove what unfinished shards left, and say where the job stands and how to go on."""
    for sid in todo:
        if not layout.is_done(sid):
            layout.clear_stale(sid)
    sweep_stale()
    layout.tidy()
    print(format_summary(summary), file=sys.stderr)
    print(f"interrupted: {summary['shards_done']} of {summary['shards_total']} shards done in {layout.folder}; "
          "run the same command again to resume (done shards are skipped)", file=sys.stderr, flush=True)


def run_job(job: Job, shard_ids: list[int], *, distributor: str = "multiprocessing",
            distributor_args: dict[str, Any] | None = None, processes_count: int | None = None,
            max_shard_retry: int = 1, enable_wandb: bool = False, wandb_project: str = "v2d_vox",
            progress: bool = True, total_samples: int | None = None) -> dict[str, Any]:
    """Run every shard not done yet, retrying failed ones ``max_shard_retry`` times; write the job's totals
    (``_job_summary.json``, over every done shard of ``shard_ids``) and return them with this run's numbers."""
    if max_shard_retry < 0:
        raise ConfigError(f"max_shard_retry must be >= 0, got {max_shard_retry}")
    dist = distributors.get(distributor)
    args = dict(distributor_args or {})
    if dist.REPORTS_SAMPLES:  # the machine-local distributor: processes_count is its size
        args.setdefault("processes_count", processes_count)
    layout = Layout(job.output_folder)
    _check_job_file(layout, job)
    done_before = sorted(layout.done() & set(shard_ids))
    todo = [s for s in shard_ids if s not in set(done_before)]
    logger = JobLogger(job, distributor, enable_wandb, wandb_project)
    bars = Progress(len(shard_ids), len(done_before), total_samples, dist.REPORTS_SAMPLES, progress)
    started = time.time()
    try:
        with _sigterm_as_interrupt():
            for attempt in range(1, max_shard_retry + 2):
                if not todo:
                    break
                failed = []
                with contextlib.closing(dist.run(job, todo, on_sample=bars.sample, **args)) as results:
                    for sid, error in results:
                        if layout.is_done(sid):  # done iff its stats exist, whatever the distributor said
                            logger.shard_done(sid, layout.read_stats(sid))
                            bars.shard()
                        else:
                            failed.append(sid)
                            bars.write(f"shard {shard_name(sid)} failed (attempt {attempt}/{max_shard_retry + 1}): "
                                       f"{error or 'no stats written'}")
                todo = sorted(failed)
    except KeyboardInterrupt:  # the distributor was closed on the way out: its workers are gone
        bars.close()
        _interrupted(layout, todo, _finish(job, layout, shard_ids, done_before, distributor, started, logger))
        raise
    finally:
        bars.close()
    summary = _finish(job, layout, shard_ids, done_before, distributor, started, logger)
    layout.tidy()
    return summary


def _finish(job: Job, layout: Layout, shard_ids: list[int], done_before: list[int], distributor: str,
            started: float, logger: JobLogger) -> dict[str, Any]:
    """Write the job's totals over every done shard (also after an interrupt) and return them with this
    run's numbers."""
    wall = time.time() - started
    done = layout.done()
    per_shard = {sid: layout.read_stats(sid) for sid in shard_ids if sid in done}
    ran = [sid for sid in per_shard if sid not in set(done_before)]
    samples = sum(per_shard[sid]["count"] for sid in ran)
    run = {"started": started, "wall_seconds": round(wall, 2), "shards_run": len(ran), "samples": samples,
           "samples_per_s": round(samples / wall, 2) if wall > 0 else None, "distributor": distributor,
           "task": job.task, "retry": job.retry}
    summary = job_stats(layout, per_shard, shard_ids, run)
    summary.update(shards_skipped=len(done_before), wall_seconds=run["wall_seconds"],
                   samples_per_s=run["samples_per_s"])
    logger.finish(summary)
    return summary
