"""Choose which streams the outputs keep; both by default (audio is never dropped silently)."""

from __future__ import annotations

from dataclasses import dataclass

from v2d_vox.plan import MediaPlan
from v2d_vox.sample import Sample
from v2d_vox.subsampler import Subsampler, register


@register("streams")
@dataclass
class Streams(Subsampler):
    """``video: false`` makes audio-only outputs (``KEY.m4a``, ``KEY.flac``...); ``audio: false``
    silent video. A source lacking every kept stream fails with a clear reason."""

    stage = "media"
    reads_source = False
    video: bool = True
    audio: bool = True

    def __post_init__(self):
        if not (self.video or self.audio):
            raise ValueError("streams: keep at least one of video and audio")

    def plan(self, plan: MediaPlan, sample: Sample) -> None:
        plan.layout.keep_video = plan.layout.keep_video and self.video
        plan.layout.keep_audio = plan.layout.keep_audio and self.audio
