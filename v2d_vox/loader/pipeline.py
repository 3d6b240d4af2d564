"""``make_dataset`` / ``make_loader``: the streaming training loader over webdataset shards.

Both halves are composed from webdataset's public API (no webdataset method is overridden).

Worker side (``ClipDataset``): a ``webdataset.DataPipeline`` whose one stage builds, in each worker and for
each pass, a ``webdataset.DataPipeline`` of these stages and iterates it::

    shard order(seed, epoch) -> split_by_node -> split_by_worker -> skip finished shards -> tar samples
    -> skip consumed samples -> select (json only) -> shuffle buffer (raw bytes) -> decode -> labels -> transforms
    -> [triplets] -> batches (+ stats delta)

Main side (``Loader``): a ``webdataset.WebLoader`` (a ``DataLoader`` iteration per pass, ``with_epoch`` for
``epoch_batches``) plus one appended stage that merges stats, records progress, moves batches to ``device``
(non_blocking, from pinned memory when ``pin_memory``), turns YUV planes into RGB there (``convert``) and
runs ``batch_transforms`` there. Workers start
anew for each pass, with the dataset as it is then: ``dataset.progress`` always names the next pass.

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
import json
import random
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial

import torch
import webdataset as wds

from ..sample import JSON
from .batch import batched, collate, collate_triplets
from .color import batch_to_rgb
from .decode import DecodeConfig, decode, hwaccel
from .handover import Receiver, Slots
from .memory import keep_freed_memory
from .shards import expand, resampled, shard_order, skip_done_shards, split_by_node, split_by_worker, tar_samples
from .state import LoaderStats, Progress
from .transforms import apply
from .triplets import triplets

Select = Callable[[dict], bool] | dict[str, object]


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
    label_map: dict[str | int, int] | None = None  # json[label_field] -> int "label"; see ``add_labels``
    label_field: str = "identity"
    select: Select | None = None  # keep only these samples, judged on the json before decoding; see ``selector``
    triplets: bool = False
    triplet_buffer: int = 128  # decoded samples kept for positives/negatives
    identity_field: str = "identity"
    convert: str = "auto"  # where frames become RGB at ``size``: "worker" | "device" | "auto" (see ``on_device``)
    decode: DecodeConfig = field(default_factory=DecodeConfig)

    @classmethod
    def from_kwargs(cls, config: LoaderConfig | None = None, **kw) -> LoaderConfig:
        """Flat keyword arguments, the decode ones (``clip_seconds``, ``fps``, ...) included."""
        config = config or cls()
        decode_names = {f.name for f in dataclasses.fields(DecodeConfig)}
        decode_kw = {k: kw.pop(k) for k in list(kw) if k in decode_names}
        return dataclasses.replace(config, decode=dataclasses.replace(config.decode, **decode_kw), **kw)

    @property
    def on_device(self) -> bool:
        """Whether frames leave the workers as YUV planes and become RGB on ``device`` after the transfer.
        "auto": when ``device`` is an accelerator and no per-sample transform reads ``video``; on CPU the
        workers' swscale (one context per clip) is faster than torch's CPU resize."""
        video_transforms = any(name.partition("->")[0] == "video" for name in self.transforms)
        if self.convert not in ("auto", "worker", "device"):
            raise ValueError(f"convert must be 'auto', 'worker' or 'device', not {self.convert!r}")
        if self.convert == "device" and video_transforms:
            raise ValueError("convert='device' makes RGB video only after the workers: move the per-sample "
                             "'video' transforms to batch_transforms")
        if self.convert == "auto":
            return self.device is not None and torch.device(self.device).type != "cpu" and not video_transforms
        return self.convert == "device"

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


def selector(select: Select | None) -> Callable[[dict], bool] | None:
    """``select`` as a predicate over a sample's json: a callable as it is, or ``{field: values}`` where
    every field must hold one of its values (a list, tuple or set) or equal it (anything else), e.g.
    ``{"fold": [1, 2, 3, 4]}``."""
    if select is None or callable(select):
        return select
    if not isinstance(select, dict):
        raise TypeError(f"select must be a callable or a {{field: values}} dict, got {type(select).__name__}")
    wanted = {k: (set(v) if isinstance(v, list | tuple | set | frozenset) else {v}) for k, v in select.items()}
    return lambda meta: all(meta.get(k) in values for k, values in wanted.items())


def select_samples(src: Iterable[dict], predicate: Callable[[dict], bool], stats: LoaderStats) -> Iterator[dict]:
    """Stage: keep the samples whose json ``predicate`` accepts, before their media is decoded. The others
    are not skips (not counted); they are remembered so a resumed pass need not read them again."""
    for s in src:
        try:
            meta = json.loads(s[JSON]) if JSON in s else {}
        except ValueError:
            meta = None  # decode counts the broken json
        if meta is None or predicate(meta if isinstance(meta, dict) else {}):
            yield s
        else:
            stats.exclude(s)


def add_labels(src: Iterable[dict], label_map: dict[str | int, int] | None, field_name: str,
               stats: LoaderStats) -> Iterator[dict]:
    """Stage: ``sample["label"]``. With a map: the json field's value looked up with int and str keys alike
    (``{0: 0}`` and ``{"0": 0}`` both match a json 0 or "0"); a sample whose value the map lacks is skipped,
    counted as ``unknown_label`` and warned about once. Without a map: the field's value if it is an int,
    else an int json "label"."""
    table = None if label_map is None else {str(k): v for k, v in label_map.items()}
    warned = False
    for s in src:
        meta = s[JSON]
        value = meta.get(field_name)
        if table is not None:
            label = table.get(str(value)) if value is not None else None
            if label is None:
                stats.drop(s, "unknown_label")
                if not warned:
                    warnings.warn(f"label {value!r} of json field {field_name!r} is not in the label map "
                                  f"({len(table)} labels); such samples are skipped and counted as unknown_label",
                                  stacklevel=2)
                    warned = True
                continue
            s["label"] = label
        elif isinstance(value, int) and not isinstance(value, bool):
            s["label"] = value
        elif isinstance(meta.get("label"), int):
            s["label"] = meta["label"]
        yield s


def map_transforms(src: Iterable[dict], transforms: dict, g: torch.Generator) -> Iterator[dict]:
    """Stage: per-sample transforms with the worker's generator."""
    return (apply(s, transforms, g) for s in src)


class ClipDataset(wds.DataPipeline):
    """Worker-side pipeline yielding ready batches of the pass in ``progress``.

    A ``webdataset.DataPipeline`` whose one stage builds the pass's own ``DataPipeline`` where it runs (in the
    worker), because the stages depend on the worker id. ``progress`` names the pass: its epoch, in finite mode
    the samples to skip, in resampled mode the batches already delivered (they reseed the draws). Iterate it
    through ``make_loader``'s ``Loader``, which sets ``progress`` before each pass and consumes the stats items.
    """

    def __init__(self, urls: str | Iterable[str], cfg: LoaderConfig):
        super().__init__(self.batches)
        self.urls = expand(urls)
        if not self.urls:
            raise ValueError("no shard urls")
        self.cfg = cfg
        self.on_device = cfg.on_device  # checks ``convert`` before any worker starts
        hwaccel(cfg.decode.decode_device)  # the same for ``decode_device``
        self.progress = Progress()
        # slots per worker to reuse for handing batches over (``handover``); 0: fresh shared memory per batch.
        # Only a consumer that turns lent batches back into tensors (``Loader``) may set it.
        self.handover_slots = 0

    def batches(self) -> Iterator[dict]:
        """Stage: one pass of batches (with ``__stats__`` deltas) from this rank and worker's shards."""
        return iter(wds.DataPipeline(*self.stages()))

    def stages(self) -> list[Callable]:
        """The pass's stages; every random choice is seeded by (seed, epoch, rank, worker, restart)."""
        cfg, progress = self.cfg, self.progress
        rank, world = node_info(cfg)
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        if info is not None:
            keep_freed_memory()
        restart = progress.batches if cfg.resampled else 0  # a resumed resampled pass draws a fresh stream
        key = (cfg.seed, progress.epoch, rank, worker, restart)
        rng = random.Random(_seed(*key, "samples"))
        g = torch.Generator().manual_seed(_seed(*key, "transforms"))
        stats = LoaderStats()  # this pass's counts, reported with its batches
        if cfg.resampled:
            source = [partial(resampled, self.urls, random.Random(_seed(*key, "shards")))]
        else:
            source = [
                partial(iter, shard_order(self.urls, cfg.seed, progress.epoch, cfg.shuffle_shards)),
                partial(split_by_node, rank=rank, world_size=world),
                partial(split_by_worker, worker=worker, num_workers=workers),
                partial(skip_done_shards, progress=progress),
            ]
        sizes = cfg.sizes
        if cfg.triplets:
            pairing = [partial(triplets, buffer_size=cfg.triplet_buffer, rng=rng, stats=stats,
                               field=cfg.identity_field, shards=len(self.urls) if cfg.resampled else None)]
            collate_fn = partial(collate_triplets, sizes=sizes)
        else:
            pairing, collate_fn = [], partial(collate, sizes=sizes)
        predicate = selector(cfg.select)
        return [
            *source,
            partial(tar_samples, stats=stats),
            partial(skip_consumed, progress=progress),
            *([partial(select_samples, predicate=predicate, stats=stats)] if predicate else []),
            partial(shuffle, size=cfg.shuffle_buffer, rng=rng),
            partial(decode, cfg=cfg.decode, rng=rng, stats=stats, yuv=self.on_device),
            partial(add_labels, label_map=cfg.label_map, field_name=cfg.label_field, stats=stats),
            partial(map_transforms, transforms=cfg.transforms, g=g),
            *pairing,
            partial(batched, batch_size=cfg.batch_size, collate_fn=collate_fn, stats=stats,
                    partial=cfg.partial, origin=(rank, worker),
                    slots=Slots(self.handover_slots) if info is not None else None),
        ]


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
    """A ``webdataset.WebLoader`` over a ``ClipDataset`` that also keeps ``stats`` (a ``LoaderStats``: skipped
    samples and broken shards by reason, merged from all workers) and ``progress``, and offers ``state_dict`` /
    ``load_state_dict`` for resumption (guarantees in the module doc and docs/loader.md).

    Built from WebLoader's public API only: each pass is one iteration of its ``DataLoader``, followed by the
    appended ``_deliver`` stage; ``with_epoch(epoch_batches)`` repeats and cuts the passes. Workers are not
    persistent, so each pass's workers get the dataset as it is when the pass starts: ``dataset.progress``
    always names the pass that a new iteration runs.
    """

    def __init__(self, dataset: ClipDataset, **dataloader_kw):
        cfg = dataset.cfg
        kw = dict(batch_size=None, num_workers=cfg.num_workers, pin_memory=cfg.pin_memory)
        if cfg.num_workers:
            kw["prefetch_factor"] = cfg.prefetch_factor
        kw.update(dataloader_kw)
        super().__init__(dataset, **kw)
        self.dataset, self.cfg = dataset, cfg
        # batches queued per worker, the one in the training step and the one before it; pinning copies each
        # batch anyway (and its thread would see lent batches before ``_deliver`` rebuilds them)
        dataset.handover_slots = 0 if kw.get("pin_memory") else (kw.get("prefetch_factor") or 2) + 2
        self.device = torch.device(cfg.device) if cfg.device is not None else None
        self.stats = LoaderStats()
        self.progress = dataset.progress  # the pass being delivered (before the first: the one to come)
        self.window = 0  # batches delivered in the current ``with_epoch`` window
        self._same_window = False  # the next pass continues the window (next pass of a for loop, or a resume)
        self.append(self._deliver)
        if cfg.epoch_batches:
            self.with_epoch(cfg.epoch_batches)

    def _deliver(self, batches: Iterable[dict]) -> Iterator[dict]:
        """Stage after the DataLoader, one per pass: merge the workers' stats, record progress, move batches
        to ``device`` and run ``batch_transforms`` there."""
        cfg, finite = self.cfg, not self.cfg.resampled
        progress = self.progress = self.dataset.progress  # the pass the workers were started for
        if cfg.epoch_batches:
            self.with_epoch(cfg.epoch_batches)  # the window a resume shortened is under way; later ones are full
        if not self._same_window:
            self.window = 0
        self._same_window = False
        following = Progress(epoch=progress.epoch + 1)
        receive = Receiver()
        g = None
        if cfg.batch_transforms:
            rank, _ = node_info(cfg)
            g = torch.Generator(self.device or "cpu").manual_seed(_seed(cfg.seed, progress.epoch, rank,
                                                                        progress.batches, "batch"))
        for batch in batches:
            self.dataset.progress = following  # this pass has started: a new iteration runs the next one
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
            batch = receive(batch)
            batch["__ids__"] = [tuple(i) for i in batch["__ids__"]]
            if finite:
                for ident in batch["__ids__"]:
                    progress.add(ident)
            progress.batches += 1
            self.window += 1
            if self.device is not None:
                batch = to_device(batch, self.device)
            for part in (batch[r] for r in ("anchor", "positive", "negative")) if cfg.triplets else [batch]:
                batch_to_rgb(part, cfg.decode.size)
                if cfg.batch_transforms:
                    apply(part, cfg.batch_transforms, g)
            yield batch
        # reached only when the for loop asks for more: a ``with_epoch`` window goes on into the next pass
        self.progress = self.dataset.progress = following
        self._same_window = bool(cfg.epoch_batches)

    def state_dict(self) -> dict:
        """Plain-python state (save it with torch.save or json) for this rank's loader."""
        return dict(progress=self.progress.state_dict(), window=self.window, stats=dict(self.stats.counts))

    def load_state_dict(self, state: dict) -> None:
        """Resume: the next iteration continues the saved pass and ``with_epoch`` window (a window saved
        complete resumes with the next pass and a full window, as the next for loop would have)."""
        progress, window, n = Progress.from_state(state["progress"]), state["window"], self.cfg.epoch_batches
        if n and window >= n:
            progress, window = Progress(epoch=progress.epoch + 1), 0
        self.progress = self.dataset.progress = progress
        self.window, self._same_window = window, True
        if n:
            self.with_epoch(n - window)
        self.stats = LoaderStats()
        self.stats.counts.update(state["stats"])


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
