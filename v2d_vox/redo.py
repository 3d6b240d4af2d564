"""Retrying some rows of a done shard: its earlier outputs are set aside under ``_retry/`` and the shard
is run again like an unfinished one, except that rows whose status is not being retried are not fetched:
their old metadata record and their old samples (members copied byte for byte) are written back in
their place. The result is the shard a run would have made had those rows succeeded the first time:
same keys, same order, the other samples' bytes unchanged.

Crash safety comes from the order of steps: the stats file goes first (the shard is no longer done, so
any rerun redoes it), then the tar and the parquet move under ``_retry/``; the worker reads them from
there and they are deleted only once the new stats exist. A killed retry is resumed by running it again
(or by the original job, which redoes the shard from its source)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow.parquet as pq

from .config import Job
from .errors import V2DError
from .layout import RETRY, Layout, metadata_name, shard_name, stats_name, tar_name
from .sample import Sample
from .tars import read_tar

Row = dict[str, Any]


class KeptRow(dict):
    """An input row that is not retried, carrying its old metadata record and old samples."""

    def __init__(self, row: Row, record: Row, samples: list[Sample]):
        super().__init__(row)
        self.record, self.samples = record, samples


def _names(shard_id: int) -> tuple[str, str]:
    return tar_name(shard_id), metadata_name(shard_id)


def set_aside(layout: Layout, shard_id: int) -> None:
    """Make a shard not done, moving its tar and parquet under ``_retry/`` (idempotent after a crash)."""
    if layout.is_done(shard_id):  # a fresh retry: files a finished earlier retry left are stale
        for name in _names(shard_id):
            if layout.exists(f"{RETRY}/{name}"):
                layout.fs.rm(layout.path(f"{RETRY}/{name}"))
        layout.fs.rm(layout.path(stats_name(shard_id)))
    layout.fs.makedirs(layout.path(RETRY), exist_ok=True)
    for name in _names(shard_id):
        if not layout.exists(f"{RETRY}/{name}") and layout.exists(name):
            layout.fs.mv(layout.path(name), layout.path(f"{RETRY}/{name}"))


def pending(layout: Layout) -> set[int]:
    """Shards a killed retry left set aside and not done."""
    if not layout.exists(RETRY):
        return set()
    names = (p.rstrip("/").rsplit("/", 1)[-1] for p in layout.fs.ls(layout.path(RETRY), detail=False))
    ids = {int(n[:5]) for n in names if n.endswith(".parquet") and n[:5].isdigit()}
    return ids - layout.done()


def finish(layout: Layout) -> None:
    """Delete what was set aside for shards that are done again; ``_retry/`` goes once empty."""
    if not layout.exists(RETRY):
        return
    done = layout.done()
    for path in layout.fs.ls(layout.path(RETRY), detail=False):
        name = path.rstrip("/").rsplit("/", 1)[-1]
        if name[:5].isdigit() and int(name[:5]) in done:
            layout.fs.rm(path)
    if not layout.fs.ls(layout.path(RETRY)):
        layout.fs.rm(layout.path(RETRY), recursive=True)


def merge_rows(job: Job, layout: Layout, shard_id: int, rows: Iterable[Row]) -> Iterator[Row]:
    """The shard's input rows, those not retried replaced by `KeptRow`s holding their old outputs."""
    tar_name, parquet_name = (f"{RETRY}/{n}" for n in _names(shard_id))
    if not layout.exists(parquet_name):  # never done before: every row runs
        yield from rows
        return
    with layout.fs.open(layout.path(parquet_name), "rb") as f:
        records = pq.read_table(f).to_pylist()
    old = iter(read_tar(layout.fs.unstrip_protocol(layout.path(tar_name)))) if layout.exists(tar_name) else iter(())
    rows = iter(rows)
    for record in records:
        row = next(rows, None)
        if row is None or row["key"] != record["key"]:
            raise V2DError(f"shard {shard_name(shard_id)}: its inputs changed since it was written "
                           f"(expected key {record['key']!r}); rerun the job in overwrite mode")
        samples = []
        for _ in range(record.get("outputs") or 0):
            key, members = next(old, (None, None))
            if key is None or not (key == record["key"] or key.startswith(record["key"] + "_")):
                raise V2DError(f"shard {shard_name(shard_id)}: its tar does not match its parquet at "
                               f"key {record['key']!r}; rerun the job in overwrite mode")
            samples.append(Sample(key, dict(members), meta=None))
        yield row if record["status"] in job.retry else KeptRow(row, record, samples)
    if next(rows, None) is not None:
        raise V2DError(f"shard {shard_name(shard_id)}: its inputs changed since it was written (more rows)")
