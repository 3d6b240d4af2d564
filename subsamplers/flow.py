"""Dense optical flow of each output clip, stored as ``KEY.flow.npy`` (array stage).

The clip's video is decoded once, every ``frame_step``-th frame shrunk to ``width`` pixels wide (gray), and
OpenCV's Farneback flow computed between consecutive kept frames: an array ``(pairs, height, width, 2)``
of (dx, dy) in pixels of that small frame, stored as ``dtype``. The json's ``optical_flow`` holds the
parameters and summary statistics (``mean_magnitude`` over all pixels and pairs, the largest and smallest
per-pair mean), so static clips can be filtered from the json alone, as video2dataset's users do.
OpenCV is the ``flow`` extra (``opencv-python-headless``), imported only when the step runs."""

from __future__ import annotations

import io
from dataclasses import dataclass

import av
import numpy as np

from v2d_vox.errors import SubsampleError
from v2d_vox.media import TooLarge, open_media
from v2d_vox.sample import FLOW, Sample, video_member
from v2d_vox.subsampler import Subsampler, register


def gray_frames(data: bytes, step: int, width: int) -> list[np.ndarray]:
    """Every ``step``-th frame of the first video stream as uint8 gray, ``width`` wide (even height)."""
    out = []
    with open_media(data) as container:
        if not container.streams.video:
            raise SubsampleError("optical_flow: the sample has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for i, frame in enumerate(container.decode(stream)):
            if i % step == 0:
                height = max(2, round(frame.height * width / max(1, frame.width) / 2) * 2)
                out.append(frame.reformat(width=width, height=height, format="gray").to_ndarray())
    return out


@register("optical_flow")
@dataclass
class OpticalFlow(Subsampler):
    stage = "array"
    frame_step: int = 1  # flow between frames i and i + frame_step, for i = 0, step, 2 * step...
    width: int = 128  # the frames' width for the flow (height keeps the aspect ratio)
    dtype: str = "float16"
    pyr_scale: float = 0.5  # Farneback's parameters, OpenCV's usual values
    levels: int = 3
    winsize: int = 15
    iterations: int = 3
    poly_n: int = 5
    poly_sigma: float = 1.2

    def __post_init__(self):
        if self.frame_step < 1:
            raise ValueError(f"frame_step must be >= 1, got {self.frame_step}")
        if self.width < 8 or self.width % 2:
            raise ValueError(f"width must be an even number >= 8, got {self.width}")
        if self.dtype not in ("float16", "float32"):
            raise ValueError(f"dtype must be float16 or float32, got {self.dtype!r}")

    def apply(self, sample: Sample) -> None:
        import cv2  # here: only chains with this step need OpenCV

        ext = video_member(sample.files)
        if ext is None:
            raise SubsampleError("optical_flow: the sample has no video member")
        try:
            frames = gray_frames(sample.files[ext], self.frame_step, self.width)
        except (av.error.FFmpegError, TooLarge) as e:
            raise SubsampleError(f"optical_flow: cannot decode video: {type(e).__name__}") from None
        if len(frames) < 2:
            raise SubsampleError(f"optical_flow: {len(frames)} frame(s) at frame_step {self.frame_step}; need 2")
        flow = np.stack([
            cv2.calcOpticalFlowFarneback(a, b, None, self.pyr_scale, self.levels, self.winsize, self.iterations,
                                         self.poly_n, self.poly_sigma, 0)
            for a, b in zip(frames, frames[1:])
        ])
        per_pair = np.linalg.norm(flow, axis=-1).mean(axis=(1, 2))
        buf = io.BytesIO()
        np.save(buf, flow.astype(self.dtype))
        sample.files[FLOW] = buf.getvalue()
        sample.meta["optical_flow"] = {
            **self.describe(), "shape": list(flow.shape), "source_member": ext,
            "layout": "(pairs, height, width, 2): dx, dy in pixels of the stored size per frame_step frames",
            "mean_magnitude": round(float(per_pair.mean()), 4), "max_pair_magnitude": round(float(per_pair.max()), 4),
            "min_pair_magnitude": round(float(per_pair.min()), 4),
        }
