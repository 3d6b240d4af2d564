"""Existing tar shards as a job's input: list them (brace patterns, lists, folders; local or fsspec) and
number them as output shards. This project's shards and video2dataset's are both read by ``tars``."""

from __future__ import annotations

import sys

import fsspec
from braceexpand import braceexpand

from .errors import ConfigError
from .layout import TAR, TAR_RE, is_stats_name, stats_of_tar


def list_shards(input_shards: str | list[str]) -> list[str]:
    """Brace patterns, tar paths or folders (each folder's ``*.tar``) -> sorted, de-duplicated URLs.

    Expanded brace patterns are not checked one by one (that is a request per shard on object stores):
    a missing one fails its shard; a plain path or folder that does not exist fails here."""
    items = [input_shards] if isinstance(input_shards, str) else list(input_shards)
    urls: set[str] = set()
    for pattern in items:
        expanded = list(braceexpand(pattern))
        if any(u.startswith(("http://", "https://")) for u in expanded):
            urls.update(expanded)  # read with urllib (tars.open_url); a missing one fails its shard
            continue
        if len(expanded) > 1:
            urls.update(_url(*fsspec.core.url_to_fs(url), url) for url in expanded)
            continue
        item = expanded[0]
        fs, path = fsspec.core.url_to_fs(item)
        if fs.isdir(path):
            urls.update(_url(fs, p, item) for p in _complete_tars(fs, path, item))
        elif fs.exists(path):
            urls.add(_url(fs, path, item))
        else:
            raise ConfigError(f"input shard {item!r} does not exist")
    if not urls:
        raise ConfigError("no input shards given")
    return sorted(urls)


def _complete_tars(fs: fsspec.AbstractFileSystem, path: str, item: str) -> list[str]:
    """A folder's tars, less those of shards that are not done: in a folder written by v2d_vox or
    video2dataset (it holds ``NNNNN_stats.json`` files), a ``NNNNN.tar`` without its stats is a shard a
    killed job left unfinished, not data."""
    names = {p.rstrip("/").rsplit("/", 1)[-1]: p for p in fs.ls(path, detail=False)}
    tars = sorted(p for n, p in names.items() if n.endswith(TAR))
    if not tars:
        raise ConfigError(f"folder {item!r} holds no .tar shards")
    if not any(map(is_stats_name, names)):
        return tars
    done = [p for p in tars if stats_of_tar(p.rsplit('/', 1)[-1]) in names]
    if len(done) < len(tars):
        print(f"v2d_vox: skipping {len(tars) - len(done)} unfinished shard(s) in {item} (no _stats.json): "
              f"{', '.join(p.rsplit('/', 1)[-1] for p in tars if p not in done)[:200]}", file=sys.stderr)
    if not done:
        raise ConfigError(f"folder {item!r} holds no finished shard (no .tar has its _stats.json)")
    return done


def _url(fs: fsspec.AbstractFileSystem, path: str, given: str) -> str:
    """Absolute local paths, full URLs otherwise: the form recorded as provenance."""
    return fs.unstrip_protocol(path) if "://" in given else path


def check_not_inputs(output_folder: str, urls: list[str]) -> None:
    """Writing into an input folder would replace the shards being read (and 'overwrite' delete them)."""
    out = fsspec.core.url_to_fs(output_folder)[1].rstrip("/")
    local = [u for u in urls if not u.startswith(("http://", "https://"))]  # http shards: read-only
    if any(fsspec.core.url_to_fs(u)[1].rsplit("/", 1)[0] == out for u in local):
        raise ConfigError(f"output folder {output_folder!r} holds input shards; choose another folder")


def shard_ids(urls: list[str]) -> dict[int, str]:
    """Output shard id -> input URL. Inputs named ``NNNNN.tar`` (this project's and video2dataset's
    naming) keep their number, so ``out/00007.tar`` comes from ``in/00007.tar`` whatever subset is
    given; any other naming gets 0..n-1 in sorted URL order."""
    numbers = [TAR_RE.match(u.rsplit("/", 1)[-1]) for u in urls]
    if all(numbers) and len({int(m.group(1)) for m in numbers}) == len(urls):
        return {int(m.group(1)): u for m, u in zip(numbers, urls)}
    return dict(enumerate(urls))
