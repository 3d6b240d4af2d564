"""Helpers shared by the tests (and the benchmarks): the media in tests/data, one synthetic media generator,
readers that tests assert with, tar writers and a loopback HTTP server that also plays a crawler's faults.

Import it as ``support`` from tests (pytest puts tests/ on sys.path) and as ``tests.support`` from the repo
root. It is a plain module, not a conftest: `from conftest import` is ambiguous (tests/loader has one too),
and a test module must never import another test module."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import mimetypes
import os
import re
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import av
import numpy as np

DATA = Path(__file__).parent / "data"
# talking heads in DATA: 224x224@25 H.264 + 16 kHz mono AAC, 4.3 / 4.54 / 5.26 s
TALKING_HEADS = ["pc-avs__Input_00010.mp4", "pc-avs__Pose_Source_517600055.mp4", "pc-avs__Audio_Source_00086.mp4"]


def media_files() -> list[str]:
    """The download tests' corpus: the files directly in DATA. Tests count on its size, so media used by a
    single test lives in a subfolder (DATA / "extra") and stays out of it."""
    return sorted(p.name for p in DATA.iterdir() if p.is_file() and p.suffix != ".md")


# ---------------------------------------------------------------- synthetic media


def make_media(duration: float = 3.0, fps: float = 25, size: tuple[int, int] = (320, 240),
               sample_rate: int = 16000, video: bool = True, audio: bool = True, container: str = "mp4",
               seed: int = 0, *, color: tuple[int, int, int] | np.ndarray | None = None,
               tone: float | None = None, noise: bool = False, vcodec: str = "libx264", acodec: str | None = None,
               drop_every: int = 0, square: Callable[[float], tuple[int, int, int]] | None = None,
               cuts: tuple[int, ...] = ()) -> bytes:
    """A synthetic clip of known shape, encoded with PyAV: every test's and benchmark's generated media.

    Picture: a moving gradient on a colour drawn from `seed`, or a flat `color` (with `noise`: +-20 per pixel
    and a small flicker, so an identity is learnable but not trivially constant). Sound: a tone at `tone` Hz
    (drawn from `seed` if None), plus white noise of std 0.02 with `noise`. `drop_every=k` leaves out every
    k-th frame while keeping the others' timestamps: a variable-frame-rate stream. `cuts` are frame indices
    where the gradient's colour jumps (hard scene cuts at frame / fps seconds). The audio codec defaults
    to AAC in mp4/mov/matroska and 16-bit PCM elsewhere (wav); `vcodec`/`acodec` pick others (mpeg4, mp3,
    libopus...). `square(t) -> (x, y, side)` draws a white square with that top-left corner at time t (a face
    with a known track)."""
    rng = np.random.default_rng(seed)
    base = None if color is not None else rng.integers(0, 255, 3)
    buf = io.BytesIO()
    with av.open(buf, "w", format=container) as out:
        if video:
            options = {"preset": "ultrafast"} if vcodec == "libx264" else {}
            rate = Fraction(fps).limit_denominator(1001)
            vs = out.add_stream(vcodec, rate=rate, options=options)
            vs.width, vs.height, vs.pix_fmt = size[0], size[1], "yuv420p"
        if audio:
            acodec = acodec or ("aac" if container in ("mp4", "mov", "matroska") else "pcm_s16le")
            as_ = out.add_stream(acodec, rate=sample_rate, layout="mono")
        if video:
            yy, xx = np.mgrid[0 : size[1], 0 : size[0]]
            for i in range(int(duration * fps)):
                if color is None:
                    img = ((xx + yy + 4 * i)[..., None] + base + 97 * sum(i >= c for c in cuts)) % 256
                elif noise:
                    img = np.asarray(color, np.int16) + rng.integers(-20, 20, (size[1], size[0], 3)) + (i % 5)
                else:
                    img = np.broadcast_to(np.asarray(color, np.int16), (size[1], size[0], 3))
                if square is not None:
                    x, y, side = square(i / fps)
                    img = np.array(img, np.int16)
                    img[y : y + side, x : x + side] = 255
                if drop_every and i % drop_every == drop_every - 1:
                    continue
                frame = av.VideoFrame.from_ndarray(np.clip(img, 0, 255).astype(np.uint8), format="rgb24")
                frame.pts, frame.time_base = i, 1 / rate
                out.mux(vs.encode(frame))
            out.mux(vs.encode(None))
        if audio:
            t = np.arange(int(duration * sample_rate)) / sample_rate
            freq = rng.uniform(200, 800) if tone is None else tone
            wave = 0.3 * np.sin(2 * np.pi * freq * t)
            if noise:
                wave = wave + 0.02 * rng.standard_normal(t.size)
            pcm = wave.astype(np.float32)[None]
            for start in range(0, pcm.shape[1], 1024):
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm[:, start : start + 1024]), format="fltp",
                                                   layout="mono")
                frame.sample_rate, frame.pts, frame.time_base = sample_rate, start, Fraction(1, sample_rate)
                out.mux(as_.encode(frame))
            out.mux(as_.encode(None))
    return buf.getvalue()


def long_media(path: Path, seconds: float, size: tuple[int, int] = (320, 180), faststart: bool = True,
               gop: int = 50, seed: int = 0) -> Path:
    """A long H.264 + AAC mp4 made by ffmpeg's own generators (frame-by-frame Python is far slower): a moving
    test pattern and a tone, a keyframe every ``gop`` frames at 25 fps, its index (moov) before the media
    with ``faststart``, else after it."""
    from v2d_vox.ffmpeg import ffmpeg_exe

    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size={size[0]}x{size[1]}:rate=25:duration={seconds}", "-f", "lavfi", "-i",
                    f"sine=frequency={300 + 50 * seed}:sample_rate=16000:duration={seconds}",
                    "-c:v", "libx264", "-preset", "veryfast", "-crf", "30", "-g", str(gop), "-pix_fmt", "yuv420p",
                    "-c:a", "aac", "-b:a", "32k", *(["-movflags", "+faststart"] if faststart else []), str(path)],
                   check=True)
    return path


def split_media(source: Path, folder: Path) -> tuple[str, str]:
    """A video-only mp4 and an audio-only m4a copied from ``source``'s streams into ``folder`` (names
    returned): what a DASH site serves as separate formats (see the server's /dash/ route)."""
    from v2d_vox.ffmpeg import ffmpeg_exe

    names = (f"{source.stem}.video.mp4", f"{source.stem}.audio.m4a")
    for name, drop in zip(names, ("-an", "-vn")):
        subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-y", "-i", str(source), drop, "-c", "copy",
                        "-movflags", "+faststart", str(folder / name)], check=True)
    return names


def mpd(files: dict[str, bytes]) -> bytes:
    """A static DASH manifest with one single-file representation (BaseURL on the /range/ route, no segment
    index: "unfragmented media" to yt-dlp) per file, a video or an audio adaptation set each."""
    sets, duration = [], 0.0
    for n, (name, data) in enumerate(files.items()):
        with av.open(io.BytesIO(data)) as c:
            s = (c.streams.video or c.streams.audio)[0]
            kind = s.type
            seconds = c.duration / av.time_base
            duration = max(duration, seconds)
            if kind == "video":
                profile = s.codec_context.extradata[1:4].hex()  # avcC: profile, compatibility, level
                attrs = (f'mimeType="video/mp4" codecs="avc1.{profile}" width="{s.codec_context.width}" '
                         f'height="{s.codec_context.height}" frameRate="{s.average_rate}"')
            else:
                attrs = f'mimeType="audio/mp4" codecs="mp4a.40.2" audioSamplingRate="{s.codec_context.sample_rate}"'
        sets.append(f'<AdaptationSet contentType="{kind}"><Representation id="{kind}{n}" {attrs} '
                    f'bandwidth="{int(8 * len(data) / seconds)}"><BaseURL>/range/{name}</BaseURL>'
                    "</Representation></AdaptationSet>")
    return (f'<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" '
            f'profiles="urn:mpeg:dash:profile:isoff-on-demand:2011" mediaPresentationDuration="PT{duration:.3f}S">'
            f'<Period>{"".join(sets)}</Period></MPD>').encode()


# ---------------------------------------------------------------- reading outputs back


def streams(data: bytes) -> dict[str, dict[str, Any]]:
    """type -> {duration, frames, width, height, fps | sample_rate, channels} of the first stream of each type:
    what tests assert on, read with PyAV rather than with the code under test."""
    out: dict[str, dict[str, Any]] = {}
    with av.open(io.BytesIO(data)) as c:
        for s in c.streams:
            if s.type not in ("video", "audio") or s.type in out:
                continue
            info: dict[str, Any] = {"duration": float(s.duration * s.time_base) if s.duration else None}
            if s.type == "video":
                info.update(width=s.codec_context.width, height=s.codec_context.height,
                            fps=float(s.average_rate))
            else:
                info.update(sample_rate=s.codec_context.sample_rate, channels=s.codec_context.channels)
            out[s.type] = info
    if "video" in out:
        with av.open(io.BytesIO(data)) as c:
            out["video"]["frames"] = sum(1 for _ in c.decode(video=0))
    return out


def stream_types(data: bytes) -> list[str]:
    """The type of every stream, in container order (subtitle and attachment streams included)."""
    with av.open(io.BytesIO(data)) as c:
        return [s.type for s in c.streams]


# ---------------------------------------------------------------- tars


def make_tar(path: Path, samples: list[tuple[str, dict[str, bytes]]]) -> Path:
    """A plain tar of KEY.EXT members in the given order: repeated keys and foreign layouts (video2dataset's)
    are allowed, which webdataset's writer would not produce."""
    with tarfile.open(path, "w") as tar:
        for key, files in samples:
            for ext, data in files.items():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def bomb_tar(path: Path, declared: int, *, sparse: bool = False, gz: bool = False) -> Path:
    """A tar a few KB on disk whose member declares ``declared`` bytes: an old-GNU sparse member (all
    hole) or, with ``gz``, a gzip stream whose member holds 1 MB of zeros and then ends early. Either
    costs ``declared`` bytes of memory to a reader that trusts the header."""
    info = tarfile.TarInfo("bomb.mp4")
    info.size = declared
    if sparse:
        info.type = tarfile.GNUTYPE_SPARSE
    header = info.tobuf(tarfile.GNU_FORMAT)
    if sparse:  # no sparse map entries, realsize = declared, no stored data: the whole member is a hole
        header = bytearray(header)
        header[483:495] = f"{declared:011o}\0".encode()  # realsize
        header[124:136] = b"00000000000\0"  # stored bytes
        header[148:156] = b"        "
        header[148:155] = f"{sum(header):06o}\0".encode()
        body = bytes(header) + b"\0" * 1024
    else:
        body = header + b"\0" * (1 << 20)
    path.write_bytes(gzip.compress(body, 1) if gz else body)
    return path


def write_shard(path: Path, samples: list[dict]) -> str:
    """A webdataset shard written by webdataset's own TarWriter (dicts with "__key__"), as a loader reads it."""
    import webdataset as wds

    with wds.TarWriter(str(path)) as sink:
        for s in samples:
            sink.write(s)
    return str(path)


# ---------------------------------------------------------------- hostile media

# An SDP file: a demuxer that is allowed to follow it binds UDP port 5004 on 0.0.0.0 and waits for RTP.
SDP = b"v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 0.0.0.0\nt=0 0\nm=audio 5004 RTP/AVP 0\n"


def ffconcat(path: str) -> bytes:
    """An ffconcat script naming a local file: followed, it makes PyAV read that file instead."""
    return f"ffconcat version 1.0\nfile '{path}'\n".encode()


def download_files(folder: Path, files: dict[str, bytes], config: Any) -> tuple[dict, dict[str, dict[str, bytes]]]:
    """Write ``files`` to ``folder``, run ``v2d_vox.download`` on them with ``config`` (a preset name or a
    dict) in one shard -> ({file name: parquet record}, {key: {ext: bytes}})."""
    import json

    import pyarrow.parquet as pq

    import v2d_vox

    rows = []
    for name, data in files.items():
        (folder / name).write_bytes(data)
        rows.append({"url": str(folder / name)})
    table = folder / "in.jsonl"
    table.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = folder / "out"
    v2d_vox.download(str(table), str(out), config=config, processes_count=1, thread_count=2, progress=False)
    meta = {Path(r["url"]).name: r for r in pq.read_table(out / "00000.parquet").to_pylist()}
    members: dict[str, dict[str, bytes]] = {}
    with tarfile.open(out / "00000.tar") as tar:
        for m in tar.getmembers():
            key, ext = m.name.split(".", 1)
            members.setdefault(key, {})[ext] = tar.extractfile(m).read()
    return meta, members


# ---------------------------------------------------------------- loopback HTTP server


class _FaultHandler(BaseHTTPRequestHandler):
    """GET /<route>/<rest>. /media/NAME serves a file of the server's roots; the other routes play the faults
    a crawler meets: /slow/MS/NAME, /flaky500/NAME (500 the first time), /always500/*, /stall/* (headers, a
    few bytes, then silence), /zero/*, /random/SEED, /truncated/NAME, /shortbody/NAME (announces more than it
    sends), /html/*, /html-as-mp4/*, /trickle/* (a byte every 50 ms), /retryafter/SECONDS/NAME (429 first),
    /redirect/NAME (to another host name), /gzip/* (a compressed body), /hostile/ffconcat/PATH and
    /hostile/sdp (see `ffconcat`, `SDP`), /status/CODE/*; /page/NAME[,NAME2] is a video page (``<video>``
    sources with their heights, og:video; ``?subs=LANG:FILE.vtt,...`` adds ``<track>`` subtitles served from
    /media/); /dash/NAME[,NAME2]/manifest.mpd is a DASH manifest of those files as separate formats (`mpd`);
    /range/NAME serves a file honouring one ``Range: bytes=`` range (206, or 416); anything else is
    an HTML 404. Body bytes sent are counted per path (``served``)."""

    server: MediaServer

    def log_message(self, *args):  # keep test and benchmark output clean
        pass

    def _send(self, code: int, body: bytes, ctype: str = "application/octet-stream", length: int | None = None,
              head: bool = False):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        if not head:
            self.server.count(self.path, len(body))
            self.wfile.write(body)

    def _ranged(self, name: str):
        """A file, or the one range of it the request's ``Range`` header asks for."""
        data = self.server.file(name)
        if data is None:
            return self._send(404, b"not found")
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", "").strip())
        if not m or not (m[1] or m[2]):
            return self._send(200, data, "video/mp4")
        start, end = (int(m[1]), int(m[2]) + 1 if m[2] else len(data)) if m[1] else (len(data) - int(m[2]), len(data))
        start, end = max(0, start), min(end, len(data))
        if start >= end:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        self.send_response(206)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
        self.send_header("Content-Length", str(end - start))
        self.end_headers()
        self.server.count(self.path, end - start)
        self.wfile.write(data[start:end])
        return None

    def _media(self, name: str, head: bool = False):
        data = self.server.file(name)
        if data is None:
            return self._send(404, b"not found", head=head)
        return self._send(200, data, mimetypes.guess_type(name)[0] or "application/octet-stream", head=head)

    def do_HEAD(self):  # noqa: N802 (http.server's name)
        kind, _, rest = self.path.lstrip("/").partition("/")
        return self._media(rest, head=True) if kind == "media" else self._send(404, b"", "text/html", head=True)

    def do_GET(self):  # noqa: N802 (http.server's name)
        kind, _, rest = self.path.lstrip("/").partition("/")
        hit = self.server.record(self.path, self.headers.get("User-Agent", ""))
        if kind == "media":
            return self._media(rest)
        if kind == "range":
            return self._ranged(rest)
        if kind == "slow":  # a slow but healthy server
            ms, _, name = rest.partition("/")
            time.sleep(int(ms) / 1000)
            return self._media(name)
        if kind == "flaky500":
            return self._send(500, b"oops") if hit == 1 else self._send(200, self.server.file(rest) or b"")
        if kind == "always500":
            return self._send(503, b"unavailable")
        if kind == "stall":  # the client's read timeout must fire
            self._send(200, b"\x00" * 100, length=100000)
            time.sleep(self.server.stall_seconds)
            return None
        if kind == "zero":
            return self._send(200, b"")
        if kind == "random":
            return self._send(200, np.random.default_rng(int(rest or 0)).bytes(50000))
        if kind == "truncated":
            data = self.server.file(rest) or b""
            return self._send(200, data[: len(data) // 3])
        if kind == "shortbody":
            data = self.server.file(rest) or b""
            self._send(200, data[:1000], length=len(data))
            self.close_connection = True
            return None
        if kind == "trickle":  # a Content-Length body at ~20 bytes/s: only a total deadline stops it
            self._send(200, b"", length=100000)
            for _ in range(int(self.server.stall_seconds * 20)):
                self.wfile.write(b"\x00")
                self.wfile.flush()
                time.sleep(0.05)
            return None
        if kind == "retryafter":  # 429 with Retry-After: SECONDS/NAME
            seconds, _, name = rest.partition("/")
            if hit == 1:
                self.send_response(429)
                self.send_header("Retry-After", seconds)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            return self._media(name)
        if kind == "redirect":  # 302 to /media/NAME on the same server, named by another host
            self.send_response(302)
            self.send_header("Location", f"http://localhost:{self.server.server_address[1]}/media/{rest}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if kind == "gzip":  # a gzip body of 8 MB of zeros: must not be inflated
            body = gzip.compress(b"\x00" * (8 << 20))
            self.send_response(200)
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return None
        if kind == "hostile":  # /hostile/ffconcat/PATH (a concat script naming PATH) or /hostile/sdp
            name, _, path = rest.partition("/")
            return self._send(200, ffconcat("/" + path) if name == "ffconcat" else SDP, "video/mp4")
        if kind == "html":
            return self._send(200, b"<html><body>Video unavailable</body></html>" * 20, "text/html")
        if kind == "page":  # a video site's page: <video> sources NAME[,NAME2...], title and og:video of the first;
            # ?subs=LANG:NAME.vtt,... adds a <track kind="subtitles"> per language, served from /media/
            path, _, query = rest.partition("?")
            names = path.split(",")
            sources = "".join(f'<source src="/media/{n}" type="video/mp4" res="{h}">'
                              for n, h in zip(names, self.server.heights(names)))
            tracks = "".join(f'<track kind="subtitles" srclang="{lang}" src="/media/{vtt}">'
                             for lang, _, vtt in (t.partition(":") for t in query.removeprefix("subs=").split(","))
                             if vtt)
            html = (f'<html><head><title>clip {names[0]}</title><meta property="og:video" content="/media/{names[0]}">'
                    f"</head><body><video controls>{sources}{tracks}</video></body></html>")
            return self._send(200, html.encode(), "text/html; charset=utf-8")
        if kind == "dash":  # /dash/VIDEO,AUDIO/manifest.mpd: separate video-only and audio-only formats
            names = rest.partition("/")[0].split(",")
            files = {n: self.server.file(n) for n in names}
            if not all(files.values()):
                return self._send(404, b"not found")
            return self._send(200, mpd(files), "application/dash+xml")
        if kind == "status":  # /status/CODE/*: an error answer, e.g. 429 or 403 from a site that blocks us
            code, _, _ = rest.partition("/")
            return self._send(int(code), b"<html>blocked</html>", "text/html")
        if kind == "html-as-mp4":
            return self._send(200, b"<!doctype html><html><body>404</body></html>" * 20, "video/mp4")
        return self._send(404, b"<html>404</html>", "text/html")


class MediaServer(ThreadingHTTPServer):
    """A threaded server on 127.0.0.1 (free port) serving files of `roots` under /media/ plus fault routes.
    `hits` (path -> GET count), `served` (path -> body bytes sent) and `agents` (User-Agent headers seen) let
    tests check retries, bytes and headers."""

    daemon_threads = True
    request_queue_size = 256  # the default backlog of 5 drops SYNs under 16 clients: 1 s TCP retransmit stalls

    def __init__(self, roots: list[Path], stall_seconds: float = 8.0):
        self.roots = [Path(r) for r in roots]
        self.stall_seconds = stall_seconds
        self.hits: dict[str, int] = {}
        self.served: dict[str, int] = {}
        self.agents: set[str] = set()
        self._lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _FaultHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def file(self, name: str) -> bytes | None:
        for root in self.roots:
            path = root / name
            if path.is_file():
                return path.read_bytes()
        return None

    def heights(self, names: list[str]) -> list[int]:
        """The video height of each named file (0 when it has none), as a page's ``<source res=...>`` says."""
        out = []
        for name in names:
            with av.open(io.BytesIO(self.file(name) or b"")) as c:
                out.append(c.streams.video[0].codec_context.height if c.streams.video else 0)
        return out

    def record(self, path: str, agent: str) -> int:
        with self._lock:
            self.hits[path] = self.hits.get(path, 0) + 1
            self.agents.add(agent)
            return self.hits[path]

    def count(self, path: str, n: int) -> None:
        with self._lock:
            self.served[path] = self.served.get(path, 0) + n

    def handle_error(self, request, client_address):  # clients that hang up early (stalls, probes) are normal
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextlib.contextmanager
def serve(*roots: str | Path, stall_seconds: float = 8.0) -> Iterator[MediaServer]:
    """Run a MediaServer over `roots` for the duration of the block."""
    server = MediaServer([Path(r) for r in roots], stall_seconds)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------- wandb run files


def read_wandb_records(path: Path) -> list[Any]:
    """The protobuf records of an offline wandb run file (``run-ID.wandb``), read back without a server.

    The file is a 7-byte header (``:W&B``, magic, version) and then LevelDB-log blocks of 32 KiB: each chunk
    has a 7-byte header (crc32, length, type: 1 full, 2 first, 3 middle, 4 last); a block's tail shorter than
    a header is padding."""
    import struct

    from wandb.proto import wandb_internal_pb2

    data, block = Path(path).read_bytes(), 32768
    assert data[:4] == b":W&B", "not a wandb run file"
    pos, pending, records = 7, b"", []
    while pos + 7 <= len(data):
        left = block - pos % block
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if left < 7 or (length == 0 and kind == 0):
            pos += left
            continue
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


# ---------------------------------------------------------------- shard outputs, a Spark standalone cluster

TIMING = ("start_time", "end_time", "duration", "seconds")  # seconds: busy time per stage


def shard_outputs(folder: Path) -> dict[str, object]:
    """Every shard file's content: tars as bytes, parquet as rows, stats without timings (equal across runs)."""
    import pyarrow.parquet as pq

    out: dict[str, object] = {}
    for p in sorted(folder.glob("0*")):
        if p.suffix == ".tar":
            out[p.name] = p.read_bytes()
        elif p.suffix == ".parquet":
            out[p.name] = pq.read_table(p).to_pylist()
        else:
            out[p.name] = {k: v for k, v in json.loads(p.read_text()).items() if k not in TIMING}
    return out



def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SparkCluster:
    """A real Spark standalone cluster on 127.0.0.1: a master and workers started with the ``pyspark`` wheel's
    ``bin/spark-class``, each worker in its own session (process group tree), so that killing a worker's
    session takes down the worker, its executor and the executor's Python workers, as a lost node would."""

    def __init__(self, folder: Path, workers: int = 2, cores: int = 1, memory: str = "1g",
                 pythonpath: str | Path | None = None):
        import pyspark

        self.folder, self.workers = folder, []
        self.spark_class = Path(pyspark.__file__).parent / "bin" / "spark-class"
        port, self.ui_port = free_port(), free_port()
        self.url = f"spark://127.0.0.1:{port}"
        self.env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable,
                    "SPARK_NO_DAEMONIZE": "1"}
        if pythonpath:  # executors then import this checkout, not whatever site-packages points at
            self.env["PYTHONPATH"] = os.pathsep.join(p for p in (str(pythonpath), os.environ.get("PYTHONPATH")) if p)
        self.master = self._start("master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                                  "--port", str(port), "--webui-port", str(self.ui_port))
        try:
            self._wait(lambda s: s.get("status") == "ALIVE", "the master")
            for i in range(workers):
                self.workers.append(self._start(
                    f"worker{i}", "org.apache.spark.deploy.worker.Worker", self.url, "--host", "127.0.0.1",
                    "--cores", str(cores), "--memory", memory, "--webui-port", str(free_port()),
                    "--work-dir", str(folder / f"worker{i}")))
            self._wait(lambda s: len(self.alive_workers(s)) == workers, f"{workers} workers")
        except BaseException:
            self.stop()
            raise

    def _start(self, name: str, cls: str, *args: str) -> subprocess.Popen:
        log = open(self.folder / f"{name}.log", "wb")  # noqa: SIM115 (kept open by the child)
        return subprocess.Popen([str(self.spark_class), cls, *args], env=self.env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)

    def state(self) -> dict[str, Any]:
        """The master's own view (its web UI's /json/): workers, applications, cores in use."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ui_port}/json/", timeout=5) as r:
                return json.load(r)
        except OSError:
            return {}

    @staticmethod
    def alive_workers(state: dict[str, Any]) -> list[dict[str, Any]]:
        return [w for w in state.get("workers", []) if w.get("state") == "ALIVE"]

    def _wait(self, ready, what: str, seconds: float = 120) -> None:
        deadline = time.time() + seconds
        while not ready(self.state()):
            dead = [p.args[1] for p in (self.master, *self.workers) if p.poll() is not None]
            if dead or time.time() > deadline:
                logs = "\n".join(f"--- {p.name}\n{p.read_text()[-1500:]}" for p in sorted(self.folder.glob("*.log")))
                raise RuntimeError(f"spark: {what} did not come up ({dead or 'timeout'}):\n{logs}")
            time.sleep(0.5)

    def kill_node(self, pid: int) -> None:
        """SIGKILL every process in the session holding ``pid`` (a worker's tree): a node lost mid-job."""
        kill_session(os.getsid(pid))

    def stop(self) -> None:
        for proc in (*self.workers, self.master):
            if proc.poll() is None:
                kill_session(proc.pid)  # each was started as the leader of its own session
            proc.wait()


def kill_session(sid: int) -> None:
    """SIGKILL every process whose session id is ``sid`` (found in /proc)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.getsid(int(entry.name)) == sid:
                    os.kill(int(entry.name), signal.SIGKILL)
