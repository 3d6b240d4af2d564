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
import threading
import time
from urllib.parse import urljoin, urlparse

import fsspec
import requests
import urllib3

from .config import ReaderConfig
from .errors import DownloadError

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


def _read_http(url: str, cfg: ReaderConfig) -> bytes:
    deadline = time.monotonic() + cfg.deadline
    last = ""
    for attempt in range(cfg.retries + 1):
        try:
            return _get(url, cfg, deadline)
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


def _open(url: str, cfg: ReaderConfig) -> requests.Response:
    """GET with redirects followed by hand, refusing a hop to another scheme, or host when so configured."""
    origin = urlparse(url)
    for _ in range(_MAX_REDIRECTS + 1):
        r = _session(cfg).get(url, stream=True, allow_redirects=False, timeout=(cfg.connect_timeout, cfg.timeout))
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


def _get(url: str, cfg: ReaderConfig, deadline: float) -> bytes:
    limit = int(cfg.max_size_mb * 2**20)
    late = f"download took longer than its {cfg.deadline:g} s deadline"
    try:
        with _open(url, cfg) as r:
            if r.status_code >= 500 or r.status_code == 429:
                raise _Transient(f"HTTP {r.status_code}", _retry_after(r.headers.get("Retry-After")))
            if r.status_code >= 400:
                raise DownloadError(f"HTTP {r.status_code} {r.reason}")
            if r.headers.get("Content-Type", "").startswith("text/html"):
                raise DownloadError("server returned an HTML page, not media (Content-Type text/html)")
            encoding = r.headers.get("Content-Encoding", "identity").lower()
            if encoding != "identity":
                raise DownloadError(f"server sent a {encoding}-compressed body (asked for identity)")
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
            return body.getvalue()
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
