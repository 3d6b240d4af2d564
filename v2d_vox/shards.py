"""Existing tar shards: list them (brace patterns, lists, folders; local or fsspec), read them sample by
sample, and copy samples into new deterministic tars.

Both this project's layout (``KEY.mp4``, ``KEY.flac``, ``KEY.mel.npy``, ``KEY.json``, ``KEY.txt``) and
video2dataset's (``KEY.mp4``, ``KEY.m4a``, ``KEY.json``, ``KEY.txt``) are webdataset tars: members are
grouped into samples by key, the basename up to its first dot, as webdataset does."""

from __future__ import annotations

import io
import re
import tarfile
from collections.abc import Iterable, Iterator

import fsspec
from braceexpand import braceexpand

from .errors import ConfigError
from .writers import TMP

Members = dict[str, bytes]  # extension ("mp4", "mel.npy", "json") -> bytes, in tar order
_NUMBERED = re.compile(r"^(\d+)\.tar$")


def list_shards(input_shards: str | list[str]) -> list[str]:
    """Brace patterns, tar paths or folders (each folder's ``*.tar``) -> sorted, de-duplicated URLs.

    Expanded brace patterns are not checked one by one (that is a request per shard on object stores):
    a missing one fails its shard; a plain path or folder that does not exist fails here."""
    items = [input_shards] if isinstance(input_shards, str) else list(input_shards)
    urls: set[str] = set()
    for pattern in items:
        expanded = list(braceexpand(pattern))
        if len(expanded) > 1:
            urls.update(_url(*fsspec.core.url_to_fs(url), url) for url in expanded)
            continue
        item = expanded[0]
        fs, path = fsspec.core.url_to_fs(item)
        if fs.isdir(path):
            found = [p for p in fs.ls(path, detail=False) if p.endswith(".tar")]
            if not found:
                raise ConfigError(f"folder {item!r} holds no .tar shards")
            urls.update(_url(fs, p, item) for p in found)
        elif fs.exists(path):
            urls.add(_url(fs, path, item))
        else:
            raise ConfigError(f"input shard {item!r} does not exist")
    if not urls:
        raise ConfigError("no input shards given")
    return sorted(urls)


def _url(fs: fsspec.AbstractFileSystem, path: str, given: str) -> str:
    """Absolute local paths, full URLs otherwise: the form recorded as provenance."""
    return fs.unstrip_protocol(path) if "://" in given else path


def check_not_inputs(output_folder: str, urls: list[str]) -> None:
    """Writing into an input folder would replace the shards being read (and 'overwrite' delete them)."""
    out = fsspec.core.url_to_fs(output_folder)[1].rstrip("/")
    if any(fsspec.core.url_to_fs(u)[1].rsplit("/", 1)[0] == out for u in urls):
        raise ConfigError(f"output folder {output_folder!r} holds input shards; choose another folder")


def shard_ids(urls: list[str]) -> dict[int, str]:
    """Output shard id -> input URL. Inputs named ``NNNNN.tar`` (this project's and video2dataset's
    naming) keep their number, so ``out/00007.tar`` comes from ``in/00007.tar`` whatever subset is
    given; any other naming gets 0..n-1 in sorted URL order."""
    numbers = [_NUMBERED.match(u.rsplit("/", 1)[-1]) for u in urls]
    if all(numbers) and len({int(m.group(1)) for m in numbers}) == len(urls):
        return {int(m.group(1)): u for m, u in zip(numbers, urls)}
    return dict(enumerate(urls))


def _split(name: str) -> tuple[str, str] | None:
    """``dir/KEY.ext.more`` -> (``dir/KEY``, ``ext.more``), as webdataset's ``base_plus_ext``."""
    head, _, base = name.rpartition("/")
    if "." not in base:
        return None
    stem, ext = base.split(".", 1)
    return (f"{head}/{stem}" if head else stem), ext


def read_tar(url: str) -> Iterator[tuple[str, Members]]:
    """Samples of one tar in order, streamed (works for remote files). A key that comes back after other
    keys, or repeats an extension, starts a new sample: duplicates stay visible to the caller."""
    key, members = None, {}
    with fsspec.open(url, "rb") as f, tarfile.open(fileobj=f, mode="r|*") as tar:
        for info in tar:
            parts = _split(info.name) if info.isfile() else None
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


def write_tar(url: str, samples: Iterable[tuple[str, Members]]) -> int:
    """Write samples to ``url`` the way ``writers.TarWriter`` does (fixed mtime/owner/mode, so the same
    samples give identical bytes), through a temp file renamed into place. -> samples written."""
    fs, path = fsspec.core.url_to_fs(url)
    folder, _, name = path.rpartition("/")
    tmp = f"{folder}/{TMP}/{name}"
    fs.makedirs(f"{folder}/{TMP}", exist_ok=True)
    count = 0
    with fs.open(tmp, "wb") as f, tarfile.open(fileobj=f, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for key, members in samples:
            for ext, data in members.items():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size, info.mtime, info.mode = len(data), 0, 0o444
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                tar.addfile(info, io.BytesIO(data))
            count += 1
    fs.mv(tmp, path)
    return count
