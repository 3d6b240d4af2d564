"""HTTP reading against the real loopback server: retry policy, size cap, user agent."""

from __future__ import annotations

import pytest

from v2d_vox.config import ReaderConfig
from v2d_vox.errors import DownloadError
from v2d_vox.reader import read

CFG = ReaderConfig(timeout=1.0, connect_timeout=1.0, retries=2, backoff=0.01, user_agent="v2d-test-agent/1")


def test_retries_5xx_but_not_4xx(http_server, server_log):
    with pytest.raises(DownloadError, match="HTTP 404"):
        read(f"{http_server}/gone/a.mp4", CFG)
    assert server_log["hits"]["/gone/a.mp4"] == 1
    with pytest.raises(DownloadError, match=r"HTTP 503 \(after 3 attempts\)"):
        read(f"{http_server}/always500/b.mp4", CFG)
    assert server_log["hits"]["/always500/b.mp4"] == 3
    data = read(f"{http_server}/flaky500/fsdd__3_george_7.wav", CFG)
    assert data[:4] == b"RIFF" and server_log["hits"]["/flaky500/fsdd__3_george_7.wav"] == 2


def test_size_cap_and_user_agent(http_server, server_log):
    with pytest.raises(DownloadError, match="larger than max_size_mb"):
        read(f"{http_server}/media/pc-avs__Input_00010.mp4", ReaderConfig(max_size_mb=0.05))
    read(f"{http_server}/media/fsdd__3_george_7.wav", CFG)
    assert "v2d-test-agent/1" in server_log["agents"]


def test_stalled_body_times_out(http_server):
    with pytest.raises(DownloadError, match="read timeout"):
        read(f"{http_server}/stall/c.mp4", ReaderConfig(timeout=0.5, retries=0))
