"""Processes x threads on one machine. Uses fork where available: workers inherit the imported
modules (no seconds of re-imports per worker, no ``__main__`` guard needed).

Workers ignore Ctrl-C (the terminal sends it to the whole process group): the parent decides. When the
run is closed early (Ctrl-C, an error in the caller) the workers are killed at once, not drained: each
sends its pid from the initializer, so the parent needs none of the pool's internals (the pool then finds
its workers dead and terminates any that had not reported yet). On Linux each worker is also killed by
the kernel when its parent dies (``kill -9`` of the main process)."""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing as mp
import os
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool

from v2d_vox.config import Job
from v2d_vox.worker import process_shard

REPORTS_SAMPLES = True
_queue = None


def _init(queue, pids) -> None:
    global _queue
    _queue = queue
    pids.put(os.getpid())
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if os.uname().sysname == "Linux":  # PR_SET_PDEATHSIG = 1: die with the parent, never orphaned
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
        if os.getppid() == 1:  # the parent died before prctl took effect
            os._exit(1)


def _tick() -> None:
    _queue.put(1)


def _one(job: Job, shard_id: int) -> None:
    process_shard(job, shard_id, on_sample=_tick)


def run(job: Job, shard_ids: list[int], *, on_sample: Callable[[], None] | None = None,
        processes_count: int | None = None) -> Iterator[tuple[int, str | None]]:
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    queue, pids = ctx.SimpleQueue(), ctx.SimpleQueue()

    def drain() -> None:  # samples finished in the workers -> on_sample, in this process
        while queue.get() is not None:
            if on_sample:
                on_sample()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    processes = max(1, min(processes_count or os.cpu_count() or 1, len(shard_ids) or 1))
    pool = ProcessPoolExecutor(processes, mp_context=ctx, initializer=_init, initargs=(queue, pids))
    finished = False
    try:
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
        finished = True
    finally:
        if not finished:  # stopped early: kill the workers instead of waiting for their shards
            while not pids.empty():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pids.get(), signal.SIGKILL)
        pool.shutdown(wait=finished, cancel_futures=True)
        queue.put(None)
        reader.join(timeout=5)
