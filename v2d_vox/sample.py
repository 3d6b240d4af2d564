"""The unit that flows through the chain: one webdataset sample (key, files by extension, json)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Extensions the engine treats as the sample's media, in order of preference.
VIDEO_EXTS = ("mp4", "mkv", "webm", "mov", "avi", "mpg", "ts")
AUDIO_EXTS = ("m4a", "flac", "wav", "mp3", "ogg", "opus", "aac")
MEDIA_EXTS = VIDEO_EXTS + AUDIO_EXTS


@dataclass
class Sample:
    """`files` maps a webdataset extension ("mp4", "m4a", "mel.npy", "txt") to its bytes; `meta` is KEY.json."""

    key: str
    files: dict[str, bytes] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def media_ext(self) -> str | None:
        """The member holding the primary media (video first, else audio)."""
        return next((e for e in MEDIA_EXTS if e in self.files), None)

    @property
    def media(self) -> bytes:
        ext = self.media_ext
        if ext is None:
            raise KeyError(f"sample {self.key} has no media member (has {sorted(self.files)})")
        return self.files[ext]


def check_key(key: str) -> str:
    """Keys become tar member names: refuse anything that could escape a folder."""
    if not key or "/" in key or "\\" in key or ".." in key or key.startswith("."):
        raise ValueError(f"invalid sample key {key!r}: keys may not contain '/', '\\\\' or '..'")
    return key
