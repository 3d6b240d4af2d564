"""Decode webdataset samples from their bytes with PyAV: one clip of video frames, audio or a stored mel.

No temporary files: containers are opened from the bytes by ``v2d_vox.media.open_media``, which
never lets a crafted file open another file or a socket. Frames are picked on a fixed time grid
(``start + i / fps``, the latest decoded frame at or before each instant), so any source frame rate maps
to the target one; only picked frames are scaled and converted.
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

from .. import sample as contract
from ..media import open_media
from ..sample import AUDIO_EXTS, JSON, MEL, TXT, VIDEO_EXTS
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


def _scale(frame: av.VideoFrame, size: int | tuple[int, int] | None) -> np.ndarray:
    if size is None:
        return frame.to_ndarray(format="rgb24")
    if isinstance(size, tuple):
        return frame.to_ndarray(format="rgb24", height=size[0], width=size[1])
    scale = size / min(frame.width, frame.height)
    w, h = max(size, round(frame.width * scale)), max(size, round(frame.height * scale))
    top, left = (h - size) // 2, (w - size) // 2
    return frame.to_ndarray(format="rgb24", height=h, width=w)[top : top + size, left : left + size]


def _origin(container: av.container.InputContainer) -> float:
    """Where the container's timeline starts: 0 for mp4, often 0.5 s or more for MPEG-PS/TS."""
    return container.start_time / av.time_base if container.start_time else 0.0


def read_video(data: bytes, start: float, cfg: DecodeConfig) -> torch.Tensor:
    """Frames of ``[start, start + clip_seconds)`` at ``cfg.fps``: uint8 (T, C, H, W), T <= cfg.num_frames."""
    with open_media(data) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        seek, start = start > 0, start + _origin(container)  # frame times are on the container's timeline
        if seek:
            container.seek(int(start / stream.time_base), stream=stream)
        frames: list[np.ndarray] = []
        previous = None
        for frame in container.decode(stream):
            now = frame.time if frame.time is not None else start + (len(frames) + 1) / cfg.fps
            # ``previous`` is the latest frame at or before every grid instant earlier than ``now``
            while previous is not None and len(frames) < cfg.num_frames and start + len(frames) / cfg.fps < now:
                frames.append(_scale(previous, cfg.size))
            if len(frames) == cfg.num_frames:
                break
            previous = frame
        if previous is not None and len(frames) < cfg.num_frames:
            frames.append(_scale(previous, cfg.size))  # the last frame lasts one frame interval
    if not frames:
        raise ValueError("no video frames decoded")
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous()


def read_audio(data: bytes, start: float, cfg: DecodeConfig) -> torch.Tensor:
    """Mono float32 samples of ``[start, start + clip_seconds)`` at ``cfg.sample_rate`` (may be shorter)."""
    with open_media(data) as container:
        stream = container.streams.audio[0]
        seek, start = start > 0, start + _origin(container)  # frame times are on the container's timeline
        if seek:
            container.seek(int(start / stream.time_base), stream=stream)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=cfg.sample_rate)
        chunks: list[np.ndarray] = []
        first_time = None
        need = None
        for frame in container.decode(stream):
            if first_time is None:
                first_time = frame.time or 0.0
                need = round((start - first_time + cfg.clip_seconds) * cfg.sample_rate)
            chunks.extend(f.to_ndarray()[0] for f in resampler.resample(frame))
            if sum(map(len, chunks)) >= need:
                break
        chunks.extend(f.to_ndarray()[0] for f in resampler.resample(None))
    if not chunks:
        raise ValueError("no audio samples decoded")
    offset = max(0, round((start - first_time) * cfg.sample_rate))
    wave = np.concatenate(chunks)[offset : offset + cfg.num_samples]
    if wave.size == 0:
        raise ValueError("audio ends before the clip starts")
    return torch.from_numpy(wave.copy())


def decode_sample(sample: dict, cfg: DecodeConfig, rng: random.Random) -> dict:
    """Raw webdataset sample -> dict with "video", "audio" or "mel" tensors, "json", "start"."""
    meta = json.loads(sample[JSON]) if JSON in sample else {}
    video_ext = next((e for e in VIDEO_EXTS if e in sample), None)
    audio_ext = next((e for e in AUDIO_EXTS if e in sample), None)
    media = sample.get(video_ext) or sample.get(audio_ext)
    if media is None and not (cfg.stored_mel and MEL in sample):
        raise ValueError(f"no media member among {sorted(k for k in sample if not k.startswith('__'))}")
    out = {k: sample[k] for k in ("__key__", "__url__", "__index__")}
    out["json"] = meta
    mel = np.load(io.BytesIO(sample[MEL])) if cfg.stored_mel and MEL in sample else None
    if media is not None:
        with open_media(media) as container:
            duration = _duration(container)
    else:
        duration = mel.shape[-1] * cfg.mel_hop_seconds
    slack = max(0.0, (duration or 0.0) - cfg.clip_seconds)
    start = rng.uniform(0.0, slack) if cfg.random_start else slack / 2
    out["start"] = start
    if cfg.video and video_ext is not None:
        out["video"] = read_video(sample[video_ext], start, cfg)
    if mel is not None:
        first = round(start / cfg.mel_hop_seconds)
        out["mel"] = torch.from_numpy(np.ascontiguousarray(mel[..., first : first + cfg.mel_frames]))
    elif cfg.audio:
        source = sample.get(audio_ext) or sample.get(video_ext)
        out["audio"] = read_audio(source, start, cfg)
    if TXT in sample:
        out[TXT] = sample[TXT].decode("utf-8", "replace")
    return out


def decode(src: Iterable[dict], cfg: DecodeConfig, rng: random.Random, stats: LoaderStats) -> Iterator[dict]:
    """Stage: decode each sample; one that fails is counted (``decode_errors``) and skipped, without sleeping."""
    for sample in src:
        try:
            yield decode_sample(sample, cfg, rng)
        except Exception as exn:  # noqa: BLE001 - any broken member must only cost its own sample
            stats.drop(sample, "decode_errors", exn)
