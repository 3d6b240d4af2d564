"""Model steps: run a model on batches of output clips inside the worker (array stage, batched).

``ModelStep`` is the one interface. A subclass says how one clip becomes a model input (``prepare``) and
where one output goes (``store``); the base class does the rest:

- **one model per worker process**: loaded on first use and cached by (model, weights, args, device), so
  every thread and shard of the process shares it;
- **batches across samples**: the step is ``batched``, so the worker hands it the outputs of several rows
  at once (``apply_batch``) and the model sees ``batch_size`` clips per call whatever each row yields;
  memory stays bounded by ``batch_size`` prepared inputs;
- **the GPU when present** (``device`` None: ``cuda`` if torch sees one, else ``cpu``);
- **weights from this machine only**: ``model`` is an exported program file (``torch.export.save``,
  ``.pt2``) or ``"package.module:callable"`` from an installed package, called with ``model_args``;
  ``weights`` is an optional local ``state_dict`` file loaded with ``weights_only=True``. Anything that
  looks like a URL or a hub name is refused when the config is built, never fetched at run time.

Two steps are built on it: ``transcribe`` (Whisper-style ASR: a log-mel of 16 kHz audio padded to 30 s in,
one text per clip out, into the json's ``transcript``) and ``embed`` (frames or a log-mel in, one vector
per clip out, as ``KEY.emb.npy``)."""

from __future__ import annotations

import importlib
import io
import json
import os
import re
import threading
from dataclasses import dataclass, field
from typing import Any, ClassVar

import av
import numpy as np

from v2d_vox.errors import SubsampleError
from v2d_vox.media import TooLarge, open_media
from v2d_vox.melspec import MelSpec
from v2d_vox.sample import EMBEDDING, TXT, Sample, audio_member, video_member
from v2d_vox.subsampler import Subsampler, register

from .spectrogram import decode_audio

_MODELS: dict[tuple[str, str | None, str, str], Any] = {}
_LOCK = threading.Lock()
_CALLABLE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def resolve_device(device: str | None) -> str:
    import torch

    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def check_model_ref(model: str, weights: str | None) -> None:
    """Refuse at config time what would need a download: only a local file or an installed callable."""
    if "://" in model or (not _CALLABLE.match(model) and not os.path.isfile(model)):
        raise ValueError(f"model {model!r}: give a local exported-program file (.pt2) or "
                         "'package.module:callable' of an installed package (no hub downloads)")
    if weights is not None and not os.path.isfile(weights):
        raise ValueError(f"weights {weights!r}: not a local file")
    if weights is not None and os.path.isfile(model):
        raise ValueError("weights go with a 'package.module:callable' model; an exported file holds its own")


def load_model(model: str, weights: str | None, args: dict[str, Any], device: str) -> Any:
    """The model, loaded once per process and kept for every later batch."""
    key = (model, weights, json.dumps(args, sort_keys=True), device)
    with _LOCK:
        if key not in _MODELS:
            _MODELS[key] = _load(model, weights, args, device)
        return _MODELS[key]


def _load(model: str, weights: str | None, args: dict[str, Any], device: str) -> Any:
    import torch

    if os.path.isfile(model):  # exported in inference mode, weights inside: it only moves to the device
        return torch.export.load(model).module().to(device)
    module, _, attr = model.partition(":")
    factory: Any = importlib.import_module(module)
    for part in attr.split("."):
        factory = getattr(factory, part)
    loaded = factory(**args)
    if weights is not None:
        loaded.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    if isinstance(loaded, torch.nn.Module):
        loaded = loaded.to(device).eval()
    return loaded


@dataclass
class ModelStep(Subsampler):
    """Base class of the model steps (not registered itself); see the module docstring."""

    stage = "array"
    batched: ClassVar[bool] = True
    model: str
    weights: str | None = None
    model_args: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 8
    device: str | None = None  # None: cuda when available, else cpu

    def __post_init__(self):
        check_model_ref(self.model, self.weights)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")

    def prepare(self, sample: Sample) -> Any:
        """One clip -> its model input, a CPU tensor; the batch is ``torch.stack`` of these."""
        raise NotImplementedError

    def store(self, sample: Sample, output: Any) -> None:
        """Put the model's output for one clip into the sample (a member, json fields)."""
        raise NotImplementedError

    def apply(self, sample: Sample) -> None:
        self.apply_batch([sample])

    def apply_batch(self, samples: list[Sample]) -> None:
        import torch

        device = resolve_device(self.device)
        model = load_model(self.model, self.weights, self.model_args, device)
        for i in range(0, len(samples), self.batch_size):
            part = samples[i : i + self.batch_size]
            try:
                batch = torch.stack([self.prepare(s) for s in part]).to(device)
            except SubsampleError as e:
                raise SubsampleError(f"{self.name}: {e}") from None
            with torch.inference_mode():
                outputs = list(model(batch))
            if len(outputs) != len(part):
                raise SubsampleError(f"{self.name}: the model gave {len(outputs)} outputs for {len(part)} inputs")
            for sample, output in zip(part, outputs):
                self.store(sample, output)


def padded_log_mel(sample: Sample, spec: MelSpec, seconds: float) -> Any:
    """The log-mel of the sample's audio, padded with silence or cut to ``seconds``: one shape for a batch."""
    import torch

    ext = audio_member(sample.files)
    if ext is None:
        raise SubsampleError("the sample has no audio member")
    wave = decode_audio(sample.files[ext], spec.sample_rate)
    length = round(seconds * spec.sample_rate)
    wave = np.pad(wave[:length], (0, max(0, length - len(wave))))
    return spec(torch.from_numpy(wave))


def sampled_frames(sample: Sample, count: int, size: int) -> Any:
    """``count`` frames spread evenly over the clip as a float tensor (count, 3, size, size) in [0, 1]."""
    import torch

    ext = video_member(sample.files)
    if ext is None:
        raise SubsampleError("the sample has no video member")
    try:
        with open_media(sample.files[ext]) as container:
            frames = [f.reformat(width=size, height=size, format="rgb24").to_ndarray()
                      for f in container.decode(video=0)]
    except (av.error.FFmpegError, TooLarge) as e:
        raise SubsampleError(f"cannot decode video: {type(e).__name__}") from None
    if not frames:
        raise SubsampleError("the video holds no frames")
    picks = np.linspace(0, len(frames) - 1, count).round().astype(int)
    return torch.from_numpy(np.stack([frames[i] for i in picks])).permute(0, 3, 1, 2).float() / 255


# Whisper's front end: 16 kHz, 25 ms window, 10 ms hop, 80 Slaney mels (natural log here)
WHISPER_MEL = MelSpec(sample_rate=16000, n_fft=400, win_length=400, hop_length=160, n_mels=80,
                      mel_scale="slaney", norm="slaney", log_floor=1e-10)


@register("transcribe")
@dataclass
class Transcribe(ModelStep):
    """Whisper-style ASR: the model gets a (batch, 80, frames) log-mel of each clip's audio padded to
    ``seconds`` and returns one text (or a dict with ``text`` and more, such as ``segments``) per clip,
    stored under the json's ``transcript``; with ``caption`` also as ``KEY.txt``."""

    seconds: float = 30.0
    caption: bool = False

    def prepare(self, sample: Sample) -> Any:
        return padded_log_mel(sample, WHISPER_MEL, self.seconds)

    def store(self, sample: Sample, output: Any) -> None:
        result = dict(output) if isinstance(output, dict) else {"text": str(output)}
        sample.meta["transcript"] = {**result, "model": self.model, "mel": WHISPER_MEL.spec()}
        if self.caption:
            sample.files[TXT] = result["text"].encode()


@register("embed")
@dataclass
class Embed(ModelStep):
    """One vector per clip, from ``frames`` evenly spread RGB frames at ``size`` x ``size`` in [0, 1]
    (``modality: video``, batch (B, frames, 3, size, size)) or from a log-mel of its audio padded to
    ``seconds`` (``modality: audio``, batch (B, n_mels, frames)); stored as ``KEY.emb.npy``."""

    modality: str = "video"
    frames: int = 8
    size: int = 224
    seconds: float = 10.0
    dtype: str = "float16"

    def __post_init__(self):
        super().__post_init__()
        if self.modality not in ("video", "audio"):
            raise ValueError(f"modality must be video or audio, got {self.modality!r}")
        if self.dtype not in ("float16", "float32"):
            raise ValueError(f"dtype must be float16 or float32, got {self.dtype!r}")

    def prepare(self, sample: Sample) -> Any:
        if self.modality == "audio":
            return padded_log_mel(sample, MelSpec(), self.seconds)
        return sampled_frames(sample, self.frames, self.size)

    def store(self, sample: Sample, output: Any) -> None:
        vector = output.float().cpu().numpy().reshape(-1)
        buf = io.BytesIO()
        np.save(buf, vector.astype(self.dtype))
        sample.files[EMBEDDING] = buf.getvalue()
        sample.meta["embedding"] = {**self.describe(), "dim": int(vector.size)}
