"""Fixed-size batches: every clip padded or cropped to the configured length, with validity masks."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch

from ..sample import JSON
from .handover import Slots
from .state import LoaderStats

Sizes = dict[str, int]  # field -> length of its last axis ("video": frames, "audio": samples, "mel": frames)
Empty = Callable[[tuple[int, ...], torch.dtype], torch.Tensor]  # where a batch tensor is made (``handover``)


def fit(x: torch.Tensor, length: int, dim: int) -> tuple[torch.Tensor, int]:
    """Crop or zero-pad ``x`` along ``dim`` to ``length``; also return how many entries are real."""
    n = x.shape[dim]
    if n >= length:
        return x.narrow(dim, 0, length), length
    pad_shape = list(x.shape)
    pad_shape[dim] = length - n
    return torch.cat([x, x.new_zeros(pad_shape)], dim=dim), n


def stack(xs: list[torch.Tensor], empty: Empty | None = None) -> torch.Tensor:
    """``torch.stack`` of equal-shape CPU tensors, copied by numpy where it can (8 clips of 50x3x112x112 uint8:
    ~3 ms against torch's 30-65 ms measured here), into ``empty(shape, dtype)`` when given (in a worker: shared
    memory, see ``handover``), so the batch reaches the main process without another copy."""
    if not xs or any(x.device.type != "cpu" for x in xs):
        return torch.stack(xs)
    shape = (len(xs), *xs[0].shape)
    if xs[0].dtype in _NO_NUMPY or any(x.requires_grad for x in xs):  # bfloat16, autograd: torch's own copy
        return torch.stack(xs) if empty is None else torch.stack(xs, out=empty(shape, dtype=xs[0].dtype))
    out = (empty or torch.empty)(shape, dtype=xs[0].dtype)  # torch's allocator: no numpy huge-page advice
    np.stack([x.numpy() for x in xs], out=out.numpy())
    return out


def mask(valid: torch.Tensor, length: int, empty: Empty | None = None) -> torch.Tensor:
    """(B, length) bool: True on the first ``valid[b]`` entries of row b."""
    out = (empty or torch.empty)((len(valid), length), dtype=torch.bool)
    return torch.lt(torch.arange(length)[None, :], valid[:, None], out=out)


_NO_NUMPY = {torch.bfloat16, torch.complex32, torch.float8_e4m3fn, torch.float8_e5m2}


def _time_dim(name: str) -> int:
    return 0 if name == "video" else -1


def collate_yuv(samples: list[dict], length: int, empty: Empty | None = None
                ) -> tuple[list[dict], torch.Tensor]:
    """The samples' ``video_yuv`` planes -> groups of equal frame size and colour (``y`` (n, T, H, W), ``uv``
    (n, T, 2, H/2, W/2), ``rows``: their places in the batch, ``colorspace``, ``full_range``) and the
    (B, T) frame mask; ``color.batch_to_rgb`` turns them into ``video``."""
    groups: dict[tuple, list[int]] = {}
    for i, s in enumerate(samples):
        if "video_yuv" in s:
            p = s["video_yuv"]
            groups.setdefault((tuple(p["y"].shape[1:]), p["colorspace"], p["full_range"]), []).append(i)
    valid = torch.zeros(len(samples), dtype=torch.int64)
    out = []
    for (_, colorspace, full), rows in groups.items():
        ys, uvs = [], []
        for i in rows:
            p = samples[i]["video_yuv"]
            y, valid[i] = fit(p["y"], length, 0)
            ys.append(y)
            uvs.append(fit(p["uv"], length, 0)[0])
        out.append({"y": stack(ys, empty), "uv": stack(uvs, empty), "rows": torch.tensor(rows),
                    "colorspace": colorspace, "full_range": full})
    return out, mask(valid, length, empty)


def collate(samples: list[dict], sizes: Sizes, empty: Empty | None = None) -> dict:
    """Samples -> batch: stacked ``video`` (B, T, C, H, W), ``audio`` (B, N), ``mel`` (B, M, F), each with a
    bool ``{field}_mask`` (B, length) that is False on padding and for samples lacking the field (audio-only
    samples in a video batch); ``label`` (B,) int64 (-1 if unknown); lists of keys, metadata and
    ``__ids__`` ((url, index) pairs, which the loader uses to track progress). Video decoded as planes is
    collated as ``video_yuv`` groups (see ``collate_yuv``) with the same ``video_mask``."""
    batch: dict = {
        "__key__": [s["__key__"] for s in samples],
        "__ids__": [(s["__url__"], s["__index__"]) for s in samples],
        JSON: [s.get(JSON, {}) for s in samples],
        "label": torch.tensor([s.get("label", -1) for s in samples], dtype=torch.int64),
    }
    for name, length in sizes.items():
        present = [s[name] for s in samples if name in s]
        if not present:
            continue
        dim = _time_dim(name)
        absent = present[0].narrow(dim, 0, 0)  # a sample without this field: all padding, mask all False
        fitted = [fit(s.get(name, absent), length, dim) for s in samples]
        batch[name] = stack([x for x, _ in fitted], empty)
        batch[f"{name}_mask"] = mask(torch.tensor([n for _, n in fitted]), length, empty)
    if "video" in sizes and any("video_yuv" in s for s in samples):
        batch["video_yuv"], batch["video_mask"] = collate_yuv(samples, sizes["video"], empty)
    return batch


def collate_triplets(items: list[dict], sizes: Sizes, empty: Empty | None = None) -> dict:
    """Triplets -> ``{"anchor": batch, "positive": batch, "negative": batch, "__ids__": anchor ids}``."""
    batch = {role: collate([t[role] for t in items], sizes, empty) for role in ("anchor", "positive", "negative")}
    batch["__ids__"] = batch["anchor"]["__ids__"]
    return batch


def batched(
    src: Iterable[dict], batch_size: int, collate_fn: Callable[..., dict], stats: LoaderStats,
    partial: bool = True, origin: tuple[int, int] = (0, 0), slots: Slots | None = None,
) -> Iterator[dict]:
    """Stage: group into batches, attaching the worker's stats delta to each (see ``state``) and
    ``__origin__``, the (rank, worker) that made it. ``collate_fn(items, empty)``; with ``slots`` (in a worker)
    the batch is made in shared memory, reused when ``slots.count`` allows (see ``handover``).

    After the last batch a stats-only item ``{"__stats__": ...}`` carries what happened after it.
    """

    def batch(items: list[dict]) -> dict:
        if slots is None:
            return {**collate_fn(items), "__origin__": origin, "__stats__": stats.take()}
        arena = slots.arena()
        made = arena.lend(collate_fn(items, empty=arena.empty))
        return {**made, "__origin__": origin, "__stats__": stats.take()}

    items: list[dict] = []
    for item in src:
        items.append(item)
        if len(items) == batch_size:
            yield batch(items)
            items = []
    if items and partial:
        yield batch(items)
    elif items:
        for item in items:
            stats.drop(item.get("anchor", item), "partial_batch")
    final = stats.take()
    if final is not None:
        yield {"__stats__": final}
