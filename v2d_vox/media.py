"""The one way v2d_vox opens untrusted media bytes with PyAV.

Without options, libavformat follows what a file names: an ffconcat script opens files relative to the
working directory, an SDP file binds UDP ports and waits on them, an HLS playlist fetches URLs. Every
PyAV open of sample bytes (probe, scan, the loader, array steps) goes through `open_media`, which
confines the demuxer to the bytes given (``protocol_whitelist=none``: no file, socket or URL can be
opened) and to the container formats a shard may hold (``sample.CONTAINER_EXTS``), and refuses video
larger than ``max_pixels`` before any frame is decoded (a 1 MB file can declare 16000x16000 frames)."""

from __future__ import annotations

import io

import av
import av.codec.hwaccel
import numpy as np

from .config import Limits
from .sample import CONTAINER_EXTS

# Demuxer names; libavformat matches any name of a demuxer's comma list ("mov,mp4,m4a,...") against it.
FORMAT_WHITELIST = ",".join(CONTAINER_EXTS)
MAX_PIXELS = Limits.max_pixels


class TooLarge(ValueError):
    """The media declares more than a limit allows."""


def open_media(data: bytes, max_pixels: int = MAX_PIXELS,
               hwaccel: av.codec.hwaccel.HWAccel | None = None) -> av.container.InputContainer:
    """A PyAV input container reading only ``data``. Raises ``av.error.FFmpegError`` for anything else
    (a format outside the whitelist, a file that names another file or a network address) and
    ``TooLarge`` for a video stream over ``max_pixels``; the decoders enforce the same bound on frames
    whose size differs from the header's. ``hwaccel``: decode video on that device (e.g. NVDEC), same
    confinement."""
    options = {"protocol_whitelist": "none", "format_whitelist": FORMAT_WHITELIST}
    container = av.open(io.BytesIO(data), options=options, metadata_errors="ignore", hwaccel=hwaccel)
    for stream in container.streams.video:
        ctx = stream.codec_context
        if ctx.width * ctx.height > max_pixels:
            container.close()
            raise TooLarge(f"video {ctx.width}x{ctx.height} is over max_pixels={max_pixels}")
        ctx.options = {**ctx.options, "max_pixels": str(max_pixels)}
    return container


def decode_mono(data: bytes, sample_rate: int, max_seconds: float | None = None) -> np.ndarray | None:
    """The first audio stream from its start, mixed to mono float32 at ``sample_rate`` and cut where the
    stream's duration says the signal ends (AAC decodes whole 1024-sample frames), or after ``max_seconds``
    (decoding stops there). None when there is no audio stream; errors as ``open_media``."""
    limit = None if max_seconds is None else round(max_seconds * sample_rate)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
    chunks: list[np.ndarray] = []
    with open_media(data) as c:
        if not c.streams.audio:
            return None
        stream = c.streams.audio[0]
        for frame in c.decode(stream):
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
            if limit is not None and sum(map(len, chunks)) >= limit:
                break
        else:
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
        length = round(stream.duration * stream.time_base * sample_rate) if stream.duration else None
    pcm = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return pcm[:length][:limit]
