"""Resampling steps for the one ffmpeg pass: video fps/size/codec, audio rate/channels/format. Each sets
the plan's typed output spec, which also checks the arguments (bad ones fail at config time)."""

from __future__ import annotations

from dataclasses import dataclass

from v2d_vox.plan import AudioSpec, MediaPlan, VideoSpec
from v2d_vox.sample import Sample
from v2d_vox.subsampler import Subsampler, register


@register("resample_video")
@dataclass
class ResampleVideo(Subsampler):
    """Constant frame rate and size. ``short_side`` keeps the aspect ratio; ``width`` x ``height`` is
    exact, reached by ``mode``: ``scale`` (stretch), ``crop`` (fill, cut the overflow, centered) or
    ``pad`` (fit, black bars). ``gop_seconds`` sets a keyframe that often so loaders seek cheaply."""

    stage = "media"
    fps: float | None = None
    short_side: int | None = None
    width: int | None = None
    height: int | None = None
    mode: str = "scale"
    codec: str = "libx264"
    crf: int = 23
    preset: str = "veryfast"
    gop_seconds: float = 1.0
    container: str = "mp4"

    def __post_init__(self):
        self.spec()

    def spec(self) -> VideoSpec:
        return VideoSpec(fps=self.fps, width=self.width, height=self.height, short_side=self.short_side,
                         mode=self.mode, codec=self.codec, crf=self.crf, preset=self.preset,
                         gop_seconds=self.gop_seconds, container=self.container)

    def plan(self, plan: MediaPlan, sample: Sample) -> None:
        plan.layout.video = self.spec()


@register("resample_audio")
@dataclass
class ResampleAudio(Subsampler):
    """Sample rate and channels. Audio stays in the video file (as ``codec``, aac for mp4) unless
    ``separate``; it is written alone as ``format`` (m4a, flac, wav, opus, ogg, mp3) when separate or
    when there is no video (audio-only sources, or video dropped by ``streams``)."""

    stage = "media"
    sample_rate: int | None = None
    channels: int | None = None
    format: str = "m4a"
    codec: str = "aac"
    bitrate: str | None = None
    separate: bool = False

    def __post_init__(self):
        self.spec()

    def spec(self) -> AudioSpec:
        return AudioSpec(sample_rate=self.sample_rate, channels=self.channels, format=self.format,
                         codec=self.codec, bitrate=self.bitrate, separate=self.separate)

    def plan(self, plan: MediaPlan, sample: Sample) -> None:
        plan.layout.audio = self.spec()
