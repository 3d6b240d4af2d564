"""Shard writers. Each writes under the layout's ``_tmp/`` and renames into place on ``close()``, so a
killed job never leaves a file that looks finished. Tars are deterministic (see ``tars``), so the same
input gives byte-identical shards."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .config import NO_OUTPUT
from .layout import Layout, media_parquet_name, metadata_name, shard_name, stats_name, tar_name
from .sample import Sample
from .tars import TarWriter


class ShardWriter:
    """Base: subclasses set ``naming`` (a ``layout`` name function) and write the members of each sample."""

    naming: Callable[[int], str] = staticmethod(shard_name)

    def __init__(self, layout: Layout, shard_id: int):
        self.layout, self.name = layout, self.naming(shard_id)
        self.count = 0
        self.bytes = 0

    def write(self, sample: Sample) -> None:
        members = sample.members()
        self._write(sample.key, members)
        self.count += 1
        self.bytes += sum(len(d) for _, d in members)

    def _write(self, key: str, members: list[tuple[str, bytes]]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._finish()
        self.layout.commit(self.name)

    def _finish(self) -> None:
        pass

    def abort(self) -> None:
        """Drop what was written (the attempt failed); nothing is committed."""


class TarShardWriter(ShardWriter):
    naming = staticmethod(tar_name)

    def __init__(self, layout, shard_id):
        super().__init__(layout, shard_id)
        self._file = layout.fs.open(layout.tmp(self.name), "wb")
        self._tar = TarWriter(self._file)

    def _write(self, key, members):
        self._tar.write(key, members)

    def _finish(self):
        self._tar.close()
        self._file.close()

    def abort(self):
        self._file.close()


class FilesWriter(ShardWriter):
    """A folder per shard, one file per member: handy to eyeball outputs."""

    def __init__(self, layout, shard_id):
        super().__init__(layout, shard_id)
        self.folder = layout.tmp(self.name)
        layout.fs.makedirs(self.folder, exist_ok=True)

    def _write(self, key, members):
        for ext, data in members:
            with self.layout.fs.open(f"{self.folder}/{key}.{ext}", "wb") as f:
                f.write(data)

    def _finish(self):
        if self.layout.exists(self.name):
            self.layout.fs.rm(self.layout.path(self.name), recursive=True)


class ParquetWriter(ShardWriter):
    """Media bytes in columns named by extension (``mp4``, ``m4a``, ``mel.npy``...), one row per sample."""

    naming = staticmethod(media_parquet_name)

    def __init__(self, layout, shard_id):
        super().__init__(layout, shard_id)
        self._rows: list[dict[str, Any]] = []

    def _write(self, key, members):
        self._rows.append({"key": key, **dict(members)})

    def _finish(self):
        exts = sorted({k for row in self._rows for k in row} - {"key"})
        schema = pa.schema([("key", pa.string())] + [(e, pa.binary()) for e in exts])
        with self.layout.fs.open(self.layout.tmp(self.name), "wb") as f:
            pq.write_table(pa.Table.from_pylist(self._rows, schema=schema), f)


class NoWriter(ShardWriter):
    """For jobs whose output is the metadata alone (scan)."""

    def _write(self, key, members):
        pass

    def close(self) -> None:
        pass


WRITERS: dict[str, type[ShardWriter]] = {"webdataset": TarShardWriter, "files": FilesWriter,
                                          "parquet": ParquetWriter, NO_OUTPUT: NoWriter}


def write_metadata(layout: Layout, shard_id: int, rows: list[dict[str, Any]],
                   schema: pa.Schema | None = None) -> None:
    """``NNNNN.parquet``: one row per input sample, whatever its status."""
    if rows or schema is not None:
        table = pa.Table.from_pylist(rows, schema=schema)
    else:
        table = pa.table({"key": pa.array([], pa.string())})
    name = metadata_name(shard_id)
    with layout.fs.open(layout.tmp(name), "wb") as f:
        pq.write_table(table, f)
    layout.commit(name)


def write_stats(layout: Layout, shard_id: int, stats: dict[str, Any]) -> None:
    """``NNNNN_stats.json`` is written last: its presence is what marks the shard done."""
    layout.write_json(stats_name(shard_id), stats)
