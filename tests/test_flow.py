"""Optical flow as an array step: OpenCV's Farneback on a real decode of synthetic clips."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from support import download_files, make_media

from subsamplers.flow import OpticalFlow
from v2d_vox.errors import ConfigError, SubsampleError
from v2d_vox.sample import FLOW, Sample
from v2d_vox.subsampler import build


def flow_of(data: bytes, **args) -> tuple[np.ndarray, dict]:
    sample = Sample("k", {"mp4": data}, {})
    OpticalFlow(**args).apply(sample)
    return np.load(io.BytesIO(sample.files[FLOW])), sample.meta["optical_flow"]


def test_moving_pattern_has_more_flow_than_a_still_one():
    moving, moving_stats = flow_of(make_media(duration=1.0, audio=False, seed=3))
    still, still_stats = flow_of(make_media(duration=1.0, audio=False, color=(40, 160, 90)))
    assert moving.dtype == np.float16 and moving.shape == (24, 96, 128, 2)  # 320x240 at width 128
    assert still_stats["mean_magnitude"] < 0.05
    assert moving_stats["mean_magnitude"] > 0.3 > 10 * still_stats["mean_magnitude"]
    assert moving_stats["min_pair_magnitude"] <= moving_stats["mean_magnitude"] <= moving_stats["max_pair_magnitude"]
    assert moving_stats["shape"] == list(moving.shape) and moving_stats["source_member"] == "mp4"


def test_frame_step_and_size_are_configurable():
    flow, stats = flow_of(make_media(duration=1.0, audio=False, seed=3), frame_step=5, width=64, dtype="float32")
    assert flow.shape == (4, 48, 64, 2) and flow.dtype == np.float32
    assert stats["frame_step"] == 5 and stats["width"] == 64


def test_bad_inputs_and_arguments():
    with pytest.raises(SubsampleError, match="no video member"):
        OpticalFlow().apply(Sample("k", {"wav": make_media(video=False, container="wav")}, {}))
    with pytest.raises(SubsampleError, match="need 2"):
        flow_of(make_media(duration=0.2, audio=False), frame_step=10)
    with pytest.raises(ConfigError, match="frame_step must be >= 1"):
        build({"name": "optical_flow", "frame_step": 0})


def test_flow_preset(tmp_path):
    """5 s clips at 360p, a 1 s tail kept, each with its flow at 128 px between every second frame."""
    meta, members = download_files(tmp_path, {"moving.mp4": make_media(duration=6.0, seed=4)}, "flow")
    assert meta["moving.mp4"]["outputs"] == 2
    pairs = sorted(np.load(io.BytesIO(f["flow.npy"])).shape for f in members.values())
    assert pairs == [(12, 96, 128, 2), (62, 96, 128, 2)]  # 25 and 125 frames at step 2: 13 and 63 kept
    for files in members.values():
        stats = json.loads(files["json"])["optical_flow"]
        assert stats["mean_magnitude"] > 0.3 and stats["frame_step"] == 2
