"""Seconds spent per stage of a shard (read, probe, filter, ffmpeg, array, write), for its stats.

The stages run in library code far from the worker (the reader, the probe, the ffmpeg pass), on a pool of
threads, so the worker does not pass a timer down: it opens ``collecting()`` for the shard, each row runs
in a copy of that context (``contextvars.copy_context().run``) and code wraps its work in ``stage(name)``.
Outside ``collecting()`` a stage costs one clock read and records nothing. Totals are summed over threads
(busy seconds, not wall time)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar


class Seconds:
    """Stage name -> seconds, safe to add to from many threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.totals: dict[str, float] = {}

    def add(self, name: str, seconds: float) -> None:
        with self._lock:
            self.totals[name] = self.totals.get(name, 0.0) + seconds

    def rounded(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in sorted(self.totals.items())}


_CURRENT: ContextVar[Seconds | None] = ContextVar("v2d_vox_stage_seconds", default=None)


@contextlib.contextmanager
def collecting() -> Iterator[Seconds]:
    """Stages timed inside this block (and in contexts copied from it) add up in the yielded totals."""
    seconds = Seconds()
    token = _CURRENT.set(seconds)
    try:
        yield seconds
    finally:
        _CURRENT.reset(token)


@contextlib.contextmanager
def stage(name: str) -> Iterator[None]:
    """Time the block as ``name`` in the current collection, if any (also when it raises)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds = _CURRENT.get()
        if seconds is not None:
            seconds.add(name, time.perf_counter() - start)
