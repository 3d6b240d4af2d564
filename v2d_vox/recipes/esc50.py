"""ESC-50's ``meta/esc50.csv`` (``filename,fold,target,category,esc10,src_file,take``; files under
``audio/``) -> one row per clip with a ``url`` under ``audio_base``."""

from __future__ import annotations

import csv
import io
from typing import Any

import fsspec

from ..errors import ConfigError

COLUMNS = ("filename", "fold", "target", "category")
INTS = ("fold", "target")


def join(base: str, name: str) -> str:
    """``audio_base`` (a folder or URL prefix) + a filename relative to it."""
    return f"{base.rstrip('/')}/{name.lstrip('/')}"


def esc50(meta_csv: str, audio_base: str) -> list[dict[str, Any]]:
    """Read the meta csv (local or fsspec URL) -> rows with ``url`` = ``audio_base``/filename first, then
    every meta column; ``fold`` and ``target`` as ints, ``esc10`` as a bool."""
    with fsspec.open(meta_csv, "rt", encoding="utf-8", newline="") as f:
        text = f.read()
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ConfigError(f"{meta_csv}:1: missing column(s) {', '.join(missing)}; columns are {reader.fieldnames}")
    rows = []
    for record in reader:
        line = reader.line_num
        if None in record or any(record[c] in (None, "") for c in COLUMNS):
            raise ConfigError(f"{meta_csv}:{line}: expected {len(reader.fieldnames)} fields with "
                              f"{', '.join(COLUMNS)} set")
        row: dict[str, Any] = {"url": join(audio_base, record["filename"]), **record}
        try:
            row.update({c: int(record[c]) for c in INTS})
        except ValueError:
            raise ConfigError(f"{meta_csv}:{line}: fold and target must be integers, got "
                              f"{record['fold']!r}, {record['target']!r}") from None
        if "esc10" in record:
            row["esc10"] = record["esc10"].strip().lower() in ("true", "1")
        rows.append(row)
    return rows
