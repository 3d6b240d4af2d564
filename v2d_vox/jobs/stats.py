"""``stats``: the totals of any output folder (this project's or video2dataset's), from its shard stats."""

from __future__ import annotations

import json as jsonlib
from typing import Annotated, Any

from ..options import Help, documented
from ..totals import folder_stats, format_stats


@documented
def stats(
    output_folder: Annotated[str, Help("an output folder: download, reprocess, scan or video2dataset's")],
    *,
    json: Annotated[bool, Help("print the totals as JSON (for scripts) instead of a summary")] = False,
) -> dict[str, Any]:
    """Print a folder's totals: statuses, top errors, bytes, media seconds, time per stage, throughput."""
    totals = folder_stats(output_folder)
    print(jsonlib.dumps(totals, indent=1, sort_keys=True, default=str) if json else format_stats(totals), flush=True)
    return totals
