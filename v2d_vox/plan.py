"""MediaPlan: what the single ffmpeg pass must make of one source. Media subsamplers fill it in;
``v2d_vox.ffmpeg.run_plan`` compiles it into one ffmpeg process. An untouched plan keeps the source.

It has two phases, filled in config order:

- the **layout** (``plan.layout``): which spans become clips, which streams are kept, the part of the frame
  each clip keeps (``Crop``, e.g. a face track), and how video and audio are written (``VideoSpec``,
  ``AudioSpec``). It fixes each clip's key and its output rates.
- per-clip **edits** (``plan.edit(i)``, one ``Edit`` per clip): filter strings applied after cutting and
  resampling (``"eq=brightness=0.1"``, ``"volume=0.5"``), an extra audio laid under the clip (``Mix``,
  e.g. background noise, looped as needed), an encoder crf, fields for the clip's json and its own caption. A clip's
  audio edits happen in its output rate and channels (the mix first, then the filters). With
  ``plan.variant`` set, edits go to a second copy of each clip stored as ``KEY.<variant>.<ext>`` while
  ``KEY.<ext>`` stays as cut, so clean and changed versions sit side by side.

Steps read resolved output parameters (``plan.output_fps(info)``, ``plan.output_audio(info)``,
``plan.layout.window()``, ``plan.layout.segments()``) from here, never from the compiler.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from .sample import clip_key

Span = tuple[float, float]
PREROLL = 1.0  # seconds read before the first clip after seeking: audio decoders (opus, aac) warm up
# A gap between clips longer than this is skipped by seeking rather than decoded: a seek costs about half a
# GOP of decoding plus the preroll, while 360p H.264 decodes ~50x faster than real time on one core.
SEEK_GAP = 10.0
MAX_SEEKS = 64  # inputs per pass at most: each is an open descriptor and a demuxer
MODES = ("scale", "crop", "pad")
VIDEO_CONTAINERS = {"mp4": "mp4", "mkv": "matroska", "webm": "webm"}  # extension -> muxer
# audio format (= member extension) -> (encoder, muxer)
AUDIO_FORMATS = {
    "m4a": ("aac", "ipod"), "flac": ("flac", "flac"), "wav": ("pcm_s16le", "wav"),
    "opus": ("libopus", "ogg"), "ogg": ("libvorbis", "ogg"), "mp3": ("libmp3lame", "mp3"),
}


def channel_layout(channels: int) -> str:
    """ffmpeg's layout name for a channel count."""
    return {1: "mono", 2: "stereo"}.get(channels, f"{channels}c")


@dataclass
class VideoSpec:
    """How every clip's video is written. ``short_side`` keeps the aspect ratio; ``width`` x ``height`` is
    exact, reached by ``mode``: ``scale``, ``crop`` (fill, centered) or ``pad`` (fit, black bars)."""

    fps: float | None = None  # None: the source's
    width: int | None = None
    height: int | None = None
    short_side: int | None = None
    mode: str = "scale"
    codec: str = "libx264"
    crf: int = 23
    preset: str = "veryfast"
    gop_seconds: float = 1.0  # a keyframe this often, so loaders seek cheaply
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
        if self.fps is not None and not (math.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"fps must be a finite number > 0, got {self.fps}")

    def spec(self) -> VideoSpec:
        """This spec as a plain VideoSpec (a ``resample_video`` step is one, plus its stage)."""
        return VideoSpec(**{f.name: getattr(self, f.name) for f in dataclasses.fields(VideoSpec)})

    def output_fps(self, source: dict[str, Any]) -> float:
        """The frame rate every clip is written at, for the probed source video stream."""
        return self.fps or source.get("fps") or 25

    def gop(self, source: dict[str, Any]) -> int:
        return max(1, round(self.output_fps(source) * self.gop_seconds))


@dataclass
class AudioSpec:
    """How every clip's audio is written: in the video file (as ``codec``) unless ``separate``; alone as
    ``format`` (m4a, flac, wav, opus, ogg, mp3) when separate or when there is no video."""

    sample_rate: int | None = None  # None: the source's
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

    def spec(self) -> AudioSpec:
        """This spec as a plain AudioSpec (a ``resample_audio`` step is one, plus its stage)."""
        return AudioSpec(**{f.name: getattr(self, f.name) for f in dataclasses.fields(AudioSpec)})

    def output_audio(self, source: dict[str, Any]) -> tuple[int, int]:
        """The sample rate and channel count every clip's audio is written with."""
        return self.sample_rate or source["sample_rate"], self.channels or source["channels"]


@dataclass(frozen=True)
class Crop:
    """The part of the (displayed) source frame one clip keeps, cut before the clip is resized: ``w`` x ``h``
    pixels at top-left ``x``, ``y``. ``x``/``y`` are numbers, or ffmpeg expressions of ``t`` (seconds from
    the clip's start) for a crop that moves, e.g. along a face track."""

    w: int
    h: int
    x: float | str = 0
    y: float | str = 0

    def __post_init__(self):
        if self.w < 2 or self.h < 2:
            raise ValueError(f"crop size must be >= 2x2, got {self.w}x{self.h}")

    @property
    def filter(self) -> str:
        """The ``crop`` filter, as written for -vf (unescaped)."""
        return f"crop=w={self.w}:h={self.h}:x={self.x}:y={self.y}:exact=1"


@dataclass
class Layout:
    """What each output is. ``video``/``audio`` None: not resampled (the source's size, rates and
    channels, written with the default encoders when the pass runs at all)."""

    spans: list[Span] | None = None  # None: the whole source is one output
    video: VideoSpec | None = None
    audio: AudioSpec | None = None
    keep_video: bool = True
    keep_audio: bool = True
    crops: dict[int, Crop] = field(default_factory=dict)  # clip index -> its region (both copies of a variant)
    first: int = 0  # index of the first span: a part of a larger plan keeps its clips' indexes and keys

    def window(self) -> Span | None:
        """The source range the pass reads (from ``PREROLL`` before the first clip to the end of the last);
        None: all of it."""
        if self.spans is None:
            return None
        return max(0.0, min(s for s, _ in self.spans) - PREROLL), max(e for _, e in self.spans)

    def segments(self) -> list[Segment] | None:
        """The source ranges the pass reads, one seek each: clips closer than ``SEEK_GAP`` share a range (so
        dense clips read one range, as ``window()``), at most ``MAX_SEEKS`` of them (the largest gaps are
        skipped); None: all of the source. Sparse clips of a long source then decode only near themselves."""
        if self.spans is None:
            return None
        order = sorted(range(len(self.spans)), key=lambda i: self.spans[i])
        groups, ends, gaps = [[order[0]]], [self.spans[order[0]][1]], []
        for i in order[1:]:
            start, end = self.spans[i]
            if start - ends[-1] > SEEK_GAP:
                gaps.append((start - ends[-1], len(groups)))
                groups.append([])
                ends.append(end)
            groups[-1].append(i)
            ends[-1] = max(ends[-1], end)
        kept = {g for _, g in sorted(gaps, reverse=True)[: MAX_SEEKS - 1]}
        merged: list[list[int]] = []
        for g, group in enumerate(groups):
            if g == 0 or g in kept:
                merged.append([])
            merged[-1] += group
        return [Segment(max(0.0, min(self.spans[i][0] for i in m) - PREROLL), max(self.spans[i][1] for i in m),
                        tuple(sorted(m))) for m in merged]


@dataclass(frozen=True)
class Segment:
    """A source range read after one seek (from ``PREROLL`` before its first clip to the end of its last), and
    the indices of the clips cut from it."""

    start: float
    end: float
    clips: tuple[int, ...]


@dataclass(frozen=True)
class Clip:
    """One output: its index, the key it is stored under and its span (``end`` None: the whole source, uncut)."""

    index: int
    key: str
    start: float = 0.0
    end: float | None = None


@dataclass
class Mix:
    """Audio (any format ffmpeg reads) laid under a clip's audio at ``gain_db``, looped to the clip length."""

    audio: bytes
    gain_db: float = 0.0


@dataclass
class Edit:
    """Changes to one clip (to its variant copy when the plan has a variant)."""

    video_filters: list[str] = field(default_factory=list)  # one filter each, as written for -vf
    audio_filters: list[str] = field(default_factory=list)
    mix: Mix | None = None
    crf: int | None = None  # overrides the video spec's crf
    meta: dict[str, Any] = field(default_factory=dict)  # fields for the clip's json
    caption: str | None = None  # the clip's txt in place of the source's (e.g. its subtitles); "": no txt


@dataclass
class MediaPlan:
    layout: Layout = field(default_factory=Layout)
    edits: dict[int, Edit] = field(default_factory=dict)  # clip index -> its edit; see ``edit``
    variant: str | None = None  # edits go to KEY.<variant>.<ext>, KEY.<ext> stays as cut
    timeout: float | None = None  # seconds for the ffmpeg call; None: scaled from the source duration
    steps: list[dict[str, Any]] = field(default_factory=list)  # provenance: describe() of each step

    def edit(self, index: int) -> Edit:
        """Clip ``index``'s edit, made on first use."""
        return self.edits.setdefault(index, Edit())

    def clips(self, key: str) -> list[Clip]:
        """The outputs for a source stored under ``key``: ``{key}_{i:05d}`` per span, else ``key`` itself."""
        if self.layout.spans is None:
            return [Clip(0, key)]
        first = self.layout.first
        return [Clip(first + j, clip_key(key, first + j), s, e) for j, (s, e) in enumerate(self.layout.spans)]

    def parts(self, size: int) -> list[MediaPlan]:
        """The plan as passes of at most ``size`` clips each (consecutive spans; edits, crops, indexes and
        keys unchanged): an ffmpeg process holds an encoder per output, so its memory grows with clips."""
        spans = self.layout.spans
        if spans is None or len(spans) <= size:
            return [self]
        return [dataclasses.replace(self, layout=dataclasses.replace(self.layout, spans=spans[a:a + size], first=a))
                for a in range(0, len(spans), size)]

    def streams(self, info: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """The probed video and audio streams the outputs keep (None: absent or dropped)."""
        return (info.get("video") if self.layout.keep_video else None,
                info.get("audio") if self.layout.keep_audio else None)

    def output_fps(self, info: dict[str, Any]) -> float:
        return (self.layout.video or VideoSpec()).output_fps(info["video"])

    def output_audio(self, info: dict[str, Any]) -> tuple[int, int]:
        return (self.layout.audio or AudioSpec()).output_audio(info["audio"])

    @property
    def is_identity(self) -> bool:
        """True when the outputs would be the source itself: every field that shapes them is at its default
        (provenance, the timeout and edits made empty do not shape them)."""
        edits = {i: e for i, e in self.edits.items() if e != Edit()}
        return dataclasses.replace(self, edits=edits, steps=[], timeout=None) == MediaPlan()
