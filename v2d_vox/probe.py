"""Probe media bytes with PyAV: what is in it, and proof that it decodes.

Opening a container is not enough (random bytes often "open" as mp3 or mpeg-ts), so one frame of
each stream is decoded too; a file where no stream yields a frame is not media."""

from __future__ import annotations

import contextlib
from fractions import Fraction
from typing import Any

import av

from .config import Limits
from .errors import DownloadError
from .media import TooLarge, open_media
from .sample import CONTAINER_EXTS, Piece

TAIL = 10.0  # seconds


def display_size(video: dict[str, Any]) -> tuple[int, int]:
    """A video stream's width and height as shown, i.e. after the rotation players and ffmpeg apply (ffmpeg
    rotates before the filter graph, so sizes computed for filters must use this, not the coded size)."""
    w, h = video["width"], video["height"]
    return (h, w) if abs(video.get("rotation") or 0) in (90, 270) else (w, h)


def _rate(value: Fraction | None) -> float | None:
    return round(float(value), 3) if value else None


def _stream_info(stream: av.stream.Stream) -> dict[str, Any]:
    info: dict[str, Any] = {"index": stream.index, "type": stream.type, "codec": stream.codec_context.name}
    if stream.duration is not None and stream.time_base:
        info["duration"] = round(float(stream.duration * stream.time_base), 3)
    if stream.type == "video":
        avg, base = stream.average_rate, stream.base_rate
        info.update(width=stream.codec_context.width, height=stream.codec_context.height, fps=_rate(avg or base))
        info["vfr"] = bool(avg and base and abs(float(avg) - float(base)) > 0.01 * float(base))
        info["attached_pic"] = bool(stream.disposition & av.stream.Disposition.attached_pic)
    elif stream.type == "audio":
        info.update(sample_rate=stream.codec_context.sample_rate, channels=stream.codec_context.channels)
    return info


def _scan(container: av.container.InputContainer, wanted: set[int]) -> tuple[dict[int, int], float]:
    """One pass over the packets: decode each wanted stream until it yields a frame (-> its display
    rotation), and find where the packets really end (seconds from the start). Reading packets is cheap
    next to decoding, and it catches files cut short whose header still promises the full duration. A long
    source skips to its last ``TAIL`` seconds once every stream has a frame: the ends are all it needs there
    (a file cut short has no packets there), and demuxing minutes of packets in Python costs ~1 s."""
    rotation: dict[int, int] = {}
    ends: dict[int, float] = {}
    start = container.start_time / av.time_base if container.start_time else 0.0
    tail = container.duration / av.time_base - TAIL if container.duration else 0.0
    skipped = tail < TAIL
    packets = container.demux()
    for packet in packets:
        index = packet.stream.index
        if index not in wanted:
            continue
        if packet.pts is not None and packet.time_base:
            ends[index] = max(ends.get(index, 0.0), float((packet.pts + (packet.duration or 0)) * packet.time_base))
        if index not in rotation:
            for frame in packet.decode():
                rotation[index] = int(getattr(frame, "rotation", 0) or 0)
                break
        if not skipped and len(rotation) == len(wanted):
            skipped = True
            with contextlib.suppress(av.error.FFmpegError):  # unseekable: keep reading on
                container.seek(int((start + tail) * av.time_base))
    for index in wanted - set(rotation):  # codecs with delay may only give their first frame on flush
        with contextlib.suppress(av.error.EOFError):
            for frame in container.streams[index].codec_context.decode(None):
                rotation[index] = int(getattr(frame, "rotation", 0) or 0)
                break
    return rotation, max(ends.values(), default=0.0) - start


def probe(data: bytes, limits: Limits | None = None) -> dict[str, Any]:
    """Metadata of a media file, or DownloadError("not decodable media: ...") or ("over limit: ...")."""
    limits = limits or Limits()
    if not data:
        raise DownloadError("empty file (0 bytes)")
    try:
        with open_media(data, limits.max_pixels) as c:
            streams = [_stream_info(s) for s in c.streams if s.type in ("video", "audio")]
            fmt = c.format.name.split(",")[0]
            duration = round(c.duration / av.time_base, 3) if c.duration else None
            _check_duration(duration, limits)  # before reading the packets: a long file costs time to scan
            rotation, end = _scan(c, {info["index"] for info in streams})
            _check_duration(end, limits)
        decoded = [info for info in streams if info["index"] in rotation]
        for info in decoded:
            if info["type"] == "video":
                info["rotation"] = rotation[info["index"]]
    except TooLarge as e:
        raise DownloadError(f"over limit: {e}") from None
    except (av.error.FFmpegError, ValueError, IndexError) as e:
        raise DownloadError(f"not decodable media: {type(e).__name__}: {_short(e)}") from None
    if not decoded:
        raise DownloadError(f"not decodable media: no audio or video stream yields a frame ({fmt})")
    if duration and end < 0.9 * duration - 0.1:
        raise DownloadError(f"truncated media: data ends before the {duration:.2f} s declared (last packet "
                            f"read ends at {end:.2f} s)")
    video = [s for s in decoded if s["type"] == "video" and not s.get("attached_pic")]
    audio = [s for s in decoded if s["type"] == "audio"]
    if duration is None:
        duration = max((s.get("duration") or 0.0 for s in decoded), default=0.0) or None
    ext = CONTAINER_EXTS.get(fmt)
    if ext is None:  # stored under a name no reader of the dataset would look for: refuse it here
        raise DownloadError(f"unsupported container format {fmt!r}; supported: {', '.join(CONTAINER_EXTS)}")
    if ext == "mp4" and not video:
        ext = "m4a"
    return {
        "format": fmt,
        "ext": ext,
        "duration": duration,
        "size": len(data),
        "has_video": bool(video),
        "has_audio": bool(audio),
        "video": video[0] if video else None,
        "audio": audio[0] if audio else None,
        "streams": decoded,
    }


# containers whose timeline starts at 0 as yt-dlp writes them: a piece's times are then the row's span times
ZERO_ORIGIN_EXTS = ("mp4", "m4a", "webm", "mkv")


def probe_pieces(pieces: tuple[Piece, ...], duration: float | None, limits: Limits | None = None) -> dict[str, Any]:
    """Metadata of a source fetched in pieces (``Sample.pieces``): every piece must probe as media with the
    first one's container and streams, and the info is the first piece's, with the source's ``duration``
    (from its site; unknown: where the last piece ends, enough to clamp clip spans, which lie inside the
    pieces) in place of the piece's, no stream durations, and ``size`` None (the whole source's is unknown)."""
    limits = limits or Limits()
    infos = [probe(p.data, limits) for p in pieces]
    if infos[0]["ext"] not in ZERO_ORIGIN_EXTS:  # an MPEG-TS timeline starts anywhere: cuts would shift
        raise DownloadError(f"sections need a source whose timeline starts at 0 ({', '.join(ZERO_ORIGIN_EXTS)}), "
                            f"not {infos[0]['format']}")
    shape = [{k: s[k] for k in ("index", "type", "codec")} for s in infos[0]["streams"]]
    for p, info in zip(pieces, infos):
        if info["format"] != infos[0]["format"] or [{k: s[k] for k in ("index", "type", "codec")}
                                                    for s in info["streams"]] != shape:
            raise DownloadError(f"the section fetched at {p.start:.2f} s has other streams than the first")
    if duration is None:
        with open_media(pieces[-1].data, limits.max_pixels) as c:
            duration = round(((c.start_time or 0) + (c.duration or 0)) / av.time_base, 3)
    try:
        _check_duration(duration, limits)
    except TooLarge as e:
        raise DownloadError(f"over limit: {e}") from None
    info = {**infos[0], "duration": duration, "size": None}
    for stream in info["streams"]:
        stream.pop("duration", None)
    return info


def _check_duration(seconds: float | None, limits: Limits) -> None:
    if seconds and seconds > limits.max_duration:
        raise TooLarge(f"duration {seconds:.0f} s is over max_duration={limits.max_duration:g} s")


def _short(e: Exception) -> str:
    """The error without file names or addresses, so identical failures group in status_dict."""
    msg = getattr(e, "strerror", None) or str(e)
    return msg.split(": '")[0][:160]
