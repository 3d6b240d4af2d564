"""Counters and resumable progress of the loader.

Workers cannot share Python objects with the training process, so each worker keeps a ``LoaderStats``
and attaches what changed since its last batch to the next batch (``batch["__stats__"]``, plus a
stats-only item when its stream ends). The loader merges these in the main process: counts are exact
for everything delivered, with no shared memory or locks, and they travel with the batches in order.
"""

from __future__ import annotations

import bisect
from collections import Counter, deque
from dataclasses import dataclass, field

SampleId = tuple[str, int]  # (shard url, ordinal of the sample in its shard)


@dataclass
class LoaderStats:
    """Skipped samples and broken shards, by reason (e.g. ``decode_errors``, ``shard_errors``)."""

    counts: Counter = field(default_factory=Counter)
    errors: deque = field(default_factory=lambda: deque(maxlen=20))  # recent messages, for debugging
    dropped: list[SampleId] = field(default_factory=list)  # worker side: done without being delivered
    shard_sizes: dict[str, int] = field(default_factory=dict)  # worker side: shards read to the end

    def add(self, reason: str, exn: BaseException | None = None, n: int = 1) -> None:
        self.counts[reason] += n
        if exn is not None:
            self.errors.append(f"{reason}: {type(exn).__name__}: {exn}"[:300])

    def drop(self, sample: dict, reason: str, exn: BaseException | None = None) -> None:
        """Count a sample that will never be delivered, and remember it so a resumed run skips it too."""
        self.add(reason, exn)
        self.dropped.append((sample["__url__"], sample["__index__"]))

    def take(self) -> dict | None:
        """Worker side: what changed since the last call, or None."""
        if not (self.counts or self.dropped or self.shard_sizes or self.errors):
            return None
        delta = dict(counts=dict(self.counts), errors=list(self.errors), dropped=self.dropped,
                     shard_sizes=self.shard_sizes)
        self.counts, self.dropped, self.shard_sizes = Counter(), [], {}
        self.errors.clear()
        return delta

    def merge(self, delta: dict) -> None:
        """Main side: add a worker's delta (its ``dropped``/``shard_sizes`` go to ``Progress``)."""
        self.counts.update(delta["counts"])
        self.errors.extend(delta["errors"])

    def exclude(self, sample: dict) -> None:
        """Remember a sample left out on purpose (``select``): not a skip, but a resumed run need not read it."""
        self.dropped.append((sample["__url__"], sample["__index__"]))

    @property
    def skipped(self) -> int:
        return sum(self.counts.values())


def _insert(ranges: list[list[int]], i: int) -> None:
    """Add ``i`` to sorted disjoint half-open ``ranges``, merging neighbours."""
    k = bisect.bisect_right(ranges, [i, float("inf")])
    if k and ranges[k - 1][1] > i:
        return
    left = k and ranges[k - 1][1] == i
    right = k < len(ranges) and ranges[k][0] == i + 1
    if left and right:
        ranges[k - 1][1] = ranges.pop(k)[1]
    elif left:
        ranges[k - 1][1] = i + 1
    elif right:
        ranges[k][0] = i
    else:
        ranges.insert(k, [i, i + 1])


def _contains(ranges: list[list[int]], i: int) -> bool:
    k = bisect.bisect_right(ranges, [i, float("inf")])
    return bool(k) and ranges[k - 1][1] > i


@dataclass
class Progress:
    """Where one rank is in its data: pass number and every sample already delivered (or dropped).

    ``consumed`` maps shard url -> sorted half-open index ranges, which stays small because shards are
    read in order and a shuffle buffer only leaves holes near the reading front. ``sizes`` records shards
    a worker read to the end, so a resumed run need not even open a shard that is fully consumed.
    """

    epoch: int = 0
    batches: int = 0  # batches delivered in this pass
    consumed: dict[str, list[list[int]]] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)

    def add(self, ident: SampleId) -> None:
        _insert(self.consumed.setdefault(ident[0], []), int(ident[1]))

    def __contains__(self, ident: SampleId) -> bool:
        ranges = self.consumed.get(ident[0])
        return ranges is not None and _contains(ranges, int(ident[1]))

    def shard_done(self, url: str) -> bool:
        size = self.sizes.get(url)
        return size is not None and sum(b - a for a, b in self.consumed.get(url, ())) >= size

    def state_dict(self) -> dict:
        return dict(epoch=self.epoch, batches=self.batches,
                    consumed={u: [list(r) for r in rs] for u, rs in self.consumed.items()}, sizes=dict(self.sizes))

    @classmethod
    def from_state(cls, state: dict) -> Progress:
        return cls(state["epoch"], state["batches"],  # a "window" key of older states is ignored
                   {u: [list(r) for r in rs] for u, rs in state["consumed"].items()}, dict(state["sizes"]))
