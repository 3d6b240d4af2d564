"""Transforms: normalization with dataset statistics, SpecAugment masks, corruptions, noise at an SNR."""

import pickle

import pytest
import torch

from v2d_vox.loader import (
    AddNoise,
    BrightnessContrast,
    Compose,
    DropFrames,
    GaussianBlur,
    GaussianNoise,
    LogMel,
    Normalize,
    Occlusion,
    SpecAugment,
    apply,
    compute_stats,
)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_compute_stats_then_normalize(identity_shards):
    mean, std = compute_stats(identity_shards, max_samples=None)
    assert len(mean) == len(std) == 3
    # every synthetic clip is one identity colour + noise: the means lie between the identity colours
    assert 0.2 < mean[0] < 0.6 and 0.5 < mean[1] < 0.9 and std[0] > 0.1
    frames = torch.cat([v for v in _videos(identity_shards)])
    normed = Normalize(mean, std)(frames)
    assert normed.dtype == torch.float32
    torch.testing.assert_close(normed.mean(dim=(0, 2, 3)), torch.zeros(3), atol=2e-3, rtol=0)
    torch.testing.assert_close(normed.std(dim=(0, 2, 3)), torch.ones(3), atol=2e-3, rtol=0)


def test_normalize_reuses_only_memory_that_no_output_holds():
    norm = Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    x = torch.randint(0, 256, (2, 4, 3, 16, 16), dtype=torch.uint8)
    expected = (x.float() / 255 - torch.tensor(norm.mean).view(3, 1, 1)) / torch.tensor(norm.std).view(3, 1, 1)
    first = norm(x)
    torch.testing.assert_close(first, expected, atol=1e-5, rtol=0)
    kept = first[0]  # a view keeps the first output's memory alive
    address = first.data_ptr()
    del first
    second = norm(torch.zeros_like(x))
    assert second.data_ptr() != address  # not over the view that is still held
    torch.testing.assert_close(kept, expected[0], atol=1e-5, rtol=0)
    del kept
    third = norm(x)
    assert third.data_ptr() == address  # free again: reused instead of faulting in fresh pages
    torch.testing.assert_close(third, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(norm(x.float() / 255), expected, atol=1e-5, rtol=0)  # float input: plain math
    assert len(norm._buffers) <= Normalize.KEEP
    assert pickle.loads(pickle.dumps(norm))._buffers == []  # a copy sent to workers carries no batch memory


def test_normalize_on_the_cpu_in_slices_gives_the_numbers_of_whole_tensor_ops():
    norm = Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    mean, std = torch.tensor(norm.mean).view(3, 1, 1), torch.tensor(norm.std).view(3, 1, 1)
    big = torch.randint(0, 256, (3, 20, 3, 64, 64), dtype=torch.uint8)  # 60 frames: several ~1 MB slices
    for x in (big, big[:, ::2], big[0, 0], big[:0]):  # contiguous, strided, one (C, H, W) frame, empty
        want = x.float().mul_(1.0 / (255.0 * std)).add_(-mean / std)
        got = norm(x)
        assert got.shape == x.shape and torch.equal(got, want)


def _videos(shards):
    import random

    from v2d_vox.loader import DecodeConfig
    from v2d_vox.loader.decode import decode
    from v2d_vox.loader.shards import tar_samples
    from v2d_vox.loader.state import LoaderStats

    cfg = DecodeConfig(audio=False, random_start=False)
    return [s["video"] for s in decode(tar_samples(shards, LoaderStats()), cfg, random.Random(0), LoaderStats())]


def test_normalize_batched_uint8_and_float_agree():
    x = torch.randint(0, 256, (2, 4, 3, 8, 8), dtype=torch.uint8)
    norm = Normalize([0.5, 0.4, 0.3], [0.2, 0.25, 0.3])
    torch.testing.assert_close(norm(x), norm(x.float() / 255))
    torch.testing.assert_close(norm(x)[1, 2, 1], (x[1, 2, 1].float() / 255 - 0.4) / 0.25)


def test_specaugment_masks_bands_within_widths():
    x = torch.randn(16, 40, 100) + 5.0
    out = SpecAugment(freq_masks=1, freq_width=8, time_masks=2, time_width=10, mask_value=0.0)(x, gen())
    assert out.shape == x.shape
    masked = out == 0
    freq_rows = masked.all(dim=2)  # whole rows masked = frequency bands
    time_cols = masked.all(dim=1)
    for i in range(16):
        assert freq_rows[i].sum() <= 8 and time_cols[i].sum() <= 20
        assert torch.equal(masked[i], freq_rows[i][:, None] | time_cols[i][None, :])  # nothing else touched
        assert torch.equal(out[i][~masked[i]], x[i][~masked[i]])
    assert freq_rows.any() and time_cols.any()
    assert not torch.equal(masked[0], masked[1])  # per-item masks
    per_mean = SpecAugment(freq_masks=2, freq_width=10, time_masks=0)(x, gen(3))
    changed = per_mean != x
    assert torch.allclose(per_mean[changed], x.mean(dim=(1, 2), keepdim=True).expand_as(x)[changed])


def test_specaugment_time_warp_is_batched_and_equals_per_item_interpolation():
    x, w = torch.randn(5, 3, 40, 101), 12
    out = SpecAugment(freq_masks=0, time_masks=0, time_warp=w)(x, gen(4))
    flat, expected = x.reshape(-1, 40, 101), []
    for i, (u, v) in enumerate(torch.rand((15, 2), generator=gen(4)).tolist()):  # the same draws, item by item
        centre = w + 1 + int(u * (101 - 2 * w - 2))
        moved = min(max(centre + int((2 * v - 1) * w), 1), 100)
        item = flat[i : i + 1]
        left = torch.nn.functional.interpolate(item[..., :centre], size=moved, mode="linear", align_corners=False)
        right = torch.nn.functional.interpolate(item[..., centre:], size=101 - moved, mode="linear",
                                                align_corners=False)
        expected.append(torch.cat([left, right], dim=-1)[0])
    torch.testing.assert_close(out, torch.stack(expected).reshape(x.shape), atol=1e-4, rtol=0)
    assert not torch.allclose(out, x)


def test_specaugment_time_warp_keeps_shape_and_is_seeded():
    x = torch.arange(50.0).expand(2, 8, 50).contiguous()
    aug = SpecAugment(freq_masks=0, time_masks=0, time_warp=10)
    a, b = aug(x, gen(1)), aug(x, gen(1))
    assert a.shape == x.shape and torch.equal(a, b)
    assert not torch.equal(a, x)
    assert torch.all(a[..., 1:] >= a[..., :-1] - 1e-4)  # a warp is monotone: time is moved, not shuffled


def test_log_mel_transform_on_batch_field():
    batch = {"audio": torch.randn(3, 16000)}
    apply(batch, {"audio->mel": LogMel(n_mels=40)})
    assert batch["mel"].shape == (3, 40, 101) and "audio" in batch


def test_video_corruptions_keep_dtype_and_change_content():
    x = torch.randint(30, 220, (2, 6, 3, 16, 16), dtype=torch.uint8)
    for t in [GaussianNoise(0.1), GaussianBlur(1.0), Occlusion(0.3, 0.5), BrightnessContrast(0.3, 0.3),
              DropFrames(0.6)]:
        y = t(x, gen())
        assert y.shape == x.shape and y.dtype == torch.uint8, t
        assert not torch.equal(y, x), t
        torch.testing.assert_close(t(x.float() / 255, gen()), y.float() / 255, atol=1 / 255 + 1e-6, rtol=0)


def test_blur_smooths_and_occlusion_is_one_box_on_all_frames():
    x = torch.randint(0, 256, (1, 4, 3, 32, 32), dtype=torch.uint8)
    assert GaussianBlur(2.0)(x).float().std() < 0.5 * x.float().std()
    y = Occlusion(0.25, 0.25, value=0.0)(x + 1, gen())  # x + 1 >= 1 except for wrap-around at 255
    box = (y == 0).all(dim=2)
    assert all(torch.equal(box[0, 0], box[0, t]) for t in range(4))
    rows, cols = box[0, 0].any(1).sum(), box[0, 0].any(0).sum()
    assert rows == cols == 8 and box[0, 0].sum() == 64


def test_drop_frames_repeats_previous_frames():
    x = torch.arange(10, dtype=torch.uint8).view(1, 10, 1, 1, 1).expand(3, 10, 3, 2, 2).contiguous()
    y = DropFrames(0.5)(x, gen())
    ids = y[:, :, 0, 0, 0]
    assert torch.all(ids[:, 0] == 0) and torch.all(ids[:, 1:] >= ids[:, :-1])
    assert torch.all((ids == torch.arange(10)) | (ids < torch.arange(10)))
    assert (ids != torch.arange(10)).any()


@pytest.mark.parametrize("bank", [None, torch.randn(3, 1000)])
def test_add_noise_hits_the_target_snr(bank):
    t = torch.arange(16000) / 16000
    clean = torch.stack([torch.sin(2 * torch.pi * 440 * t), 0.1 * torch.sin(2 * torch.pi * 300 * t)])
    noisy = AddNoise(10.0, 10.0, noise=bank)(clean, gen())
    snr = 10 * torch.log10(clean.pow(2).mean(-1) / (noisy - clean).pow(2).mean(-1))
    torch.testing.assert_close(snr, torch.full((2,), 10.0), atol=1e-3, rtol=0)


def test_compose_is_reproducible_with_a_generator():
    x = torch.randint(0, 256, (2, 4, 3, 16, 16), dtype=torch.uint8)
    chain = Compose(GaussianNoise(0.05), Occlusion(), Normalize([0.5] * 3, [0.25] * 3))
    assert torch.equal(chain(x, gen(7)), chain(x, gen(7)))
    assert not torch.equal(chain(x, gen(7)), chain(x, gen(8)))
