"""v2d_vox.mel against librosa: max abs error below 1e-5 of the reference's max (measured ~5e-7 fp32)."""

import librosa
import numpy as np
import pytest
import torch

from v2d_vox.mel import log_mel, mel_filterbank, mel_spectrogram

RTOL_OF_MAX = 1e-5


@pytest.fixture(scope="module")
def speechlike() -> np.ndarray:
    t = np.arange(16000) / 16000
    rng = np.random.default_rng(0)
    return 0.3 * np.sin(2 * np.pi * 220 * t * (1 + t)) + 0.05 * rng.standard_normal(t.size)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mel_scale", ["htk", "slaney"])
@pytest.mark.parametrize("norm", [None, "slaney"])
@pytest.mark.parametrize("win_length", [None, 320])
def test_mel_spectrogram_matches_librosa(speechlike, dtype, mel_scale, norm, win_length):
    y = speechlike.astype(dtype)
    kw = dict(n_fft=400, win_length=win_length, hop_length=160, n_mels=64, power=2.0)
    ref = librosa.feature.melspectrogram(
        y=y, sr=16000, htk=mel_scale == "htk", norm=norm, fmin=20.0, fmax=7600.0,
        center=True, pad_mode="reflect", **kw,
    )
    out = mel_spectrogram(
        torch.from_numpy(y), 16000, f_min=20.0, f_max=7600.0, mel_scale=mel_scale, norm=norm, **kw
    )
    assert out.dtype == torch.from_numpy(y).dtype
    assert out.shape == ref.shape == (64, 1 + 16000 // 160)
    assert np.abs(out.numpy() - ref).max() <= RTOL_OF_MAX * ref.max()


@pytest.mark.parametrize("mel_scale", ["htk", "slaney"])
def test_filterbank_matches_librosa(mel_scale):
    htk = mel_scale == "htk"
    ref = librosa.filters.mel(sr=22050, n_fft=1024, n_mels=128, htk=htk, norm="slaney", dtype=np.float64)
    out = mel_filterbank(1024, 22050, 128, mel_scale=mel_scale, norm="slaney", dtype=torch.float64).numpy()
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-10 * ref.max())


def test_log_mel_batched_equals_per_item_and_floors(speechlike):
    x = torch.from_numpy(speechlike.astype(np.float32))
    batch = torch.stack([x, torch.zeros_like(x)]).reshape(2, 1, -1)
    out = log_mel(batch, 16000)
    assert out.shape == (2, 1, 80, 101)
    torch.testing.assert_close(out[0, 0], log_mel(x, 16000))
    assert torch.all(out[1] == torch.log(torch.tensor(1e-6)))
    ref = np.log(np.maximum(librosa.feature.melspectrogram(
        y=speechlike.astype(np.float32), sr=16000, n_fft=400, hop_length=160, n_mels=80, htk=True, norm=None,
        center=True, pad_mode="reflect"), 1e-6))
    assert np.abs(out[0, 0].numpy() - ref).max() < 1e-3


def test_log_offset():
    x = torch.zeros(1600)
    assert torch.allclose(log_mel(x, 16000, log_offset=1.0), torch.zeros(80, 11))


def test_rejects_unknown_norm():
    with pytest.raises(ValueError):
        mel_filterbank(400, 16000, norm="l2")
