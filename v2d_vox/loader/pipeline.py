"""``make_dataset`` / ``make_loader``: the streaming training loader over webdataset shards.

Worker side (``ClipDataset``, a ``webdataset.DataPipeline``), one pass::

    shard order(seed, epoch) -> split_by_node -> split_by_worker -> skip finished shards -> tar samples
    -> skip consumed samples -> shuffle buffer (raw bytes) -> decode -> labels -> transforms
    -> [triplets] -> batches (+ stats delta)

Main side (``Loader``, a ``webdataset.WebLoader``): merges stats, records progress, moves batches to
``device`` (non_blocking, from pinned memory when ``pin_memory``) and runs ``batch_transforms`` there.

Every random choice (shard order, shuffle, clip start, augmentation, triplets) comes from generators seeded
by (seed, epoch, rank, worker), so a run is reproducible and resumable. Resumption guarantees, in finite
mode (``resampled=False``), at *sample* granularity: after ``load_state_dict`` the rest of the interrupted
pass delivers exactly the samples that were not yet delivered, each once (samples that were sitting in the
shuffle buffer or in prefetched batches are read again; samples counted as skipped stay skipped). The
order after the restart differs from the uninterrupted run's, because the shuffle buffer refills. With
``resampled=True`` there is no finite sample set: the state keeps the pass and batch counts, the
``with_epoch`` window continues where it stopped, and the shard draws continue from a fresh random stream.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from itertools import islice

import torch
import webdataset as wds

from .batch import batched, collate, collate_triplets
from .decode import DecodeConfig, decode
from .shards import expand, resampled, shard_order, skip_done_shards, split_by_node, split_by_worker, tar_samples
from .state import LoaderStats, Progress
from .transforms import apply
from .triplets import triplets


@dataclass
class LoaderConfig:
    """Everything the loader does besides decoding (which ``decode`` configures)."""

    batch_size: int = 8
    partial: bool = True  # keep a last smaller batch (False: drop it, e.g. for DDP equal step counts)
    seed: int = 0
    shuffle_shards: bool = True
    shuffle_buffer: int = 256  # samples, shuffled as raw bytes before decoding (cheap to hold)
    resampled: bool = False  # draw shards with replacement forever; pair with ``epoch_batches``
    epoch_batches: int | None = None  # ``with_epoch`` on the loader: batches per epoch (per rank)
    rank: int | None = None  # None: from RANK/WORLD_SIZE or torch.distributed, else 0
    world_size: int | None = None
    num_workers: int = 2
    pin_memory: bool = False
    device: str | torch.device | None = None
    prefetch_factor: int = 2
    transforms: dict = field(default_factory=dict)  # per sample in workers, e.g. {"audio->mel": LogMel()}
    batch_transforms: dict = field(default_factory=dict)  # per batch after the move to ``device``
    label_map: dict[str, int] | None = None  # json[label_field] -> int ("label" in batches; -1 if unknown)
    label_field: str = "identity"
    triplets: bool = False
    triplet_buffer: int = 128  # decoded samples kept for positives/negatives
    identity_field: str = "identity"
    decode: DecodeConfig = field(default_factory=DecodeConfig)

    @classmethod
    def from_kwargs(cls, config: LoaderConfig | None = None, **kw) -> LoaderConfig:
        """Flat keyword arguments, the decode ones (``clip_seconds``, ``fps``, ...) included."""
        config = config or cls()
        decode_names = {f.name for f in dataclasses.fields(DecodeConfig)}
        decode_kw = {k: kw.pop(k) for k in list(kw) if k in decode_names}
        return dataclasses.replace(config, decode=dataclasses.replace(config.decode, **decode_kw), **kw)

    @property
    def sizes(self) -> dict[str, int]:
        d = self.decode
        return {"video": d.num_frames, "audio": d.num_samples, "mel": d.mel_frames}


def _seed(*parts) -> int:
    return random.Random("/".join(map(str, parts))).getrandbits(63)


def node_info(cfg: LoaderConfig) -> tuple[int, int]:
    """(rank, world_size): explicit in the config, else from the environment or torch.distributed."""
    rank, world, _, _ = wds.utils.pytorch_worker_info()
    return (rank if cfg.rank is None else cfg.rank), (world if cfg.world_size is None else cfg.world_size)


def skip_consumed(src: Iterable[dict], progress: Progress) -> Iterator[dict]:
    """Stage: drop samples a previous run already delivered (before decoding them)."""
    return (s for s in src if (s["__url__"], s["__index__"]) not in progress)


def shuffle(src: Iterable, size: int, rng: random.Random) -> Iterator:
    """Stage: a shuffle buffer of ``size`` items (each item leaves at a random time after it enters)."""
    if size <= 1:
        yield from src
        return
    buf: list = []
    for item in src:
        if len(buf) < size:
            buf.append(item)
            continue
        i = rng.randrange(size)
        yield buf[i]
        buf[i] = item
    rng.shuffle(buf)
    yield from buf


def add_labels(src: Iterable[dict], label_map: dict[str, int] | None, field_name: str) -> Iterator[dict]:
    """Stage: ``sample["label"]`` from the label map, or an int json "label" when there is no map."""
    for s in src:
        meta = s["json"]
        if label_map is not None:
            s["label"] = label_map.get(str(meta.get(field_name)), -1)
        elif isinstance(meta.get("label"), int):
            s["label"] = meta["label"]
        yield s


def map_transforms(src: Iterable[dict], transforms: dict, g: torch.Generator) -> Iterator[dict]:
    """Stage: per-sample transforms with the worker's generator."""
    return (apply(s, transforms, g) for s in src)


class ClipDataset(wds.DataPipeline):
    """Worker-side pipeline yielding ready batches. Iterate it through ``make_loader``'s ``Loader``,
    which sets ``epoch``/``progress``/``restart`` before each pass and consumes the stats items."""

    def __init__(self, urls: str | Iterable[str], cfg: LoaderConfig):
        super().__init__()
        self.urls = expand(urls)
        if not self.urls:
            raise ValueError("no shard urls")
        self.cfg = cfg
        self.epoch = 0
        self.restart = 0  # batches already delivered in this pass when a resampled run was resumed
        self.progress = Progress()
        self.stats = LoaderStats()

    def stages(self) -> list[Callable]:
        """The pass's stages, built where they run (in the worker) because they depend on its id."""
        cfg, epoch = self.cfg, self.epoch
        rank, world = node_info(cfg)
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        key = (cfg.seed, epoch, rank, worker, self.restart)
        rng = random.Random(_seed(*key, "samples"))
        g = torch.Generator().manual_seed(_seed(*key, "transforms"))
        if cfg.resampled:
            source = [partial(resampled, self.urls, random.Random(_seed(*key, "shards")))]
        else:
            urls = shard_order(self.urls, cfg.seed, epoch, cfg.shuffle_shards)
            source = [
                lambda: iter(urls),
                partial(split_by_node, rank=rank, world_size=world),
                partial(split_by_worker, worker=worker, num_workers=workers),
                partial(skip_done_shards, progress=self.progress),
            ]
        sizes = cfg.sizes
        if cfg.triplets:
            pairing = [partial(triplets, buffer_size=cfg.triplet_buffer, rng=rng, stats=self.stats,
                               field=cfg.identity_field)]
            collate_fn = partial(collate_triplets, sizes=sizes)
        else:
            pairing, collate_fn = [], partial(collate, sizes=sizes)
        return [
            *source,
            partial(tar_samples, stats=self.stats),
            partial(skip_consumed, progress=self.progress),
            partial(shuffle, size=cfg.shuffle_buffer, rng=rng),
            partial(decode, cfg=cfg.decode, rng=rng, stats=self.stats),
            partial(add_labels, label_map=cfg.label_map, field_name=cfg.label_field),
            partial(map_transforms, transforms=cfg.transforms, g=g),
            *pairing,
            partial(batched, batch_size=cfg.batch_size, collate_fn=collate_fn, stats=self.stats,
                    partial=cfg.partial, origin=(rank, worker)),
        ]

    def iterator1(self) -> Iterator[dict]:
        first, *rest = self.stages()
        source = first()
        for stage in rest:
            source = stage(source)
        return source


def to_device(x, device: torch.device, non_blocking: bool = True):
    """Move every tensor in nested dicts/lists to ``device`` (asynchronous from pinned memory)."""
    if isinstance(x, torch.Tensor):
        return x.to(device, non_blocking=non_blocking)
    if isinstance(x, dict):
        return {k: to_device(v, device, non_blocking) for k, v in x.items()}
    if isinstance(x, list):
        return [to_device(v, device, non_blocking) for v in x]
    return x


class Loader(wds.WebLoader):
    """A ``webdataset.WebLoader`` that also keeps ``stats`` (a ``LoaderStats``: skipped samples and broken
    shards by reason, merged from all workers) and ``progress``, and offers ``state_dict`` /
    ``load_state_dict`` for resumption (guarantees in the module doc and docs/loader.md).

    Workers are started for each pass (not persistent), so each pass sees the current epoch and state.
    """

    def __init__(self, dataset: ClipDataset, **dataloader_kw):
        cfg = dataset.cfg
        kw = dict(batch_size=None, num_workers=cfg.num_workers, pin_memory=cfg.pin_memory)
        if cfg.num_workers:
            kw["prefetch_factor"] = cfg.prefetch_factor
        super().__init__(dataset, **{**kw, **dataloader_kw})
        self.dataset, self.cfg = dataset, cfg
        self.device = torch.device(cfg.device) if cfg.device is not None else None
        self.stats = LoaderStats()
        self.progress = Progress()
        self.window = 0
        self._resuming = False
        if cfg.epoch_batches:
            self.with_epoch(cfg.epoch_batches)

    def __iter__(self) -> Iterator[dict]:
        if not self._resuming:
            self.window = 0
        if self.repetitions != 1 and self.nsamples > 0:
            return islice(self.iterator(), max(0, self.nsamples - self.window))
        return self.iterator()

    def iterator1(self) -> Iterator[dict]:
        source = self._pass()
        for step in self.pipeline[1:]:
            source = self.invoke(step, source)
        return source

    def _pass(self) -> Iterator[dict]:
        if self._resuming:
            self._resuming = False
        elif self.progress.batches:  # the previous pass was cut short by ``with_epoch``
            self.progress = Progress(epoch=self.progress.epoch + 1)
        progress, finite = self.progress, not self.cfg.resampled
        self.dataset.epoch, self.dataset.progress = progress.epoch, progress
        self.dataset.restart = 0 if finite else progress.batches
        g = None
        if self.cfg.batch_transforms:
            rank, _ = node_info(self.cfg)
            g = torch.Generator(self.device or "cpu").manual_seed(_seed(self.cfg.seed, progress.epoch, rank,
                                                                        progress.batches, "batch"))
        for batch in self.pipeline[0]:
            delta = batch.pop("__stats__", None)
            if delta is not None:
                self.stats.merge(delta)
                if finite:
                    for ident in delta["dropped"]:
                        progress.add(ident)
                    progress.sizes.update(delta["shard_sizes"])
            if "__ids__" not in batch:
                continue
            batch["__origin__"] = tuple(batch["__origin__"])  # the DataLoader's conversion makes lists of tuples
            batch["__ids__"] = [tuple(i) for i in batch["__ids__"]]
            if finite:
                for ident in batch["__ids__"]:
                    progress.add(ident)
            progress.batches += 1
            self.window += 1
            if self.device is not None:
                batch = to_device(batch, self.device)
            if self.cfg.batch_transforms:
                for part in (batch[r] for r in ("anchor", "positive", "negative")) if self.cfg.triplets else [batch]:
                    apply(part, self.cfg.batch_transforms, g)
            yield batch
        self.progress = Progress(epoch=progress.epoch + 1)

    def state_dict(self) -> dict:
        """Plain-python state (save it with torch.save or json) for this rank's loader."""
        return dict(progress=self.progress.state_dict(), window=self.window, stats=dict(self.stats.counts))

    def load_state_dict(self, state: dict) -> None:
        """Resume: the next iteration continues the saved pass and ``with_epoch`` window."""
        self.progress = Progress.from_state(state["progress"])
        self.window = state["window"]
        self.stats = LoaderStats()
        self.stats.counts.update(state["stats"])
        self._resuming = True


def make_dataset(urls: str | Iterable[str], config: LoaderConfig | None = None, **kw) -> ClipDataset:
    """The worker-side pipeline (a ``webdataset.DataPipeline`` of batches); most code wants ``make_loader``.

    ``urls``: a brace pattern (``"out/{00000..00009}.tar"``), local paths, ``file://``, ``http(s)://`` or any
    fsspec url, or a list of them. Keyword arguments override ``config`` fields, decode ones included.
    """
    return ClipDataset(urls, LoaderConfig.from_kwargs(config, **kw))


def make_loader(urls: str | Iterable[str], config: LoaderConfig | None = None, **kw) -> Loader:
    """A ``webdataset.WebLoader`` of fixed-size batches (see ``LoaderConfig`` and ``DecodeConfig``).

    Example: ``make_loader("out/{00000..00009}.tar", batch_size=32, clip_seconds=2.0, triplets=True,
    device="cuda")``. Batches are dicts (see ``batch.collate``; triplets: anchor/positive/negative).
    """
    return Loader(make_dataset(urls, config, **kw))
