"""Decode once, convert in batches: equality with the loader's previous decode (per-frame swscale with a size,
one container open per stream), YUV planes converted on the device, and the checks on ``convert`` and
``decode_device``."""

import io
import json
import random

import av
import numpy as np
import pytest
import torch
from support import DATA, TALKING_HEADS, make_media, write_shard

from v2d_vox.loader import DecodeConfig, LoaderConfig, Normalize, decode_sample, make_loader, read_audio
from v2d_vox.loader import decode as decode_module
from v2d_vox.loader.color import to_rgb

CONFIGS = [DecodeConfig(clip_seconds=2.0), DecodeConfig(clip_seconds=1.0, fps=50, size=(64, 96), sample_rate=8000)]


def previous_video(data: bytes, start: float, cfg: DecodeConfig) -> torch.Tensor:
    """The loader's video decode before it decoded once: its own open, a new swscale context per frame."""

    def scale(frame):
        if isinstance(cfg.size, tuple):
            return frame.to_ndarray(format="rgb24", height=cfg.size[0], width=cfg.size[1])
        s = cfg.size / min(frame.width, frame.height)
        w, h = max(cfg.size, round(frame.width * s)), max(cfg.size, round(frame.height * s))
        top, left = (h - cfg.size) // 2, (w - cfg.size) // 2
        return frame.to_ndarray(format="rgb24", height=h, width=w)[top : top + cfg.size, left : left + cfg.size]

    frames, previous = [], None
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        if start > 0:
            container.seek(int(start / stream.time_base), stream=stream)
        for frame in container.decode(stream):
            while previous is not None and len(frames) < cfg.num_frames and start + len(frames) / cfg.fps < frame.time:
                frames.append(scale(previous))
            if len(frames) == cfg.num_frames:
                break
            previous = frame
        if previous is not None and len(frames) < cfg.num_frames:
            frames.append(scale(previous))
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)


def previous_audio(data: bytes, start: float, cfg: DecodeConfig) -> torch.Tensor:
    """The loader's audio decode before: its own open, seeking the audio stream itself."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        if start > 0:
            container.seek(int(start / stream.time_base), stream=stream)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=cfg.sample_rate)
        chunks, first = [], None
        for frame in container.decode(stream):
            if first is None:
                first = frame.time or 0.0
                need = round((start - first + cfg.clip_seconds) * cfg.sample_rate)
            chunks.extend(f.to_ndarray()[0] for f in resampler.resample(frame))
            if sum(map(len, chunks)) >= need:
                break
        chunks.extend(f.to_ndarray()[0] for f in resampler.resample(None))
    offset = round((start - first) * cfg.sample_rate)
    return torch.from_numpy(np.concatenate(chunks)[offset : offset + cfg.num_samples])


def raw(data: bytes, **members) -> dict:
    return {"__key__": "k", "__url__": "u", "__index__": 0, "mp4": data, **members}


@pytest.mark.parametrize("name", TALKING_HEADS)
@pytest.mark.parametrize("cfg", [*CONFIGS, DecodeConfig(size=224)])
def test_worker_path_equals_the_previous_decode(name, cfg):
    data = (DATA / name).read_bytes()
    out = decode_sample(raw(data), cfg, random.Random(3))
    assert out["start"] > 0  # a seek, so the one demux pass starts at the video keyframe before the clip
    before = previous_video(data, out["start"], cfg)
    assert out["video"].shape == before.shape and out["video"].is_contiguous()
    diff = (out["video"].int() - before.int()).abs()
    if cfg.size == 224:  # the clips' own size: no scaling, the same colour conversion exactly
        assert not diff.any()
    else:  # swscale's RGBA path (SIMD) rounds a little differently from its packed RGB24 one
        assert diff.max() <= 6 and diff.float().mean() < 2.0
    before = previous_audio(data, out["start"], cfg)
    assert out["audio"].shape == before.shape == (cfg.num_samples,)
    # the audio is now decoded from the keyframe on, not from a seek of its own: AAC's first frame after a
    # seek lacks its overlap, and noise substitution draws differ, so allow a small difference
    torch.testing.assert_close(out["audio"][2048:], before[2048:], atol=0.03, rtol=0)
    assert (out["audio"] - before).abs().mean() < 0.1 * before.abs().mean()


@pytest.mark.parametrize("name", TALKING_HEADS)
@pytest.mark.parametrize("cfg", [*CONFIGS, DecodeConfig(size=224)])
def test_planes_converted_in_a_batch_match_the_previous_rgb(name, cfg):
    data = (DATA / name).read_bytes()
    out = decode_sample(raw(data), cfg, random.Random(3), yuv=True)
    planes = out["video_yuv"]
    assert "video" not in out and planes["y"].dtype == torch.uint8
    assert planes["y"].shape == (cfg.num_frames, 224, 224) and planes["uv"].shape == (cfg.num_frames, 2, 112, 112)
    rgb = to_rgb(planes["y"], planes["uv"], cfg.size, planes["colorspace"], planes["full_range"])
    before = previous_video(data, out["start"], cfg)
    assert rgb.shape == before.shape and rgb.dtype == torch.uint8
    diff = (rgb.float() - before.float()).abs()
    if cfg.size == 224:  # curated at the training size: no resize, only the colour conversion differs
        assert diff.max() <= 4
    assert diff.mean() < 2.5 and diff.flatten().kthvalue(int(0.99 * diff.numel())).values <= 12


def test_each_member_is_opened_once(monkeypatch):
    opened = []
    real_open = decode_module.open_media

    def counting(data, *args, **kw):
        opened.append(len(data))
        return real_open(data, *args, **kw)

    monkeypatch.setattr(decode_module, "open_media", counting)
    mp4 = (DATA / TALKING_HEADS[0]).read_bytes()
    out = decode_sample(raw(mp4), DecodeConfig(), random.Random(0))
    assert opened == [len(mp4)] and {"video", "audio"} <= out.keys()
    m4a = (DATA / TALKING_HEADS[1]).read_bytes()  # an mp4 container: fine as the sample's audio member
    opened.clear()
    out = decode_sample(raw(mp4, m4a=m4a), DecodeConfig(), random.Random(0))
    assert opened == [len(mp4), len(m4a)]  # audio from its own member
    assert torch.equal(out["audio"], read_audio(m4a, out["start"], DecodeConfig()))


@pytest.fixture(scope="module")
def mixed_shard(real_shard, tmp_path_factory):
    """The real shard (talking heads, audio-only flac, a stored mel that counts as a decode error without
    ``stored_mel``) plus a 48x40 clip: two frame sizes in one batch."""
    from v2d_vox.loader.shards import tar_samples
    from v2d_vox.loader.state import LoaderStats

    samples = [{k: v for k, v in s.items() if k != "__url__" and k != "__index__"}
               for s in tar_samples([real_shard], LoaderStats())]
    samples.append({"__key__": "small", "mp4": make_media(1.2, size=(48, 40), seed=3, noise=True),
                    "json": json.dumps({"identity": "small"}).encode()})
    return write_shard(tmp_path_factory.mktemp("mixed") / "mixed.tar", samples)


def test_device_path_gives_the_same_batches_as_the_worker_path(mixed_shard):
    kw = dict(batch_size=6, clip_seconds=2.0, num_workers=0, shuffle_buffer=0, random_start=False, size=32)
    (worker,) = list(make_loader(mixed_shard, convert="worker", **kw))
    (device,) = list(make_loader(mixed_shard, convert="device", device="cpu", **kw))
    assert "video_yuv" not in device and worker["__key__"] == device["__key__"]
    assert torch.equal(worker["video_mask"], device["video_mask"]) and torch.equal(worker["audio"], device["audio"])
    assert device["video"].shape == worker["video"].shape == (5, 50, 3, 32, 32) and device["video"].dtype == torch.uint8
    assert not device["video"][~device["video_mask"]].any()  # padding and audio-only samples stay black
    diff = (device["video"].float() - worker["video"].float()).abs()
    # 224 -> 32 and a clip of per-pixel noise: the two resize filters differ most here
    assert diff.mean() < 2.5 and diff.flatten().kthvalue(int(0.99 * diff.numel())).values <= 16
    normed = list(make_loader(mixed_shard, convert="device", device="cpu",
                              batch_transforms={"video": Normalize([0.5] * 3, [0.5] * 3)}, **kw))[0]["video"]
    assert normed.dtype == torch.float32 and normed.shape == (5, 50, 3, 32, 32)


def test_device_path_with_worker_processes_and_triplets(identity_shards):
    loader = make_loader(identity_shards, batch_size=2, clip_seconds=0.4, size=16, num_workers=2, convert="device",
                         device="cpu", triplets=True, triplet_buffer=24)
    batches = list(loader)
    assert batches and loader.stats.counts.get("decode_errors", 0) == 0
    for role in ("anchor", "positive", "negative"):
        assert batches[0][role]["video"].shape == (2, 10, 3, 16, 16) and "video_yuv" not in batches[0][role]


def test_where_frames_are_converted_and_the_checks(monkeypatch, identity_shards):
    assert LoaderConfig(device="cuda").on_device and not LoaderConfig(device="cpu").on_device
    assert not LoaderConfig().on_device and LoaderConfig(convert="device").on_device
    assert not LoaderConfig(device="cuda", transforms={"video": Normalize([0.5] * 3, [0.5] * 3)}).on_device
    with pytest.raises(ValueError, match="batch_transforms"):
        make_loader(identity_shards, convert="device", transforms={"video": Normalize([0.5] * 3, [0.5] * 3)})
    with pytest.raises(ValueError, match="convert must be"):
        make_loader(identity_shards, convert="gpu")
    with pytest.raises(ValueError, match="decode_device must be"):
        make_loader(identity_shards, decode_device="tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="decode_device='cuda' needs an NVIDIA GPU"):
        make_loader(identity_shards, decode_device="cuda")
