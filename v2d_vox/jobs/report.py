"""``report``: one self-contained HTML page about an output folder (`v2d_vox.htmlreport`)."""

from __future__ import annotations

from typing import Annotated, Any

import fsspec

from ..errors import ConfigError
from ..options import Help, documented


@documented
def report(
    output_folder: Annotated[str, Help("an output folder: download, reprocess, scan or video2dataset's")],
    *,
    html: Annotated[str | None, Help("where the page goes (None: OUTPUT_FOLDER/report.html)")] = None,
    shards_sampled: Annotated[int, Help("tars, spread over the folder, whose first samples are shown")] = 6,
    samples_per_shard: Annotated[int, Help("samples shown (frame, log-mel, audio player) per sampled tar")] = 2,
) -> dict[str, Any]:
    """Write one HTML file with plots, error breakdown, sample frames, log-mels, audio and the job's config."""
    fs, root = fsspec.core.url_to_fs(output_folder)
    if not fs.isdir(root):
        raise ConfigError(f"output folder {output_folder!r} does not exist")
    if shards_sampled < 0 or samples_per_shard < 0:
        raise ConfigError("shards_sampled and samples_per_shard must be >= 0")
    path = html or f"{output_folder.rstrip('/')}/report.html"
    from ..htmlreport import build  # matplotlib takes ~1 s to import: only a report pays for it

    page, shown = build(output_folder, shards_sampled, samples_per_shard)
    with fsspec.open(path, "w", encoding="utf-8") as f:
        f.write(page)
    print(f"report: {path} ({shown['shards']} shards, {shown['rows']} rows, {shown['samples_shown']} samples shown)",
          flush=True)
    return {"html": path, **shown}
