"""Shard lists, node/worker splitting and fault-tolerant tar reading: the first stages of the pipeline.

Shard order is a pure function of (seed, epoch), identical on every rank and worker, so splitting it
by rank and worker gives disjoint parts and a restarted job can recompute exactly what it was reading.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator

import webdataset as wds

from ..tars import read_tar
from .state import LoaderStats, Progress


def expand(urls: str | Iterable[str]) -> list[str]:
    """Brace patterns (``out/{00000..00009}.tar``, ``::``-separated) or a list of urls -> list of urls."""
    if isinstance(urls, str):
        return wds.shardlists.expand_urls(urls)
    return [u for url in urls for u in wds.shardlists.expand_urls(url)]


def shard_order(urls: list[str], seed: int, epoch: int, shuffle: bool = True) -> list[str]:
    """The epoch's shard order, the same in every process."""
    order = list(urls)
    if shuffle:
        random.Random(f"{seed}/{epoch}/shards").shuffle(order)
    return order


def split_by_node(src: Iterable, rank: int, world_size: int) -> Iterator:
    """Stage: keep every ``world_size``-th item starting at ``rank``."""
    for i, item in enumerate(src):
        if i % world_size == rank:
            yield item


def split_by_worker(src: Iterable, worker: int, num_workers: int) -> Iterator:
    """Stage: keep every ``num_workers``-th item starting at ``worker`` (DataLoader worker id)."""
    return split_by_node(src, worker, num_workers)


def resampled(urls: list[str], rng: random.Random) -> Iterator[str]:
    """Stage source: shards drawn with replacement, forever (each rank and worker with its own rng)."""
    while True:
        yield rng.choice(urls)


def skip_done_shards(src: Iterable[str], progress: Progress) -> Iterator[str]:
    """Stage: on resume, do not even open shards whose every sample was already consumed."""
    return (url for url in src if not progress.shard_done(url))


def tar_samples(src: Iterable[str], stats: LoaderStats) -> Iterator[dict]:
    """Stage: urls -> samples ``{"__key__", "__url__", "__index__", ext: bytes, ...}``, grouped by
    ``v2d_vox.tars`` (the reader curation uses). A shard that cannot be opened, or whose tar breaks
    part-way (corrupt header, truncation), is counted in ``shard_errors`` and the stream goes on with the
    next shard, keeping the samples read before the break. A shard read to its end reports its sample
    count, which lets resumption skip finished shards."""
    for url in src:
        count = 0
        try:
            for key, members in read_tar(url):
                yield {"__key__": key, "__url__": url, "__index__": count, **members}
                count += 1
            stats.shard_sizes[url] = count
        except Exception as exn:  # noqa: BLE001 - a broken shard must not end the epoch
            stats.add("shard_errors", exn)
