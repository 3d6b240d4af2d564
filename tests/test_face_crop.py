"""face_crop inside the one ffmpeg pass: a white square moving along a known track stays centred in every
output frame; the steady box mode keeps the crop in the frame; a source without tracks is filtered."""

from __future__ import annotations

import io
import json

import av
import numpy as np
import pytest
from support import make_media

from subsamplers import build_chain
from subsamplers.face_crop import FaceCrop, parse_tracks
from v2d_vox.errors import Filtered, SubsampleError
from v2d_vox.probe import probe
from v2d_vox.sample import Sample
from v2d_vox.worker import run_chain

W, H, FPS, SIDE, OUT = 320, 240, 25, 40, 96


def square(t: float) -> tuple[int, int, int]:
    """Top-left of the square at time t: across the frame and up and down (the crop never meets an edge)."""
    return int(round(40 + 60 * t)), int(round(100 + 30 * np.sin(1.5 * t))), SIDE


def track(duration: float) -> list[list[list[float]]]:
    """The square's boxes at 25 fps as VoxCeleb2 gives them (fractions of the frame), split into 2 utterances."""
    boxes = [[i / FPS, square(i / FPS)[0] / W, square(i / FPS)[1] / H, SIDE / W, SIDE / H]
             for i in range(int(duration * FPS))]
    return [boxes[:40], boxes[40:]]


def frames(data: bytes) -> list[np.ndarray]:
    with av.open(io.BytesIO(data)) as c:
        return [f.to_ndarray(format="gray") for f in c.decode(video=0)]


def sample(tracks) -> Sample:
    data = make_media(3.0, fps=FPS, size=(W, H), color=(0, 0, 0), square=square)
    meta = {"probe": probe(data), "clips": json.dumps([[0.0, 1.6], [1.6, 3.0]])}
    if tracks is not None:
        meta["face_tracks"] = json.dumps(tracks)
    return Sample("src", {"mp4": data}, meta)


def chain(mode: str):
    return build_chain([{"name": "clip"}, {"name": "face_crop", "mode": mode, "margin": 0.6},
                        {"name": "resample_video", "fps": FPS, "width": OUT, "height": OUT}])


def test_moving_square_stays_centred_in_every_frame():
    outputs = run_chain(chain("track"), sample(track(3.0)))
    assert [o.key for o in outputs] == ["src_00000", "src_00001"]
    n = 0
    for out in outputs:
        assert "face_tracks" not in out.meta and out.meta["face_crop"]["mode"] == "track"
        for img in frames(out.files["mp4"]):
            ys, xs = np.nonzero(img > 128)
            assert len(xs), "the square left the crop"
            assert abs(xs.mean() - OUT / 2) < 3 and abs(ys.mean() - OUT / 2) < 3, (xs.mean(), ys.mean())
            n += 1
    assert n == 75  # 1.6 s + 1.4 s at 25 fps


def test_box_mode_is_one_square_inside_the_frame():
    outputs = run_chain(chain("box"), sample(track(3.0)))
    for out in outputs:
        x, y, w, h = out.meta["face_crop"]["box"]
        assert w == h == 64 and 0 <= x <= W - w and 0 <= y <= H - h  # 40 px x 1.6, even
        assert len(out.meta["face_track"]) == len(frames(out.files["mp4"]))
        assert out.meta["face_track"][0][0] == 0.0  # times from the clip's start


def test_crop_is_clamped_to_the_frame_and_smoothed():
    boxes = np.array([[i / 25, 0.9, 0.0, 0.2, 0.5] for i in range(10)])  # runs off the right and top edges
    crop, record = FaceCrop(margin=1.0).crop(boxes, 0.0, (W, H))
    assert (crop.w, crop.h) == (240, 240) and crop.x == W - 240 and crop.y == 0  # side capped at the frame
    assert record["box"] == [W - 240, 0, 240, 240]


def test_no_track_is_filtered_and_bad_tracks_name_the_problem():
    with pytest.raises(Filtered, match="no face track"):
        run_chain(chain("box"), sample(None))
    with pytest.raises(SubsampleError, match="bad face_tracks"):
        parse_tracks("[[1, 2]]")
