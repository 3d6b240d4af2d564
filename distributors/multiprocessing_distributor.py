"""Processes x threads on one machine. Uses fork where available: workers inherit the imported
modules (no seconds of re-imports per worker, no ``__main__`` guard needed)."""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from tqdm import tqdm

from v2d_vox.config import Job
from v2d_vox.worker import process_shard

_queue = None


def _init(queue) -> None:
    global _queue
    _queue = queue


def _tick() -> None:
    _queue.put(1)


def _one(job: Job, shard_id: int) -> dict[str, Any]:
    return process_shard(job, shard_id, on_sample=_tick)


def run(job: Job, shard_ids: list[int], on_shard: Callable[[int, dict | None], None],
        processes_count: int | None = None, max_shard_retry: int = 1, progress: bool = True,
        total_samples: int | None = None) -> list[int]:
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    queue = ctx.SimpleQueue()
    processes = max(1, min(processes_count or os.cpu_count() or 1, len(shard_ids) or 1))
    bar_shards = tqdm(total=len(shard_ids), desc="shards", unit="shard", disable=not progress, position=0)
    bar_samples = tqdm(total=total_samples, desc="samples", unit="sample", disable=not progress, position=1)

    def drain() -> None:
        while queue.get() is not None:
            bar_samples.update(1)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    todo = list(shard_ids)
    try:
        for attempt in range(max_shard_retry + 1):
            failed = []
            with ProcessPoolExecutor(processes, mp_context=ctx, initializer=_init, initargs=(queue,)) as pool:
                futures = {pool.submit(_one, job, sid): sid for sid in todo}
                for fut in as_completed(futures):
                    sid = futures[fut]
                    try:
                        stats = fut.result()
                    except BrokenProcessPool as e:
                        failed.append(sid)
                        tqdm.write(f"shard {sid:05d}: worker process died ({e}); attempt {attempt + 1}")
                        continue
                    except Exception as e:
                        failed.append(sid)
                        tqdm.write(f"shard {sid:05d} failed (attempt {attempt + 1}): {type(e).__name__}: {e}")
                        continue
                    bar_shards.update(1)
                    on_shard(sid, stats)
            todo = sorted(failed)
            if not todo:
                break
    finally:
        queue.put(None)
        reader.join(timeout=5)
        bar_samples.close()
        bar_shards.close()
    return todo
