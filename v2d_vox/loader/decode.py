"""Decode webdataset samples from their bytes with PyAV: one clip of video frames, audio or a stored mel.

No temporary files: containers are opened from the bytes by ``v2d_vox.media.open_media``, which
never lets a crafted file open another file or a socket. Each member is opened once: its duration, the
clip start, then one demux pass that decodes the clip's video and audio packets together (audio comes
from its own member when the sample has one). Frames are picked on a fixed time grid (``start + i / fps``,
the latest decoded frame at or before each instant), so any source frame rate maps to the target one.

Picked frames leave as RGB at the training size (swscale to RGBA, one context per clip: ``to_ndarray`` with a
size builds a new one per frame, which cost more than decoding) or, with ``yuv=True``, as their YUV 4:2:0
planes for ``color.batch_to_rgb`` to convert a whole batch on the training device.
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import av
import numpy as np
import torch
from av.codec.hwaccel import HWAccel, hwdevices_available
from av.video.reformatter import VideoReformatter

from .. import sample as contract
from ..media import open_media
from ..sample import AUDIO_EXTS, JSON, MEL, TXT, VIDEO_EXTS
from .color import geometry
from .memory import empty_array
from .state import LoaderStats


@dataclass(frozen=True)
class DecodeConfig:
    """What to decode from each sample, and how."""

    clip_seconds: float = 2.0
    fps: float = 25.0
    size: int | tuple[int, int] | None = 112  # int: short side then centre crop to square; (h, w): exact
    sample_rate: int = 16000
    video: bool = True
    audio: bool = True
    stored_mel: bool = False  # read KEY.mel.npy (n_mels, frames) instead of decoding audio
    mel_hop_seconds: float = 0.01  # time step of stored mel frames, to cut the same clip from them
    random_start: bool = True  # False: the clip is centred in the media
    decode_device: str = "cpu"  # "cuda": NVDEC through PyAV (see ``hwaccel``; slower than CPU on small clips)
    # threads per video decoder and scaler: 1, because the loader's workers already fill the cores (FFmpeg's
    # frame and slice threads halved the throughput of 2 workers on 2 cores); 0: FFmpeg's choice
    decode_threads: int = 1

    @property
    def num_frames(self) -> int:
        return round(self.clip_seconds * self.fps)

    @property
    def num_samples(self) -> int:
        return round(self.clip_seconds * self.sample_rate)

    @property
    def mel_frames(self) -> int:
        return round(self.clip_seconds / self.mel_hop_seconds)


def video_id(sample: dict) -> str:
    """The source video of a decoded sample (``v2d_vox.sample.video_id`` of its json and key)."""
    return contract.video_id(sample.get(JSON) or {}, sample["__key__"])


def _duration(container: av.container.InputContainer) -> float | None:
    for stream in (*container.streams.video[:1], *container.streams.audio[:1]):
        if stream.duration is not None:
            return float(stream.duration * stream.time_base)
    return container.duration / av.time_base if container.duration else None


def _origin(container: av.container.InputContainer) -> float:
    """Where the container's timeline starts: 0 for mp4, often 0.5 s or more for MPEG-PS/TS."""
    return container.start_time / av.time_base if container.start_time else 0.0


def hwaccel(decode_device: str) -> HWAccel | None:
    """The PyAV hardware decoder for ``decode_device`` ("cpu": none). Raises a one-line ValueError when the
    device cannot decode here, before any worker starts."""
    if decode_device == "cpu":
        return None
    if decode_device != "cuda":
        raise ValueError(f"decode_device must be 'cpu' or 'cuda', not {decode_device!r}")
    if "cuda" not in hwdevices_available() or not torch.cuda.is_available():
        raise ValueError(f"decode_device='cuda' needs an NVIDIA GPU visible to torch and PyAV built with NVDEC "
                         f"(torch.cuda.is_available()={torch.cuda.is_available()}, PyAV hardware devices: "
                         f"{hwdevices_available()}); use decode_device='cpu'")
    return HWAccel(device_type="cuda", allow_software_fallback=False)


class _Frames:
    """The clip's video frames on the ``start + i / fps`` grid, as RGB at ``size`` or as YUV 4:2:0 planes, each
    copied into the clip's arrays when it is picked (holding swscale's outputs until the clip ends cost ~4 ms
    per 2 s clip more here: a fresh buffer per frame, and the decoder's data pushed out of the caches)."""

    def __init__(self, start: float, cfg: DecodeConfig, yuv: bool):
        self.start, self.fps, self.count, self.size, self.yuv = start, cfg.fps, cfg.num_frames, cfg.size, yuv
        self.threads = cfg.decode_threads
        self.n = 0  # frames picked so far
        self.previous: av.VideoFrame | None = None
        self.converted: av.VideoFrame | None = None  # the frame in row n - 1: repeats on the grid are copied
        self.reformatter = VideoReformatter()
        self.rows: tuple[np.ndarray, ...] = ()  # per part of a frame (RGB; or Y, U, V), its (count, ...) rows
        self.y = self.uv = np.empty(0, np.uint8)  # yuv: (count, H, W) and (count, 2, H/2, W/2), rows of both
        self.layout: tuple[str, int, int] | None = None  # yuv: (format, width, height) of the clip's planes
        self.color = (2, False)  # yuv: (AVColorSpace, full range) of the clip

    @property
    def done(self) -> bool:
        return self.n == self.count

    def add(self, frame: av.VideoFrame) -> None:
        now = frame.time if frame.time is not None else self.start + (self.n + 1) / self.fps
        # ``previous`` is the latest frame at or before every grid instant earlier than ``now``
        while self.previous is not None and not self.done and self.start + self.n / self.fps < now:
            self._put(self.previous)
        if not self.done:
            self.previous = frame

    def _put(self, frame: av.VideoFrame) -> None:
        if frame is self.converted:
            for rows in self.rows:
                rows[self.n] = rows[self.n - 1]
        else:
            parts = self._planes(frame) if self.yuv else (self._rgb(frame),)
            if not self.rows:
                self._allocate(parts)
            for rows, part in zip(self.rows, parts, strict=True):
                if part.shape != rows.shape[1:]:
                    raise ValueError(f"frame size changed within the clip: {part.shape} after {rows.shape[1:]}")
                rows[self.n] = part
            self.converted = frame
        self.n += 1

    def _allocate(self, parts: tuple[np.ndarray, ...]) -> None:
        if not self.yuv:
            self.rows = (empty_array((self.count, *parts[0].shape)),)
            return
        y, u, _ = parts
        self.y, self.uv = empty_array((self.count, *y.shape)), empty_array((self.count, 2, *u.shape))
        self.rows = (self.y, self.uv[:, 0], self.uv[:, 1])

    def _rgb(self, frame: av.VideoFrame) -> np.ndarray:
        """(3, H, W) at the training size: a view of swscale's RGBA output (its SIMD path for 32-bit RGB scales
        ~3x faster than packed RGB24 here, within a few levels of it)."""
        h, w, top, left, oh, ow = geometry(frame.height, frame.width, self.size)
        plane = self.reformatter.reformat(frame, width=w, height=h, format="rgba", threads=self.threads).planes[0]
        rgba = np.frombuffer(plane, np.uint8).reshape(h, plane.line_size)[:, : 4 * w].reshape(h, w, 4)
        return rgba[top : top + oh, left : left + ow, :3].transpose(2, 0, 1)

    def _planes(self, frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Views of the frame's Y, U and V planes, in the clip's first frame's layout."""
        if self.layout is None:
            name = frame.format.name if frame.format.name in ("yuv420p", "yuvj420p") else "yuv420p"
            self.layout = name, frame.width, frame.height
            self.color = (frame.colorspace, name == "yuvj420p" or frame.color_range == 2)
        name, width, height = self.layout
        if (frame.format.name, frame.width, frame.height) != self.layout:  # other pixel format, NV12 from NVDEC
            frame = self.reformatter.reformat(frame, width=width, height=height, format=name, threads=self.threads)
        y, u, v = (np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width] for p in frame.planes)
        return y, u, v

    def result(self) -> dict:
        if self.previous is not None and not self.done:
            self._put(self.previous)  # the last frame lasts one frame interval
        if not self.n:
            raise ValueError("no video frames decoded")
        if not self.yuv:
            return {"video": torch.from_numpy(self.rows[0][: self.n])}
        colorspace, full = self.color
        return {"video_yuv": {"y": torch.from_numpy(self.y[: self.n]), "uv": torch.from_numpy(self.uv[: self.n]),
                              "colorspace": colorspace, "full_range": full}}


class _Samples:
    """The clip's audio: mono float32 at ``cfg.sample_rate`` from ``start`` for ``clip_seconds`` (or less)."""

    def __init__(self, start: float, cfg: DecodeConfig):
        self.start, self.seconds, self.rate, self.count = start, cfg.clip_seconds, cfg.sample_rate, cfg.num_samples
        self.resampler = av.AudioResampler(format="flt", layout="mono", rate=cfg.sample_rate)
        self.chunks: list[np.ndarray] = []
        self.first_time: float | None = None
        self.need = self.have = 0

    @property
    def done(self) -> bool:
        return self.first_time is not None and self.have >= self.need

    def add(self, frame: av.AudioFrame) -> None:
        if self.first_time is None:
            self.first_time = frame.time or 0.0
            self.need = round((self.start - self.first_time + self.seconds) * self.rate)
        if frame.format.name in ("flt", "fltp") and frame.layout.nb_channels == 1 and frame.sample_rate == self.rate:
            # already mono float at the rate: the resampler would only copy (and to_ndarray stacks planes)
            chunks = [np.frombuffer(frame.planes[0], np.float32, frame.samples)]
        else:
            chunks = [f.to_ndarray()[0] for f in self.resampler.resample(frame)]
        self.chunks.extend(chunks)
        self.have += sum(map(len, chunks))

    def result(self) -> dict:
        self.chunks.extend(f.to_ndarray()[0] for f in self.resampler.resample(None))
        if not self.chunks:
            raise ValueError("no audio samples decoded")
        offset = max(0, round((self.start - self.first_time) * self.rate))
        wave = np.concatenate(self.chunks)[offset : offset + self.count]
        if wave.size == 0:
            raise ValueError("audio ends before the clip starts")
        return {"audio": torch.from_numpy(wave.copy())}


def read_clip(container: av.container.InputContainer, start: float, cfg: DecodeConfig, video: bool = True,
              audio: bool = True, yuv: bool = False) -> dict:
    """``{"video"|"video_yuv", "audio"}`` of ``[start, start + clip_seconds)`` from an open container, in one
    demux pass that decodes only the packets the clip needs. Raises ValueError when a stream is missing."""
    collectors: dict[int, _Frames | _Samples] = {}
    if video:
        if not container.streams.video:
            raise ValueError("no video stream")
        stream = container.streams.video[0]
        if cfg.decode_threads != 1:
            stream.thread_type = "AUTO"
        stream.thread_count = cfg.decode_threads
        collectors[stream.index] = _Frames(start + _origin(container), cfg, yuv)
    if audio:
        if not container.streams.audio:
            raise ValueError("no audio stream")
        collectors[container.streams.audio[0].index] = _Samples(start + _origin(container), cfg)
    streams = [container.streams[i] for i in collectors]
    if start > 0:  # frame times are on the container's timeline; seek to the keyframe before the clip
        container.seek(int((start + _origin(container)) / streams[0].time_base), stream=streams[0])
    for packet in container.demux(*streams):
        collector = collectors[packet.stream.index]
        if collector.done:
            continue
        for frame in packet.decode():
            collector.add(frame)
            if collector.done:
                break
        if all(c.done for c in collectors.values()):
            break
    out: dict = {}
    for collector in collectors.values():
        out.update(collector.result())
    return out


def read_video(data: bytes, start: float, cfg: DecodeConfig) -> torch.Tensor:
    """Frames of ``[start, start + clip_seconds)`` at ``cfg.fps``: uint8 (T, C, H, W), T <= cfg.num_frames."""
    with open_media(data) as container:
        return read_clip(container, start, cfg, audio=False)["video"]


def read_audio(data: bytes, start: float, cfg: DecodeConfig) -> torch.Tensor:
    """Mono float32 samples of ``[start, start + clip_seconds)`` at ``cfg.sample_rate`` (may be shorter)."""
    with open_media(data) as container:
        return read_clip(container, start, cfg, video=False)["audio"]


def decode_sample(sample: dict, cfg: DecodeConfig, rng: random.Random, yuv: bool = False,
                  accel: HWAccel | None = None) -> dict:
    """Raw webdataset sample -> dict with "video" (or "video_yuv" planes when ``yuv``), "audio" or "mel"
    tensors, "json", "start". Each media member is opened once; ``accel`` decodes its video (see ``hwaccel``)."""
    meta = json.loads(sample[JSON]) if JSON in sample else {}
    if not isinstance(meta, dict):  # a list or a number: counted and skipped like any broken member
        raise ValueError(f"the json is a {type(meta).__name__}, not an object")
    video_ext = next((e for e in VIDEO_EXTS if e in sample), None)
    audio_ext = next((e for e in AUDIO_EXTS if e in sample), None)
    media_ext = video_ext or audio_ext
    if media_ext is None and not (cfg.stored_mel and MEL in sample):
        raise ValueError(f"no media member among {sorted(k for k in sample if not k.startswith('__'))}")
    out = {k: sample[k] for k in ("__key__", "__url__", "__index__")}
    out[JSON] = meta
    mel = np.load(io.BytesIO(sample[MEL])) if cfg.stored_mel and MEL in sample else None
    want_video = cfg.video and video_ext is not None
    audio_from = (audio_ext or video_ext) if cfg.audio and mel is None else None

    def clip_start(duration: float | None) -> float:
        slack = max(0.0, (duration or 0.0) - cfg.clip_seconds)
        return rng.uniform(0.0, slack) if cfg.random_start else slack / 2

    if media_ext is None:
        start = clip_start(mel.shape[-1] * cfg.mel_hop_seconds)
    else:
        with open_media(sample[media_ext], hwaccel=accel if want_video else None) as container:
            start = clip_start(_duration(container))
            if want_video or audio_from == media_ext:
                out.update(read_clip(container, start, cfg, video=want_video, audio=audio_from == media_ext,
                                     yuv=yuv))
    if audio_from is not None and audio_from != media_ext:  # the sample's own audio member
        with open_media(sample[audio_from]) as container:
            out.update(read_clip(container, start, cfg, video=False))
    out["start"] = start
    if mel is not None:
        first = round(start / cfg.mel_hop_seconds)
        out["mel"] = torch.from_numpy(np.ascontiguousarray(mel[..., first : first + cfg.mel_frames]))
    if TXT in sample:
        out[TXT] = sample[TXT].decode("utf-8", "replace")
    return out


def decode(src: Iterable[dict], cfg: DecodeConfig, rng: random.Random, stats: LoaderStats,
           yuv: bool = False) -> Iterator[dict]:
    """Stage: decode each sample; one that fails is counted (``decode_errors``) and skipped, without sleeping."""
    accel = hwaccel(cfg.decode_device)
    for sample in src:
        try:
            yield decode_sample(sample, cfg, rng, yuv=yuv, accel=accel)
        except Exception as exn:  # noqa: BLE001 - any broken member must only cost its own sample
            stats.drop(sample, "decode_errors", exn)
