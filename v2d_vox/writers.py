"""Shard writers. Each writes under ``_tmp/`` and renames into place on ``close()``, so a killed
job never leaves a file that looks finished. Tars are deterministic: fixed mtime/owner/mode and a
stable member order, so the same input gives byte-identical shards."""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from .sample import Sample

TMP = "_tmp"


def _members(sample: Sample) -> list[tuple[str, bytes]]:
    files = dict(sample.files)
    files["json"] = json.dumps(sample.meta, sort_keys=True, default=str).encode()
    return [(f"{sample.key}.{ext}", files[ext]) for ext in sorted(files)]


class ShardWriter:
    """Base: `fs` and `root` locate the output folder; subclasses define `_tmp`/`_final` paths."""

    suffix = ""

    def __init__(self, fs: fsspec.AbstractFileSystem, root: str, shard_id: int):
        self.fs, self.root, self.name = fs, root, f"{shard_id:05d}"
        self.tmp, self.final = f"{root}/{TMP}/{self.name}{self.suffix}", f"{root}/{self.name}{self.suffix}"
        self.count = 0
        self.bytes = 0

    def write(self, sample: Sample) -> None:
        members = _members(sample)
        self._write(members)
        self.count += 1
        self.bytes += sum(len(d) for _, d in members)

    def _write(self, members: list[tuple[str, bytes]]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._finish()
        self.fs.mv(self.tmp, self.final, recursive=True)


class TarWriter(ShardWriter):
    suffix = ".tar"

    def __init__(self, fs, root, shard_id):
        super().__init__(fs, root, shard_id)
        self._file = fs.open(self.tmp, "wb")
        self._tar = tarfile.open(fileobj=self._file, mode="w", format=tarfile.USTAR_FORMAT)

    def _write(self, members):
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o444
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            self._tar.addfile(info, io.BytesIO(data))

    def _finish(self):
        self._tar.close()
        self._file.close()


class FilesWriter(ShardWriter):
    """A folder per shard, one file per member: handy to eyeball outputs."""

    def __init__(self, fs, root, shard_id):
        super().__init__(fs, root, shard_id)
        fs.makedirs(self.tmp, exist_ok=True)

    def _write(self, members):
        for name, data in members:
            with self.fs.open(f"{self.tmp}/{name}", "wb") as f:
                f.write(data)

    def _finish(self):
        if self.fs.exists(self.final):
            self.fs.rm(self.final, recursive=True)


class ParquetWriter(ShardWriter):
    """Media bytes in columns named by extension (``mp4``, ``m4a``, ``mel.npy``...), one row per sample."""

    suffix = "_media.parquet"

    def __init__(self, fs, root, shard_id):
        super().__init__(fs, root, shard_id)
        self._rows: list[dict[str, Any]] = []

    def _write(self, members):
        key = members[0][0].split(".", 1)[0]
        self._rows.append({"key": key, **{name.split(".", 1)[1]: data for name, data in members}})

    def _finish(self):
        exts = sorted({k for row in self._rows for k in row} - {"key"})
        schema = pa.schema([("key", pa.string())] + [(e, pa.binary()) for e in exts])
        table = pa.Table.from_pylist(self._rows, schema=schema)
        with self.fs.open(self.tmp, "wb") as f:
            pq.write_table(table, f)


WRITERS: dict[str, type[ShardWriter]] = {"webdataset": TarWriter, "files": FilesWriter, "parquet": ParquetWriter}


def write_metadata(fs, root: str, shard_id: int, rows: list[dict[str, Any]]) -> None:
    """``NNNNN.parquet``: one row per input sample, whatever its status."""
    tmp, final = f"{root}/{TMP}/{shard_id:05d}.parquet", f"{root}/{shard_id:05d}.parquet"
    table = pa.Table.from_pylist(rows) if rows else pa.table({"key": pa.array([], pa.string())})
    with fs.open(tmp, "wb") as f:
        pq.write_table(table, f)
    fs.mv(tmp, final)


def write_stats(fs, root: str, shard_id: int, stats: dict[str, Any]) -> None:
    """``NNNNN_stats.json`` is written last: its presence is what marks the shard done."""
    tmp, final = f"{root}/{TMP}/{shard_id:05d}_stats.json", f"{root}/{shard_id:05d}_stats.json"
    with fs.open(tmp, "w") as f:
        json.dump(stats, f, indent=1, sort_keys=True)
    fs.mv(tmp, final)
