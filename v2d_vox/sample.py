"""The data contract between curation and training: what a sample is, which members hold its media,
and how keys, clip keys, video ids and identities are spelled. Writers, reprocess, scan, the loader,
tests and benchmarks all read these from here, so the two halves cannot disagree."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

# Member extensions that hold media, by kind, in order of preference.
VIDEO_EXTS = ("mp4", "mkv", "webm", "mov", "avi", "mpg", "ts", "flv", "asf")
AUDIO_EXTS = ("m4a", "flac", "wav", "mp3", "ogg", "opus", "aac")
MEDIA_EXTS = VIDEO_EXTS + AUDIO_EXTS
MEL = "mel.npy"  # the stored log-mel, (n_mels, frames); its parameters are json["mel"] (a MelSpec)
FLOW = "flow.npy"  # optical flow, (pairs, height, width, 2); its parameters and statistics are json["optical_flow"]
EMBEDDING = "emb.npy"  # a model's embedding of the clip, (dim,); json["embedding"] says which model
JSON, TXT = "json", "txt"

# Demuxer name (the first of PyAV's comma list) -> the extension a file of that format is stored under.
CONTAINER_EXTS = {
    "mov": "mp4", "matroska": "mkv", "webm": "webm", "avi": "avi", "mpeg": "mpg", "mpegts": "ts",
    "flv": "flv", "asf": "asf", "wav": "wav", "flac": "flac", "mp3": "mp3", "ogg": "ogg", "aac": "aac",
    "opus": "opus",
}


# Fields the engine writes into each metadata record and json. A table column with one of these names is
# kept as ``input_<name>``: it can neither overwrite the engine's field nor be overwritten by it.
RESERVED_FIELDS = frozenset({
    "key", "url", "caption", "clips", "status", "error_message", "outputs", "probe", "bytes_downloaded",
    "source_bytes", "format", "duration", "has_video", "has_audio", "width", "height", "fps", "vfr",
    "video_codec", "audio_codec", "sample_rate", "channels", "video_seconds_out", "audio_seconds_out",
    "source_key", "clip_index", "span", "subsamplers", "mel", "reprocess", "source_shard", "source_index",
})


def video_member(files: dict[str, Any]) -> str | None:
    """The extension of the sample's video member, if any."""
    return next((e for e in VIDEO_EXTS if e in files), None)


def audio_member(files: dict[str, Any]) -> str | None:
    """The member to take audio from: a separate audio member first, else the video (which may carry it)."""
    return next((e for e in AUDIO_EXTS + VIDEO_EXTS if e in files), None)


def media_member(files: dict[str, Any]) -> str | None:
    """The member holding the primary media: video first, else audio."""
    return next((e for e in MEDIA_EXTS if e in files), None)


def check_key(key: str) -> str:
    """Keys become tar member and file names: refuse anything that could escape a folder."""
    if not key or "/" in key or "\\" in key or ".." in key or key.startswith("."):
        raise ValueError(f"invalid sample key {key!r}: keys may not contain '/', '\\\\' or '..'")
    return key


def clip_key(key: str, index: int) -> str:
    """The key of clip ``index`` cut from source ``key``."""
    return f"{key}_{index:05d}"


def video_id(meta: dict[str, Any], key: str) -> str:
    """The source video of a clip: json ``video_id``, else ``source_key``, else the key before its clip
    suffix. Triplets take positives from another video id, so a model cannot match clips by background."""
    return str(meta.get("video_id") or meta.get("source_key") or key.rsplit("_", 1)[0])


def identity(meta: dict[str, Any], field: str = "identity") -> str | None:
    """The speaker/identity label of a sample (json ``field``), as a string; None when absent."""
    value = meta.get(field)
    return None if value is None else str(value)


@dataclass(frozen=True)
class Piece:
    """A section of a source fetched as a file of its own that keeps the source's timeline (yt-dlp's
    ``download_ranges`` with ffmpeg's ``-copyts``): it holds every packet of the source from the keyframe at or
    before ``start`` to ``end`` (seconds on the source's timeline, whose origin is 0)."""

    start: float
    end: float
    data: bytes = field(repr=False)

    def holds(self, start: float, end: float) -> bool:
        return self.start <= start and end <= self.end


@dataclass
class Sample:
    """One webdataset sample. ``files`` maps an extension ("mp4", "m4a", "mel.npy", "txt") to its bytes;
    ``meta`` is KEY.json. ``meta=None`` means ``files`` already holds the json bytes, to be copied as they are.
    ``fetched``: bytes read from the source to make it, when not its media's size (only the ranges some clips
    need); never written. ``pieces``: a source fetched only in sections, in time order: its media member is then
    the first piece (what probing reads), and each read of the source comes from the piece that holds it
    (``piece``), so only outputs cut inside the pieces can be made from it."""

    key: str
    files: dict[str, bytes] = field(default_factory=dict)
    meta: dict[str, Any] | None = field(default_factory=dict)
    fetched: int | None = None
    pieces: tuple[Piece, ...] = ()

    def piece(self, start: float, end: float) -> Piece | None:
        """The piece holding source seconds ``start`` to ``end``; None when none does."""
        return next((p for p in self.pieces if p.holds(start, end)), None)

    @property
    def media_ext(self) -> str | None:
        return media_member(self.files)

    @property
    def media(self) -> bytes:
        ext = self.media_ext
        if ext is None:
            raise KeyError(f"sample {self.key} has no media member (has {sorted(self.files)})")
        return self.files[ext]

    def members(self) -> list[tuple[str, bytes]]:
        """(extension, bytes) in the order they are written: sorted, with the json serialized from
        ``meta``; a copied sample (``meta=None``) keeps its members and their order as they were."""
        if self.meta is None:
            return list(self.files.items())
        files = {**self.files, JSON: json.dumps(self.meta, sort_keys=True, default=str).encode()}
        return sorted(files.items())
