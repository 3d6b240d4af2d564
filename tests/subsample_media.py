"""Read outputs back with PyAV: what tests assert on (durations, sizes, rates, frame counts)."""

from __future__ import annotations

import io
from typing import Any

import av


def streams(data: bytes) -> dict[str, dict[str, Any]]:
    """type -> {duration, frames, width, height, fps | sample_rate, channels} of the first stream of each type."""
    out: dict[str, dict[str, Any]] = {}
    with av.open(io.BytesIO(data)) as c:
        for s in c.streams:
            if s.type not in ("video", "audio") or s.type in out:
                continue
            info: dict[str, Any] = {"duration": float(s.duration * s.time_base) if s.duration else None}
            if s.type == "video":
                info.update(width=s.codec_context.width, height=s.codec_context.height,
                            fps=float(s.average_rate))
            else:
                info.update(sample_rate=s.codec_context.sample_rate, channels=s.codec_context.channels)
            out[s.type] = info
    if "video" in out:
        with av.open(io.BytesIO(data)) as c:
            out["video"]["frames"] = sum(1 for _ in c.decode(video=0))
    return out


def stream_types(data: bytes) -> list[str]:
    with av.open(io.BytesIO(data)) as c:
        return [s.type for s in c.streams]
