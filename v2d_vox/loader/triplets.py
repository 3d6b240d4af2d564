"""Streaming (anchor, positive, negative) triplets for triplet-loss training, with a bounded buffer.

Rules: the positive has the anchor's identity but comes from a *different video* (``decode.video_id``),
so the model cannot match clips by background or recording channel; the negative has another identity.

Every decoded sample is an anchor exactly once and stays in a FIFO buffer of ``buffer_size`` samples,
where it can serve as positive or negative for later anchors any number of times. An anchor that has no
positive or negative in the buffer yet waits (it stays buffered) until a matching sample arrives. It is
dropped, and counted, when it is evicted from the buffer while still waiting (``triplet_evicted``: its
identity has too few videos nearby in the stream, so raise ``buffer_size`` or shuffle shards more) or
when the stream ends (``triplet_unmatched``). Identities with a single video never yield anchors.
Choices use ``rng`` only, so the output is a deterministic function of the input order and the seed.

Data that cannot form triplets (no identity with two videos, or a single identity) must not make training
wait forever: until the first triplet the stage keeps the identities and videos it has seen. In resampled
mode (an endless stream) it raises ``NoTriplets`` with those counts once every shard has been read and
they show that no triplet is possible, or after ``patience`` samples without one; in finite mode a pass
that ends without a triplet warns with the counts.
"""

from __future__ import annotations

import random
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Iterator

from ..sample import JSON, identity
from .decode import video_id
from .state import LoaderStats


class _Buffer:
    """The last ``size`` samples, indexed by identity and video, plus the anchors still waiting."""

    def __init__(self, size: int):
        self.size = size
        self.samples: OrderedDict[int, dict] = OrderedDict()  # arrival number -> sample
        self.by_identity: dict[str, dict[str, list[int]]] = {}
        self.waiting: dict[str, list[int]] = {}  # identity -> arrival numbers of waiting anchors
        self.info: dict[int, tuple[str, str]] = {}

    def add(self, n: int, sample: dict, ident: str) -> dict | None:
        """Insert; return the evicted sample if it was still waiting to be an anchor."""
        evicted = None
        if len(self.samples) == self.size:
            old, old_sample = self.samples.popitem(last=False)
            old_ident, old_video = self.info.pop(old)
            videos = self.by_identity[old_ident]
            videos[old_video].remove(old)
            if not videos[old_video]:
                del videos[old_video]
            if not videos:
                del self.by_identity[old_ident]
            if old in self.waiting.get(old_ident, ()):
                self.waiting[old_ident].remove(old)
                evicted = old_sample
        vid = video_id(sample)
        self.samples[n] = sample
        self.info[n] = (ident, vid)
        self.by_identity.setdefault(ident, {}).setdefault(vid, []).append(n)
        self.waiting.setdefault(ident, []).append(n)
        return evicted

    def match(self, n: int, rng: random.Random) -> dict | None:
        """A triplet for anchor ``n``, or None if the buffer lacks a positive or a negative."""
        ident, vid = self.info[n]
        positives = [m for v, ms in self.by_identity[ident].items() if v != vid for m in ms]
        others = [i for i in self.by_identity if i != ident]
        if not positives or not others:
            return None
        videos = self.by_identity[rng.choice(others)]
        negative = rng.choice([m for ms in videos.values() for m in ms])
        return dict(anchor=self.samples[n], positive=self.samples[rng.choice(positives)],
                    negative=self.samples[negative])


class NoTriplets(RuntimeError):
    """The data cannot give (anchor, positive, negative) triplets."""


def coverage(seen: dict[str, set[str]], samples: int) -> str:
    """What the stream held, for the messages: why no triplet formed."""
    multi = sum(len(v) >= 2 for v in seen.values())
    return (f"{samples} samples of {len(seen)} identities, {multi} of them with clips from 2 or more videos "
            "(a triplet needs an identity with 2 videos for the anchor and positive, and another identity)")


def possible(seen: dict[str, set[str]]) -> bool:
    return len(seen) >= 2 and any(len(v) >= 2 for v in seen.values())


def triplets(
    src: Iterable[dict], buffer_size: int, rng: random.Random, stats: LoaderStats, field: str = "identity",
    shards: int | None = None, patience: int | None = None,
) -> Iterator[dict]:
    """Stage: decoded samples -> ``{"anchor", "positive", "negative"}`` dicts (rules in the module doc).
    ``shards``: the number of shards of an endless (resampled) stream, None for a finite one; ``patience``:
    samples without any triplet before giving up (default 10 x ``buffer_size``)."""
    buffer = _Buffer(buffer_size)
    patience = patience or 10 * buffer_size
    seen: dict[str, set[str]] | None = {}  # identity -> videos, until the first triplet
    read: set[str] = set()  # shards read to the end (the stream has moved on to another one)
    url, n = None, -1
    for n, sample in enumerate(src):
        ident = identity(sample.get(JSON, {}), field)
        if seen is not None and shards is not None:
            if sample.get("__url__") != url:
                read.add(url)
                url = sample.get("__url__")
            if (len(read - {None}) >= shards and not possible(seen)) or n >= patience:
                raise NoTriplets("no triplet can be formed from this endless stream: " + coverage(seen, n))
        if ident is None:
            stats.drop(sample, "triplet_no_identity")
            continue
        if seen is not None:
            seen.setdefault(ident, set()).add(video_id(sample))
        had_negatives = len(buffer.by_identity) > 1
        evicted = buffer.add(n, sample, ident)
        if evicted is not None:
            stats.drop(evicted, "triplet_evicted")
        # the new sample can complete anchors of its identity (a positive), or of all (a first negative)
        retry = list(buffer.waiting) if not had_negatives else [ident]
        for i in retry:
            for m in list(buffer.waiting.get(i, ())):
                triplet = buffer.match(m, rng)
                if triplet is not None:
                    buffer.waiting[i].remove(m)
                    seen = None
                    yield triplet
    for waiting in buffer.waiting.values():
        for m in waiting:
            stats.drop(buffer.samples[m], "triplet_unmatched")
    if seen is not None and n >= 0:
        warnings.warn("no triplet formed in this pass (of this worker): " + coverage(seen, n + 1), stacklevel=2)
