"""The corrupt subsampler on real speech and talking-head video: reproducible bytes, drawn parameters in the
json, the SNR of the mixed audio, stalls, gain and dropouts, and one ffmpeg pass."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest
from support import DATA, streams

from v2d_vox.errors import ConfigError
from v2d_vox.probe import probe
from v2d_vox.sample import Sample
from v2d_vox.subsampler import Chain, build
from v2d_vox.worker import run_chain

TALK = DATA / "pc-avs__Pose_Source_517600055.mp4"  # 4.48 s talking head, 224x224@25, aac 16 kHz mono
SPEECH = DATA / "lhotse__LJ002-0020.wav"  # 1.54 s speech, 22.05 kHz mono
CROW = DATA / "deb-sonic-pi-samples__misc_crow.flac"  # 0.48 s, 44.1 kHz: a background shorter than a clip
VIDEO = ("drop_frames", "color", "blur", "occlusion", "noise", "compress")
AUDIO = ("audio_noise", "gain", "dropout")
OFF = {f"p_{name}": 0.0 for name in VIDEO + AUDIO}
ALL_ON = {f"p_{name}": 1.0 for name in VIDEO + AUDIO}


def corrupt(path, seed: int = 0, clip_seconds: float = 2.0, **args) -> list[Sample]:
    """Clips of `path` with 16 kHz mono FLAC audio as its own member (lossless: the mix can be measured)."""
    chain = Chain.from_specs([
        {"name": "clip", "clip_seconds": clip_seconds},
        {"name": "resample_video", "fps": 25, "width": 160, "height": 160, "mode": "crop"},
        {"name": "resample_audio", "sample_rate": 16000, "channels": 1, "format": "flac", "separate": True},
        {"name": "corrupt", "seed": seed, "keep_clean": True, **{**OFF, **args}}])
    data = path.read_bytes()
    info = probe(data)
    return run_chain(chain, Sample(path.stem, {info["ext"]: data}, {"probe": info}))


def pcm(data: bytes) -> np.ndarray:
    with av.open(io.BytesIO(data)) as c:
        return np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)]).astype(np.float64)


def frames(data: bytes) -> np.ndarray:
    with av.open(io.BytesIO(data)) as c:
        return np.stack([f.to_ndarray(format="gray").astype(np.float64) for f in c.decode(video=0)])


@pytest.fixture(scope="module")
def all_on() -> list[Sample]:
    return corrupt(TALK, **ALL_ON)


def test_same_seed_and_key_give_identical_bytes(all_on):
    again = corrupt(TALK, **ALL_ON)
    assert [o.key for o in all_on] == [o.key for o in again] == [f"{TALK.stem}_00000", f"{TALK.stem}_00001"]
    for a, b in zip(all_on, again):
        assert sorted(a.files) == ["corrupt.flac", "corrupt.mp4", "flac", "mp4"]
        assert all(a.files[ext] == b.files[ext] for ext in a.files) and a.meta["corrupt"] == b.meta["corrupt"]
    other_seed = corrupt(TALK, seed=1, **ALL_ON)
    assert all(a.files["corrupt.mp4"] != b.files["corrupt.mp4"] for a, b in zip(all_on, other_seed))
    assert all(a.files["mp4"] == b.files["mp4"] for a, b in zip(all_on, other_seed))  # the clean clip stays


def test_json_holds_every_drawn_parameter_and_keys_differ(all_on):
    first, second = (o.meta["corrupt"] for o in all_on)
    assert (first["seed"], first["key"], first["keep_clean"]) == (0, all_on[0].key, True)
    for record in (first, second):
        assert sorted(record["video"]) == sorted(VIDEO)
        assert sorted(record["audio"]) == ["dropout", "gain", "noise"]
        assert set(record["audio"]["noise"]) >= {"snr_db", "color", "seed", "speech_dbfs", "gain_db"}
    for kind in ("video", "audio"):
        for name in first[kind]:
            assert first[kind][name] != second[kind][name], (kind, name)
    assert [s["name"] for s in all_on[0].meta["subsamplers"]][-1] == "corrupt"


def test_corrupted_clip_keeps_size_length_and_sync(all_on):
    for out in all_on:
        clean, bad = streams(out.files["mp4"])["video"], streams(out.files["corrupt.mp4"])["video"]
        assert (bad["width"], bad["height"], bad["frames"], bad["fps"]) == (160, 160, 50, 25)
        assert clean == bad
        assert len(pcm(out.files["corrupt.flac"])) == len(pcm(out.files["flac"])) == 32000


@pytest.mark.parametrize("path, args", [
    (TALK, {"noise_colors": ["white"]}),
    (TALK, {"noise_colors": ["pink"], "snr_db": [0, 5]}),
    (SPEECH, {"noise_colors": ["brown"]}),  # 22.05 kHz source: the noise is made at the output's 16 kHz
    (TALK, {"noise_files": str(CROW)}),  # a real recording, looped under the clip
])
def test_noise_is_mixed_at_the_drawn_snr(path, args):
    outs = corrupt(path, clip_seconds=1.5, p_audio_noise=1.0, **args)
    assert outs
    for out in outs:
        noise = out.meta["corrupt"]["audio"]["noise"]
        clean, mixed = pcm(out.files["flac"]), pcm(out.files["corrupt.flac"])
        snr = 10 * np.log10(np.mean(clean**2) / np.mean((mixed - clean) ** 2))
        assert abs(snr - noise["snr_db"]) < 1.0, (snr, noise)
        assert noise["gain_db"] == pytest.approx(noise["speech_dbfs"] - noise["snr_db"], abs=1e-3)
        assert ("file" in noise) == ("noise_files" in args)


def test_gain_and_dropouts():
    [out] = corrupt(SPEECH, clip_seconds=1.5, p_gain=1.0, p_dropout=1.0, gain_db=[-6, -3], dropouts=[2, 2])
    audio = out.meta["corrupt"]["audio"]
    clean, bad = pcm(out.files["flac"]), pcm(out.files["corrupt.flac"])
    t = np.arange(len(clean)) / 16000
    muted = np.zeros(len(clean), bool)
    for a, b in audio["dropout"]["spans"]:
        muted |= (t >= a) & (t <= b)
    assert len(audio["dropout"]["spans"]) == 2 and not np.any(bad[muted])
    loud = ~muted & (np.abs(clean) > 1000)
    ratio_db = 20 * np.log10(np.median(np.abs(bad[loud]) / np.abs(clean[loud])))
    assert ratio_db == pytest.approx(audio["gain"]["db"], abs=0.1)


def test_dropped_frames_hold_the_previous_frame():
    out = corrupt(TALK, p_drop_frames=1.0, drop_frames=[5, 5])[0]
    drop = out.meta["corrupt"]["video"]["drop_frames"]
    video = frames(out.files["corrupt.mp4"])
    held = video[drop["first"] - 1]
    assert len(video) == 50 and drop["count"] == 5
    assert all(np.abs(video[i] - held).mean() < 1.0 for i in range(drop["first"], drop["first"] + 5))
    assert np.abs(video[drop["first"] + 5] - held).mean() > 1.0  # the clip moves on afterwards


def test_without_keep_clean_the_clip_itself_is_corrupted():
    chain = Chain.from_specs([{"name": "clip", "clip_seconds": 2.0, "max_clips": 1},
                              {"name": "resample_audio", "sample_rate": 16000},
                              {"name": "corrupt", **ALL_ON}])
    data = TALK.read_bytes()
    [out] = run_chain(chain, Sample("k", {"mp4": data}, {"probe": probe(data)}))
    assert sorted(out.files) == ["mp4"] and out.meta["corrupt"]["keep_clean"] is False
    assert out.meta["corrupt"]["video"]["compress"]["crf"] >= 36


@pytest.mark.parametrize("spec, message", [
    ({"p_blur": 1.5}, "p_blur must be in"),
    ({"snr_db": [20, 0]}, "snr_db must be"),
    ({"noise_colors": ["blue"]}, "noise_colors"),
    ({"noise_files": "/nonexistent/*.wav"}, "matches no file"),
])
def test_bad_arguments_fail_at_config_time(spec, message):
    with pytest.raises(ConfigError, match=message):
        build({"name": "corrupt", **spec})
