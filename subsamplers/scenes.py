"""Scene cuts from a cheap low-resolution decode, found before the fused pass (``scene_cuts``, meta stage).

Why the meta stage: meta steps run before every media step whatever the config order, and a meta step
looks at the source without changing it. This one decodes the source's video once, each frame shrunk to
``width`` pixels wide by the scaler (so the per-frame work is on a few thousand pixels), and scores each
frame against the one before: the mean absolute difference of its Y, U and V planes (0..255), the content
score PySceneDetect's ``ContentDetector`` uses in HSV. A frame scoring over ``threshold`` starts a new
scene unless the current one is shorter than ``min_scene_seconds`` (flashes do not cut).

The cut times (seconds on the source's timeline, where clip spans live) go into ``sample.meta`` under
``scene_cuts``; ``clip`` turns them into spans with ``scenes_as_clips`` and lists the cuts inside each clip
in that clip's json; the step's arguments and the frames it scored go under
``scene_detection``. Nothing is encoded or written: the one ffmpeg pass that follows cuts the clips."""

from __future__ import annotations

from dataclasses import dataclass

import av
import numpy as np

from v2d_vox.errors import SubsampleError
from v2d_vox.media import TooLarge, open_media
from v2d_vox.sample import Sample
from v2d_vox.subsampler import Subsampler, register

SCENE_CUTS = "scene_cuts"  # json field: cut times in seconds (source timeline for a source, same for a clip)


def find_cuts(data: bytes, threshold: float, min_scene_seconds: float, width: int) -> tuple[list[float], int]:
    """(cut times in seconds from the container's start, frames scored) of the first video stream; no
    video stream: no cuts. The times are those of the first frame of each new scene."""
    with open_media(data) as container:
        if not container.streams.video:
            return [], 0
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        start = container.start_time / av.time_base if container.start_time else 0.0
        cuts: list[float] = []
        previous: np.ndarray | None = None
        scene_start, frames = None, 0
        for frame in container.decode(stream):
            if frame.time is None:
                continue
            height = max(2, round(frame.height * width / max(1, frame.width) / 2) * 2)
            small = frame.reformat(width=width, height=height, format="yuv444p").to_ndarray().astype(np.int16)
            t = frame.time - start
            frames += 1
            if previous is not None and small.shape == previous.shape:
                score = float(np.abs(small - previous).mean())
                if score > threshold and t - scene_start >= min_scene_seconds:
                    cuts.append(round(t, 6))
                    scene_start = t
            if scene_start is None:
                scene_start = t
            previous = small
    return cuts, frames


@register("scene_cuts")
@dataclass
class SceneCuts(Subsampler):
    """Find hard cuts in each source (see the module docstring); ``clip(scenes_as_clips=True)`` cuts on them."""

    stage = "meta"
    threshold: float = 30.0  # mean |delta| of Y, U, V (0..255) between consecutive frames that makes a cut
    min_scene_seconds: float = 0.5  # a new cut no sooner than this after the last one
    width: int = 64  # the detection decode's frame width (height keeps the aspect ratio)

    def __post_init__(self):
        if not 0 < self.threshold < 255:
            raise ValueError(f"threshold must be in (0, 255), got {self.threshold}")
        if self.min_scene_seconds < 0:
            raise ValueError(f"min_scene_seconds must be >= 0, got {self.min_scene_seconds}")
        if self.width < 8 or self.width % 2:
            raise ValueError(f"width must be an even number >= 8, got {self.width}")

    def check(self, sample: Sample) -> None:
        try:
            cuts, frames = find_cuts(sample.media, self.threshold, self.min_scene_seconds, self.width)
        except (av.error.FFmpegError, TooLarge) as e:
            raise SubsampleError(f"scene_cuts: cannot decode video: {type(e).__name__}") from None
        sample.meta[SCENE_CUTS] = cuts
        sample.meta["scene_detection"] = {**self.describe(), "frames": frames}
