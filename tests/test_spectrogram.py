"""The spectrogram subsampler: stored log-mel equals librosa's on the same audio; clear per-sample errors."""

from __future__ import annotations

import io

import librosa
import numpy as np
import pytest
from support import DATA, make_media

import subsamplers.spectrogram  # noqa: F401  (registers "spectrogram")
from v2d_vox.errors import SubsampleError
from v2d_vox.sample import Sample
from v2d_vox.subsampler import build


@pytest.mark.parametrize("mel_scale,norm", [("htk", None), ("slaney", "slaney")])
def test_stored_log_mel_matches_librosa(mel_scale, norm):
    data = (DATA / "lhotse__LJ002-0020.wav").read_bytes()  # 22.05 kHz speech, resampled to 16 kHz
    step = build({"name": "spectrogram", "sample_rate": 16000, "n_fft": 512, "win_length": 400, "hop_length": 160,
                  "n_mels": 64, "f_min": 20.0, "f_max": 7600.0, "mel_scale": mel_scale, "norm": norm,
                  "dtype": "float32"})
    sample = Sample("k", {"wav": data}, {})
    step.apply(sample)
    mel = np.load(io.BytesIO(sample.files["mel.npy"]))
    pcm = subsamplers.spectrogram.decode_audio(data, 16000)
    ref = librosa.feature.melspectrogram(y=pcm, sr=16000, n_fft=512, win_length=400, hop_length=160, n_mels=64,
                                         fmin=20.0, fmax=7600.0, htk=mel_scale == "htk", norm=norm, center=True,
                                         pad_mode="reflect", power=2.0)
    ref = np.log(np.maximum(ref, 1e-6))
    assert mel.shape == ref.shape == (64, 1 + len(pcm) // 160)
    # log domain, float32 STFT: absolute tolerance 1e-3 nats where the power is above the floor
    assert np.max(np.abs(mel - ref)) < 1e-3
    assert sample.meta["mel"]["shape"] == list(ref.shape) and sample.meta["mel"]["mel_scale"] == mel_scale


def test_float16_storage_and_provenance():
    sample = Sample("k", {"wav": (DATA / "tflite-micro-speech__yes_1000ms.wav").read_bytes()}, {})
    build({"name": "spectrogram"}).apply(sample)
    mel = np.load(io.BytesIO(sample.files["mel.npy"]))
    assert mel.dtype == np.float16 and mel.shape == (80, 101)
    assert sample.meta["mel"]["name"] == "spectrogram" and sample.meta["mel"]["hop_length"] == 160


def test_clip_without_audio_is_a_clear_sample_error():
    sample = Sample("k", {"mp4": make_media(duration=1.0, audio=False)}, {})
    with pytest.raises(SubsampleError, match="no audio stream"):
        build({"name": "spectrogram"}).apply(sample)


def test_bad_arguments_are_config_errors():
    from v2d_vox.errors import ConfigError

    with pytest.raises(ConfigError, match="mel_scale"):
        build({"name": "spectrogram", "mel_scale": "bark"})
    with pytest.raises(ConfigError, match="unknown argument.*n_mel\\b"):
        build({"name": "spectrogram", "n_mel": 40})
