"""Input tables -> ``_inputs/NNNNN.arrow``: stable shard ids and keys, memory flat in the row count.

Tables are streamed in record batches and each shard is written, by a small thread pool, as soon as it
fills, so a 10M-row table never sits in memory (benchmarks/bench_sharding.py measures time and peak RSS).
The same inputs and arguments always give the same shards and keys:
files are taken in sorted order and a ``_done.json`` with a signature pins the layout for reruns."""

from __future__ import annotations

import hashlib
import json
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from .errors import ConfigError
from .layout import INPUTS, Layout, input_name
from .sample import RESERVED_FIELDS

FORMATS = ("csv", "tsv", "parquet", "json", "jsonl", "txt")
_BATCH = 65536  # rows per record batch read: large enough that per-batch overhead vanishes
WRITERS = 4  # threads writing input shards
_IPC = ipc.IpcWriteOptions(compression="lz4")
_DONE = f"{INPUTS}/_done.json"


@dataclass
class TableSpec:
    input_format: str = "auto"
    url_col: str = "url"
    caption_col: str | None = None
    clip_col: str | None = None
    save_additional_columns: list[str] | None = None  # None keeps every other column
    samples_per_shard: int = 1000


def list_inputs(url_list: str | list[str]) -> list[str]:
    """One file, a list of files, or a folder (its table files, sorted) -> sorted list of URLs."""
    urls = [url_list] if isinstance(url_list, str) else list(url_list)
    out: list[str] = []
    for url in urls:
        fs, path = fsspec.core.url_to_fs(url)
        if fs.isdir(path):
            found = sorted(p for p in fs.ls(path, detail=False) if _ext(p) in FORMATS)
            if not found:
                raise ConfigError(f"folder {url!r} holds no {'/'.join(FORMATS)} files")
            out += [fs.unstrip_protocol(p) if "://" in url else os.path.abspath(p) for p in found]
        elif fs.exists(path):
            out.append(url if "://" in url else os.path.abspath(url))  # ./t.csv and t.csv are one input
        else:
            raise ConfigError(f"input table {url!r} does not exist")
    return out


def _ext(path: str) -> str:
    return path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""


def _format(url: str, input_format: str) -> str:
    fmt = _ext(url) if input_format == "auto" else input_format
    if fmt not in FORMATS:
        raise ConfigError(f"cannot tell the format of {url!r}: pass input_format= one of {FORMATS}")
    return fmt


def read_batches(url: str, fmt: str) -> Iterator[pa.Table]:
    """Stream a table file as pyarrow tables of at most _BATCH rows (json arrays load whole)."""
    with fsspec.open(url, "rb") as f:
        if fmt == "parquet":
            for batch in pq.ParquetFile(f).iter_batches(batch_size=_BATCH):
                yield pa.Table.from_batches([batch])
        elif fmt in ("csv", "tsv"):
            opts = pcsv.ParseOptions(delimiter="\t" if fmt == "tsv" else ",")
            reader = pcsv.open_csv(f, parse_options=opts, read_options=pcsv.ReadOptions(block_size=1 << 22))
            for batch in reader:
                yield pa.Table.from_batches([batch])
        elif fmt == "json":
            rows = json.load(f)
            if not isinstance(rows, list):
                raise ConfigError(f"{url}: a .json table must hold a list of objects; use .jsonl for lines")
            for i in range(0, len(rows), _BATCH):
                yield pa.Table.from_pylist(rows[i : i + _BATCH])
        else:
            batch: list[Any] = []
            for line in f:
                line = line.strip()
                if not line:
                    continue
                batch.append(json.loads(line) if fmt == "jsonl" else {"url": line.decode("utf-8", "replace")})
                if len(batch) == _BATCH:
                    yield pa.Table.from_pylist(batch)
                    batch = []
            if batch:
                yield pa.Table.from_pylist(batch)


def _normalize(table: pa.Table, spec: TableSpec, url: str) -> pa.Table:
    """Rename the user's columns to url/caption/clips and keep the requested extras."""
    url_col = "url" if spec.input_format == "txt" or _ext(url) == "txt" else spec.url_col
    names = table.column_names
    for col in (url_col, spec.caption_col, spec.clip_col):
        if col is not None and col not in names:
            raise ConfigError(f"{url}: column {col!r} not found; columns are {names}")
    used = {url_col, spec.caption_col, spec.clip_col}
    extras = [c for c in names if c not in used] if spec.save_additional_columns is None else [
        c for c in spec.save_additional_columns if c in names]
    cols = {"url": _text(table[url_col])}
    if spec.caption_col:
        cols["caption"] = _text(table[spec.caption_col])
    if spec.clip_col:
        clips = table[spec.clip_col]
        if pa.types.is_string(clips.type) or pa.types.is_large_string(clips.type):  # JSON text already
            cols["clips"] = pc.if_else(pc.equal(clips, ""), pa.scalar(None, pa.string()), _text(clips))
        else:  # lists (parquet, json): the JSON text of each
            cols["clips"] = pa.array([None if v is None else json.dumps(v) for v in clips.to_pylist()], pa.string())
    for c in extras:
        name = f"input_{c}" if c in RESERVED_FIELDS else c  # a "status" or "key" column must not pass for ours
        if name not in cols:
            cols[name] = table[c]
    return pa.table(cols)


def _checked(batches: Iterator[pa.Table], url: str, fmt: str) -> Iterator[pa.Table]:
    """A malformed table is the user's input error: say which file and why, once."""
    try:
        yield from batches
    except (pa.ArrowInvalid, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{url}: cannot read as {fmt}: {str(e)[:200]}") from None


def signature(urls: list[str], spec: TableSpec) -> str:
    h = hashlib.sha256(json.dumps(asdict(spec), sort_keys=True).encode())
    for url in urls:
        fs, path = fsspec.core.url_to_fs(url)
        info = fs.info(path)
        h.update(f"{url}|{info.get('size')}|{info.get('mtime', '')}".encode())
    return h.hexdigest()[:16]


def _changes(done: dict[str, Any], urls: list[str], spec: TableSpec) -> str:
    """What differs from the sharding recorded in ``_done.json``, for the refusal's one line."""
    if done.get("inputs") != urls:
        return f"other input tables ({', '.join(done.get('inputs', []))[:200]})"
    old = done.get("spec", {})
    changed = [f"{k}={old.get(k)!r} (now {v!r})" for k, v in asdict(spec).items() if old.get(k) != v]
    if changed:
        return "other arguments: " + ", ".join(changed)
    return "the same tables before they changed on disk (size or modification time)"


def _text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A column as text. Bytes that are not UTF-8 (a Latin-1 caption in a csv, a binary parquet column) are
    decoded with U+FFFD for the bad bytes: one odd cell costs a character, not the job."""
    if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
        values = [None if v is None else v.decode("utf-8", "replace") for v in column.to_pylist()]
        return pa.chunked_array([pa.array(values, pa.string())])
    return column.cast(pa.string())


def shard_tables(url_list: str | list[str], output_folder: str, spec: TableSpec,
                 writers: int = WRITERS) -> tuple[int, int]:
    """Write input shards unless a finished sharding with the same signature exists.

    Rows stream in record batches; each shard is cut as soon as it fills (zero-copy slices) and written by
    one of ``writers`` threads (Arrow IPC writes release the GIL), at most ``2 * writers`` shards in flight,
    so memory stays flat in the row count. Returns (number of shards, number of rows)."""
    if spec.samples_per_shard < 1:
        raise ConfigError(f"samples_per_shard must be >= 1, got {spec.samples_per_shard}")
    urls = list_inputs(url_list)
    fmts = [_format(u, spec.input_format) for u in urls]
    sig = signature(urls, spec)
    layout = Layout(output_folder)
    if layout.exists(_DONE):
        info = layout.read_json(_DONE)
        if info["signature"] == sig:
            return info["shards"], info["rows"]
        raise ConfigError(f"{output_folder} was made from {_changes(info, urls, spec)}; "
                          "use incremental_mode='overwrite' or a new output folder")
    layout.fs.makedirs(layout.path(INPUTS), exist_ok=True)
    size = spec.samples_per_shard
    width = len(str(size - 1))
    suffixes = np.arange(size, dtype=np.int64)
    shard_id, pending, buffered, rows = 0, [], 0, 0
    in_flight: deque[Future] = deque()

    with ThreadPoolExecutor(writers) as pool:

        def submit(table: pa.Table) -> None:
            nonlocal shard_id
            while len(in_flight) >= 2 * writers:
                in_flight.popleft().result()
            in_flight.append(pool.submit(_write_shard, layout, shard_id, table, width, suffixes))
            shard_id += 1

        for url, fmt in zip(urls, fmts):
            for batch in _checked(read_batches(url, fmt), url, fmt):
                pending.append(_normalize(batch, spec, url))
                rows += batch.num_rows
                buffered += batch.num_rows
                if buffered < size:
                    continue
                table = pa.concat_tables(pending, promote_options="permissive")  # zero-copy
                cut = 0
                while buffered - cut >= size:
                    submit(table.slice(cut, size))
                    cut += size
                pending, buffered = [table.slice(cut)], buffered - cut
        if buffered:
            submit(pa.concat_tables(pending, promote_options="permissive"))
        for future in in_flight:
            future.result()
    layout.write_json(_DONE, {"signature": sig, "shards": shard_id, "rows": rows, "inputs": urls,
                              "spec": asdict(spec)})
    return shard_id, rows


def shard_keys(shard_id: int, rows: np.ndarray, width: int) -> pa.Array:
    """``f"{shard_id:05d}{row:0{width}d}"`` for each row, computed by Arrow (a Python loop costs seconds per
    10M rows): the number ``shard_id * 10**width + row`` left-padded with zeros to ``5 + width`` digits."""
    return pc.utf8_lpad(pa.array(rows + shard_id * 10**width).cast(pa.string()), 5 + width, "0")


def _write_shard(layout: Layout, shard_id: int, table: pa.Table, width: int, suffixes: np.ndarray) -> None:
    """``_inputs/NNNNN.arrow``: the rows with their keys ``{shard_id:05d}{row:0{width}d}``, one record batch."""
    table = table.add_column(0, "key", shard_keys(shard_id, suffixes[: table.num_rows], width)).combine_chunks()
    name = input_name(shard_id)
    # Built in Arrow's memory pool, then one write: writing through a Python file object from several
    # threads grew glibc's arenas with the row count. lz4 makes the file ~3x smaller at little CPU cost:
    # writing the files, not reading the table, is what bounds sharding's time.
    sink = pa.BufferOutputStream()
    with ipc.new_file(sink, table.schema, options=_IPC) as w:
        w.write_table(table)
    layout.fs.pipe_file(layout.tmp(name), sink.getvalue())
    layout.commit(name)


def read_shard(output_folder: str, shard_id: int) -> list[dict[str, Any]]:
    layout = Layout(output_folder)
    with layout.fs.open(layout.path(input_name(shard_id)), "rb") as f:
        return ipc.open_file(f).read_all().to_pylist()
