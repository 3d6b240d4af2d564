"""Which bytes of an mp4/mov source a few time segments need, so that a server honouring HTTP ``Range``
sends only those (``reader.read_parts``).

An ISO BMFF file (mp4, mov, m4a) keeps its index, the ``moov`` box, before the media (``faststart``) or
after it. ``top_box`` reads one top-level box header, so a reader can walk from box to box to the index
without fetching the media between. ``needed`` opens a same-length buffer that holds the index (zeros
where nothing is fetched yet) with PyAV and maps each segment through the index's sample table
(``index_entries``: position, size, timestamp, keyframe flag of every packet, edit lists applied) to one
byte range: from the video keyframe at or before the segment's start (less ``KEY_MARGIN``) to
``TAIL_MARGIN`` past its end, both streams. The first ``HEAD_SECONDS`` are always included: probing
decodes the first frame of each stream there, and opening a file reads its first packets.

ffmpeg seeks each segment of the plan through the same index (``-ss`` goes to the keyframe at or before
the segment's start), so it never decodes the zeros between the ranges; probing reads only packet
headers from the index past the head, so its truncation check still compares the index with the file's
real length (the buffer has the length the server declares)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

import av
import numpy as np

from .media import open_media
from .plan import Segment

HEAD_SECONDS = 2.0  # from the start of the media: probing and stream analysis read here
KEY_MARGIN = 0.5  # seconds before a segment's start (ffmpeg's -ss itself backs off 3/23 s for B-frame streams)
TAIL_MARGIN = 1.0  # seconds past a segment's end: B-frame reordering, demuxer and decoder read-ahead
MAX_BOXES = 256  # top-level boxes walked before giving up on finding the index


def top_box(header: bytes, offset: int, total: int) -> tuple[bytes, int] | None:
    """(type, size) of the top-level box whose header starts ``header`` (at file ``offset`` of a ``total``-byte
    file); None when it is no valid box (too short, a size below its header or past the end of the file)."""
    if len(header) < 8:
        return None
    size, kind = struct.unpack(">I4s", header[:8])
    head = 8
    if size == 1:  # 64-bit size follows
        if len(header) < 16:
            return None
        size, head = struct.unpack(">Q", header[8:16])[0], 16
    elif size == 0:  # to the end of the file
        size = total - offset
    if size < head or offset + size > total or not kind.isascii():
        return None
    return kind, size


def needed(data: bytes, segments: list[Segment], max_pixels: int) -> list[tuple[int, int]]:
    """Sorted, merged ``[start, end)`` byte ranges of ``data`` (the source with at least its index filled in)
    that probing and reading ``segments`` touch. Raises ``av.error.FFmpegError`` (or ValueError) when the
    index cannot be read."""
    with open_media(data, max_pixels) as c:
        origin = (c.start_time or 0) / av.time_base
        tables = [t for s in c.streams if s.type in ("video", "audio") and len((t := _Packets.of(s)).times)]
    first = min((float(t.times[0]) for t in tables), default=0.0)
    windows = [(first - 1.0, first + HEAD_SECONDS)] + [
        (origin + seg.start - KEY_MARGIN, origin + seg.end + TAIL_MARGIN) for seg in segments]
    return merge([span for start, end in windows if (span := _bytes_between(tables, start, end))])


@dataclass(frozen=True)
class _Packets:
    """One stream's index as arrays (a long source has tens of thousands of packets, read once per row)."""

    video: bool
    times: np.ndarray  # seconds on the container's timeline, in index order
    pos: np.ndarray
    end: np.ndarray
    key: np.ndarray

    @classmethod
    def of(cls, stream: av.stream.Stream) -> _Packets:
        rows = [(e.timestamp, e.pos, e.size, e.is_keyframe) for e in stream.index_entries
                if not e.is_discard and e.size > 0]
        a = np.array(rows, dtype=np.int64).reshape(-1, 4)
        return cls(stream.type == "video", a[:, 0] * float(stream.time_base), a[:, 1], a[:, 1] + a[:, 2],
                   a[:, 3].astype(bool))


def _bytes_between(tables: list[_Packets], start: float, end: float) -> tuple[int, int] | None:
    """The byte range holding every stream's packets from ``start`` (a video stream from its keyframe at or
    before it) to ``end``, seconds on the container's timeline."""
    low, high = None, None
    for t in tables:
        after = np.flatnonzero(t.times > start)
        stop = int(after[0]) if len(after) else len(t.times)  # packets before the first one past start
        starts = np.flatnonzero(t.key[:stop]) if t.video else np.arange(stop)
        begin = int(starts[-1]) if len(starts) else 0  # the last keyframe (any packet for audio) at or before start
        picked = np.flatnonzero(t.times[begin:] <= end) + begin
        if len(picked):
            a, b = int(t.pos[picked].min()), int(t.end[picked].max())
            low, high = (a, b) if low is None else (min(low, a), max(high, b))
    return None if low is None else (low, high)


def merge(ranges: list[tuple[int, int]], gap: int = 0) -> list[tuple[int, int]]:
    """Sorted ``[start, end)`` ranges, overlapping ones (or ones less than ``gap`` bytes apart) joined."""
    out: list[tuple[int, int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1] + gap:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out
