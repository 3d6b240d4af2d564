"""Shard lists, node/worker splitting and fault-tolerant tar reading: the first stages of the pipeline.

Shard order is a pure function of (seed, epoch), identical on every rank and worker, so splitting it
by rank and worker gives disjoint parts and a restarted job can recompute exactly what it was reading.
"""

from __future__ import annotations

import random
import tarfile
import urllib.request
from collections.abc import Iterable, Iterator
from typing import BinaryIO

import fsspec
import webdataset as wds

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


def open_url(url: str, timeout: float = 60.0) -> BinaryIO:
    """A streaming binary file for a shard url.

    Local paths and ``file://`` use ``open``; ``http(s)://`` streams with urllib (fsspec's http needs
    aiohttp, which is not a dependency); any other scheme (s3, gs, hf, ...) goes through fsspec.
    """
    if "://" not in url or url.startswith("file://"):
        return open(url.removeprefix("file://"), "rb")  # noqa: SIM115 - closed by tar_samples
    if url.startswith(("http://", "https://")):
        return urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 - urls come from the user
    return fsspec.open(url, "rb").open()


def skip_done_shards(src: Iterable[str], progress: Progress) -> Iterator[str]:
    """Stage: on resume, do not even open shards whose every sample was already consumed."""
    return (url for url in src if not progress.shard_done(url))


def _key_ext(name: str) -> tuple[str, str]:
    base = name.rsplit("/", 1)[-1]
    key, _, ext = base.partition(".")
    return name[: len(name) - len(base)] + key, ext.lower()


def tar_samples(src: Iterable[str], stats: LoaderStats) -> Iterator[dict]:
    """Stage: urls -> samples ``{"__key__", "__url__", "__index__", ext: bytes, ...}``.

    Members with the same key are grouped (as webdataset does). A shard that cannot be opened, or whose
    tar breaks part-way (corrupt header, truncation), is counted in ``shard_errors`` and the stream goes
    on with the next shard, keeping the samples read before the break (the one being read is dropped).
    A shard read to its end reports its sample count, which lets resumption skip finished shards.
    """
    for url in src:
        index, sample = 0, None
        try:
            with open_url(url) as stream, tarfile.open(fileobj=stream, mode="r|*") as tar:
                for member in tar:
                    if not member.isreg() or member.name.startswith("__"):
                        continue
                    key, ext = _key_ext(member.name)
                    data = tar.extractfile(member).read()
                    if sample is not None and sample["__key__"] != key:
                        yield sample
                        index, sample = index + 1, None
                    if sample is None:
                        sample = {"__key__": key, "__url__": url, "__index__": index}
                    sample[ext] = data
            if sample is not None:
                yield sample
                index += 1
            stats.shard_sizes[url] = index
        except Exception as exn:  # noqa: BLE001 - a broken shard must not end the epoch
            stats.add("shard_errors", exn)
