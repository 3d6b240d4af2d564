"""Fixed-size batches: every clip padded or cropped to the configured length, with validity masks."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import torch

from .state import LoaderStats

Sizes = dict[str, int]  # field -> length of its last axis ("video": frames, "audio": samples, "mel": frames)


def fit(x: torch.Tensor, length: int, dim: int) -> tuple[torch.Tensor, int]:
    """Crop or zero-pad ``x`` along ``dim`` to ``length``; also return how many entries are real."""
    n = x.shape[dim]
    if n >= length:
        return x.narrow(dim, 0, length), length
    pad_shape = list(x.shape)
    pad_shape[dim] = length - n
    return torch.cat([x, x.new_zeros(pad_shape)], dim=dim), n


def _time_dim(name: str) -> int:
    return 0 if name == "video" else -1


def collate(samples: list[dict], sizes: Sizes) -> dict:
    """Samples -> batch: stacked ``video`` (B, T, C, H, W), ``audio`` (B, N), ``mel`` (B, M, F), each with a
    bool ``{field}_mask`` (B, length) that is False on padding and for samples lacking the field (audio-only
    samples in a video batch); ``label`` (B,) int64 (-1 if unknown); lists of keys, metadata and
    ``__ids__`` ((url, index) pairs, which the loader uses to track progress)."""
    batch: dict = {
        "__key__": [s["__key__"] for s in samples],
        "__ids__": [(s["__url__"], s["__index__"]) for s in samples],
        "json": [s.get("json", {}) for s in samples],
        "label": torch.tensor([s.get("label", -1) for s in samples], dtype=torch.int64),
    }
    for name, length in sizes.items():
        present = [s[name] for s in samples if name in s]
        if not present:
            continue
        dim = _time_dim(name)
        empty = present[0].narrow(dim, 0, 0)  # a sample without this field: all padding, mask all False
        fitted = [fit(s.get(name, empty), length, dim) for s in samples]
        batch[name] = torch.stack([x for x, _ in fitted])
        valid = torch.tensor([n for _, n in fitted])
        batch[f"{name}_mask"] = torch.arange(length)[None, :] < valid[:, None]
    return batch


def collate_triplets(items: list[dict], sizes: Sizes) -> dict:
    """Triplets -> ``{"anchor": batch, "positive": batch, "negative": batch, "__ids__": anchor ids}``."""
    batch = {role: collate([t[role] for t in items], sizes) for role in ("anchor", "positive", "negative")}
    batch["__ids__"] = batch["anchor"]["__ids__"]
    return batch


def batched(
    src: Iterable[dict], batch_size: int, collate_fn: Callable[[list[dict]], dict], stats: LoaderStats,
    partial: bool = True, origin: tuple[int, int] = (0, 0),
) -> Iterator[dict]:
    """Stage: group into batches, attaching the worker's stats delta to each (see ``state``) and
    ``__origin__``, the (rank, worker) that made it.

    After the last batch a stats-only item ``{"__stats__": ...}`` carries what happened after it.
    """
    items: list[dict] = []
    for item in src:
        items.append(item)
        if len(items) == batch_size:
            yield {**collate_fn(items), "__origin__": origin, "__stats__": stats.take()}
            items = []
    if items and partial:
        yield {**collate_fn(items), "__origin__": origin, "__stats__": stats.take()}
    elif items:
        for item in items:
            stats.drop(item.get("anchor", item), "partial_batch")
    final = stats.take()
    if final is not None:
        yield {"__stats__": final}
