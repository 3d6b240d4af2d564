"""Crop each clip to its face track, inside the one ffmpeg pass (before the resize to the output size).

A track is what VoxCeleb2's metadata gives per utterance: boxes ``[t, x, y, w, h]``, ``t`` in seconds in
the source, the box as fractions of the frame size (``v2d_vox.recipes.voxceleb2`` writes them to the
table's ``face_tracks`` column, one list per utterance). For each clip the boxes inside its span are taken
from whichever utterance holds them, their centres smoothed (a line fitted over ``smooth_seconds`` around each box),
and a square crop of a fixed size (the largest box side in the clip times ``1 + margin``, at most the
frame) is placed on them and kept inside the frame:

- ``mode: box``: one crop per clip, at the mean smoothed centre (steady, like a tripod);
- ``mode: track``: the crop follows the smoothed centre, interpolated linearly between frames (an ffmpeg
  expression of the clip's time), so a moving face stays centred.

The full track column is replaced in each clip's json by the clip's own boxes (``face_track``, times from
the clip's start) and the crop made (``face_crop``). A source without tracks is ``filtered``; a clip whose
span holds no box fails the sample with the span named (the clip step should cut inside the utterances)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from v2d_vox.errors import Filtered, SubsampleError
from v2d_vox.plan import Crop, MediaPlan
from v2d_vox.probe import display_size
from v2d_vox.sample import Sample
from v2d_vox.subsampler import Subsampler, register

MODES = ("box", "track")


def parse_tracks(value: Any) -> np.ndarray:
    """The ``face_tracks`` value (JSON text or lists: per utterance ``[[t, x, y, w, h], ...]``) -> an (N, 5)
    array of every box, sorted by time."""
    try:
        value = json.loads(value) if isinstance(value, str) else value
        rows = [[float(v) for v in box] for track in value for box in track]
        boxes = np.array(rows, dtype=np.float64).reshape(-1, 5)
    except (TypeError, ValueError) as e:
        raise SubsampleError(f"bad face_tracks {str(value)[:80]!r}: expected [[[t, x, y, w, h], ...], ...]") from e
    return boxes[np.argsort(boxes[:, 0], kind="stable")]


def smooth(t: np.ndarray, values: np.ndarray, seconds: float) -> np.ndarray:
    """Each value replaced by a straight line fitted to the values within ``seconds / 2`` of it: removes
    detector jitter without lagging behind a face that moves steadily (a moving average would, at the ends)."""
    if seconds <= 0 or len(values) < 3:
        return values
    out = np.empty_like(values)
    for i, ti in enumerate(t):
        near = np.abs(t - ti) <= seconds / 2
        if near.sum() < 3 or np.ptp(t[near]) == 0:
            out[i] = values[near].mean()
            continue
        slope, intercept = np.polyfit(t[near], values[near], 1)
        out[i] = slope * ti + intercept
    return out


def _ramp(ts: np.ndarray, vs: np.ndarray) -> str:
    """Piecewise-linear ``v(t)`` through the points as one flat ffmpeg expression (a sum of clipped ramps)."""
    terms = [f"{vs[0]:.1f}"]
    for (t0, v0), (t1, v1) in zip(zip(ts, vs, strict=True), zip(ts[1:], vs[1:], strict=True)):
        if abs(v1 - v0) >= 0.05 and t1 > t0:
            terms.append(f"{v1 - v0:+.1f}*clip((t-{t0:.4f})/{t1 - t0:.4f},0,1)")
    return "".join(terms)


@register("face_crop")
@dataclass
class FaceCrop(Subsampler):
    stage = "media"
    reads_source = False
    mode: str = "box"
    margin: float = 0.4  # the crop's side is the largest box side x (1 + margin)
    smooth_seconds: float = 0.5
    column: str = "face_tracks"

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode={self.mode!r}; choose one of {MODES}")
        if self.margin < 0 or self.smooth_seconds < 0:
            raise ValueError("margin and smooth_seconds must be >= 0")

    def plan(self, plan: MediaPlan, sample: Sample) -> None:
        value = sample.meta.pop(self.column, None)
        if value in (None, "", "[]"):
            raise Filtered(f"no face track (column {self.column!r} is empty)")
        if not sample.meta["probe"].get("video"):
            return  # nothing to crop; the filters decide whether audio alone is wanted
        boxes = parse_tracks(value)
        size = display_size(sample.meta["probe"]["video"])
        for clip in plan.clips(sample.key):
            end = np.inf if clip.end is None else clip.end
            inside = boxes[(boxes[:, 0] >= clip.start - 1e-6) & (boxes[:, 0] < end - 1e-6)]
            if not len(inside):
                raise SubsampleError(f"clip {clip.index} ({clip.start:.2f}-{end:.2f} s) has no face track box")
            crop, record = self.crop(inside, clip.start, size)
            plan.layout.crops[clip.index] = crop
            plan.edit(clip.index).meta.update(face_crop=record, face_track=[
                [round(t - clip.start, 4), *map(lambda v: round(v, 4), b)] for t, *b in inside.tolist()])

    def crop(self, boxes: np.ndarray, start: float, size: tuple[int, int]) -> tuple[Crop, dict[str, Any]]:
        """The clip's square crop (pixels) from its boxes, and what the json records of it."""
        width, height = size
        t, x, y, w, h = boxes.T
        cx = smooth(t, (x + w / 2) * width, self.smooth_seconds)
        cy = smooth(t, (y + h / 2) * height, self.smooth_seconds)
        side = float(np.max(np.maximum(w * width, h * height))) * (1 + self.margin)
        side = int(max(2, min(side, width, height)) // 2 * 2)
        left = np.clip(cx - side / 2, 0, width - side)
        top = np.clip(cy - side / 2, 0, height - side)
        record: dict[str, Any] = {"mode": self.mode, "size": side, "frame": [width, height]}
        if self.mode == "box" or len(t) == 1:
            bx, by = int(round(left.mean())), int(round(top.mean()))
            record["box"] = [bx, by, side, side]
            return Crop(side, side, bx, by), record
        rel = t - start
        record["points"] = len(t)
        return Crop(side, side, _ramp(rel, left), _ramp(rel, top)), record
