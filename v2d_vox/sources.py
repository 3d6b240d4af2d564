"""Where a job's rows come from: a table's input shards (``download``) or existing tar shards
(``reprocess``, ``scan``). Each source gives the rows of one shard and turns a row into a probed Sample."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from . import __version__
from .config import Job
from .errors import DownloadError
from .probe import probe
from .reader import read
from .sample import JSON, TXT, Sample, check_key
from .sharding import read_shard
from .shards import shard_ids
from .tars import Members, read_tar
from .timing import stage

Row = dict[str, Any]
PROVENANCE = "reprocess"


def table_rows(job: Job, shard_id: int) -> list[Row]:
    return read_shard(job.output_folder, shard_id)


def fetch_row(job: Job, row: Row) -> Sample:
    """A table row -> a probed Sample holding the downloaded bytes."""
    with stage("read"):
        data = read(row["url"], job.reader)
    with stage("probe"):
        info = probe(data)
    meta = {k: v for k, v in row.items() if v is not None}
    meta["probe"] = info
    sample = Sample(row["key"], {info["ext"]: data}, meta)
    if row.get("caption"):
        sample.files[TXT] = str(row["caption"]).encode()
    return sample


class TarRow(dict):
    """What the metadata parquet records for a tar sample (key, source shard and index), carrying the
    sample's members as an attribute so that the bytes reach the task but never the parquet."""

    def __init__(self, key: str, source_shard: str, source_index: int, members: Members):
        super().__init__(key=key, source_shard=source_shard, source_index=source_index)
        self.members = members


def tar_rows(job: Job, shard_id: int) -> Iterator[TarRow]:
    url = shard_ids(job.input_shards)[shard_id]
    for index, (key, members) in enumerate(read_tar(url)):
        yield TarRow(key, url, index, members)


def fetch_sample(job: Job, row: TarRow) -> Sample:
    """A tar sample -> a Sample with its old json, a fresh probe and a provenance entry."""
    files = dict(row.members)
    try:
        check_key(row["key"])
        meta = json.loads(files.pop(JSON, b"{}"))
    except ValueError as e:
        raise DownloadError(f"unreadable sample: {str(e)[:160]}") from None
    sample = Sample(row["key"], files, meta if isinstance(meta, dict) else {JSON: meta})
    if sample.media_ext is None:
        raise DownloadError(f"no media member (has {', '.join(sorted(files)) or 'nothing'})")
    with stage("probe"):
        sample.meta["probe"] = probe(sample.media)
    step = {"source_shard": row["source_shard"], "subsamplers": job.subsamplers, "version": __version__}
    sample.meta[PROVENANCE] = [*sample.meta.get(PROVENANCE, []), step]
    return sample


SOURCES: dict[str, tuple[Callable[[Job, int], Iterable[Row]], Callable[[Job, Row], Sample]]] = {
    "table": (table_rows, fetch_row),
    "shards": (tar_rows, fetch_sample),
}
