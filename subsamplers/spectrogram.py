"""Log-mel spectrogram of each output's audio, stored as ``KEY.mel.npy`` (array stage).

The step is a ``v2d_vox.melspec.MelSpec``, the dataclass the loader's ``LogMel`` is built from, and it
writes that spec into the json under ``mel``: a reader years later knows exactly what the array holds,
and ``LogMel.from_json(json)`` computes the same thing on the fly."""

from __future__ import annotations

import io
from dataclasses import dataclass

import av
import numpy as np

from v2d_vox.errors import SubsampleError
from v2d_vox.media import decode_mono
from v2d_vox.melspec import MelSpec
from v2d_vox.sample import MEL, Sample, audio_member
from v2d_vox.subsampler import Subsampler, register


def decode_audio(data: bytes, sample_rate: int) -> np.ndarray:
    """The first audio stream, mixed to mono float32 at `sample_rate`; SubsampleError if there is none (the
    calling step puts its name before the message)."""
    try:
        pcm = decode_mono(data, sample_rate)
    except av.error.FFmpegError as e:
        raise SubsampleError(f"cannot decode audio: {type(e).__name__}") from None
    if pcm is None:
        raise SubsampleError("the sample has no audio stream")
    if not pcm.size:
        raise SubsampleError("the audio stream holds no samples")
    return pcm


@register("spectrogram")
@dataclass
class Spectrogram(Subsampler, MelSpec):
    """A ``MelSpec`` computed from each output's audio and stored as ``dtype``; the spec goes into the json
    under ``mel`` (with the array's shape and dtype), which is all the loader needs to compute the same."""

    stage = "array"
    dtype: str = "float16"

    def __post_init__(self):
        super().__post_init__()
        if self.dtype not in ("float16", "float32"):
            raise ValueError(f"dtype must be float16 or float32, got {self.dtype!r}")

    def apply(self, sample: Sample) -> None:
        import torch  # here, not at module level: every chain imports the registry, few need torch

        ext = audio_member(sample.files)
        if ext is None:
            raise SubsampleError("spectrogram: the sample has no audio member")
        try:
            wave = decode_audio(sample.files[ext], self.sample_rate)
        except SubsampleError as e:
            raise SubsampleError(f"spectrogram: {e}") from None
        mel = self(torch.from_numpy(wave))
        buf = io.BytesIO()
        np.save(buf, mel.numpy().astype(self.dtype))
        sample.files[MEL] = buf.getvalue()
        sample.meta["mel"] = {"name": self.name, **self.spec(), "dtype": self.dtype, "shape": list(mel.shape),
                              "source_member": ext, "layout": "(n_mels, frames), natural log"}
