"""``MelSpec``: the one description of a log-mel spectrogram, shared by curation and training.

The ``spectrogram`` subsampler *is* a MelSpec (plus how to store it): it writes its parameters into each
sample's json under ``mel``, and the loader's on-the-fly ``LogMel`` is built from the same dataclass
(``MelSpec.from_dict(json["mel"])``), so a stored ``KEY.mel.npy`` and one computed at training time
agree. Torch-free on import: curation chains that never compute a mel do not load torch."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass
class MelSpec:
    """Natural-log mel spectrogram ``log(max(mel + log_offset, log_floor))`` of mono audio; defaults
    are the common speech front end (25 ms Hann window, 10 ms hop, 80 HTK mels at 16 kHz)."""

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
    log_offset: float = 0.0
    center: bool = True
    pad_mode: str = "reflect"

    def __post_init__(self):
        if self.mel_scale not in ("htk", "slaney") or self.norm not in (None, "slaney"):
            raise ValueError(f"mel_scale must be htk|slaney and norm None|slaney, got {self.mel_scale}, {self.norm}")
        if self.win_length is not None and self.win_length > self.n_fft:
            raise ValueError(f"win_length={self.win_length} > n_fft={self.n_fft}")

    def spec(self) -> dict[str, Any]:
        """The parameters alone (a subclass's own fields left out): what a sample's json stores."""
        return {f.name: getattr(self, f.name) for f in fields(MelSpec)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MelSpec:
        """From a json ``mel`` entry; keys that are not parameters (shape, dtype...) are ignored."""
        names = {f.name for f in fields(MelSpec)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def frames(self, samples: int) -> int:
        return 1 + samples // self.hop_length if self.center else 1 + (samples - self.n_fft) // self.hop_length

    def __call__(self, waveform, g=None):
        """(..., samples) float tensor -> (..., n_mels, frames), on the waveform's device. ``g`` is unused:
        the signature of a loader transform."""
        from .mel import log_mel  # torch, only when a mel is computed

        return log_mel(waveform, **self.spec())
