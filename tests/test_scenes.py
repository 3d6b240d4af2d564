"""Scene cuts from the cheap decode, and clip's scenes_as_clips: on synthetic video with hard cuts at known
frames (tests/support.make_media(cuts=...)), cut by the real ffmpeg in one pass."""

from __future__ import annotations

import json
import os
import stat

import pytest
from support import download_files, make_media, streams

from subsamplers import build_chain
from subsamplers.clip import Clip, scenes
from subsamplers.scenes import SceneCuts, find_cuts
from v2d_vox import ffmpeg as vf
from v2d_vox.errors import ConfigError, Filtered, SubsampleError
from v2d_vox.plan import MediaPlan
from v2d_vox.probe import probe
from v2d_vox.sample import Sample
from v2d_vox.worker import run_chain

FPS = 25
CUT_FRAMES = (37, 80, 121)  # 1.48 s, 3.2 s, 4.84 s
CUTS = [f / FPS for f in CUT_FRAMES]


@pytest.fixture(scope="module")
def cut_video() -> bytes:
    return make_media(duration=6.0, fps=FPS, size=(320, 240), cuts=CUT_FRAMES, seed=5)


def test_cuts_found_within_one_frame(cut_video):
    cuts, frames = find_cuts(cut_video, 30.0, 0.5, 64)
    assert frames == 150
    assert len(cuts) == len(CUTS)
    assert all(abs(c - t) < 1 / FPS for c, t in zip(cuts, CUTS))


def test_no_cuts_in_motion_or_stillness_and_short_scenes_merge():
    assert find_cuts(make_media(duration=2.0, seed=1), 30.0, 0.5, 64)[0] == []  # a moving pattern
    assert find_cuts(make_media(duration=2.0, color=(90, 20, 200)), 30.0, 0.5, 64)[0] == []
    flashes = make_media(duration=3.0, cuts=(25, 30, 50), seed=2)  # 30 comes 0.2 s after 25
    assert find_cuts(flashes, 30.0, 0.5, 64)[0] == [1.0, 2.0]
    assert find_cuts(flashes, 30.0, 0.1, 64)[0] == [1.0, 1.2, 2.0]
    assert find_cuts(make_media(duration=1.0, video=False), 30.0, 0.5, 64) == ([], 0)


def test_undecodable_source_is_one_clear_error():
    sample = Sample("bad", {"mp4": b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000)}, {})
    with pytest.raises(SubsampleError, match="^scene_cuts: cannot decode video"):
        SceneCuts().check(sample)


def test_scene_spans_min_and_max_length():
    cuts = [1.0, 1.2, 4.0]
    assert scenes(0, 6, cuts, 0.0, None) == [(0, 1.0), (1.0, 1.2), (1.2, 4.0), (4.0, 6)]
    assert scenes(0, 6, cuts, 0.5, None) == [(0, 1.0), (1.2, 4.0), (4.0, 6)]
    assert scenes(0, 6, cuts, 0.5, 1.5) == [(0, 1.0), (1.2, 2.7), (2.7, 4.0), (4.0, 5.5), (5.5, 6)]
    assert scenes(2, 5, cuts, 0.0, None) == [(2, 4.0), (4.0, 5)]  # inside a clip-column span


def test_clip_needs_cuts_and_filters_when_no_scene_fits():
    with pytest.raises(ConfigError, match="scenes_as_clips needs the scene_cuts step"):
        build_chain([{"name": "clip", "scenes_as_clips": True}])
    info = {"duration": 3.0, "has_video": True, "has_audio": False, "video": {"index": 0}}
    sample = Sample("k", {"mp4": b""}, {"probe": info, "scene_cuts": [1.0, 2.0]})
    with pytest.raises(Filtered, match="needs a scene of 1.5 s"):
        Clip(scenes_as_clips=True, min_scene_seconds=1.5).plan(MediaPlan(), sample)


@pytest.fixture
def ffmpeg_log(tmp_path, monkeypatch):
    """Every ffmpeg command line the engine runs, through a logging wrapper first on PATH."""
    log = tmp_path / "calls.log"
    wrapper = tmp_path / "bin" / "ffmpeg"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> {log}\nexec {vf.ffmpeg_exe()} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{wrapper.parent}{os.pathsep}{os.environ['PATH']}")
    vf.ffmpeg_exe.cache_clear()
    yield log
    vf.ffmpeg_exe.cache_clear()


def test_scenes_as_clips_in_one_fused_pass(cut_video, ffmpeg_log):
    chain = build_chain([{"name": "scene_cuts"}, {"name": "clip", "scenes_as_clips": True},
                         {"name": "resample_video", "short_side": 120}])
    outs = run_chain(chain, Sample("src", {"mp4": cut_video}, {"probe": probe(cut_video)}))
    assert len([line for line in ffmpeg_log.read_text().splitlines() if " -i " in f" {line} "]) == 1
    bounds = [0.0, *CUTS, 6.0]
    assert [o.key for o in outs] == [f"src_{i:05d}" for i in range(4)]
    for out, start, end in zip(outs, bounds, bounds[1:]):
        assert out.meta["span"] == pytest.approx([start, end], abs=1 / FPS)
        assert out.meta["scene_cuts"] == []
        assert streams(out.files["mp4"])["video"]["frames"] == round((end - start) * FPS)
        assert find_cuts(out.files["mp4"], 30.0, 0.0, 64)[0] == []  # each clip is one scene
    assert outs[0].meta["scene_detection"]["frames"] == 150


def test_fixed_clips_list_the_cuts_inside_them(cut_video):
    chain = build_chain([{"name": "scene_cuts"}, {"name": "clip", "clip_seconds": 2.0}])
    outs = run_chain(chain, Sample("src", {"mp4": cut_video}, {"probe": probe(cut_video)}))
    got = [o.meta["scene_cuts"] for o in outs]
    assert len(got) == 3 and all(len(g) == 1 for g in got)
    assert [g[0] for g in got] == pytest.approx(CUTS, abs=1 / FPS)


def test_scenes_preset(tmp_path):
    """Scene clips at 360p with the source's audio; a source without video is filtered."""
    files = {"cuts.mp4": make_media(duration=6.0, fps=FPS, size=(640, 480), cuts=CUT_FRAMES, seed=5),
             "speech.wav": make_media(duration=1.0, video=False, container="wav")}
    meta, members = download_files(tmp_path, files, "scenes")
    assert meta["cuts.mp4"]["outputs"] == 4 and meta["speech.wav"]["status"] == "filtered"
    for files_ in members.values():
        info = streams(files_["mp4"])
        clip = json.loads(files_["json"])
        assert (info["video"]["width"], info["video"]["height"]) == (480, 360) and "audio" in info
        assert info["video"]["frames"] == round((clip["span"][1] - clip["span"][0]) * FPS)
        assert clip["scene_cuts"] == [] and clip["scene_detection"]["name"] == "scene_cuts"
