"""Fetch one sample's bytes: http(s) with timeouts, retries and a size cap; local paths and fsspec URLs."""

from __future__ import annotations

import threading
import time
from urllib.parse import urlparse

import fsspec
import requests

from .config import ReaderConfig
from .errors import DownloadError

_local = threading.local()
_CHUNK = 1 << 16
_CLOSED_EARLY = "connection closed before the whole body arrived"


def _session(cfg: ReaderConfig) -> requests.Session:
    """One keep-alive session per thread: requests' Session is not thread-safe."""
    s = getattr(_local, "session", None)
    if s is None:
        s = _local.session = requests.Session()
        s.headers["User-Agent"] = cfg.user_agent
    return s


def read(url: str, cfg: ReaderConfig) -> bytes:
    scheme = urlparse(url).scheme
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
    """A fault worth retrying (5xx, reset, timeout)."""


def _read_http(url: str, cfg: ReaderConfig) -> bytes:
    last = ""
    for attempt in range(cfg.retries + 1):
        if attempt:
            time.sleep(cfg.backoff * 2 ** (attempt - 1))
        try:
            return _get(url, cfg)
        except _Transient as e:
            last = str(e)
    raise DownloadError(f"{last} (after {cfg.retries + 1} attempts)")


def _get(url: str, cfg: ReaderConfig) -> bytes:
    limit = int(cfg.max_size_mb * 2**20)
    deadline = time.monotonic() + 4 * cfg.timeout
    try:
        with _session(cfg).get(url, stream=True, timeout=(cfg.connect_timeout, cfg.timeout)) as r:
            if r.status_code >= 500 or r.status_code == 429:
                raise _Transient(f"HTTP {r.status_code}")
            if r.status_code >= 400:
                raise DownloadError(f"HTTP {r.status_code} {r.reason}")
            if r.headers.get("Content-Type", "").startswith("text/html"):
                raise DownloadError("server returned an HTML page, not media (Content-Type text/html)")
            if int(r.headers.get("Content-Length") or 0) > limit:
                raise DownloadError(f"larger than max_size_mb={cfg.max_size_mb} (Content-Length)")
            chunks, size = [], 0
            for chunk in r.iter_content(_CHUNK):
                chunks.append(chunk)
                size += len(chunk)
                if size > limit:
                    raise DownloadError(f"larger than max_size_mb={cfg.max_size_mb}")
                if time.monotonic() > deadline:
                    raise _Transient(f"download took longer than {4 * cfg.timeout:g} s")
            expected = r.headers.get("Content-Length")
            if expected and r.headers.get("Content-Encoding") is None and size != int(expected):
                raise _Transient(_CLOSED_EARLY)
            return b"".join(chunks)
    except (requests.Timeout, requests.ConnectionError) as e:
        raise _Transient(_describe(e)) from None
    except requests.exceptions.ChunkedEncodingError:
        raise _Transient(_CLOSED_EARLY) from None
    except requests.RequestException as e:
        raise DownloadError(f"{type(e).__name__}: {str(e)[:120]}") from None


def _describe(e: Exception) -> str:
    if isinstance(e, requests.ConnectTimeout):
        return "connect timeout"
    if isinstance(e, requests.Timeout) or "Read timed out" in str(e):
        return "read timeout"
    return "connection error"
