"""Resampling steps for the one ffmpeg pass: video fps/size/codec, audio rate/channels/format. Each step
*is* the plan's typed output spec (its fields, its checks: bad arguments fail at config time) and sets it."""

from __future__ import annotations

from dataclasses import dataclass

from v2d_vox.plan import AudioSpec, MediaPlan, VideoSpec
from v2d_vox.sample import Sample
from v2d_vox.subsampler import Subsampler, register


@register("resample_video")
@dataclass
class ResampleVideo(Subsampler, VideoSpec):
    """Constant frame rate and size. ``short_side`` keeps the aspect ratio; ``width`` x ``height`` is
    exact, reached by ``mode``: ``scale`` (stretch), ``crop`` (fill, cut the overflow, centered) or
    ``pad`` (fit, black bars). ``gop_seconds`` sets a keyframe that often so loaders seek cheaply."""

    stage = "media"
    reads_source = False

    def plan(self, plan: MediaPlan, sample: Sample) -> None:
        plan.layout.video = self.spec()


@register("resample_audio")
@dataclass
class ResampleAudio(Subsampler, AudioSpec):
    """Sample rate and channels. Audio stays in the video file (as ``codec``, aac for mp4) unless
    ``separate``; it is written alone as ``format`` (m4a, flac, wav, opus, ogg, mp3) when separate or
    when there is no video (audio-only sources, or video dropped by ``streams``)."""

    stage = "media"
    reads_source = False

    def plan(self, plan: MediaPlan, sample: Sample) -> None:
        plan.layout.audio = self.spec()
