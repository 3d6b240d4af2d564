"""One self-contained HTML report of an output folder: totals, success and failure per shard, the error
breakdown, histograms of the sources' durations, resolutions, frame rates and sample rates, thumbnails,
log-mel images and audio players for a few samples, and the job's configuration.

It stays fast on 10,000 shards because everything but the samples shown is aggregated from the small
files: the shards' stats (statuses per shard, errors) and a few columns of the metadata parquets (read
in parallel). Only ``samples_per_shard`` samples of ``shards_sampled`` evenly spread tars are decoded.
Plots are matplotlib figures drawn without pyplot (no GUI backend, no global state); images and audio
are embedded as data URIs, and the page has no script, so it opens anywhere offline."""

from __future__ import annotations

import base64
import html
import io
import json
import tarfile
import time
import wave
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .layout import JOB, Layout, metadata_name, shard_name, tar_name
from .media import decode_mono, open_media
from .melspec import MelSpec
from .sample import JSON, MEL, TXT, audio_member, video_member
from .tars import read_tar
from .totals import folder_stats, read_shard_stats

COLUMNS = ("status", "duration", "width", "height", "fps", "sample_rate")
SECTIONS = ("summary", "shards", "errors", "distributions", "samples", "config")
STATUS_COLORS = {"success": "#2e7d32", "failed_to_download": "#c62828", "failed_to_subsample": "#ef6c00",
                 "filtered": "#9e9e9e"}
AUDIO_SECONDS = 5.0  # each player holds at most this much, as 16 kHz mono WAV
THUMB_WIDTH = 192


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _img(uri: str, alt: str, cls: str = "plot") -> str:
    return f'<img class="{cls}" alt="{html.escape(alt)}" src="{uri}">'


# ---------------------------------------------------------------- aggregates


def read_columns(layout: Layout, shard_ids: list[int]) -> pa.Table:
    """The probe columns of every shard's metadata parquet that has them, concatenated (missing -> null)."""
    schema = pa.schema([("status", pa.string())] + [(c, pa.float64()) for c in COLUMNS[1:]])

    def one(sid: int) -> pa.Table | None:
        path = layout.path(metadata_name(sid))
        try:
            with layout.fs.open(path, "rb") as f:
                pf = pq.ParquetFile(f)
                present = [c for c in COLUMNS if c in pf.schema_arrow.names]
                table = pf.read(columns=present)
        except (OSError, pa.ArrowException):
            return None  # a folder without metadata parquets (or a foreign one) still gets a report
        cols = {c: (table.column(c).cast(schema.field(c).type) if c in present else pa.nulls(len(table),
                    schema.field(c).type)) for c in COLUMNS}
        return pa.table(cols, schema=schema)

    with ThreadPoolExecutor(16) as pool:
        tables = [t for t in pool.map(one, shard_ids) if t is not None]
    return pa.concat_tables(tables) if tables else schema.empty_table()


def _shard_plot(per_shard: dict[int, dict[str, Any]]) -> str:
    ids = sorted(per_shard)
    fig = Figure(figsize=(10, 2.8))
    ax = fig.add_subplot()
    bottom = np.zeros(len(ids))
    for status, color in STATUS_COLORS.items():
        key = "successes" if status == "success" else status
        values = np.array([per_shard[s].get(key, 0) or 0 for s in ids], dtype=float)
        if values.any():
            ax.fill_between(ids, bottom, bottom + values, step="mid", color=color, label=status, linewidth=0)
            bottom += values
    ax.set_xlabel("shard id")
    ax.set_ylabel("samples")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if ids:
        ax.set_xlim(ids[0] - 0.5, ids[-1] + 0.5)
    ax.legend(loc="upper right", fontsize=8)
    return _png(fig)


def _error_plot(errors: dict[str, int]) -> str:
    fig = Figure(figsize=(10, 0.5 + 0.35 * len(errors)))
    ax = fig.add_subplot()
    labels = [m if len(m) <= 70 else m[:67] + "..." for m in errors]
    ax.barh(range(len(errors)), list(errors.values()), color="#c62828")
    ax.set_yticks(range(len(errors)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("samples")
    return _png(fig)


def _histograms(table: pa.Table) -> str:
    """Durations, frame rates, sample rates (histograms) and the most common resolutions (bars)."""
    fig = Figure(figsize=(12, 6))
    axes = fig.subplots(2, 2)
    def values(column: str) -> np.ndarray:
        return table.column(column).to_numpy(zero_copy_only=False).astype(float)  # nulls -> nan

    for ax, (column, label) in zip(axes.flat, (("duration", "duration (s)"), ("fps", "frame rate (fps)"),
                                               ("sample_rate", "sample rate (Hz)"))):
        probed = values(column)
        probed = probed[np.isfinite(probed)]
        if probed.size:
            ax.hist(probed, bins=min(40, len(np.unique(probed))), color="#1565c0")
        ax.set_xlabel(label)
        ax.set_ylabel("sources")
        ax.set_title(f"{label}: {probed.size} probed", fontsize=9)
    width, height = values("width"), values("height")
    known = np.isfinite(width) & np.isfinite(height) & (width > 0) & (height > 0)
    pairs, counts = np.unique(np.stack([width[known], height[known]], 1).astype(int), axis=0, return_counts=True)
    sizes = {f"{w}x{h}": int(n) for (w, h), n in zip(pairs, counts)}
    top = sorted(sizes.items(), key=lambda kv: -kv[1])[:12]
    ax = axes.flat[3]
    ax.barh([s for s, _ in top], [n for _, n in top], color="#6a1b9a")
    ax.invert_yaxis()
    ax.set_xlabel("sources")
    ax.set_title(f"resolutions: {len(sizes)} distinct", fontsize=9)
    fig.tight_layout()
    return _png(fig)


# ---------------------------------------------------------------- samples


def _thumbnail(data: bytes) -> str | None:
    """A frame from the middle of the first video stream, as a JPEG data URI."""
    with open_media(data) as c:
        if not c.streams.video:
            return None
        stream = c.streams.video[0]
        if c.duration:
            c.seek(c.duration // 2, any_frame=False)
        frame = next(c.decode(stream), None)
        if frame is None:
            return None
        height = max(2, round(frame.height * THUMB_WIDTH / frame.width / 2) * 2)
        rgb = frame.to_ndarray(width=THUMB_WIDTH, height=height, format="rgb24")
    fig = Figure(figsize=(THUMB_WIDTH / 96, height / 96), dpi=96)
    fig.figimage(rgb)
    buf = io.BytesIO()
    fig.savefig(buf, format="jpeg", dpi=96)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def _audio(data: bytes) -> np.ndarray | None:
    """Up to AUDIO_SECONDS of the first audio stream as 16 kHz mono float32."""
    pcm = decode_mono(data, 16000, AUDIO_SECONDS)
    return pcm if pcm is not None and pcm.size else None


def _wav(pcm: np.ndarray) -> str:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((np.clip(pcm, -1, 1) * 32767).astype("<i2").tobytes())
    return "data:audio/wav;base64," + base64.b64encode(buf.getvalue()).decode()


def _mel_image(mel: np.ndarray) -> str:
    fig = Figure(figsize=(3.2, 1.6))
    ax = fig.add_subplot()
    ax.imshow(mel, origin="lower", aspect="auto", cmap="magma")
    ax.set_axis_off()
    return _png(fig)


def _sample_card(key: str, members: dict[str, bytes]) -> str:
    """Thumbnail, log-mel (stored, else computed from the audio) and a player for one sample."""
    parts = [f"<h4>{html.escape(key)}</h4>"]
    try:
        meta = json.loads(members.get(JSON, b"{}"))
    except ValueError:
        meta = {}
    if TXT in members:
        parts.append(f"<p class=caption>{html.escape(members[TXT].decode('utf-8', 'replace')[:200])}</p>")
    try:
        video = video_member(members)
        thumb = _thumbnail(members[video]) if video else None
        if thumb:
            parts.append(_img(thumb, f"frame of {key}", "thumb"))
        source = audio_member(members)
        pcm = _audio(members[source]) if source else None
        if MEL in members:
            mel = np.load(io.BytesIO(members[MEL]), allow_pickle=False)
            parts.append(_img(_mel_image(mel), f"stored log-mel of {key}", "mel"))
        elif pcm is not None:
            import torch  # only to compute a mel the sample does not store

            parts.append(_img(_mel_image(MelSpec()(torch.from_numpy(pcm)).numpy()), f"log-mel of {key}", "mel"))
        if pcm is not None:
            parts.append(f'<audio controls preload="none" src="{_wav(pcm)}"></audio>')
    except (av.error.FFmpegError, ValueError, OSError) as e:
        parts.append(f"<p class=bad>not decodable: {html.escape(str(e)[:160])}</p>")
    span = meta.get("span") if isinstance(meta, dict) else None
    if span:
        parts.append(f"<p class=small>span {span[0]:.2f}-{span[1]:.2f} s</p>")
    return f"<div class=card>{''.join(parts)}</div>"


def _samples(layout: Layout, shard_ids: list[int], shards: int, per_shard: int) -> tuple[str, int]:
    """Cards for the first ``per_shard`` samples of up to ``shards`` evenly spread tars."""
    tars = [s for s in shard_ids if layout.exists(tar_name(s))]
    if not tars:
        return "<p>no tar shards in this folder (files or parquet output, or nothing written)</p>", 0
    picked = sorted({tars[round(i * (len(tars) - 1) / max(1, shards - 1))] for i in range(min(shards, len(tars)))})
    rows, shown = [], 0
    for sid in picked:
        cards = []
        try:
            for key, members in read_tar(layout.fs.unstrip_protocol(layout.path(tar_name(sid)))):
                cards.append(_sample_card(key, members))
                if len(cards) >= per_shard:
                    break
        except (OSError, ValueError, EOFError, tarfile.TarError, zlib.error) as e:  # TarTooLarge is a ValueError
            cards.append(f"<p class=bad>unreadable shard: {html.escape(str(e)[:160])}</p>")
        shown += len(cards)
        rows.append(f"<h3>shard {shard_name(sid)}</h3><div class=cards>{''.join(cards) or 'no samples'}</div>")
    return "".join(rows), shown


# ---------------------------------------------------------------- page


CSS = """body{font:14px/1.4 system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}
.plot{max-width:100%}.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{border:1px solid #ddd;border-radius:6px;padding:8px;width:330px}.card h4{margin:0 0 4px;word-break:break-all}
.mel,.thumb{display:block;margin:4px 0}.caption,.small{font-size:12px;color:#555}.bad{color:#c62828}
pre{background:#f6f6f6;padding:8px;overflow:auto;max-height:400px}audio{width:100%}"""


def _table(rows: list[tuple[str, Any]]) -> str:
    return "<table>" + "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                               for k, v in rows) + "</table>"


def build(folder: str, shards_sampled: int = 6, samples_per_shard: int = 2) -> tuple[str, dict[str, Any]]:
    """The report's HTML and what it shows (counts), for the output folder ``folder``."""
    layout = Layout(folder)
    per_shard = read_shard_stats(layout)
    totals = folder_stats(folder, per_shard)
    ids = sorted(per_shard)
    probed = read_columns(layout, ids)
    job = layout.read_json(JOB) if layout.exists(JOB) else None
    sections = {}
    status = totals.get("status", {})
    sections["summary"] = _table([
        ("shards done / total", f"{totals['shards_done']} / {totals['shards_total']}"),
        ("shards failed", totals["shards_failed"][:50] or "none"), ("samples", totals["samples"]),
        *((f"status {k}", v) for k, v in status.items()), ("outputs", totals["outputs"]),
        ("bytes fetched / written", f"{totals['bytes_downloaded']} / {totals['bytes_written']}"),
        *((f"media seconds {k}", v) for k, v in totals["media_seconds"].items()),
        *((f"busy seconds {k}", v) for k, v in totals["stage_seconds"].items()),
        ("samples/s per shard worker", totals["samples_per_shard_second"]),
    ])
    sections["shards"] = (_img(_shard_plot(per_shard), "statuses per shard") if ids else "<p>no shard is done</p>")
    errors = totals.get("top_errors", {})
    sections["errors"] = (_img(_error_plot(errors), "top errors") + _table([(m, n) for m, n in errors.items()])
                          if errors else "<p>no errors</p>")
    sections["distributions"] = (_img(_histograms(probed), "distributions") if probed.num_rows
                                 else "<p>no probe metadata in this folder</p>")
    cards, shown = _samples(layout, ids, shards_sampled, samples_per_shard)
    sections["samples"] = cards
    config = {"job": job, "versions": totals.get("versions")}
    sections["config"] = f"<pre>{html.escape(json.dumps(config, indent=1, sort_keys=True, default=str))}</pre>"
    titles = {"summary": "Summary", "shards": "Success and failure per shard", "errors": "Errors",
              "distributions": "Sources: durations, resolutions, frame rates, sample rates",
              "samples": "Samples", "config": "Configuration"}
    body = "".join(f'<section id="{name}"><h2>{titles[name]}</h2>{sections[name]}</section>' for name in SECTIONS)
    page = (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>v2d_vox report: "
            f"{html.escape(folder)}</title><style>{CSS}</style></head><body><h1>v2d_vox report</h1>"
            f"<p>{html.escape(folder)} &middot; {time.strftime('%Y-%m-%d %H:%M:%S')}</p>{body}</body></html>")
    return page, {"shards": len(ids), "rows": probed.num_rows, "samples_shown": shown}

