"""Test media helpers shared by test modules: the real files in tests/data and synthetic clips made
with PyAV. (A module of its own: `from conftest import` is ambiguous with tests/loader/conftest.py.)"""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

DATA = Path(__file__).parent / "data"


def make_media(duration: float = 3.0, fps: int = 25, size: tuple[int, int] = (320, 240),
               sample_rate: int = 16000, video: bool = True, audio: bool = True, container: str = "mp4",
               seed: int = 0) -> bytes:
    """A synthetic clip: moving gradient frames and a tone, encoded with PyAV (H.264 + AAC)."""
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    with av.open(buf, "w", format=container) as out:
        if video:
            vs = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
            vs.width, vs.height, vs.pix_fmt = size[0], size[1], "yuv420p"
        if audio:
            acodec = "aac" if container in ("mp4", "mov", "matroska") else "pcm_s16le"
            as_ = out.add_stream(acodec, rate=sample_rate, layout="mono")
        if video:
            base = rng.integers(0, 255, 3)
            yy, xx = np.mgrid[0 : size[1], 0 : size[0]]
            for i in range(int(duration * fps)):
                img = ((xx + yy + 4 * i)[..., None] + base) % 256
                frame = av.VideoFrame.from_ndarray(img.astype(np.uint8), format="rgb24")
                out.mux(vs.encode(frame))
            out.mux(vs.encode(None))
        if audio:
            n = int(duration * sample_rate)
            t = np.arange(n) / sample_rate
            pcm = (0.3 * np.sin(2 * np.pi * rng.uniform(200, 800) * t) * 32767).astype(np.int16)
            for start in range(0, n, 1024):
                frame = av.AudioFrame.from_ndarray(pcm[None, start : start + 1024], format="s16", layout="mono")
                frame.sample_rate, frame.pts, frame.time_base = sample_rate, start, Fraction(1, sample_rate)
                out.mux(as_.encode(frame))
            out.mux(as_.encode(None))
    return buf.getvalue()



def media_files() -> list[str]:
    return sorted(p.name for p in DATA.iterdir() if p.suffix != ".md")
