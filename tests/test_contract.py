"""The data contract between curation and training (``v2d_vox.sample``, ``tars``, ``melspec``): what a
writer puts in a shard is exactly what scan, reprocess and the loader read."""

from __future__ import annotations

import io
import json
import random

import numpy as np
import pytest
import torch
from support import DATA, TALKING_HEADS, make_media, make_tar

import v2d_vox
from v2d_vox import plan, sample
from v2d_vox.loader import DecodeConfig, LogMel, decode_sample, make_loader
from v2d_vox.loader.shards import tar_samples
from v2d_vox.loader.state import LoaderStats
from v2d_vox.tars import read_tar


def test_every_extension_a_writer_can_produce_is_one_the_readers_know():
    assert set(plan.VIDEO_CONTAINERS) <= set(sample.VIDEO_EXTS)
    assert set(plan.AUDIO_FORMATS) <= set(sample.AUDIO_EXTS)
    assert set(sample.CONTAINER_EXTS.values()) <= set(sample.MEDIA_EXTS)


def test_mpg_source_from_the_default_preset_reaches_the_loader(tmp_path):
    """Regression: a default-preset .mpg sample was written as KEY.mpg, called clean by scan and dropped
    by the loader ("no media member among ['json', 'mpg']")."""
    src = tmp_path / "clip.mpg"
    src.write_bytes(make_media(duration=2.5, size=(96, 64), container="mpeg", vcodec="mpeg2video", acodec="mp2"))
    (tmp_path / "urls.txt").write_text(f"{src}\n")
    out = tmp_path / "out"
    summary = v2d_vox.download(str(tmp_path / "urls.txt"), str(out), config="default", progress=False)
    assert summary["status"]["success"] == 1
    (key, members), = read_tar(str(out / "00000.tar"))
    assert "mpg" in members
    scanned = v2d_vox.scan(str(out / "00000.tar"), str(tmp_path / "report"), progress=False)
    assert scanned["bad_samples"] == 0
    loader = make_loader(str(out / "00000.tar"), batch_size=1, num_workers=0, clip_seconds=2.0, size=32)
    batches = list(loader)
    assert loader.stats.skipped == 0 and len(batches) == 1
    assert batches[0]["video"].shape == (1, 50, 3, 32, 32) and batches[0]["audio_mask"].all()


def test_on_the_fly_log_mel_from_the_json_spec_equals_the_stored_mel(tmp_path):
    """Regression: the loader's LogMel could not reproduce the voxceleb preset's stored mel (no win_length;
    up to 5.8 log units apart). Built from the clip's json spec, it matches within 1e-3."""
    config = v2d_vox.config.load_config("voxceleb")
    for step in config["subsamplers"]:
        if step["name"] == "spectrogram":
            step["dtype"] = "float32"  # float16 storage alone rounds log values by up to ~8e-3
    (tmp_path / "t.csv").write_text("url,clips\n" + f"{DATA / TALKING_HEADS[0]},\"[[0.5, 2.5]]\"\n")
    out = tmp_path / "out"
    v2d_vox.download(str(tmp_path / "t.csv"), str(out), clip_col="clips", config=config, progress=False)
    raw = next(tar_samples([str(out / "00000.tar")], LoaderStats()))
    decoded = decode_sample(raw, DecodeConfig(clip_seconds=2.0, video=False, random_start=False), random.Random(0))
    stored = np.load(io.BytesIO(raw["mel.npy"]))
    online = LogMel.from_json(decoded["json"])(decoded["audio"])
    assert online.shape == stored.shape == (80, 201)
    assert torch.allclose(online, torch.from_numpy(stored), atol=1e-3)
    default = LogMel()(decoded["audio"])  # the stored spec is the default speech front end
    assert torch.allclose(default, online)


def test_one_tar_reader_for_curation_and_training(tmp_path):
    """Same grouping everywhere: a key that repeats an extension starts a new sample; extensions are
    lower-cased; directories and __-prefixed members are skipped."""
    path = make_tar(tmp_path / "x.tar", [("a", {"MP4": b"1", "json": b"{}"}), ("a", {"mp4": b"2"}),
                                         ("b", {"txt": b"t"})])
    curation = [(k, m) for k, m in read_tar(str(path))]
    training = [(s["__key__"], {e: v for e, v in s.items() if not e.startswith("__")})
                for s in tar_samples([str(path)], LoaderStats())]
    assert curation == training == [("a", {"mp4": b"1", "json": b"{}"}), ("a", {"mp4": b"2"}), ("b", {"txt": b"t"})]


@pytest.mark.parametrize("meta, key, want", [
    ({"video_id": "v"}, "x_00001", "v"), ({"source_key": "s"}, "x_00001", "s"), ({}, "src_00003", "src")])
def test_video_id_rule(meta, key, want):
    assert sample.video_id(meta, key) == want
    assert v2d_vox.loader.video_id({"json": meta, "__key__": key}) == want


def test_sample_members_are_sorted_with_the_json_or_copied_as_they_are():
    s = sample.Sample("k", {"mp4": b"v", "txt": b"t"}, {"b": 1, "a": 2})
    assert s.members() == [("json", json.dumps({"a": 2, "b": 1}).encode()), ("mp4", b"v"), ("txt", b"t")]
    copied = sample.Sample("k", {"txt": b"t", "json": b'{"z":1}', "mp4": b"v"}, meta=None)
    assert copied.members() == [("txt", b"t"), ("json", b'{"z":1}'), ("mp4", b"v")]
