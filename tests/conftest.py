"""Shared fixtures: real media, synthetic media made with PyAV, and a real HTTP server on 127.0.0.1
that also plays the faults a crawler meets (404, flaky 500, stalls, HTML pages, short bodies)."""

from __future__ import annotations

import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from mediakit import DATA, make_media

STALL_SECONDS = 8.0


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


class _Handler(BaseHTTPRequestHandler):
    roots: list[Path] = []
    hits: dict[str, int] = {}
    agents: set[str] = set()
    lock = threading.Lock()

    def log_message(self, *args):  # keep pytest output clean
        pass

    def _file(self, name: str) -> bytes | None:
        for root in self.roots:
            p = root / name
            if p.is_file():
                return p.read_bytes()
        return None

    def _send(self, code: int, body: bytes, ctype: str = "application/octet-stream", length: int | None = None):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802 (http.server's name)
        parts = self.path.lstrip("/").split("/")
        kind, rest = parts[0], "/".join(parts[1:])
        with self.lock:
            self.hits[self.path] = self.hits.get(self.path, 0) + 1
            hit = self.hits[self.path]
            self.agents.add(self.headers.get("User-Agent", ""))
        if kind == "media":
            data = self._file(rest)
            return self._send(200, data, "video/mp4") if data is not None else self._send(404, b"not found")
        if kind == "slow":  # /slow/<ms>/<name>: a slow but healthy server
            ms, _, name = rest.partition("/")
            time.sleep(int(ms) / 1000)
            data = self._file(name)
            return self._send(200, data, "video/mp4") if data is not None else self._send(404, b"not found")
        if kind == "flaky500":  # fails the first time each path is asked for
            return self._send(500, b"oops") if hit == 1 else self._send(200, self._file(rest) or b"")
        if kind == "always500":
            return self._send(503, b"unavailable")
        if kind == "stall":  # headers, a few bytes, then nothing: the client's read timeout must fire
            self._send(200, b"\x00" * 100, length=100000)
            time.sleep(STALL_SECONDS)
            return None
        if kind == "zero":
            return self._send(200, b"")
        if kind == "random":
            return self._send(200, np.random.default_rng(int(rest or 0)).bytes(50000))
        if kind == "truncated":
            data = self._file(rest) or b""
            return self._send(200, data[: len(data) // 3])
        if kind == "shortbody":  # announces more than it sends, then closes
            data = self._file(rest) or b""
            self._send(200, data[:1000], length=len(data))
            self.close_connection = True
            return None
        if kind == "html":
            return self._send(200, b"<html><body>Video unavailable</body></html>" * 20, "text/html")
        if kind == "html-as-mp4":
            return self._send(200, b"<!doctype html><html><body>404</body></html>" * 20, "video/mp4")
        return self._send(404, b"<html>404</html>", "text/html")


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # the default 5 drops connections under 16 clients (each costs a 1 s TCP retry)


@pytest.fixture(scope="session")
def server_log():
    """Requests seen by the HTTP server: {"hits": {path: count}, "agents": {user agents}}."""
    return {"hits": _Handler.hits, "agents": _Handler.agents}


@pytest.fixture(scope="session")
def http_server(synthetic_dir):
    """Base URL of a threaded HTTP server on 127.0.0.1 serving tests/data and the synthetic media."""
    _Handler.roots = [DATA, synthetic_dir]
    server = _Server(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


os.environ.setdefault("WANDB_MODE", "offline")
