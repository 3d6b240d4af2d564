"""Decoding from bytes with PyAV: shapes, dtypes, frame-rate grid, audio resampling, stored mel."""

import random

import pytest
import torch

from v2d_vox.loader import DecodeConfig, decode_sample, make_loader
from v2d_vox.loader.shards import tar_samples
from v2d_vox.loader.state import LoaderStats


@pytest.fixture(scope="module")
def real_samples(real_shard):
    return {s["__key__"]: s for s in tar_samples([real_shard], LoaderStats())}


def test_talking_head_clip_shapes(real_samples):
    out = decode_sample(real_samples["pc-avs__Input_00010"], DecodeConfig(clip_seconds=2.0), random.Random(0))
    assert out["video"].shape == (50, 3, 112, 112) and out["video"].dtype == torch.uint8
    assert out["audio"].shape == (32000,) and out["audio"].dtype == torch.float32
    assert 0.0 <= out["start"] <= 4.30 - 2.0
    assert out["audio"].abs().max() > 0.01  # real speech, not silence
    assert out["txt"] == "hello" and out["json"]["identity"] == "real0"


def test_target_fps_size_and_centred_start(real_samples):
    sample = real_samples["pc-avs__Pose_Source_517600055"]
    cfg = DecodeConfig(clip_seconds=1.0, fps=50, size=(64, 96), sample_rate=8000, random_start=False)
    out = decode_sample(sample, cfg, random.Random(0))
    assert out["video"].shape == (50, 3, 64, 96)
    assert out["audio"].shape == (8000,)
    assert out["start"] == pytest.approx((4.48 - 1.0) / 2, abs=1e-6)  # video stream: 4.48 s
    v = out["video"]  # a 25 fps source on a 50 fps grid: each source frame twice, one second's worth of them
    changes = [not torch.equal(v[k], v[k + 1]) for k in range(49)]
    assert sum(changes) in (24, 25)
    assert not any(changes[k] and changes[k + 1] for k in range(48))


def test_seeded_random_start_is_reproducible(real_samples):
    sample = real_samples["pc-avs__Audio_Source_00086"]
    cfg = DecodeConfig(clip_seconds=1.0, video=False)
    a, b, c = (decode_sample(sample, cfg, random.Random(s)) for s in (1, 1, 2))
    assert a["start"] == b["start"] != c["start"]
    assert torch.equal(a["audio"], b["audio"]) and "video" not in a


def test_audio_only_and_stored_mel(real_samples):
    crow = decode_sample(real_samples["crow"], DecodeConfig(), random.Random(0))
    assert "video" not in crow and crow["audio"].dtype == torch.float32
    assert 0.4 * 16000 < crow["audio"].shape[0] <= 0.5 * 16000  # 0.48 s of 44.1 kHz audio -> 16 kHz
    mel = decode_sample(real_samples["stored"], DecodeConfig(stored_mel=True, random_start=False), random.Random(0))
    assert mel["mel"].shape == (80, 200) and "audio" not in mel
    assert mel["mel"][0, 0] == 50  # centred: (300 - 200) / 2 frames in


def test_batch_pads_short_clips_with_masks(real_shard):
    loader = make_loader(real_shard, batch_size=5, clip_seconds=2.0, num_workers=0, shuffle_buffer=0,
                         stored_mel=True)
    (batch,) = list(loader)
    assert loader.stats.skipped == 0 and len(batch["__key__"]) == 5
    assert batch["video"].shape == (5, 50, 3, 112, 112) and batch["mel"].shape == (5, 80, 200)
    has_video = [k.startswith("pc-avs") for k in batch["__key__"]]
    assert batch["video_mask"].all(1).tolist() == has_video and batch["video_mask"].any(1).tolist() == has_video
    assert batch["mel_mask"].any(1).tolist() == [k == "stored" for k in batch["__key__"]]
    assert batch["audio_mask"].any(1).tolist() == [k != "stored" for k in batch["__key__"]]
    loader = make_loader(real_shard, batch_size=4, clip_seconds=2.0, num_workers=0, shuffle_buffer=0,
                         shuffle_shards=False, video=False)
    batch = next(iter(loader))
    assert batch["audio"].shape == (4, 32000)
    crow = batch["__key__"].index("crow")
    assert batch["audio_mask"][crow].sum() < 8000 and batch["audio_mask"].sum(1).tolist().count(32000) == 3
    assert torch.all(batch["audio"][crow][~batch["audio_mask"][crow]] == 0)


def test_a_json_that_is_not_an_object_costs_its_sample_only(tmp_path):
    """Regression: a list as KEY.json ended the epoch with an AttributeError in the label stage."""
    import webdataset as wds
    from support import DATA

    clip = (DATA / "pc-avs__Input_00010.mp4").read_bytes()
    with wds.TarWriter(str(tmp_path / "s.tar")) as w:
        w.write({"__key__": "bad", "mp4": clip, "json": b"[1, 2]"})
        w.write({"__key__": "good", "mp4": clip, "json": b'{"identity": "a"}'})
    loader = make_loader(str(tmp_path / "s.tar"), batch_size=1, num_workers=0, label_map={"a": 0})
    keys = [k for batch in loader for k in batch["__key__"]]
    assert keys == ["good"] and loader.stats.counts["decode_errors"] == 1
