"""Writing a recipe's rows: parquet and jsonl keep nested columns as lists; csv stores them as JSON text
(which ``download``'s clip column and ``face_crop`` both read)."""

from __future__ import annotations

import io
import json
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from ..errors import ConfigError

TABLE_FORMATS = ("parquet", "csv", "jsonl")


def write_table(rows: list[dict[str, Any]], path: str) -> str:
    """Write ``rows`` to ``path`` (local or fsspec URL); its extension picks the format. Returns the format."""
    fmt = path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
    if fmt not in TABLE_FORMATS:
        raise ConfigError(f"cannot tell the table format of {path!r}: end it in one of {TABLE_FORMATS}")
    if not rows:
        raise ConfigError(f"nothing to write to {path}: the metadata held no rows")
    with fsspec.open(path, "wb") as f:
        if fmt == "jsonl":
            f.write("".join(json.dumps(r) + "\n" for r in rows).encode())
        elif fmt == "parquet":
            pq.write_table(pa.Table.from_pylist(rows), f)
        else:
            flat = [{k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in r.items()} for r in rows]
            buf = io.BytesIO()
            pcsv.write_csv(pa.Table.from_pylist(flat), buf)
            f.write(buf.getvalue())
    return fmt
