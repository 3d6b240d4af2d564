"""MediaPlan: what the single ffmpeg pass must make of one source. Media subsamplers fill it in;
``v2d_vox.ffmpeg.run_plan`` compiles it into one ffmpeg process. An untouched plan keeps the source."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class MediaPlan:
    spans: list[tuple[float, float]] | None = None  # None: the whole source is one output
    video: dict[str, Any] = field(default_factory=dict)  # fps, width, height, short_side, mode, codec...
    audio: dict[str, Any] = field(default_factory=dict)  # sample_rate, channels, codec...
    video_filters: list[str] = field(default_factory=list)
    audio_filters: list[str] = field(default_factory=list)
    drop_video: bool = False
    drop_audio: bool = False
    audio_member: str | None = None  # also write the audio as its own member, e.g. "flac"
    container: str = "mp4"
    steps: list[dict[str, Any]] = field(default_factory=list)  # provenance: describe() of each step

    @property
    def is_identity(self) -> bool:
        return not (
            self.spans is not None or self.video or self.audio or self.video_filters
            or self.audio_filters or self.drop_video or self.drop_audio or self.audio_member
        )
