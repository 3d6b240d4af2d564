"""One-off passes over shards that training needs before it starts: label maps and RGB statistics."""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from itertools import islice

import torch

from ..sample import JSON
from .decode import DecodeConfig, decode
from .shards import expand, tar_samples
from .state import LoaderStats


def build_label_map(shards: str | Iterable[str], field: str = "identity") -> dict[str, int]:
    """``json[field]`` values found in the shards -> 0..n-1 in sorted order (stable across runs and ranks).

    Reads only metadata (no decoding); samples without the field or with unreadable json are ignored.
    """
    values = set()
    for sample in tar_samples(expand(shards), LoaderStats()):
        try:
            value = json.loads(sample[JSON]).get(field) if JSON in sample else None
        except ValueError:
            continue
        if value is not None:
            values.add(str(value))
    return {v: i for i, v in enumerate(sorted(values))}


def compute_stats(
    shards: str | Iterable[str], max_samples: int | None = 200, decode_cfg: DecodeConfig | None = None,
) -> tuple[list[float], list[float]]:
    """Per-channel RGB mean and std (in [0, 1] units) over decoded clips, for ``Normalize``.

    Uses the first ``max_samples`` decodable samples in shard order (None: all), with centred clips.
    """
    cfg = decode_cfg or DecodeConfig(audio=False, random_start=False)
    total = torch.zeros(3, dtype=torch.float64)
    squares = torch.zeros(3, dtype=torch.float64)
    count = 0
    samples = decode(tar_samples(expand(shards), LoaderStats()), cfg, random.Random(0), LoaderStats())
    for sample in islice((s for s in samples if "video" in s), max_samples):
        x = sample["video"].to(torch.float64) / 255.0
        total += x.sum(dim=(0, 2, 3))
        squares += x.pow(2).sum(dim=(0, 2, 3))
        count += x.numel() // 3
    if count == 0:
        raise ValueError("no decodable video in the shards")
    mean = total / count
    std = (squares / count - mean.pow(2)).clamp(min=0).sqrt()
    return mean.tolist(), std.tolist()
