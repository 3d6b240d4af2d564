"""Log-mel spectrogram of each output's audio, stored as ``KEY.mel.npy`` (array stage).

Uses ``v2d_vox.mel.log_mel``, the same function the loader runs on the fly, so a stored mel and one
computed at training time agree. Its parameters go into the json under ``mel`` so the loader (or a
reader years later) knows exactly what the array holds."""

from __future__ import annotations

import io
from dataclasses import dataclass

import av
import numpy as np

from v2d_vox.errors import SubsampleError
from v2d_vox.sample import AUDIO_EXTS, VIDEO_EXTS, Sample
from v2d_vox.subsampler import Subsampler, register


def decode_audio(data: bytes, sample_rate: int) -> np.ndarray:
    """The first audio stream, mixed to mono float32 at `sample_rate`; SubsampleError if there is none."""
    try:
        with av.open(io.BytesIO(data)) as c:
            if not c.streams.audio:
                raise SubsampleError("spectrogram: the sample has no audio stream")
            stream = c.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
            chunks = [f.to_ndarray().reshape(-1) for frame in c.decode(stream) for f in resampler.resample(frame)]
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
            # AAC decodes whole 1024-sample frames; the stream's duration says where the signal really ends
            length = round(stream.duration * stream.time_base * sample_rate) if stream.duration else None
    except av.error.FFmpegError as e:
        raise SubsampleError(f"spectrogram: cannot decode audio: {type(e).__name__}") from None
    if not chunks:
        raise SubsampleError("spectrogram: the audio stream holds no samples")
    return np.concatenate(chunks)[:length]


@register("spectrogram")
@dataclass
class Spectrogram(Subsampler):
    stage = "array"
    sample_rate: int = 16000
    n_fft: int = 512
    win_length: int | None = 400
    hop_length: int = 160
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float | None = None
    power: float = 2.0
    mel_scale: str = "htk"
    norm: str | None = None
    log_floor: float = 1e-6
    dtype: str = "float16"

    def __post_init__(self):
        if self.mel_scale not in ("htk", "slaney") or self.norm not in (None, "slaney"):
            raise ValueError(f"mel_scale must be htk|slaney and norm None|slaney, got {self.mel_scale}, {self.norm}")
        if self.dtype not in ("float16", "float32"):
            raise ValueError(f"dtype must be float16 or float32, got {self.dtype!r}")
        if self.win_length is not None and self.win_length > self.n_fft:
            raise ValueError(f"win_length={self.win_length} > n_fft={self.n_fft}")

    def apply(self, sample: Sample) -> None:
        import torch  # here, not at module level: every chain imports the registry, few need torch

        from v2d_vox.mel import log_mel

        ext = next((e for e in AUDIO_EXTS + VIDEO_EXTS if e in sample.files), None)
        if ext is None:
            raise SubsampleError("spectrogram: the sample has no audio member")
        pcm = torch.from_numpy(decode_audio(sample.files[ext], self.sample_rate))
        mel = log_mel(pcm, self.sample_rate, n_fft=self.n_fft, win_length=self.win_length,
                      hop_length=self.hop_length, n_mels=self.n_mels, f_min=self.f_min, f_max=self.f_max,
                      power=self.power, mel_scale=self.mel_scale, norm=self.norm, log_floor=self.log_floor)
        buf = io.BytesIO()
        np.save(buf, mel.numpy().astype(self.dtype))
        sample.files["mel.npy"] = buf.getvalue()
        sample.meta["mel"] = {**self.describe(), "shape": list(mel.shape), "source_member": ext,
                              "layout": "(n_mels, frames), natural log"}
