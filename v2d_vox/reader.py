"""Fetch one sample's bytes: http(s) with timeouts, retries and a size cap; local paths and fsspec URLs
only where the job allows their scheme (``ReaderConfig.schemes``).

Every download of one sample has ONE deadline (``ReaderConfig.deadline``) across all its attempts,
backoffs and ``Retry-After`` waits, checked after every read of the socket, so neither an endless body nor
a body trickling a byte a second holds a worker past it. Bodies are read raw (``Accept-Encoding:
identity``; a compressed body is refused rather than inflated) into one growing buffer: memory is about
one copy of the body. Redirects are followed by hand (at most 5) so that each hop's scheme and host
are checked."""

from __future__ import annotations

import email.utils
import io
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urljoin, urlparse

import av
import fsspec
import requests
import urllib3

from . import sparse
from .config import Limits, ReaderConfig
from .errors import DownloadError
from .plan import Layout, Segment, Span

_local = threading.local()
_CHUNK = 1 << 16
_MAX_REDIRECTS = 5
_CLOSED_EARLY = "connection closed before the whole body arrived"


def _session(cfg: ReaderConfig) -> requests.Session:
    """One keep-alive session per thread (requests' Session is not thread-safe), with this config's headers:
    a thread may serve jobs with different configs."""
    s = getattr(_local, "session", None)
    if s is None:
        s = _local.session = requests.Session()
        s.headers["Accept-Encoding"] = "identity"
    s.headers["User-Agent"] = cfg.user_agent
    return s


def scheme_of(url: str) -> str:
    """``http``, ``s3``...; ``file`` for a local path."""
    return urlparse(url).scheme.lower() if "://" in url else "file"


def read(url: str, cfg: ReaderConfig) -> bytes:
    if not isinstance(url, str) or not url.strip():
        raise DownloadError(f"missing URL ({url!r})")
    scheme = scheme_of(url)
    if scheme not in cfg.schemes:
        raise DownloadError(f"URL scheme {scheme!r} is not allowed (allowed: {', '.join(cfg.schemes)}); "
                            f"add it to the reader's schemes to read such inputs")
    if scheme in ("http", "https"):
        return _read_http(url, cfg)
    try:
        with fsspec.open(url, "rb") as f:
            data = f.read(int(cfg.max_size_mb * 2**20) + 1)
    except FileNotFoundError:
        raise DownloadError("file not found") from None
    except (OSError, ValueError, ImportError) as e:
        raise DownloadError(f"cannot open: {type(e).__name__}: {str(e)[:120]}") from None
    if len(data) > cfg.max_size_mb * 2**20:
        raise DownloadError(f"larger than max_size_mb={cfg.max_size_mb}")
    return data


class _Transient(Exception):
    """A fault worth retrying (5xx, 429, reset, timeout); ``wait``: the server's Retry-After, if any."""

    def __init__(self, message: str, wait: float | None = None):
        super().__init__(message)
        self.wait = wait


class _NoRange(Exception):
    """The server refused a range of the file (416)."""


def _read_http(url: str, cfg: ReaderConfig) -> bytes:
    deadline = time.monotonic() + cfg.deadline
    return _retrying(lambda: _get(url, cfg, deadline), cfg, deadline).body


def _retrying(call: Callable[[], _Part], cfg: ReaderConfig, deadline: float) -> _Part:
    """``call()`` retried on transient faults with back-off (or the server's Retry-After) within ``deadline``."""
    last = ""
    for attempt in range(cfg.retries + 1):
        try:
            return call()
        except _Transient as e:
            last = str(e)
            if attempt == cfg.retries:
                break
            wait = cfg.backoff * 2**attempt
            if e.wait is not None:
                if e.wait > cfg.max_retry_after:
                    raise DownloadError(f"{last}, Retry-After {e.wait:g} s is over max_retry_after="
                                        f"{cfg.max_retry_after:g} s") from None
                wait = max(wait, e.wait)
            if time.monotonic() + wait >= deadline:
                raise DownloadError(f"{last}; no time left for a retry within the {cfg.deadline:g} s deadline "
                                    f"(attempt {attempt + 1})") from None
            time.sleep(wait)
    raise DownloadError(f"{last} (after {cfg.retries + 1} attempts)")


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _open(url: str, cfg: ReaderConfig, headers: dict[str, str]) -> requests.Response:
    """GET with redirects followed by hand, refusing a hop to another scheme, or host when so configured."""
    origin = urlparse(url)
    for _ in range(_MAX_REDIRECTS + 1):
        r = _session(cfg).get(url, headers=headers, stream=True, allow_redirects=False,
                              timeout=(cfg.connect_timeout, cfg.timeout))
        if not r.is_redirect:
            return r
        r.close()
        url = urljoin(url, r.headers["Location"])
        hop = urlparse(url)
        if hop.scheme not in ("http", "https") or hop.scheme not in cfg.schemes:
            raise DownloadError(f"redirect to a {hop.scheme!r} URL refused")
        if not cfg.cross_host_redirects and hop.netloc != origin.netloc:
            raise DownloadError(f"redirect to another host ({hop.hostname}) refused: cross_host_redirects is off")
    raise DownloadError(f"more than {_MAX_REDIRECTS} redirects")


@dataclass
class _Part:
    """One answer: its body; for a 206, where the body starts in the file and the file's length (``total``
    None: a 200, the whole file); ``url``: where the redirects led."""

    body: bytes
    url: str
    start: int = 0
    total: int | None = None


_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)$")


def _get(url: str, cfg: ReaderConfig, deadline: float, want: tuple[int, int] | None = None) -> _Part:
    """One GET; ``want``: only bytes ``[start, end)`` (a server that ignores Range answers 200 with all)."""
    limit = int(cfg.max_size_mb * 2**20)
    late = f"download took longer than its {cfg.deadline:g} s deadline"
    headers = {"Range": f"bytes={want[0]}-{want[1] - 1}"} if want else {}
    try:
        with _open(url, cfg, headers) as r:
            if r.status_code >= 500 or r.status_code == 429:
                raise _Transient(f"HTTP {r.status_code}", _retry_after(r.headers.get("Retry-After")))
            if want and r.status_code == 416:  # an empty file has no byte 0
                raise _NoRange()
            if r.status_code >= 400:
                raise DownloadError(f"HTTP {r.status_code} {r.reason}")
            if r.headers.get("Content-Type", "").startswith("text/html"):
                raise DownloadError("server returned an HTML page, not media (Content-Type text/html)")
            encoding = r.headers.get("Content-Encoding", "identity").lower()
            if encoding != "identity":
                raise DownloadError(f"server sent a {encoding}-compressed body (asked for identity)")
            part = _Part(b"", r.url)
            if want and r.status_code == 206:
                m = _CONTENT_RANGE.match(r.headers.get("Content-Range", "").strip())
                if not m or int(m[1]) != want[0] or int(m[2]) != min(want[1], int(m[3])) - 1:
                    raise DownloadError(f"server answered Range bytes={want[0]}-{want[1] - 1} with "
                                        f"Content-Range {r.headers.get('Content-Range', '')[:60]!r}")
                part.start, part.total = int(m[1]), int(m[3])
                if part.total > limit:
                    raise DownloadError(f"larger than max_size_mb={cfg.max_size_mb} (Content-Range)")
            elif r.status_code != 200:
                raise DownloadError(f"HTTP {r.status_code} {r.reason}")
            expected = int(r.headers.get("Content-Length") or 0)
            if expected > limit:
                raise DownloadError(f"larger than max_size_mb={cfg.max_size_mb} (Content-Length)")
            body = io.BytesIO()
            while chunk := r.raw.read1(_CHUNK):  # whatever arrived: a trickle cannot block past the deadline
                body.write(chunk)
                if body.tell() > limit:
                    raise DownloadError(f"larger than max_size_mb={cfg.max_size_mb}")
                if time.monotonic() > deadline:
                    raise DownloadError(late)
            if expected and body.tell() != expected:
                raise _Transient(_CLOSED_EARLY)
            if time.monotonic() > deadline:
                raise DownloadError(late)
            part.body = body.getvalue()
            if part.total is not None and part.start + len(part.body) != int(m[2]) + 1:
                raise _Transient(_CLOSED_EARLY)
            return part
    except (requests.Timeout, requests.ConnectionError) as e:
        raise _Transient(_describe(e)) from None
    except requests.exceptions.ChunkedEncodingError:
        raise _Transient(_CLOSED_EARLY) from None
    except requests.RequestException as e:
        raise DownloadError(f"{type(e).__name__}: {str(e)[:120]}") from None
    except urllib3.exceptions.ProtocolError:  # raised by r.raw: a short body or a reset mid-body
        raise _Transient(_CLOSED_EARLY) from None
    except urllib3.exceptions.HTTPError as e:  # r.raw's read timeout
        raise _Transient(_describe(e)) from None


def _describe(e: Exception) -> str:
    if isinstance(e, requests.ConnectTimeout):
        return "connect timeout"
    if isinstance(e, requests.Timeout) or "timed out" in str(e):
        return "read timeout"
    return "connection error"


# ---------------------------------------------------------------- only the parts some spans need

HEAD_BYTES = 256 << 10  # the first request: the file's start, where a faststart mp4 keeps its index
MAX_FRACTION = 0.5  # when the spans need more of the file than this, all of it is fetched
JOIN_GAP = 128 << 10  # ranges closer than this are fetched as one (fewer requests for a few wasted bytes)


def read_parts(url: str, cfg: ReaderConfig, spans: list[Span]) -> tuple[bytes, int]:
    """The source at ``url`` holding real bytes wherever probing and an ffmpeg pass over ``spans`` (seconds on
    the source timeline) read, and zeros elsewhere, and how many bytes were fetched: over http(s) from a
    server that honours ``Range``, for an mp4/mov whose index says where the spans are. Otherwise (no
    Range support, another container, no usable index, spans covering most of the file, other schemes)
    the whole file, as ``read`` gives it. Same deadline, retries, redirects and size cap as ``read``."""
    if scheme_of(url) not in ("http", "https") or scheme_of(url) not in cfg.schemes:
        data = read(url, cfg)
        return data, len(data)
    deadline = time.monotonic() + cfg.deadline
    try:
        first = _retrying(lambda: _get(url, cfg, deadline, (0, HEAD_BYTES)), cfg, deadline)
    except _NoRange:
        data = read(url, cfg)
        return data, len(data)
    if first.total is None:  # 200: the server ignored Range and sent the whole file
        return first.body, len(first.body)
    body = _Body(first, cfg, deadline)
    segments = Layout(spans=list(spans)).segments() or []
    ranges = body.plan(segments) if body.index() else None
    body.fill(ranges or [(0, body.total)])
    return bytes(body.data), body.fetched


class _Body:
    """A same-length buffer of a remote file, filled range by range (``have``), each range one GET."""

    def __init__(self, first: _Part, cfg: ReaderConfig, deadline: float):
        self.url, self.cfg, self.deadline, self.total = first.url, cfg, deadline, first.total or 0
        self.data = bytearray(self.total)
        self.have: list[tuple[int, int]] = []
        self.fetched = 0
        self._put(first)

    def _put(self, part: _Part) -> None:
        self.data[part.start : part.start + len(part.body)] = part.body
        self.have = sparse.merge([*self.have, (part.start, part.start + len(part.body))])
        self.fetched += len(part.body)

    def fill(self, ranges: list[tuple[int, int]]) -> None:
        """Fetch what ``ranges`` cover and ``have`` does not."""
        for a, b in sparse.merge(ranges, JOIN_GAP):
            for gap in _missing((a, min(b, self.total)), self.have):
                part = _retrying(lambda g=gap: _get(self.url, self.cfg, self.deadline, g), self.cfg, self.deadline)
                if part.total is None:  # a 200 after all: the whole (possibly changed) file
                    self.data, self.have, self.total = bytearray(part.body), [(0, len(part.body))], len(part.body)
                    self.fetched += len(part.body)
                    return
                if part.total != self.total:
                    raise DownloadError(f"the file changed while it was read ({self.total} then {part.total} bytes)")
                self._put(part)

    def index(self) -> bool:
        """Fetch the ``moov`` box, walking the top-level boxes from the start; False when the file is no
        ISO BMFF (its first box is not ``ftyp``) or has no index."""
        offset = 0
        for n in range(sparse.MAX_BOXES):
            if offset + 8 > self.total:
                return False
            self.fill([(offset, min(self.total, offset + 16 if self._holds(offset) else offset + HEAD_BYTES))])
            box = sparse.top_box(bytes(self.data[offset : offset + 16]), offset, self.total)
            if box is None or (n == 0 and box[0] != b"ftyp"):
                return False
            if box[0] == b"moov":
                self.fill([(offset, offset + box[1])])
                return True
            offset += box[1]
        return False

    def _holds(self, offset: int) -> bool:
        return any(a <= offset and offset + 16 <= b for a, b in self.have)

    def plan(self, segments: list[Segment]) -> list[tuple[int, int]] | None:
        """The byte ranges probing and ``segments`` need; None when the index is unusable or they cover more
        than ``MAX_FRACTION`` of the file."""
        try:
            ranges = sparse.needed(bytes(self.data), segments, Limits.max_pixels)
        except (av.error.FFmpegError, ValueError, IndexError):
            return None
        if not ranges or ranges[-1][1] > self.total:  # an index past the end: the whole file tells what is wrong
            return None
        cost = sum(b - a for a, b in sparse.merge([*ranges, *self.have], JOIN_GAP))
        return ranges if cost <= MAX_FRACTION * self.total else None


def _missing(want: tuple[int, int], have: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of ``want`` outside the sorted, disjoint ``have``."""
    out, pos = [], want[0]
    for a, b in have:
        if b <= pos or a >= want[1]:
            continue
        if a > pos:
            out.append((pos, a))
        pos = max(pos, b)
    if pos < want[1]:
        out.append((pos, want[1]))
    return out
