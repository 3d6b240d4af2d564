"""Resampling steps for the one ffmpeg pass: video fps/size/codec, audio rate/channels/format."""

from __future__ import annotations

from dataclasses import dataclass, fields

from v2d_vox.ffmpeg import AUDIO_FORMATS, VIDEO_CONTAINERS
from v2d_vox.plan import MediaPlan
from v2d_vox.sample import Sample
from v2d_vox.subsampler import Subsampler, register

MODES = ("scale", "crop", "pad")


def _set(target: dict, step: Subsampler, skip: tuple[str, ...] = ()) -> None:
    target.update({f.name: getattr(step, f.name) for f in fields(step)
                   if f.name not in skip and getattr(step, f.name) is not None})


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
        if (self.width is None) != (self.height is None):
            raise ValueError("give both width and height, or short_side")
        if self.short_side and self.width:
            raise ValueError("give either short_side or width x height, not both")
        if any(x is not None and (x < 2 or x % 2) for x in (self.short_side, self.width, self.height)):
            raise ValueError("sizes must be even numbers >= 2 (yuv420p)")
        if self.mode not in MODES:
            raise ValueError(f"mode={self.mode!r}; choose one of {MODES}")
        if self.container not in VIDEO_CONTAINERS:
            raise ValueError(f"container={self.container!r}; choose one of {tuple(VIDEO_CONTAINERS)}")
        if self.fps is not None and self.fps <= 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")

    def plan(self, plan: MediaPlan, sample: Sample) -> None:
        _set(plan.video, self, skip=("container",))
        plan.container = self.container


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
        if self.format not in AUDIO_FORMATS:
            raise ValueError(f"format={self.format!r}; choose one of {tuple(AUDIO_FORMATS)}")
        if self.sample_rate is not None and self.sample_rate <= 0:
            raise ValueError(f"sample_rate must be > 0, got {self.sample_rate}")
        if self.channels is not None and self.channels not in range(1, 9):
            raise ValueError(f"channels must be 1..8, got {self.channels}")

    def plan(self, plan: MediaPlan, sample: Sample) -> None:
        _set(plan.audio, self, skip=("separate",))
        plan.split_audio = plan.split_audio or self.separate
