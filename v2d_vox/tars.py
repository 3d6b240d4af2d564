"""Tar I/O, the one place shards are read and written.

Reading streams a tar (local, http(s) or any fsspec URL) and groups members into samples the way
webdataset does: the key is the member's path up to the first dot of its basename, the rest (lower-cased)
is the extension. A sample ends when the key changes *or* an extension repeats, so a duplicated key
stays visible to the caller as two samples. Directories, links and ``__``-prefixed members are skipped.
A tar that breaks part-way raises after the samples read before the break were yielded: each caller
decides what a broken shard costs (a failed shard in curation, a counted error in the loader).

Reading is bounded (``config.Limits``): a member whose header declares more than ``max_member`` bytes
(a sparse member, a ``.tar.gz`` of zeros) is refused before any of it is read, and so is a tar whose
members add up to more than ``max_total`` bytes: a 10 KB file cannot cost gigabytes of memory.

Writing is deterministic: fixed mtime, owner and mode and the member order given, so the same samples
give byte-identical tars."""

from __future__ import annotations

import io
import tarfile
import urllib.request
from collections.abc import Iterator
from typing import BinaryIO

import fsspec

from .config import Limits

Members = dict[str, bytes]  # extension ("mp4", "mel.npy", "json") -> bytes, in tar order
MAX_MEMBER, MAX_TOTAL = Limits().max_member_bytes, Limits().max_tar_bytes


class TarTooLarge(ValueError):
    """A member or the whole tar is over its limit."""


def open_url(url: str, timeout: float = 60.0) -> BinaryIO:
    """A streaming binary file. Local paths and ``file://`` use ``open``; ``http(s)://`` streams with
    urllib (fsspec's http needs aiohttp, not a dependency); other schemes (s3, gs, hf...) go through fsspec."""
    if "://" not in url or url.startswith("file://"):
        return open(url.removeprefix("file://"), "rb")  # noqa: SIM115 - the caller closes it
    if url.startswith(("http://", "https://")):
        return urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 - urls come from the user
    return fsspec.open(url, "rb").open()


def split_name(name: str) -> tuple[str, str] | None:
    """``dir/KEY.ext.more`` -> (``dir/KEY``, ``ext.more``); None for a name without an extension."""
    head, _, base = name.rpartition("/")
    if "." not in base or base.startswith("."):
        return None
    stem, ext = base.split(".", 1)
    return (f"{head}/{stem}" if head else stem), ext.lower()


def iter_tar(stream: BinaryIO, max_member: int = MAX_MEMBER,
             max_total: int = MAX_TOTAL) -> Iterator[tuple[str, Members]]:
    """Samples of an open tar stream, in order (grouping and limits in the module doc)."""
    key, members, total = None, {}, 0
    with tarfile.open(fileobj=stream, mode="r|*") as tar:
        for info in tar:
            total += info.size
            if info.size > max_member:
                raise TarTooLarge(f"tar member {info.name!r} declares {info.size} bytes, over the "
                                  f"max_member_mb limit of {max_member / 2**20:g} MB")
            if total > max_total:
                raise TarTooLarge(f"tar members add up to over the max_tar_gb limit of {max_total / 2**30:g} GB")
            parts = split_name(info.name) if info.isreg() and not info.name.startswith("__") else None
            if parts is None:
                continue
            k, ext = parts
            if members and (k != key or ext in members):
                yield key, members
                members = {}
            key = k
            members[ext] = tar.extractfile(info).read()
    if members:
        yield key, members


def read_tar(url: str, max_member: int = MAX_MEMBER, max_total: int = MAX_TOTAL) -> Iterator[tuple[str, Members]]:
    """Samples of the tar at ``url``, streamed."""
    with open_url(url) as stream:
        yield from iter_tar(stream, max_member, max_total)


class TarWriter:
    """Deterministic tar members into an open binary file."""

    def __init__(self, fileobj: BinaryIO):
        self._tar = tarfile.open(fileobj=fileobj, mode="w", format=tarfile.USTAR_FORMAT)

    def write(self, key: str, members: list[tuple[str, bytes]]) -> None:
        for ext, data in members:
            info = tarfile.TarInfo(f"{key}.{ext}")
            info.size, info.mtime, info.mode = len(data), 0, 0o444
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            self._tar.addfile(info, io.BytesIO(data))

    def close(self) -> None:
        self._tar.close()
