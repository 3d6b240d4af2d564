"""Recipes: a dataset's published metadata -> a table ``download`` takes as it is.

- ``voxceleb2(metadata_dir)``: the official ``idNNNNN/REFERENCE/NNNNN.txt`` files -> one row per source
  video (``url``, ``identity``, ``video_id``, ``clips``, ``face_tracks``, ``utterances``), for
  ``download(table, out, clip_col="clips", config="voxceleb2")``;
- ``esc50(meta_csv, audio_base)``: ``meta/esc50.csv`` -> one row per clip (``url`` and the meta columns),
  for ``download(table, out, config="esc50")``.

``write_table(rows, path)`` stores the rows as parquet, csv or jsonl (from the extension). Bad metadata
raises ``ConfigError`` naming the file and line."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .esc50 import esc50
from .table import TABLE_FORMATS, write_table
from .voxceleb2 import voxceleb2

RECIPES: dict[str, Callable[..., list[dict[str, Any]]]] = {"voxceleb2": voxceleb2, "esc50": esc50}

__all__ = ["RECIPES", "TABLE_FORMATS", "esc50", "voxceleb2", "write_table"]
