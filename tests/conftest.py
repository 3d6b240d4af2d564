"""Shared fixtures: synthetic media made with PyAV and a real HTTP server on 127.0.0.1 that also plays the
faults a crawler meets (404, flaky 500, stalls, HTML pages, short bodies). The helpers live in support.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support import DATA, MediaServer, make_media, serve


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory) -> Path:
    """A few synthetic files of known shape, made once per session."""
    d = tmp_path_factory.mktemp("synthetic")
    specs = {
        "av_3s.mp4": {}, "av_5s_640.mp4": {"duration": 5.0, "size": (640, 360), "seed": 1},
        "video_only_2s.mp4": {"audio": False, "duration": 2.0, "seed": 2},
        "audio_only_4s.wav": {"video": False, "duration": 4.0, "container": "wav", "seed": 3},
        "av_1s.mkv": {"duration": 1.0, "container": "matroska", "seed": 4},
    }
    for name, kw in specs.items():
        (d / name).write_bytes(make_media(**kw))
    return d


@pytest.fixture(scope="session")
def media_server(synthetic_dir) -> MediaServer:
    """The running server, serving tests/data and the synthetic media under /media/."""
    with serve(DATA, synthetic_dir) as server:
        yield server


@pytest.fixture(scope="session")
def http_server(media_server) -> str:
    """Base URL of the server."""
    return media_server.url


@pytest.fixture(scope="session")
def server_log(media_server):
    """Requests seen by the HTTP server: {"hits": {path: count}, "agents": {user agents}}."""
    return {"hits": media_server.hits, "agents": media_server.agents}


os.environ.setdefault("WANDB_MODE", "offline")
