"""YUV 4:2:0 frames -> RGB at the training size, as batched tensor ops on any device.

In ``convert="device"`` mode decoded frames leave the workers as their planes (1.5 bytes per pixel, half
of RGB) and this module turns a whole batch into RGB after the move to ``device``: colour conversion with
the frame's own matrix and range (what swscale does: BT.709 when tagged, BT.2020 when tagged, else BT.601;
full range for JPEG-range frames), a bilinear antialiased resize to the short side then a centre crop, the
same geometry as the worker path. Frames already at the training size are not resized (chroma is only
upsampled). Results equal swscale's within a few levels (different filter taps and rounding; see
tests/loader/test_loader_color.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

Size = int | tuple[int, int] | None

# AVColorSpace code -> (Kr, Kb); anything else is decoded as BT.601, like swscale
_MATRICES = {1: (0.2126, 0.0722), 9: (0.2627, 0.0593), 10: (0.2627, 0.0593)}
_BT601 = (0.299, 0.114)
_CPU_CHUNK = 16  # frames per step on the CPU: keeps the float temporaries in cache


def matrix(colorspace: int) -> tuple[float, float]:
    """(Kr, Kb) of an AVColorSpace code."""
    return _MATRICES.get(colorspace, _BT601)


def geometry(height: int, width: int, size: Size) -> tuple[int, int, int, int, int, int]:
    """(scaled h, scaled w, top, left, out h, out w): ``size`` int scales the short side to it then crops
    the centre square; (h, w) scales to exactly that; None keeps the frame."""
    if size is None:
        return height, width, 0, 0, height, width
    if isinstance(size, tuple):
        return size[0], size[1], 0, 0, size[0], size[1]
    scale = size / min(width, height)
    w, h = max(size, round(width * scale)), max(size, round(height * scale))
    return h, w, (h - size) // 2, (w - size) // 2, size, size


def _resize(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    if tuple(x.shape[-2:]) == (h, w):
        return x
    return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)


def _convert(y: torch.Tensor, uv: torch.Tensor, size: Size, kr: float, kb: float, full: bool) -> torch.Tensor:
    """(N, H, W) and (N, 2, H/2, W/2) uint8 -> (N, 3, h, w) uint8."""
    height, width = y.shape[-2:]
    sh, sw, top, left, oh, ow = geometry(height, width, size)
    luma, chroma = y[:, None].float(), uv.float()
    if (sh, sw) == (height, width):  # no resize: chroma sample per 2x2 pixels, as swscale's unscaled path
        chroma = chroma.repeat_interleave(2, -2).repeat_interleave(2, -1)[..., :height, :width]
    else:
        luma, chroma = _resize(luma, sh, sw), _resize(chroma, sh, sw)
    luma, chroma = luma[..., top : top + oh, left : left + ow], chroma[..., top : top + oh, left : left + ow]
    if full:
        lum, chroma = luma, chroma - 128.0
    else:
        lum, chroma = (luma - 16.0) * (255 / 219), (chroma - 128.0) * (255 / 224)
    u, v = chroma[:, :1], chroma[:, 1:]
    kg = 1.0 - kr - kb
    r = lum + 2 * (1 - kr) * v
    b = lum + 2 * (1 - kb) * u
    g = lum - (2 * kr * (1 - kr) / kg) * v - (2 * kb * (1 - kb) / kg) * u
    return torch.cat([r, g, b], dim=1).round_().clamp_(0, 255).to(torch.uint8)


def to_rgb(y: torch.Tensor, uv: torch.Tensor, size: Size, colorspace: int = 2,
           full_range: bool = False) -> torch.Tensor:
    """Planes (..., H, W) and (..., 2, ceil(H/2), ceil(W/2)) uint8 -> RGB (..., 3, h, w) uint8 on their device."""
    lead = y.shape[:-2]
    flat_y, flat_uv = y.reshape(-1, *y.shape[-2:]), uv.reshape(-1, *uv.shape[-3:])
    kr, kb = matrix(colorspace)
    step = _CPU_CHUNK if y.device.type == "cpu" else max(1, flat_y.shape[0])
    parts = [_convert(flat_y[i : i + step], flat_uv[i : i + step], size, kr, kb, full_range)
             for i in range(0, flat_y.shape[0], step)]
    out = torch.cat(parts) if parts else torch.empty(0, 3, *geometry(*y.shape[-2:], size)[4:], dtype=torch.uint8,
                                                          device=y.device)
    return out.reshape(*lead, *out.shape[1:])


def batch_to_rgb(batch: dict, size: Size) -> dict:
    """A collated batch's ``video_yuv`` groups (see ``batch.collate``) -> ``video`` (B, T, 3, h, w) uint8,
    padding frames (``video_mask`` False) black as in the worker path."""
    groups = batch.pop("video_yuv", None)
    if not groups:
        return batch
    mask = batch["video_mask"]
    out = None
    for group in groups:
        rgb = to_rgb(group["y"], group["uv"], size, group["colorspace"], group["full_range"])
        if out is None:
            out = rgb.new_zeros((mask.shape[0], *rgb.shape[1:]))
        out[group["rows"].to(out.device)] = rgb
    out[~mask.to(out.device)] = 0
    batch["video"] = out
    return batch
