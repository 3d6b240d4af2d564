"""Small composable transforms on torch tensors, the same code in CPU workers or on the GPU after transfer.

Each transform is ``t(x, g=None) -> x``: ``x`` has any leading batch dimensions (a sample's clip or a
whole batch), ``g`` is an optional ``torch.Generator`` on ``x``'s device for reproducible randomness.
Video is (..., T, C, H, W), uint8 or float in [0, 1] (video corruptions clamp to that range, so apply
them before ``Normalize``); audio is (..., samples), spectrograms (..., freq, time).
Random transforms draw independently for every item in the leading dimensions.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from v2d_vox.melspec import MelSpec

from .memory import empty_array

Generator = torch.Generator | None


def _rand(shape: Sequence[int], x: torch.Tensor, g: Generator) -> torch.Tensor:
    return torch.rand(tuple(shape), generator=g, device=x.device)


def _as_float(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 255.0 if x.dtype == torch.uint8 else x


def _like(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Clamp ``y`` to [0, 1] and return it in ``x``'s dtype, so corruptions keep uint8 video cheap."""
    y = y.clamp(0, 1)
    return (y * 255.0).round().to(torch.uint8) if x.dtype == torch.uint8 else y


class Compose:
    """Apply transforms in order, passing the generator along."""

    def __init__(self, *transforms):
        self.transforms = transforms

    def __call__(self, x: torch.Tensor, g: Generator = None) -> torch.Tensor:
        for t in self.transforms:
            x = t(x, g)
        return x


@dataclass
class RandomApply:
    """Apply ``transform`` to the whole input with probability ``p``."""

    transform: object
    p: float = 0.5

    def __call__(self, x: torch.Tensor, g: Generator = None) -> torch.Tensor:
        return self.transform(x, g) if float(_rand((), x, g)) < self.p else x


@dataclass
class Normalize:
    """uint8 or [0, 1] video (..., C, H, W) -> float ``(x - mean) / std`` per channel (stats in [0, 1] units).

    Use ``compute_stats`` to get the dataset's own mean and std instead of ImageNet's.

    On the CPU, a uint8 batch is written into the memory of an earlier output that nothing references any
    more (at most ``KEEP`` kept): fresh pages cost more than the math (a 8x50x3x112x112 float batch: ~40 ms
    of page faults against ~6 ms of conversion measured here). An output stays valid while anything holds it.
    """

    mean: Sequence[float]
    std: Sequence[float]
    KEEP: ClassVar[int] = 4  # batches in flight: the one in use, the next, and the pin/prefetch stages
    # (array, weak reference to the view the last output was made from): free once that view is gone, i.e.
    # once no output, nor any view of one, holds the memory
    _buffers: list[tuple[np.ndarray, weakref.ref]] = field(default_factory=list, init=False, repr=False,
                                                           compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    def __call__(self, x: torch.Tensor, g: Generator = None) -> torch.Tensor:
        shape = (-1, 1, 1)
        mean = torch.as_tensor(self.mean, dtype=torch.float32, device=x.device).view(shape)
        std = torch.as_tensor(self.std, dtype=torch.float32, device=x.device).view(shape)
        if x.dtype != torch.uint8:
            return (x - mean) / std
        # one float copy scaled in place: a batch of clips is large, and temporaries cost more than the math
        scale, shift = 1.0 / (255.0 * std), -mean / std
        if x.device.type != "cpu":
            return torch.empty_like(x, dtype=torch.float32).copy_(x).mul_(scale).add_(shift)
        out = self._free(tuple(x.shape))
        _scale_shift(x, out, scale, shift)
        return out

    def __getstate__(self) -> dict:  # a copy sent to a worker starts without this process's buffers
        return {k: v for k, v in self.__dict__.items() if k not in ("_buffers", "_lock")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _buffers=[], _lock=threading.Lock())

    def _free(self, shape: tuple[int, ...]) -> torch.Tensor:
        """A float32 CPU tensor of ``shape`` over kept memory that no earlier output holds, else new memory."""
        with self._lock:
            i = next((i for i, (arr, lent) in enumerate(self._buffers) if arr.shape == shape and lent() is None),
                     None)
            if i is None:
                arr = empty_array(shape, torch.float32)
                self._buffers = [*self._buffers[1 - self.KEEP :], (arr, _dead)] if self.KEEP > 1 else [(arr, _dead)]
                i = len(self._buffers) - 1
            view = self._buffers[i][0].view()  # the output's storage keeps this view (and so the array) alive
            self._buffers[i] = (self._buffers[i][0], weakref.ref(view))
            return torch.from_numpy(view)


def _scale_shift(x: torch.Tensor, out: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> None:
    """``out = x * scale + shift`` on the CPU for uint8 ``x`` (..., C, H, W), a ~1 MB slice at a time, so the
    conversion to float and both operations share one pass through memory (~20% faster than three passes over
    a batch of clips, with the same numbers)."""
    xs, outs = x.reshape(-1, *x.shape[-3:]).numpy(), out.view(-1, *x.shape[-3:]).numpy()
    step = max(1, (1 << 20) // max(1, outs[:1].nbytes))  # frames per slice
    s, h = scale.numpy(), shift.numpy()
    for i in range(0, len(xs), step):
        o = outs[i : i + step]
        np.multiply(xs[i : i + step], s, out=o, dtype=np.float32)
        np.add(o, h, out=o)


def _dead() -> None:
    """A weak reference's answer once its object is gone: memory not lent yet."""
    return None


class LogMel(MelSpec):
    """Waveform (..., samples) -> log-mel (..., n_mels, frames): a ``MelSpec`` used as a transform.
    ``LogMel.from_json(sample_json)`` reproduces the ``spectrogram`` subsampler's stored mel."""

    @classmethod
    def from_json(cls, meta: dict) -> LogMel:
        if "mel" not in meta:
            raise KeyError("the sample's json has no 'mel' spec (it was curated without the spectrogram step)")
        return cls.from_dict(meta["mel"])


def _band_mask(n: int, lead: Sequence[int], count: int, width: int, x: torch.Tensor, g: Generator):
    """Boolean (*lead, n): ``count`` bands of width uniform in [0, width] at uniform positions."""
    widths = (_rand((*lead, count), x, g) * (width + 1)).floor()
    starts = (_rand((*lead, count), x, g) * (n - widths + 1)).floor()
    pos = torch.arange(n, device=x.device)
    inside = (pos >= starts[..., None]) & (pos < (starts + widths)[..., None])
    return inside.any(dim=-2)


@dataclass
class SpecAugment:
    """SpecAugment (Park et al. 2019) on (..., freq, time): optional time warp, then frequency and time masks.

    Masked cells get ``mask_value`` (None: each item's mean, which keeps log-mel statistics unbiased).
    ``time_warp`` W moves a random time point by up to W frames, stretching both sides linearly.
    """

    freq_masks: int = 2
    freq_width: int = 15
    time_masks: int = 2
    time_width: int = 25
    time_warp: int = 0
    mask_value: float | None = None

    def __call__(self, x: torch.Tensor, g: Generator = None) -> torch.Tensor:
        if self.time_warp:
            x = self.warp(x, g)
        *lead, n_freq, n_time = x.shape
        freq = _band_mask(n_freq, lead, self.freq_masks, self.freq_width, x, g)[..., :, None]
        time = _band_mask(n_time, lead, self.time_masks, self.time_width, x, g)[..., None, :]
        fill = x.mean(dim=(-2, -1), keepdim=True) if self.mask_value is None else self.mask_value
        return torch.where(freq | time, fill, x)

    def warp(self, x: torch.Tensor, g: Generator = None) -> torch.Tensor:
        """Every item at once on its device: the left part [0, centre) is stretched linearly onto [0, moved)
        and the rest onto [moved, n), as ``F.interpolate(mode="linear")`` would do part by part."""
        *lead, n_freq, n_time = x.shape
        w = self.time_warp
        if n_time <= 2 * w + 1:
            return x
        flat = x.reshape(-1, n_freq, n_time)
        draws = _rand((flat.shape[0], 2), x, g)
        centre = (w + 1 + (draws[:, :1] * (n_time - 2 * w - 2)).trunc()).long()
        moved = (centre + ((2 * draws[:, 1:] - 1) * w).trunc().long()).clamp(1, n_time - 1)
        j = torch.arange(n_time, device=x.device)[None, :]
        left = j < moved
        size_in = torch.where(left, centre, n_time - centre).to(x.dtype)  # length of the part j reads from
        size_out = torch.where(left, moved, n_time - moved).to(x.dtype)
        offset_in, offset_out = torch.where(left, 0, centre), torch.where(left, 0, moved)
        src = ((j - offset_out + 0.5) * (size_in / size_out) - 0.5).clamp(min=0)
        i0 = src.floor().long().clamp(max=(size_in - 1).long())
        i1 = torch.minimum(i0 + 1, (size_in - 1).long())
        frac = (src - i0).unsqueeze(1)
        at = lambda i: flat.gather(2, (i + offset_in).unsqueeze(1).expand(-1, n_freq, -1))  # noqa: E731
        return (at(i0) * (1 - frac) + at(i1) * frac).reshape(x.shape)


@dataclass
class GaussianNoise:
    """Additive pixel noise with standard deviation ``std`` (in [0, 1] units)."""

    std: float = 0.05

    def __call__(self, x: torch.Tensor, g: Generator = None) -> torch.Tensor:
        y = _as_float(x)
        return _like(y + self.std * torch.randn(y.shape, generator=g, device=x.device), x)


@dataclass
class GaussianBlur:
    """Separable Gaussian blur of every frame, same size out (reflect padding)."""

    sigma: float = 1.5

    def __call__(self, x: torch.Tensor, g: Generator = None) -> torch.Tensor:
        radius = max(1, math.ceil(3 * self.sigma))
        t = torch.arange(-radius, radius + 1, dtype=torch.float32, device=x.device)
        k = torch.exp(-(t**2) / (2 * self.sigma**2))
        k = k / k.sum()
        y = _as_float(x)
        c, h, w = y.shape[-3:]
        flat = y.reshape(-1, c, h, w)
        flat = F.pad(flat, (radius, radius, radius, radius), mode="reflect")
        flat = F.conv2d(flat, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
        flat = F.conv2d(flat, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
        return _like(flat.reshape(y.shape), x)


@dataclass
class Occlusion:
    """One box per clip (the same on every frame), side a random fraction of the frame, set to ``value``."""

    min_frac: float = 0.1
    max_frac: float = 0.4
    value: float = 0.0

    def __call__(self, x: torch.Tensor, g: Generator = None) -> torch.Tensor:
        *lead, _t, _c, h, w = x.shape
        r = _rand((*lead, 4), x, g)
        side = self.min_frac + (self.max_frac - self.min_frac) * r[..., :2]
        bh, bw = (side[..., 0] * h).long(), (side[..., 1] * w).long()
        top, left = (r[..., 2] * (h - bh + 1)).long(), (r[..., 3] * (w - bw + 1)).long()
        rows, cols = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
        inside_r = (rows >= top[..., None]) & (rows < (top + bh)[..., None])
        inside_c = (cols >= left[..., None]) & (cols < (left + bw)[..., None])
        box = (inside_r[..., :, None] & inside_c[..., None, :])[..., None, None, :, :]
        fill = torch.tensor(self.value * 255 if x.dtype == torch.uint8 else self.value, dtype=x.dtype,
                            device=x.device)
        return torch.where(box, fill, x)


@dataclass
class BrightnessContrast:
    """Random brightness offset in [-brightness, brightness] and contrast factor in [1-c, 1+c] per clip."""

    brightness: float = 0.2
    contrast: float = 0.2

    def __call__(self, x: torch.Tensor, g: Generator = None) -> torch.Tensor:
        y = _as_float(x)
        lead = y.shape[:-4]
        r = _rand((*lead, 2), x, g)[..., None, None, None, None, :]
        offset = (2 * r[..., 0] - 1) * self.brightness
        factor = 1 + (2 * r[..., 1] - 1) * self.contrast
        mean = y.mean(dim=(-4, -3, -2, -1), keepdim=True)
        return _like((y - mean) * factor + mean + offset, x)


@dataclass
class DropFrames:
    """Each frame is lost with probability ``p`` and replaced by the last kept one (a stalled stream)."""

    p: float = 0.1

    def __call__(self, x: torch.Tensor, g: Generator = None) -> torch.Tensor:
        *lead, t = x.shape[:-3]
        keep = _rand((*lead, t), x, g) >= self.p
        keep[..., 0] = True
        idx = torch.arange(t, device=x.device).expand(*lead, t) * keep
        source = torch.cummax(idx, dim=-1).values
        return torch.gather(x, len(lead), source[(...,) + (None,) * 3].expand(x.shape))


@dataclass
class AddNoise:
    """Mix noise into audio (..., samples) at an SNR drawn uniformly from [min_snr_db, max_snr_db].

    ``noise`` is a (n, samples) bank of recordings (rows picked at random, tiled to length); None means
    white Gaussian noise.
    """

    min_snr_db: float = 5.0
    max_snr_db: float = 20.0
    noise: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor, g: Generator = None) -> torch.Tensor:
        lead, n = x.shape[:-1], x.shape[-1]
        if self.noise is None:
            noise = torch.randn(x.shape, generator=g, device=x.device, dtype=x.dtype)
        else:
            bank = self.noise.to(device=x.device, dtype=x.dtype)
            rows = (_rand(lead, x, g) * bank.shape[0]).long()
            noise = bank[rows][..., torch.arange(n, device=x.device) % bank.shape[-1]]
        snr = self.min_snr_db + (self.max_snr_db - self.min_snr_db) * _rand((*lead, 1), x, g).to(x.dtype)
        p_signal = x.pow(2).mean(-1, keepdim=True)
        p_noise = noise.pow(2).mean(-1, keepdim=True).clamp(min=1e-12)
        return x + noise * torch.sqrt(p_signal / (p_noise * 10 ** (snr / 10)))


def apply(sample: dict, transforms: dict, g: Generator = None) -> dict:
    """Apply ``{field: transform}`` to a sample or batch dict, in order.

    A transform that makes a new field names it after an arrow: ``{"audio->mel": LogMel()}``.
    """
    for name, t in transforms.items():
        src, _, dst = name.partition("->")
        if src in sample:
            sample[dst or src] = t(sample[src], g)
    return sample
