"""Metadata filters on the probe already in ``sample.meta``: no decoding, no re-encode."""

from __future__ import annotations

from dataclasses import dataclass

from v2d_vox.errors import Filtered
from v2d_vox.probe import display_size
from v2d_vox.sample import Sample
from v2d_vox.subsampler import Subsampler, register


@register("filter")
@dataclass
class Filter(Subsampler):
    """Drop sources that cannot make good samples; the reason lands in the metadata parquet."""

    stage = "meta"
    reads_source = False
    min_duration: float | None = None
    max_duration: float | None = None
    require_audio: bool = False
    require_video: bool = False  # a cover picture (mp3 art) is not video
    min_width: int | None = None
    min_height: int | None = None

    def check(self, sample: Sample) -> None:
        info = sample.meta["probe"]
        duration = info.get("duration")
        if self.require_audio and not info["has_audio"]:
            raise Filtered("no audio stream (require_audio)")
        if self.require_video and not info["has_video"]:
            raise Filtered("no video stream (require_video)")
        if self.min_duration is not None and (duration is None or duration < self.min_duration):
            raise Filtered(f"duration {_secs(duration)} < min_duration {self.min_duration}")
        if self.max_duration is not None and (duration is None or duration > self.max_duration):
            raise Filtered(f"duration {_secs(duration)} > max_duration {self.max_duration}")
        if (self.min_width or self.min_height) and info["has_video"]:
            w, h = display_size(info["video"])
            if self.min_width and w < self.min_width:
                raise Filtered(f"width {w} < min_width {self.min_width}")
            if self.min_height and h < self.min_height:
                raise Filtered(f"height {h} < min_height {self.min_height}")


def _secs(duration: float | None) -> str:
    return "unknown" if duration is None else f"{duration:.2f} s"
