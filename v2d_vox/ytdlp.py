"""Read a row through yt-dlp's Python API (``yt_dlp.YoutubeDL``, never a shell): video sites, pages that
embed a ``<video>``/``og:video``, and direct media through its generic extractor.

yt-dlp downloads into a private temp dir that is removed whatever happens; the bytes and its metadata come
back. Its own message (private, removed, unavailable, HTTP 429...) ends the row as ``failed_to_download``.
A host that answers 429/403 to several rows in a row is slowed down (exponential back-off before each next
request to it) and then the shard stops with ``SourceBlocked``: the shard stays not-done, so a rerun retries
it later instead of the job burning the rest of the table against a block.

With ``subtitle_langs``, the chosen subtitle track (``subtitles.choose``) is fetched through the same
YoutubeDL (its cookies, proxy and headers) and its cues come back in the metadata's ``subtitles``; a
track that cannot be fetched or parsed leaves ``subtitles.error`` and keeps the media.

A row with clip spans downloads only the sections holding them (``download_ranges``, each through yt-dlp's
ffmpeg into a file of its own that keeps the source's timeline): ``Sample.pieces``, from which the fused
ffmpeg pass reads each segment with the same seek as from the whole file. The page is extracted once; if the
sections fail, the whole file is downloaded from the same extraction."""

from __future__ import annotations

import copy
import math
import os
import posixpath
import re
import tempfile
import threading
import time
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import urlparse

from . import sparse, subtitles
from .config import Limits, ReaderConfig, YtdlpConfig
from .errors import DownloadError, SourceBlocked
from .ffmpeg import ffmpeg_exe
from .plan import Layout, Span
from .probe import probe_pieces
from .reader import MAX_FRACTION
from .sample import MEDIA_EXTS, Piece

# at most 360p, H.264 in mp4 with m4a audio when the site has them; else the best up to 360p; else the best
VIDEO_FORMAT = ("bv*[height<=?360][vcodec^=avc1][ext=mp4]+ba[ext=m4a]/b[height<=?360][vcodec^=avc1][ext=mp4]"
                "/bv*[height<=?360]+ba/b[height<=?360]/b")
AUDIO_FORMAT = "ba[ext=m4a]/ba/b"
METADATA = ("id", "title", "uploader", "uploader_id", "channel_id", "upload_date", "duration", "extractor",
            "webpage_url", "format_id")
_BLOCKED = re.compile(r"HTTP Error (429|403)")


@cache
def _site_extractors() -> tuple[Any, ...]:
    from yt_dlp.extractor import gen_extractor_classes

    return tuple(ie for ie in gen_extractor_classes() if ie.ie_key() != "Generic")


def knows(url: str) -> bool:
    """Whether a site extractor of yt-dlp claims ``url`` (a YouTube watch page does; a file URL does not).
    A path ending in a media extension without a query is direct media, answered without asking the ~1,800
    extractors (whose first pass over a URL costs ~0.6 s per process); with a query (a share link such as
    Dropbox's ``clip.mp4?dl=0`` is a page) they are asked."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https"):
        return False
    if not parsed.query and posixpath.splitext(parsed.path)[1][1:].lower() in MEDIA_EXTS:
        return False
    return any(ie.suitable(url) for ie in _site_extractors())


class _Hosts:
    """Consecutive 429/403 answers per host, shared by the threads of one process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.blocked: dict[str, int] = {}

    def wait(self, host: str, cfg: YtdlpConfig) -> None:
        with self.lock:
            n = self.blocked.get(host, 0)
        if n >= cfg.max_blocked:
            raise SourceBlocked(f"{host} refused {n} requests in a row (HTTP 429/403): stopping; rerun later, "
                                "or pass a cookie file, a proxy or a lower rate")
        if n:
            time.sleep(cfg.backoff * 2 ** (n - 1))

    def answer(self, host: str, blocked: bool) -> None:
        with self.lock:
            self.blocked[host] = self.blocked.get(host, 0) + 1 if blocked else 0


HOSTS = _Hosts()


class _Quiet:
    """yt-dlp's logger: nothing printed (its errors come back as exceptions, kept in the row)."""

    def debug(self, msg: str) -> None:
        pass

    info = warning = error = debug


def options(cfg: YtdlpConfig, reader: ReaderConfig, folder: str, video: bool) -> dict[str, Any]:
    """The YoutubeDL parameters for one download into ``folder``."""
    opts: dict[str, Any] = {
        "format": cfg.format or (VIDEO_FORMAT if video else AUDIO_FORMAT),
        "outtmpl": {"default": os.path.join(folder, "media.%(ext)s")},
        "paths": {"home": folder, "temp": folder},
        "merge_output_format": "mp4", "ffmpeg_location": ffmpeg_exe(),
        "noplaylist": True, "playlist_items": "1", "quiet": True, "no_warnings": True, "noprogress": True,
        "logger": _Quiet(), "cachedir": False, "overwrites": True, "color": "never",
        "retries": cfg.retries, "fragment_retries": cfg.retries, "extractor_retries": cfg.retries,
        "socket_timeout": reader.timeout, "max_filesize": int(reader.max_size_mb * 2**20),
        "http_headers": {"User-Agent": reader.user_agent},
    }
    if cfg.cookie_file:
        opts["cookiefile"] = cfg.cookie_file
    if cfg.proxy:
        opts["proxy"] = cfg.proxy
    if cfg.rate_limit:
        opts["ratelimit"] = cfg.rate_limit
    if cfg.sleep:
        opts["sleep_interval_requests"] = opts["sleep_interval"] = cfg.sleep
    return opts


def sections(spans: list[Span]) -> list[Span]:
    """The source ranges to download for clips in ``spans``: each range the ffmpeg pass reads
    (``Layout.segments``: close clips share one, from ``PREROLL`` before the first), widened by the margins
    for keyframes and read-ahead that HTTP Range reading uses (``sparse.KEY_MARGIN``, ``TAIL_MARGIN``)."""
    return [(max(0.0, s.start - sparse.KEY_MARGIN), s.end + sparse.TAIL_MARGIN)
            for s in Layout(spans=list(spans)).segments() or []]


@dataclass(frozen=True)
class Sections:
    """A source fetched as the sections holding a row's spans, and their probe (``probe.probe_pieces``)."""

    pieces: tuple[Piece, ...]
    info: dict[str, Any]


def read(url: str, cfg: YtdlpConfig, reader: ReaderConfig, video: bool = True, spans: list[Span] | None = None,
         limits: Limits | None = None) -> tuple[bytes | Sections, dict[str, Any]]:
    """The media of ``url`` as yt-dlp downloads it, and its metadata (``METADATA`` fields + yt-dlp's
    version) for the sample's json. Fails with yt-dlp's message as a DownloadError.

    With clip ``spans`` (and ``cfg.sections``) only the ``sections`` holding them are downloaded, as pieces
    (``_pieces``), unless they would cover more than ``MAX_FRACTION`` of a duration the site gives; the
    metadata's ``sections`` lists them. If that download fails, or a piece does not probe as media under
    ``limits`` (ffmpeg cannot seek an mp4 whose index is at its end on a server without ``Range``), the whole
    file is downloaded instead, in the same session, and ``sections_error`` says why (a 429/403 fails the row
    as any other download does)."""
    import yt_dlp

    host = urlparse(url).hostname or url
    HOSTS.wait(host, cfg)
    meta: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="v2d_vox_ytdlp_") as folder:
        try:
            with yt_dlp.YoutubeDL(options(cfg, reader, folder, video)) as ydl:
                raw = ydl.extract_info(url, download=False)
                info = ydl.sanitize_info(raw)
                subs = _subtitles(ydl, info, cfg)
                got = None
                if spans and cfg.sections:
                    got = _sections(url, raw, options(cfg, reader, folder, video), spans, limits, meta)
                if got is None:
                    ydl.process_ie_result(raw, download=True)
                    got = _whole(folder)
        except yt_dlp.utils.YoutubeDLError as e:
            message = _clean(str(e), folder).replace(url, "<url>")
            HOSTS.answer(host, bool(_BLOCKED.search(message)))
            raise DownloadError(f"yt-dlp: {message}") from None
        HOSTS.answer(host, False)
    meta.update({k: info[k] for k in METADATA if info.get(k) is not None}, version=yt_dlp.version.__version__)
    if subs:
        meta["subtitles"] = subs
    return got, meta


def _sections(url: str, raw: dict[str, Any], opts: dict[str, Any], spans: list[Span], limits: Limits | None,
              meta: dict[str, Any]) -> Sections | None:
    """The pieces holding ``spans`` (their ranges in ``meta["sections"]``), probed; None when the whole file is
    better (the sections cover most of a duration the site gives) or they failed (why: ``meta["sections_error"]``).
    A 429/403 is raised: the whole file would be refused too."""
    import yt_dlp

    wanted, duration = sections(spans), raw.get("duration")
    if sum(b - a for a, b in wanted) > MAX_FRACTION * (duration or math.inf):
        return None
    folder = opts["paths"]["home"]
    try:
        pieces = _pieces(raw, opts, wanted)
        info = probe_pieces(pieces, duration, limits)  # a section ffmpeg could not seek into has no frames
    except (yt_dlp.utils.YoutubeDLError, DownloadError) as e:
        failed = _clean(str(e), folder).replace(url, "<url>")
        if _BLOCKED.search(failed):
            raise
        meta["sections_error"] = failed
        _remove_media(folder)
        return None
    meta["sections"] = [[a, b] for a, b in wanted]
    return Sections(pieces, info)


def _pieces(raw: dict[str, Any], opts: dict[str, Any], wanted: list[Span]) -> tuple[Piece, ...]:
    """Each range of ``wanted`` downloaded by yt-dlp's ffmpeg (``download_ranges``) into a file of its own;
    ``-copyts`` keeps the source's timeline in it (by default each file restarts at 0 from the keyframe before
    its range, so an exact cut could not be placed)."""
    import yt_dlp

    folder = opts["paths"]["home"]
    opts = {**opts, "outtmpl": {"default": os.path.join(folder, "media.%(section_start)s.%(ext)s")},
            "download_ranges": yt_dlp.utils.download_range_func(None, wanted),
            "external_downloader_args": {"ffmpeg_o": ["-copyts"]}}
    with yt_dlp.YoutubeDL(opts) as ydl:
        done = ydl.process_ie_result(copy.deepcopy(raw), download=True).get("requested_downloads") or []
    paths = [d.get("filepath") for d in done]
    if len(paths) != len(wanted) or not all(p and os.path.isfile(p) and os.path.getsize(p) for p in paths):
        raise DownloadError(f"yt-dlp wrote {len(paths)} sections, expected {len(wanted)}")
    size = sum(os.path.getsize(p) for p in paths)  # yt-dlp's max_filesize does not reach its ffmpeg
    if size > opts["max_filesize"]:
        raise DownloadError(f"over limit: the sections hold {size} bytes, over max_size_mb")
    pieces = []
    for (a, b), path in zip(wanted, paths):
        with open(path, "rb") as f:
            pieces.append(Piece(a, b, f.read()))
    return tuple(pieces)


def _remove_media(folder: str) -> None:
    for name in os.listdir(folder):
        if name.startswith("media."):
            os.remove(os.path.join(folder, name))


def _whole(folder: str) -> bytes:
    """The one media file yt-dlp wrote into ``folder``."""
    files = [f for f in os.listdir(folder) if f.startswith("media.") and not f.endswith((".part", ".ytdl"))]
    if len(files) != 1:
        raise DownloadError(f"yt-dlp wrote {len(files)} media files, expected 1")
    with open(os.path.join(folder, files[0]), "rb") as f:
        return f.read()


def _subtitles(ydl: Any, info: dict[str, Any], cfg: YtdlpConfig) -> dict[str, Any] | None:
    """The cues of the chosen subtitle track on the source timeline (None: none asked for or none listed)."""
    import yt_dlp

    chosen = subtitles.choose(info, cfg.subtitle_langs) if cfg.subtitle_langs else None
    if chosen is None:
        return None
    lang, kind, track = chosen
    found: dict[str, Any] = {"lang": lang, "kind": kind, "caption": cfg.captions_are_subtitles}
    try:
        with ydl.urlopen(track["url"]) as response:
            data = response.read(subtitles.MAX_BYTES + 1)
        found["cues"] = subtitles.parse(data, track["ext"])
    except (yt_dlp.utils.YoutubeDLError, OSError, ValueError) as e:
        found["error"] = " ".join(str(e).split())[:240]
    return found


def _clean(message: str, folder: str) -> str:
    """yt-dlp's message without its ``ERROR:`` prefix, colour codes or temp paths, on one short line."""
    message = re.sub(r"\x1b\[[0-9;]*m", "", message).replace(folder + os.sep, "").replace(folder, "")
    message = re.sub(r"^ERROR:\s*", "", message.strip())
    return " ".join(message.split())[:240] or "no message"
