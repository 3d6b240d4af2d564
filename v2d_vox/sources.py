"""Where a job's rows come from: a table's input shards (``download``) or existing tar shards
(``reprocess``, ``scan``). Each source gives the rows of one shard and turns a row into a probed Sample."""

from __future__ import annotations

import json
import tarfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from . import __version__, subtitles, ytdlp
from .config import Job
from .errors import DownloadError
from .plan import Span
from .probe import probe
from .reader import read, read_parts
from .sample import JSON, TXT, Sample, check_key
from .sharding import read_shard
from .shards import shard_ids
from .tars import Members, TarTooLarge, read_tar
from .timing import stage

Row = dict[str, Any]
PROVENANCE = "reprocess"


def table_rows(job: Job, shard_id: int) -> list[Row]:
    return read_shard(job.output_folder, shard_id)


def keeps_video(job: Job) -> bool:
    """False when the chain drops video (``streams`` with ``video: false``): yt-dlp then fetches audio only."""
    return not any(s.get("name") == "streams" and s.get("video") is False for s in job.subsamplers)


def reader_for(job: Job, url: str) -> str:
    """The reader a row's URL goes to: ``auto`` picks yt-dlp for sites it knows, plain HTTP/fsspec otherwise."""
    if job.read_with == "auto":
        return "yt-dlp" if ytdlp.knows(url) else "http"
    return job.read_with


def fetch_row(job: Job, row: Row, spans: list[Span] | None = None) -> Sample:
    """A table row -> a probed Sample holding the downloaded bytes (and yt-dlp's metadata when it read them).
    ``spans``: the only source times the chain reads (``Chain.source_spans``); an HTTP source is then fetched
    in parts where its server and container allow it (``reader.read_parts``), a yt-dlp one as the sections
    holding them (``Sample.pieces``)."""
    url = job.url_template.format(url=row["url"]) if job.url_template else row["url"]
    extra, fetched, pieces, info = {}, None, (), None
    with stage("read"):
        if reader_for(job, url) == "yt-dlp":
            data, extra["yt_dlp"] = ytdlp.read(url, job.ytdlp, job.reader, keeps_video(job), spans, job.limits)
            if isinstance(data, ytdlp.Sections):  # only the sections holding the spans, probed already
                pieces, info, data = data.pieces, data.info, data.pieces[0].data
                fetched = sum(len(p.data) for p in pieces)
        elif spans:
            data, fetched = read_parts(url, job.reader, spans)
        else:
            data = read(url, job.reader)
    if info is None:
        with stage("probe"):
            info = probe(data, job.limits)
    meta = {k: v for k, v in row.items() if v is not None}
    subs = extra.get("yt_dlp", {}).pop("subtitles", None)
    meta.update(extra, probe=info)
    sample = Sample(row["key"], {info["ext"]: data}, meta, fetched, pieces)
    if row.get("caption"):
        sample.files[TXT] = str(row["caption"]).encode()
    if subs:  # on the source timeline; the worker cuts them to each clip (subtitles.to_clips)
        meta["subtitles"] = subs
        if subs.get("caption") and "cues" in subs:
            caption = subtitles.text(subs)
            sample.files.pop(TXT, None)
            if caption:
                sample.files[TXT] = caption.encode()
    return sample


class TarRow(dict):
    """What the metadata parquet records for a tar sample (key, source shard and index), carrying the
    sample's members as an attribute so that the bytes reach the task but never the parquet. ``error``:
    the tar broke here (the row stands for the rest of the shard, which could not be read)."""

    def __init__(self, key: str, source_shard: str, source_index: int, members: Members,
                 error: str | None = None):
        super().__init__(key=key, source_shard=source_shard, source_index=source_index)
        self.members, self.error = members, error


def tar_rows(job: Job, shard_id: int) -> Iterator[TarRow]:
    """A tar's samples; a tar that is corrupt part-way (truncated, bad header, over a limit) keeps the
    samples before the break and ends with one error row, so the shard completes and says why. A file
    that is no tar at all, or an I/O error (a missing or unreachable shard), fails the shard."""
    url = shard_ids(job.input_shards)[shard_id]
    limits, read = job.limits, 0
    try:
        for key, members in read_tar(url, limits.max_member_bytes, limits.max_tar_bytes):
            yield TarRow(key, url, read, members)
            read += 1
        return
    except (tarfile.TarError, EOFError, zlib.error, TarTooLarge) as e:
        if not read:  # not a readable tar at all: the shard fails (and is reported), as an I/O error does
            raise
        message = f"broken tar after {read} samples: {type(e).__name__}: {str(e)[:160]}"
    yield TarRow(f"_broken_tar_{read:05d}", url, read, {}, error=message)


def fetch_sample(job: Job, row: TarRow, spans: list[Span] | None = None) -> Sample:
    """A tar sample -> a Sample with its old json, a fresh probe and a provenance entry (``spans`` do not
    matter: the member is in memory already)."""
    if row.error:
        raise DownloadError(row.error)
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
        sample.meta["probe"] = probe(sample.media, job.limits)
    step = {"source_shard": row["source_shard"], "subsamplers": job.subsamplers, "version": __version__}
    sample.meta[PROVENANCE] = [*sample.meta.get(PROVENANCE, []), step]
    return sample


SOURCES: dict[str, tuple[Callable[[Job, int], Iterable[Row]], Callable[[Job, Row, list[Span] | None], Sample]]] = {
    "table": (table_rows, fetch_row),
    "shards": (tar_rows, fetch_sample),
}
