"""Processes x threads on one machine. Uses fork where available: workers inherit the imported
modules (no seconds of re-imports per worker, no ``__main__`` guard needed)."""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool

from v2d_vox.config import Job
from v2d_vox.worker import process_shard

REPORTS_SAMPLES = True
_queue = None


def _init(queue) -> None:
    global _queue
    _queue = queue


def _tick() -> None:
    _queue.put(1)


def _one(job: Job, shard_id: int) -> None:
    process_shard(job, shard_id, on_sample=_tick)


def run(job: Job, shard_ids: list[int], *, on_sample: Callable[[], None] | None = None,
        processes_count: int | None = None) -> Iterator[tuple[int, str | None]]:
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    queue = ctx.SimpleQueue()

    def drain() -> None:  # samples finished in the workers -> on_sample, in this process
        while queue.get() is not None:
            if on_sample:
                on_sample()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    processes = max(1, min(processes_count or os.cpu_count() or 1, len(shard_ids) or 1))
    try:
        with ProcessPoolExecutor(processes, mp_context=ctx, initializer=_init, initargs=(queue,)) as pool:
            futures = {pool.submit(_one, job, sid): sid for sid in shard_ids}
            for fut in as_completed(futures):
                try:
                    fut.result()
                except BrokenProcessPool as e:
                    yield futures[fut], f"worker process died ({e})"
                except Exception as e:
                    yield futures[fut], f"{type(e).__name__}: {e}"
                else:
                    yield futures[fut], None
    finally:
        queue.put(None)
        reader.join(timeout=5)
