"""Input tables -> ``_inputs/NNNNN.arrow``: stable shard ids and keys, memory flat in the row count.

Tables are streamed in record batches and each shard is written, by a small thread pool, as soon as it
fills, so a 10M-row table never sits in memory (benchmarks/bench_sharding.py measures time and peak RSS).
The same inputs and arguments always give the same shards and keys:
files are taken in sorted order and a ``_done.json`` with a signature pins the layout for reruns.

A column keeps one type in every input shard: pyarrow fixes a csv column's type from its first block (and a
json batch's from its rows), so when a later block, batch or file disagrees, that column is read as text in
every table and the sharding starts over (one more streaming pass per such column, no row lost)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
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
BATCH_ROWS = 65536  # rows per record batch read: large enough that per-batch overhead vanishes
CSV_BLOCK = 1 << 22  # bytes per csv block; pyarrow infers each column's type from the first one
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


class _Retype(ConfigError):
    """A column changed type after its first rows: sharding starts over with it read as text, or, with
    ``as_type``, known as that type from the start (a column that came, or first held values, after them; a
    number column whose later rows need a wider type)."""

    def __init__(self, url: str, column: str, why: str, as_type: pa.DataType | None = None):
        super().__init__(f"{url}: column {column!r} {why[:160]}")
        self.column, self.as_type = column, as_type


def _widened(a: pa.DataType, b: pa.DataType) -> pa.DataType | None:
    """The type that holds numbers of both ``a`` and ``b`` (int32 and int64: int64; an int and a float:
    float64); None when one is no number."""
    if pa.types.is_integer(a) and pa.types.is_integer(b):
        return pa.int64()
    if all(pa.types.is_integer(t) or pa.types.is_floating(t) for t in (a, b)):
        return pa.float64()
    return None


_CSV_CONVERSION = re.compile(r"In CSV column #(\d+): CSV conversion error")


def read_batches(url: str, fmt: str, text: frozenset[str] = frozenset()) -> Iterator[pa.Table]:
    """Stream a table file as pyarrow tables of at most BATCH_ROWS rows (json arrays load whole); the
    ``text`` columns come as strings. Raises ``_Retype`` for a column that changes type within the file."""
    with fsspec.open(url, "rb") as f:
        if fmt == "parquet":
            for batch in pq.ParquetFile(f).iter_batches(batch_size=BATCH_ROWS):
                yield _as_text(pa.Table.from_batches([batch]), text)
        elif fmt in ("csv", "tsv"):
            opts = pcsv.ParseOptions(delimiter="\t" if fmt == "tsv" else ",")
            # Raw bytes, never a conversion error; _as_text decodes them.
            convert = pcsv.ConvertOptions(column_types=dict.fromkeys(text, pa.binary()))
            reader = pcsv.open_csv(f, parse_options=opts, read_options=pcsv.ReadOptions(block_size=CSV_BLOCK),
                                   convert_options=convert)
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    return
                except pa.ArrowInvalid as e:
                    found = _CSV_CONVERSION.match(str(e))
                    if found is None:  # not a type change: a malformed file
                        raise
                    why = f"changes type after the first block ({str(e).split(': ', 1)[1]})"
                    raise _Retype(url, reader.schema.names[int(found[1])], why) from None
                yield _as_text(pa.Table.from_batches([batch]), text)
        elif fmt == "json":
            rows = json.load(f)
            if not isinstance(rows, list):
                raise ConfigError(f"{url}: a .json table must hold a list of objects; use .jsonl for lines")
            for i in range(0, len(rows), BATCH_ROWS):
                yield _from_rows(rows[i : i + BATCH_ROWS], text, url)
        else:
            batch: list[Any] = []
            for line in f:
                line = line.strip()
                if not line:
                    continue
                batch.append(json.loads(line) if fmt == "jsonl" else {"url": line.decode("utf-8", "replace")})
                if len(batch) == BATCH_ROWS:
                    yield _from_rows(batch, text, url)
                    batch = []
            if batch:
                yield _from_rows(batch, text, url)


def _from_rows(rows: list[Any], text: frozenset[str], url: str) -> pa.Table:
    """JSON objects -> a table with every key that any of them has (``Table.from_pylist`` keeps only the
    first object's keys). A ``text`` column holds each value's JSON text (strings as they are)."""
    for row in rows:
        if not isinstance(row, dict):
            raise ConfigError(f"{url}: every row must be a JSON object, got {json.dumps(row)[:80]}")
    names = list(dict.fromkeys(k for row in rows for k in row))
    if rows and len(names) == len(rows[0]) and text.isdisjoint(names):  # the fast path loses nothing
        try:
            return pa.Table.from_pylist(rows)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            pass  # the loop below names the column
    cols = {}
    for name in names:
        values = [row.get(name) for row in rows]
        if name in text:
            cols[name] = pa.array([v if v is None or isinstance(v, str) else json.dumps(v) for v in values],
                                  pa.string())
            continue
        try:
            cols[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as e:
            raise _Retype(url, name, f"changes type within a batch ({e})") from None
    return pa.table(cols)


def _normalize(table: pa.Table, spec: TableSpec, url: str, types: dict[str, pa.DataType],
               first: bool) -> pa.Table:
    """Rename the user's columns to url/caption/clips and keep the requested extras, every one in every
    batch, in the type of the first rows (``types``: filled by the ``first`` batch, or known from a pass
    before; raises ``_Retype`` for a column that is new or changes type)."""
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
    if spec.clip_col:  # JSON text (lists from parquet or json become theirs); an empty cell means no clips
        clips = _text(table[spec.clip_col])
        cols["clips"] = pc.if_else(pc.equal(clips, ""), pa.scalar(None, pa.string()), clips)
    for c in extras:
        column, known = table[c], types.get(c)
        if known is None or pa.types.is_null(known):
            if not first and not pa.types.is_null(column.type):  # the shards before lack it or hold nulls
                where = "empty in" if known else "absent from"
                raise _Retype(url, c, f"is {where} the first rows, {column.type} here", column.type)
            types[c] = column.type
        elif column.type != known and not pa.types.is_null(column.type):
            wider = _widened(known, column.type)
            if wider != known:  # numbers: known as the wider type from the start; anything else: text
                raise _Retype(url, c, f"is {known} in the first rows, {column.type} here", wider)
    for c, known in types.items():  # every extra seen, in one order, absent ones as nulls
        name = f"input_{c}" if c in RESERVED_FIELDS else c  # a "status" or "key" column must not pass for ours
        if name not in cols:
            column = table[c] if c in names else pa.nulls(table.num_rows, known)
            cols[name] = column if column.type == known else column.cast(known)
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
    decoded with U+FFFD for the bad bytes: one odd cell costs a character, not the job. Lists and structs
    become their JSON text, other values Arrow's text of them."""
    if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
        try:
            return column.cast(pa.string())  # checks UTF-8
        except pa.ArrowInvalid:
            values = [None if v is None else v.decode("utf-8", "replace") for v in column.to_pylist()]
            return pa.chunked_array([pa.array(values, pa.string())])
    if pa.types.is_nested(column.type):
        values = [None if v is None else json.dumps(v, default=str) for v in column.to_pylist()]
        return pa.chunked_array([pa.array(values, pa.string())])
    return column.cast(pa.string())


def _as_text(table: pa.Table, text: frozenset[str]) -> pa.Table:
    """The table with its ``text`` columns as strings."""
    for name in text.intersection(table.column_names):
        i = table.column_names.index(name)
        table = table.set_column(i, name, _text(table[i]))
    return table


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
    text: set[str] = set()
    known: dict[str, pa.DataType] = {}  # kept columns whose type is known from the start of a pass
    while True:
        try:
            shards, rows = _write_shards(layout, urls, fmts, spec, writers, frozenset(text), dict(known))
            break
        except _Retype as e:
            before = (set(text), dict(known))
            if e.as_type is None:
                text.add(e.column)
                if _kept(spec, e.column):  # text from the first row, even where it comes late
                    known[e.column] = pa.string()
            else:
                known[e.column] = pa.string() if e.column in text else e.as_type
            if (text, known) == before:  # nothing learned: another pass would stop in the same place
                raise
            how = "read as text" if e.as_type is None else f"kept as {known[e.column]}"
            print(f"{e}: {how} in every table (null where absent); sharding again", file=sys.stderr, flush=True)
    layout.write_json(_DONE, {"signature": sig, "shards": shards, "rows": rows, "inputs": urls,
                              "spec": asdict(spec), "text_columns": sorted(text)})
    return shards, rows


def _kept(spec: TableSpec, column: str) -> bool:
    """Whether ``column`` goes into the input shards as an extra column."""
    if column in (spec.url_col, spec.caption_col, spec.clip_col):
        return False
    return spec.save_additional_columns is None or column in spec.save_additional_columns


def _write_shards(layout: Layout, urls: list[str], fmts: list[str], spec: TableSpec, writers: int,
                  text: frozenset[str], types: dict[str, pa.DataType]) -> tuple[int, int]:
    """One streaming pass over the tables, ``text`` columns read as text and ``types`` known from the start
    -> (shards, rows). Raises ``_Retype`` at the first column that is new or changes type after the first
    rows; the next pass overwrites the shards this one wrote."""
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
            for batch in _checked(read_batches(url, fmt, text), url, fmt):
                pending.append(_normalize(batch, spec, url, types, first=rows == 0))
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
