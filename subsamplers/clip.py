"""Cut a source into clips: explicit spans from the table's clip column and/or fixed windows.

Spans (``sample.meta["clips"]``, ``[[start, end], ...]`` in seconds as VoxCeleb2 segments are) are
clamped to the source; without them the whole source is one span. With ``clip_seconds`` each span is
tiled with windows of that length every ``stride`` seconds; ``last`` says what to do with a tail
shorter than a window: ``drop`` it, ``keep`` it short, or ``fit`` a full window ending at the span's
end (shifted back, overlapping the previous one); ``min_seconds`` drops clips shorter than that.
A source where no clip fits is ``filtered`` with the reason: too short is a property of the content,
not a processing failure. The cuts are exact (the one ffmpeg pass re-encodes and trims both streams
at the same times).

With ``scenes_as_clips`` the scenes between the cuts the ``scene_cuts`` step found (``sample.meta
["scene_cuts"]``) become the spans, inside each clip-column span when there is one: scenes shorter than
``min_scene_seconds`` are dropped, longer than ``max_scene_seconds`` are cut into pieces of that length (a
shorter last piece kept), then ``clip_seconds`` windows apply as to any span. Whenever cuts are known, each
clip's json lists those inside it under ``scene_cuts``."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from v2d_vox.errors import Filtered, SubsampleError
from v2d_vox.plan import MediaPlan
from v2d_vox.sample import Sample
from v2d_vox.subsampler import Subsampler, register

from .scenes import SCENE_CUTS

LAST = ("drop", "keep", "fit")
EPS = 1e-3  # seconds: float noise in durations and strides


def parse_spans(value: Any) -> list[tuple[float, float]]:
    """``"[[0, 2.5], [3, 5]]"`` or a list of pairs -> [(0.0, 2.5), (3.0, 5.0)]; a cell that is not that
    (bad JSON, a pair that is not two numbers, NaN or infinite times, an end before its start) fails its row."""
    try:
        spans = [(float(s), float(e)) for s, e in (json.loads(value) if isinstance(value, str) else value)]
    except (TypeError, ValueError) as e:
        raise SubsampleError(f"bad clip spans {str(value)[:80]!r}: expected [[start, end], ...]") from e
    bad = next(((s, e) for s, e in spans if not (math.isfinite(s) and math.isfinite(e) and e >= s)), None)
    if bad is not None:
        raise SubsampleError(f"bad clip span {list(bad)} in {str(value)[:80]!r}: start and end must be finite, "
                             "end >= start")
    return spans


def source_duration(info: dict[str, Any]) -> float:
    """The span both streams cover: the shortest of the container and stream durations."""
    candidates = [info.get("duration")] + [(info.get(k) or {}).get("duration") for k in ("video", "audio")]
    known = [d for d in candidates if d]
    if not known:
        raise SubsampleError("source duration unknown: cannot place clips")
    return min(known)


def windows(start: float, end: float, length: float, stride: float, last: str) -> list[tuple[float, float]]:
    out = []
    t = start
    while t + length <= end + EPS:
        out.append((t, min(t + length, end)))
        t += stride
    if t < end - EPS:  # a tail no full window covers
        if last == "keep":
            out.append((t, end))
        elif last == "fit" and end - start >= length - EPS and (not out or out[-1][1] < end - EPS):
            out.append((max(start, end - length), end))
    return [(round(s, 6), round(e, 6)) for s, e in out]


def scenes(start: float, end: float, cuts: list[float], min_seconds: float,
           max_seconds: float | None) -> list[tuple[float, float]]:
    """The scenes of span [start, end] between ``cuts``, too short ones dropped, long ones in pieces."""
    bounds = [start, *(c for c in cuts if start + EPS < c < end - EPS), end]
    kept = [(s, e) for s, e in zip(bounds, bounds[1:]) if e - s >= min_seconds - EPS]
    if max_seconds is None:
        return kept
    return [w for s, e in kept for w in windows(s, e, max_seconds, max_seconds, "keep")]


@register("clip")
@dataclass
class Clip(Subsampler):
    stage = "media"
    reads_source = False
    clip_seconds: float | None = None  # None: the spans themselves are the clips
    stride: float | None = None  # default: clip_seconds (back to back)
    last: str = "drop"
    max_clips: int | None = None
    min_seconds: float = 0.0  # drop shorter clips (a kept tail, a short span)
    use_clip_col: bool = True  # cut inside sample.meta["clips"] when the table has a clip column (not for clips)
    scenes_as_clips: bool = False  # the scenes between scene_cuts' cuts are the spans
    min_scene_seconds: float = 0.0
    max_scene_seconds: float | None = None

    def __post_init__(self):
        for name in ("clip_seconds", "stride"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value}")
        if self.last not in LAST:
            raise ValueError(f"last={self.last!r}; choose one of {LAST}")
        if self.max_clips is not None and self.max_clips < 1:
            raise ValueError(f"max_clips must be >= 1, got {self.max_clips}")
        if self.max_scene_seconds is not None and self.max_scene_seconds <= 0:
            raise ValueError(f"max_scene_seconds must be > 0, got {self.max_scene_seconds}")

    def source_spans(self, row: dict[str, Any]) -> list[tuple[float, float]] | None:
        """The clip column's spans (every clip lies inside one); None without them (windows tile the whole
        source) or when the cell is bad (``plan`` then fails the row with its message)."""
        if not self.use_clip_col or row.get("clips") in (None, "", "[]"):
            return None
        try:
            return parse_spans(row["clips"])
        except SubsampleError:
            return None

    def plan(self, plan: MediaPlan, sample: Sample) -> None:
        duration = source_duration(sample.meta["probe"])
        # a sample that is already a clip (reprocessed: its json has the span it was cut from) keeps its
        # source's clip column in its json, in the source's times: cutting by it again would cut nothing
        given = (self.use_clip_col and "span" not in sample.meta
                 and sample.meta.get("clips") not in (None, "", "[]"))
        spans = parse_spans(sample.meta["clips"]) if given else [(0.0, duration)]
        spans = [(max(0.0, s), min(e, duration)) for s, e in spans]
        cuts = sample.meta.get(SCENE_CUTS)
        if self.scenes_as_clips:
            if cuts is None:
                raise SubsampleError("clip: scenes_as_clips needs the scene_cuts step in the chain")
            spans = [x for s, e in spans for x in scenes(s, e, cuts, self.min_scene_seconds, self.max_scene_seconds)]
        if self.clip_seconds is not None:
            stride = self.stride or self.clip_seconds
            spans = [w for s, e in spans for w in windows(s, e, self.clip_seconds, stride, self.last)]
        spans = [(s, e) for s, e in spans if e - s > max(EPS, self.min_seconds - EPS)]
        if not spans:
            need = (f"clip_seconds {self.clip_seconds}" if self.clip_seconds else
                    f"a scene of {self.min_scene_seconds:g} s" if self.scenes_as_clips else "a clip span inside it")
            raise Filtered(f"no clip fits: duration {duration:.2f} s, needs {need}")
        plan.layout.spans = spans[: self.max_clips]
        if cuts is not None:
            for i, (s, e) in enumerate(plan.layout.spans):
                plan.edit(i).meta[SCENE_CUTS] = [c for c in cuts if s + EPS < c < e - EPS]
