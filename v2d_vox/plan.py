"""MediaPlan: what the single ffmpeg pass must make of one source. Media subsamplers fill it in;
``v2d_vox.ffmpeg.run_plan`` compiles it into one ffmpeg process. An untouched plan keeps the source.

Per-clip hooks let a later subsampler, such as a corruption step, vary each clip inside the same pass:
``clip_video_filters``/``clip_audio_filters`` are ffmpeg filter strings (``"eq=brightness=0.1"``,
``"volume=0.5"``) applied after cutting and resampling; ``mix`` lays an extra audio input (e.g.
background noise, looped as needed) under a clip's audio. A clip's audio changes happen in its output
rate and channels (the mix first, then the audio filters); ``clip_video`` overrides encoder options
(``{"crf": 45}``); ``clip_meta`` goes into the clip's json. With ``variant`` set, these per-clip
changes go to a second copy of each clip stored as ``KEY.<variant>.<ext>`` while ``KEY.<ext>`` stays
as cut, so clean and changed versions sit side by side.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Mix:
    """Mix ``MediaPlan.extra_audio[input]`` into a clip's audio at ``gain_db`` (looped to the clip length)."""

    input: int
    gain_db: float = 0.0


@dataclass
class MediaPlan:
    spans: list[tuple[float, float]] | None = None  # None: the whole source is one output
    video: dict[str, Any] = field(default_factory=dict)  # fps, width, height, short_side, mode, codec...
    audio: dict[str, Any] = field(default_factory=dict)  # sample_rate, channels, format...
    video_filters: list[str] = field(default_factory=list)  # on every output, after resampling
    audio_filters: list[str] = field(default_factory=list)
    clip_video_filters: dict[int, list[str]] = field(default_factory=dict)  # clip index -> filters
    clip_audio_filters: dict[int, list[str]] = field(default_factory=dict)
    extra_audio: list[bytes] = field(default_factory=list)  # extra inputs, referenced by Mix.input
    mix: dict[int, Mix] = field(default_factory=dict)  # clip index -> extra audio laid under it
    clip_video: dict[int, dict[str, Any]] = field(default_factory=dict)  # clip index -> encoder overrides
    clip_meta: dict[int, dict[str, Any]] = field(default_factory=dict)  # clip index -> json fields
    variant: str | None = None  # per-clip changes go to KEY.<variant>.<ext>, KEY.<ext> stays as cut
    drop_video: bool = False
    drop_audio: bool = False
    split_audio: bool = False  # audio as its own member (audio["format"]: m4a, flac...), the mp4 video-only
    container: str = "mp4"
    timeout: float | None = None  # seconds for the ffmpeg call; None: scaled from the source duration
    steps: list[dict[str, Any]] = field(default_factory=list)  # provenance: describe() of each step

    @property
    def is_identity(self) -> bool:
        return not (
            self.spans is not None or self.video or self.audio or self.video_filters
            or self.audio_filters or self.clip_video_filters or self.clip_audio_filters or self.mix
            or self.clip_video or self.variant or self.drop_video or self.drop_audio or self.split_audio
        )
