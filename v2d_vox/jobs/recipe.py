"""``recipe``: a dataset's published metadata -> a table ``download`` takes as it is (``v2d_vox.recipes``)."""

from __future__ import annotations

import posixpath
from typing import Annotated, Any

from ..errors import ConfigError
from ..options import Help, documented
from ..recipes import RECIPES, TABLE_FORMATS, write_table
from ..recipes.voxceleb2 import YOUTUBE

NEXT = {"voxceleb2": 'download("{table}", OUT, clip_col="clips", config="voxceleb2")',
        "esc50": 'download("{table}", OUT, config="esc50")'}


@documented
def recipe(
    name: Annotated[str, Help("the dataset whose metadata to read", tuple(RECIPES))],
    metadata: Annotated[str, Help(
        "voxceleb2: the metadata folder (idNNNNN/REFERENCE/NNNNN.txt); esc50: meta/esc50.csv; "
        "local paths or fsspec URLs")],
    table: Annotated[str, Help(f"the table to write; its extension picks the format ({', '.join(TABLE_FORMATS)})")],
    *,
    url_template: Annotated[str, Help(
        "voxceleb2: each source video's URL, {reference} (the YouTube id) and {identity} filled in; "
        "e.g. a local mirror: /data/vox2/{identity}/{reference}.mp4")] = YOUTUBE,
    audio_base: Annotated[str | None, Help(
        "esc50: the folder or URL prefix the csv's filenames are relative to (None: the audio/ folder next "
        "to the csv's meta/ folder, the dataset's own layout)")] = None,
) -> dict[str, Any]:
    """Turn VoxCeleb2 or ESC-50 metadata into a table of URLs for download (one row per source)."""
    if name not in RECIPES:
        raise ConfigError(f"unknown recipe {name!r}; choose one of {tuple(RECIPES)}")
    if name == "voxceleb2":
        rows = RECIPES[name](metadata, url_template=url_template)
        extra = {"identities": len({r["identity"] for r in rows}), "utterances": sum(len(r["clips"]) for r in rows)}
    else:
        base = audio_base or posixpath.join(posixpath.dirname(posixpath.dirname(metadata)) or ".", "audio")
        rows = RECIPES[name](metadata, audio_base=base)
        extra = {"classes": len({r["target"] for r in rows}), "folds": sorted({r["fold"] for r in rows})}
    fmt = write_table(rows, table)
    summary = {"recipe": name, "table": table, "format": fmt, "rows": len(rows), **extra}
    print(f"{name}: {len(rows)} rows -> {table} ({', '.join(f'{k} {v}' for k, v in extra.items())}); next: "
          + NEXT[name].format(table=table), flush=True)
    return summary
