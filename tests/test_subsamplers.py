"""Subsampler logic: windows, spans, filters, config errors, and a user-defined subsampler."""

from __future__ import annotations

import textwrap

import pytest

from subsamplers.clip import Clip, parse_spans, windows
from subsamplers.filters import Filter
from v2d_vox.errors import ConfigError, Filtered, SubsampleError
from v2d_vox.plan import MediaPlan
from v2d_vox.sample import Sample
from v2d_vox.subsampler import Chain, build
from v2d_vox.worker import run_chain


def probe(duration=5.0, video=(320, 240), audio=True, rotation=0):
    v = {"index": 0, "width": video[0], "height": video[1], "fps": 25.0, "rotation": rotation} if video else None
    a = {"index": 1, "sample_rate": 16000, "channels": 1} if audio else None
    return {"duration": duration, "has_video": bool(video), "has_audio": audio, "video": v, "audio": a}


def sample(**meta):
    return Sample("k", {"mp4": b""}, {"probe": probe(**meta.pop("probe", {})), **meta})


@pytest.mark.parametrize("last, expected", [
    ("drop", [(0, 2), (2, 4)]),
    ("keep", [(0, 2), (2, 4), (4, 5)]),
    ("fit", [(0, 2), (2, 4), (3, 5)]),
])
def test_windows_last_rule(last, expected):
    assert windows(0, 5, 2, 2, last) == expected


def test_windows_stride_and_exact_fit():
    assert windows(0, 5, 2, 1.5, "drop") == [(0, 2), (1.5, 3.5), (3, 5)]
    assert windows(0, 4, 2, 2, "fit") == [(0, 2), (2, 4)]  # no duplicate window when it fits exactly
    assert windows(1, 2.5, 2, 2, "fit") == []  # shorter than one clip: nothing to shift back


def test_clip_windows_and_max_clips():
    plan = MediaPlan()
    Clip(clip_seconds=2, max_clips=2).plan(plan, sample(probe={"duration": 9.0}))
    assert plan.layout.spans == [(0, 2), (2, 4)]


def test_clip_spans_from_clip_column_are_parsed_clamped_and_tiled():
    assert parse_spans("[[0, 2.5], [3, 5]]") == [(0.0, 2.5), (3.0, 5.0)]
    plan = MediaPlan()
    Clip().plan(plan, sample(clips="[[0.5, 1.5], [3, 9]]"))
    assert plan.layout.spans == [(0.5, 1.5), (3.0, 5.0)]
    plan = MediaPlan()
    Clip(clip_seconds=1).plan(plan, sample(clips="[[0.5, 1.5], [2, 4.2]]"))
    assert plan.layout.spans == [(0.5, 1.5), (2, 3), (3, 4)]
    with pytest.raises(SubsampleError, match="bad clip spans"):
        Clip().plan(MediaPlan(), sample(clips="[1, 2]"))


def test_clip_longer_than_source_is_filtered_with_reason():
    with pytest.raises(Filtered, match=r"no clip fits: duration 1.20 s, needs clip_seconds 2"):
        Clip(clip_seconds=2).plan(MediaPlan(), sample(probe={"duration": 1.2}))


def test_clip_uses_shortest_stream_duration():
    s = sample()
    s.meta["probe"]["video"]["duration"] = 3.9
    plan = MediaPlan()
    Clip(clip_seconds=2, last="keep").plan(plan, s)
    assert plan.layout.spans == [(0, 2), (2, 3.9)]


@pytest.mark.parametrize("args, meta, reason", [
    ({"min_duration": 1.0}, {"duration": 0.03}, "duration 0.03 s < min_duration 1.0"),
    ({"max_duration": 4.0}, {}, "duration 5.00 s > max_duration 4.0"),
    ({"require_audio": True}, {"audio": False}, "no audio stream (require_audio)"),
    ({"require_video": True}, {"video": None}, "no video stream (require_video)"),
    ({"min_width": 224}, {"video": (176, 144)}, "width 176 < min_width 224"),
    ({"min_height": 300}, {"video": (320, 240), "rotation": 90}, None),  # rotated: shows as 240x320
    ({"min_height": 300}, {"video": (320, 240)}, "height 240 < min_height 300"),
])
def test_filter_reasons(args, meta, reason):
    s = sample(probe=meta)
    if reason is None:
        Filter(**args).check(s)
    else:
        with pytest.raises(Filtered) as e:
            Filter(**args).check(s)
        assert str(e.value) == reason and e.value.status == "filtered"


@pytest.mark.parametrize("spec, message", [
    ({"name": "clip", "clip_secs": 2}, "unknown argument"),
    ({"name": "clip", "last": "pad"}, "last='pad'"),
    ({"name": "resample_video", "width": 224}, "both width and height"),
    ({"name": "resample_video", "width": 223, "height": 224}, "even"),
    ({"name": "resample_video", "short_side": 128, "mode": "zoom"}, "mode='zoom'"),
    ({"name": "resample_audio", "format": "aiff"}, "format='aiff'"),
    ({"name": "streams", "video": False, "audio": False}, "at least one"),
])
def test_bad_arguments_fail_at_config_time(spec, message):
    with pytest.raises(ConfigError, match=message):
        build(spec)


def test_media_steps_record_their_arguments():
    chain = Chain.from_specs([{"name": "clip", "clip_seconds": 2}, {"name": "resample_audio", "sample_rate": 16000}])
    assert [s.stage for s in chain.steps] == ["media", "media"]
    assert chain.steps[1].describe()["sample_rate"] == 16000 and chain.steps[0].describe()["name"] == "clip"


def test_user_subsampler_in_one_file(tmp_path, monkeypatch):
    """A user adds a subsampler in one file, without touching the engine, and names it "module:Class"."""
    (tmp_path / "my_subsamplers.py").write_text(textwrap.dedent('''
        from dataclasses import dataclass
        from v2d_vox.subsampler import Subsampler

        @dataclass
        class Shout(Subsampler):
            stage = "array"
            text: str = "hi"

            def apply(self, sample):
                sample.files["shout.txt"] = self.text.upper().encode()
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    chain = Chain.from_specs([{"name": "my_subsamplers:Shout", "text": "hello"}])
    [out] = run_chain(chain, Sample("k", {"mp4": b"x"}, {"probe": probe()}))
    assert out.files["shout.txt"] == b"HELLO"
    with pytest.raises(ConfigError, match="unknown argument"):
        Chain.from_specs([{"name": "my_subsamplers:Shout", "loud": True}])
